"""A fixed wavelet with a learned coarse-to-fine context model: can c2f reach JPEG 2000?

Round 13 put c2f's hyper stack on a fixed CDF 9/7 wavelet folded onto y's 1/16 grid and
found the entropy model spending twice what a static histogram per channel would: a
hyper representation at 1/16 cannot say where in its 16 x 16 block an edge puts the
few significant fine coefficients. JPEG 2000 (-26% BD-rate against WebP on the arms'
held-out crops, -17% on Kodak, with the same transform) gets that from coefficients it
has already coded. This arm gives c2f's entropy model the same: the subbands stay at
their own resolution and are coded coarsest first, each level's scales predicted from
everything coarser (the low-pass image at that level's resolution, rebuilt from what
is decoded, and the parent level's magnitudes) and, in a second checkerboard pass, from
the level's own anchors (He et al., CVPR 2021). The coarse levels are then both the
hyper representation and the preview: coarse predicts fine, as in Hu, Yang and Liu,
with the "hyper" layers part of the picture. The estimate-quantise coders of the
1990s (LoPresto, Ramchandran and Orchard, DCC 1997: a local variance from causal
neighbours and the parent, then a Laplacian) are this idea with a fixed estimator.

Nothing in the transform learns, so training is maximum likelihood of the quantised
coefficients at random step sizes: fast, and the rate is the ideal code length of the
discretised Laplacian (what an entropy coder with exact tables would spend). One model
serves every rate: it predicts a spread in coefficient units and divides by the step.

    python lab/wavelet_ctx.py train --minutes 30 --threads 1 --out lab/arms/wavelet-ctx
    python lab/wavelet_ctx.py curves lab/arms/wavelet-ctx --peers lab/arms/curves-round13-crops.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from wavelet import COLOUR, dwt_2d, idwt_2d  # lab/, beside this file

from c2f_format.train.data import CropSampler, load_images, validation_crops

LEVELS = 6  # 1/64: images are padded to multiples of 64
HIDDEN = 32  # the context networks' width
CARRY = 16  # features handed from a level to the next finer one
STEP_MIN, STEP_MAX = 0.015, 0.6  # quantiser steps trained (pixels in [0, 1], orthonormal)
DELTA0 = 0.05  # the unit of the log-amplitude features
SCALE_FLOOR = 0.04  # smallest Laplacian spread, in steps (P(0) about 1 - 4e-6)


def pyramid(x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """[B,3,H,W] in [0,1] -> (LL at 1/64 [B,3,...], details[l] for levels 1..6, each
    [B,9,H/2^l,W/2^l]: HL, LH, HH of the three opponent colours)."""
    c = torch.einsum("oc,bchw->bohw", COLOUR.to(x), x.float() - 0.5)
    details = []
    for _ in range(LEVELS):
        c, hl, lh, hh = dwt_2d(c)
        details.append(torch.cat([hl, lh, hh], dim=1))
    return c, details


def unpyramid(ll: Tensor, details: list[Tensor]) -> Tensor:
    """The exact inverse of `pyramid`."""
    c = ll
    for d in reversed(details):
        c = idwt_2d(c, *torch.split(d, 3, dim=1))
    return torch.einsum("oc,bohw->bchw", COLOUR.to(c), c) + 0.5


def laplace_bits(q: Tensor, scale: Tensor) -> Tensor:
    """-log2 P(q) for integers q under a zero-mean Laplacian of spread `scale` (in steps),
    discretised to unit bins; stable for tiny and huge spreads."""
    b = scale.clamp_min(SCALE_FLOOR)
    a = q.abs()
    zero = -torch.log(-torch.expm1(-0.5 / b))
    # |q| >= 1: (exp(-(a-0.5)/b) - exp(-(a+0.5)/b)) / 2
    other = (a - 0.5) / b - torch.log(-torch.expm1(-1.0 / b)) + math.log(2.0)
    return torch.where(a < 0.5, zero, other) / math.log(2.0)


def laplace_bits_mean(q: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
    """-log2 P(q) under a Laplacian centred at `mean` (steps), discretised to unit bins."""
    b = scale.clamp_min(SCALE_FLOOR)

    def cdf(t: Tensor) -> Tensor:
        return torch.where(t < 0, 0.5 * torch.exp(t / b), 1 - 0.5 * torch.exp(-t / b))

    p = (cdf(q - mean + 0.5) - cdf(q - mean - 0.5)).clamp_min(1e-9)
    return -torch.log2(p)


def amplitude(v: Tensor, step: Tensor) -> Tensor:
    """Log amplitude of dequantised coefficients, floored at half a step: what a decoded
    value says about the local spread ("below a step" for a zero)."""
    return torch.log((v.abs() + 0.5 * step) / DELTA0)


class ContextNet(nn.Module):
    """3x3 -> k x k -> 1x1, LeakyReLU between (k = 1: the neighbourhood is read once,
    then mixed)."""

    def __init__(self, cin: int, cout: int, hidden: int = HIDDEN, k: int = 1) -> None:
        super().__init__()
        self.a = nn.Conv2d(cin, hidden, 3, padding=1, padding_mode="replicate")
        self.b = nn.Conv2d(hidden, hidden, k, padding=k // 2, padding_mode="replicate")
        self.c = nn.Conv2d(hidden, cout, 1)
        nn.init.zeros_(self.c.weight)
        nn.init.zeros_(self.c.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.c(F.leaky_relu(self.b(F.leaky_relu(self.a(x), 0.1)), 0.1)).float()


def checkerboard(h: int, w: int, device: torch.device) -> Tensor:
    """1 at the anchors (coded first), [1,1,h,w]."""
    i = torch.arange(h, device=device).view(-1, 1)
    j = torch.arange(w, device=device).view(1, -1)
    return ((i + j) % 2 == 0).float().view(1, 1, h, w)


class PyramidContext(nn.Module):
    """The coarse-to-fine entropy model of a wavelet pyramid.

    Context of level l (both passes): the low-pass image at that level's resolution
    (rebuilt from the decoded coarser levels, scaled to pixel units), the parent level's
    log amplitudes and carried features (nearest-upsampled), log step, which level.
    The second pass adds the anchors' log amplitudes. Weights are shared by all levels.
    """

    def __init__(self, hidden: int = HIDDEN, k: int = 1) -> None:
        super().__init__()
        self.shape = {"hidden": hidden, "k": k}
        ctx = 3 + 9 + CARRY + 1 + LEVELS
        self.anchor = ContextNet(ctx, 9, hidden, k)
        self.rest = ContextNet(ctx + 9 + 1, 9, hidden, k)
        self.carry = ContextNet(ctx + 9, CARRY, hidden, k)
        # a spread a level and band at the unit step, learned; the nets add to its log
        self.base = nn.Parameter(torch.zeros(LEVELS, 9))
        # the 1/64 low-pass: a Laplacian per colour with learned mean and spread
        self.ll_mean = nn.Parameter(torch.zeros(3))
        self.ll_scale = nn.Parameter(torch.full((3,), math.log(4.0)))

    def _context(
        self, level: int, low: Tensor, parent: Tensor | None, carried: Tensor | None, step: Tensor
    ) -> Tensor:
        b, _, h, w = low.shape
        if parent is None or carried is None:
            amp = low.new_zeros(b, 9, h, w)
            carried = low.new_zeros(b, CARRY, h, w)
        else:
            amp = F.interpolate(parent, scale_factor=2.0, mode="nearest")
            carried = F.interpolate(carried, scale_factor=2.0, mode="nearest")
        onehot = low.new_zeros(b, LEVELS, h, w)
        onehot[:, level - 1] = 1.0
        logstep = torch.log(step / DELTA0).view(-1, 1, 1, 1).expand(b, 1, h, w)
        return torch.cat([low / 2**level, amp, carried, logstep, onehot], dim=1)

    def code(
        self, ll: Tensor, details: list[Tensor], step: Tensor, deadzone: float = 0.0
    ) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor]]:
        """Quantise the pyramid at `step` ([B]) and measure it: (bits per image [B], the
        1/64 low-pass's integers, each level's integers and predicted spreads in steps,
        finest first). Rounding is exact, as nothing upstream learns; `deadzone` > 0
        rounds magnitudes down by that much more (the encoder's choice, rate for error)."""
        s = step.view(-1, 1, 1, 1)
        q_ll = torch.round(ll / s)
        total = laplace_bits_mean(
            q_ll,
            self.ll_mean.view(1, 3, 1, 1) / s,
            torch.exp(self.ll_scale).view(1, 3, 1, 1) / s,
        ).sum(dim=(1, 2, 3))
        low = q_ll * s
        parent: Tensor | None = None
        carried: Tensor | None = None
        qs: list[Tensor] = []
        spreads: list[Tensor] = []
        for level in range(LEVELS, 0, -1):
            d = details[level - 1]
            if deadzone:
                q = torch.sign(d) * torch.floor((d.abs() / s + 0.5 - deadzone).clamp_min(0))
            else:
                q = torch.round(d / s)
            v = q * s
            ctx = self._context(level, low, parent, carried, step)
            base = self.base[level - 1].view(1, 9, 1, 1)
            mask = checkerboard(d.shape[2], d.shape[3], d.device)
            amp = amplitude(v, s)
            spread_a = torch.exp(base + self.anchor(ctx)) * DELTA0 / s
            rest_in = torch.cat([ctx, amp * mask, mask.expand(d.shape[0], 1, -1, -1)], dim=1)
            spread_b = torch.exp(base + self.rest(rest_in)) * DELTA0 / s
            spread = torch.where(mask > 0, spread_a, spread_b)
            total = total + laplace_bits(q, spread).sum(dim=(1, 2, 3))
            carried = self.carry(torch.cat([ctx, amp], dim=1))
            parent = amp
            low = idwt_2d(low, *torch.split(v, 3, dim=1))
            qs.insert(0, q)
            spreads.insert(0, spread)
        return total, q_ll, qs, spreads


def bin_mean(q: Tensor, spread: Tensor, deadzone: float = 0.0) -> Tensor:
    """Where in its bin a Laplacian of `spread` (steps) puts a coefficient on average:
    toward zero for a non-zero q (the decoder knows the spread, so this costs no bits).
    The bin of n >= 1 is [n - 0.5 + deadzone, n + 0.5 + deadzone)."""
    b = spread.clamp_min(SCALE_FLOOR)
    inside = b - 1.0 / torch.expm1(1.0 / b)  # mean of an exponential truncated to [0, 1)
    shrink = 0.5 - deadzone - inside
    return torch.where(q == 0, q, q - torch.sign(q) * shrink)


def reconstruct(
    q_ll: Tensor,
    qs: list[Tensor],
    spreads: list[Tensor],
    step: Tensor,
    shrink: bool = False,
    deadzone: float = 0.0,
) -> Tensor:
    s = step.view(-1, 1, 1, 1)
    values = [
        (bin_mean(q, b, deadzone) if shrink else q) * s for q, b in zip(qs, spreads, strict=True)
    ]
    return unpyramid(q_ll * s, values)


def random_steps(n: int, gen: torch.Generator) -> Tensor:
    u = torch.rand(n, generator=gen)
    return torch.exp(math.log(STEP_MIN) + u * (math.log(STEP_MAX) - math.log(STEP_MIN)))


EVAL_STEPS = [0.03, 0.045, 0.07, 0.1, 0.15, 0.22, 0.33, 0.5, 0.75]


@torch.no_grad()
def rd_points(
    model: PyramidContext, crops: list[Tensor], deadzone: float = 0.0, shrink: bool = False
) -> list[dict[str, float]]:
    """Mean bpp (ideal code length) and mean PSNR (8-bit RGB) on the crops at each step.
    Crops are cut to multiples of 64 (the pyramid's depth)."""
    points = []
    for st in EVAL_STEPS:
        bpp, psnr = [], []
        for x in crops:
            h, w = x.shape[2] // 64 * 64, x.shape[3] // 64 * 64
            x = x[:, :, :h, :w]
            step = torch.tensor([st])
            ll, details = pyramid(x)
            bits, q_ll, qs, spreads = model.code(ll, details, step, deadzone)
            rec = reconstruct(q_ll, qs, spreads, step, shrink, deadzone)
            rec = (rec.clamp(0, 1) * 255).round() / 255
            mse = float(((rec - x) ** 2).mean())
            bpp.append(float(bits[0]) / (h * w))
            psnr.append(10 * math.log10(1 / max(mse, 1e-10)))
        points.append({"step": st, "bpp": sum(bpp) / len(bpp), "psnr": sum(psnr) / len(psnr)})
    return sorted(points, key=lambda p: p["bpp"])


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = PyramidContext(args.hidden, args.k)
    if args.init_from:
        model.load_state_dict(torch.load(args.init_from, weights_only=False)["model"])
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    state_path, result_path = out / "state.pt", out / "result.json"
    result: dict[str, Any] = {
        "arm": out.name,
        "what": args.what,
        "shape": model.shape,
        "deadzone": args.deadzone,
        "init_from": args.init_from,
        "curve": [],
    }
    step_count, cpu = 0, 0.0
    gen = torch.Generator().manual_seed(0)
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step_count, cpu = st["steps"], st["cpu"]
        gen.set_state(st["gen"])
        result = json.loads(result_path.read_text())
        for g in opt.param_groups:
            g["lr"] = args.lr
    sampler = CropSampler(load_images(Path(args.data)), args.crop, seed=step_count + 1)
    crops = validation_crops(Path(args.val), 8, 256)
    if not result["curve"]:
        pts0 = rd_points(model, crops, args.deadzone, args.deadzone > 0)
        result["curve"].append({"cpu_minutes": 0.0, "steps": 0, "points": pts0})
    next_score = cpu + args.score_minutes * 60
    t0 = time.process_time()
    base_cpu = cpu
    recent: list[float] = []
    while cpu < args.minutes * 60:
        x = sampler.batch(args.batch)
        step = random_steps(args.batch, gen)
        ll, details = pyramid(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            bits = model.code(ll, details, step, args.deadzone)[0]
        bpp = bits / (x.shape[2] * x.shape[3])
        loss = torch.log(bpp).mean()  # every rate counts alike
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step_count += 1
        recent.append(float(bpp.detach().mean()))
        cpu = base_cpu + time.process_time() - t0
        if step_count % 100 == 0:
            print(
                f"step {step_count} cpu {cpu / 60:.1f} min bpp {sum(recent) / len(recent):.3f}",
                flush=True,
            )
            recent = []
        if cpu >= next_score or cpu >= args.minutes * 60:
            pause = time.process_time()
            pts = rd_points(model, crops, args.deadzone, args.deadzone > 0)
            t0 += time.process_time() - pause  # scoring pauses the clock
            result["curve"].append({"cpu_minutes": cpu / 60, "steps": step_count, "points": pts})
            if args.peers:
                result["bd_rate"] = bd_against_peers(pts, Path(args.peers))
            print(
                f"scored at {cpu / 60:.1f} min: "
                + ", ".join(f"{p['bpp']:.3f}/{p['psnr']:.2f}" for p in pts)
                + f"  {result.get('bd_rate', '')}",
                flush=True,
            )
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "steps": step_count,
                    "cpu": cpu,
                    "gen": gen.get_state(),
                },
                state_path,
            )
            result_path.write_text(json.dumps(result, indent=1) + "\n")
            next_score = cpu + args.score_minutes * 60


def bd_against_peers(points: list[dict[str, float]], peers: Path) -> dict[str, float]:
    from c2f_format.tools.bench import bd_rate

    data = json.loads(peers.read_text())
    ours = [(p["bpp"], p["psnr"]) for p in points]
    out = {}
    for name, curve in data["curves"].items():
        pts = curve["points"] if isinstance(curve, dict) else curve
        ref = [(p["bpp"], p["psnr"]) if isinstance(p, dict) else (p[0], p[1]) for p in pts]
        try:
            out[name] = round(bd_rate(ref, ours), 1)
        except Exception as exc:  # too little overlap
            out[name] = float("nan")
            print(f"{name}: {exc}", file=sys.stderr)
    return out


def curves(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    result = json.loads((Path(args.arm) / "result.json").read_text())
    model = PyramidContext(**result.get("shape", {}))
    model.load_state_dict(torch.load(Path(args.arm) / "state.pt", weights_only=False)["model"])
    if args.kodak:
        crops = [
            torch.from_numpy(im.copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
            for im in load_images(Path(args.kodak))
        ]
    else:
        crops = validation_crops(Path(args.val), 8, 256)
    pts = rd_points(model, crops, args.deadzone, args.shrink)
    print(", ".join(f"{p['bpp']:.3f}/{p['psnr']:.2f}" for p in pts))
    print(bd_against_peers(pts, Path(args.peers)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="runs/pack")
    t.add_argument("--val", default="../shared/data/val")
    t.add_argument("--out", default="lab/arms/wavelet-ctx")
    t.add_argument("--what", default="fixed CDF 9/7, six levels, coarse-to-fine context model")
    t.add_argument("--minutes", type=float, default=30.0)
    t.add_argument("--score-minutes", type=float, default=5.0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--crop", type=int, default=192)
    t.add_argument("--bf16", action="store_true", help="the context networks in bfloat16")
    t.add_argument("--hidden", type=int, default=HIDDEN)
    t.add_argument("--k", type=int, default=1, help="the second layer's kernel")
    t.add_argument("--deadzone", type=float, default=0.0, help="trained and scored with it")
    t.add_argument("--init-from", default="", help="a state.pt to start from")
    t.add_argument("--peers", default="lab/arms/curves-round13-crops.json")
    c = sub.add_parser("curves")
    c.add_argument("arm")
    c.add_argument("--val", default="../shared/data/val")
    c.add_argument("--kodak", default="")
    c.add_argument("--peers", default="lab/arms/curves-round13-crops.json")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--deadzone", type=float, default=0.0)
    c.add_argument("--shrink", action="store_true", help="reconstruct at the bin's mean")
    a = p.parse_args(argv)
    {"train": train, "curves": curves}[a.cmd](a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
