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
    python lab/wavelet_ctx.py curves lab/arms/wavelet-ctx --deadzone 0.15 --shrink --coded
    python lab/wavelet_ctx.py curves lab/arms/wavelet-ctx --images ../shared/data/kodak \\
        --peers docs/bench/kodak-c2f-v3.json --deadzone 0.15 --shrink --coded -o OUT.json
    python lab/wavelet_ctx.py plot lab/arms/wavelet-ctx lab/arms/wavelet-ctx-colour -o FIG.png
    python lab/wavelet_ctx.py picture lab/arms/wavelet-ctx kodim23.png --shrink -o FIG.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import lru_cache
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
LUMA, CHROMA = [0, 3, 6], [1, 2, 4, 5, 7, 8]  # a level's channels: HL, LH, HH of each colour
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
        for p in self.c.parameters():  # the spread starts at each level's base
            nn.init.zeros_(p)

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
    With `colour`, a level's luma is coded first (both passes) and its two chroma
    components after, seeing the luma: four passes, as an edge sits in all three.
    """

    def __init__(self, hidden: int = HIDDEN, k: int = 1, colour: bool = False) -> None:
        super().__init__()
        self.shape = {"hidden": hidden, "k": k, "colour": colour}
        self.colour = colour
        ctx = 3 + 9 + CARRY + 1 + LEVELS
        if colour:
            self.luma_anchor = ContextNet(ctx, 3, hidden, k)
            self.luma_rest = ContextNet(ctx + 3 + 1, 3, hidden, k)
            self.chroma_anchor = ContextNet(ctx + 3, 6, hidden, k)
            self.chroma_rest = ContextNet(ctx + 3 + 6 + 1, 6, hidden, k)
        else:
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
            spread = torch.exp(base + self._log_spread(ctx, amp, mask)) * DELTA0 / s
            total = total + laplace_bits(q, spread).sum(dim=(1, 2, 3))
            carried = self.carry(torch.cat([ctx, amp], dim=1))
            parent = amp
            low = idwt_2d(low, *torch.split(v, 3, dim=1))
            qs.insert(0, q)
            spreads.insert(0, spread)
        return total, q_ll, qs, spreads

    def _log_spread(self, ctx: Tensor, amp: Tensor, mask: Tensor) -> Tensor:
        """A level's log spreads (less the base), each from what is decoded before it."""
        m = mask.expand(amp.shape[0], 1, -1, -1)
        if not self.colour:
            a = self.anchor(ctx)
            b = self.rest(torch.cat([ctx, amp * mask, m], dim=1))
            return torch.where(mask > 0, a, b)
        y, c = amp[:, LUMA], amp[:, CHROMA]
        ya = self.luma_anchor(ctx)
        yb = self.luma_rest(torch.cat([ctx, y * mask, m], dim=1))
        ca = self.chroma_anchor(torch.cat([ctx, y], dim=1))
        cb = self.chroma_rest(torch.cat([ctx, y, c * mask, m], dim=1))
        out = torch.empty_like(amp)
        out[:, LUMA] = torch.where(mask > 0, ya, yb)
        out[:, CHROMA] = torch.where(mask > 0, ca, cb)
        return out


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


TABLE_MAX = 400.0  # the widest table's spread in steps; wider ones use it (and escapes)


@lru_cache(maxsize=1)
def laplace_tables() -> Any:
    """64 integer tables of the discretised Laplacian at log-spaced spreads from
    SCALE_FLOOR to TABLE_MAX, in c2f's entropy coder's form (format/entropy.py): what a
    real stream would spend, to check the ideal code length against."""
    import numpy as np

    from c2f_format.format.entropy import TOTAL, EntropyTables

    tables = []
    for b in laplace_spreads():
        radius = max(1, math.ceil(14 * b))
        v = np.arange(-radius, radius + 1, dtype=np.float64)
        upper = np.where(
            v + 0.5 >= 0, 1 - 0.5 * np.exp(-(v + 0.5) / b), 0.5 * np.exp((v + 0.5) / b)
        )
        lower = np.where(
            v - 0.5 >= 0, 1 - 0.5 * np.exp(-(v - 0.5) / b), 0.5 * np.exp((v - 0.5) / b)
        )
        probs = np.append(upper - lower, math.exp(-(radius + 0.5) / b))
        freq = 1 + np.floor(probs / probs.sum() * (TOTAL - probs.size)).astype(np.int64)
        freq[radius] += TOTAL - int(freq.sum())
        tables.append(freq)
    width = max(t.size for t in tables)
    packed = np.zeros((len(tables), width), dtype=np.int32)
    for i, t in enumerate(tables):
        packed[i, : t.size] = t
    radii = np.array([(t.size - 2) // 2 for t in tables], dtype=np.int32)
    return EntropyTables(packed, radii)


def laplace_spreads() -> list[float]:
    return [SCALE_FLOOR * (TABLE_MAX / SCALE_FLOOR) ** (i / 63) for i in range(64)]


def table_index(spread: Tensor) -> Tensor:
    ratio = math.log(TABLE_MAX / SCALE_FLOOR) / 63
    return torch.round(torch.log(spread.clamp_min(SCALE_FLOOR) / SCALE_FLOOR) / ratio).clamp(0, 63)


def coded_bits(
    model: PyramidContext, q_ll: Tensor, qs: list[Tensor], spreads: list[Tensor], step: Tensor
) -> int:
    """Bits of every symbol actually coded with `laplace_tables` (one rANS unit)."""
    import numpy as np

    from c2f_format.format.entropy import encode

    s = step.view(-1, 1, 1, 1)
    mean = torch.round(model.ll_mean.view(1, 3, 1, 1) / s)
    ll_spread = (torch.exp(model.ll_scale).view(1, 3, 1, 1) / s).expand_as(q_ll)
    symbols = [q_ll - mean, *qs]
    index = [table_index(ll_spread), *(table_index(b) for b in spreads)]
    sym = np.concatenate([t.reshape(-1).numpy().astype(np.int64) for t in symbols])
    lvl = np.concatenate([t.reshape(-1).numpy().astype(np.int64) for t in index])
    return 8 * len(encode(sym, lvl, laplace_tables()))


@torch.no_grad()
def rd_points(
    model: PyramidContext,
    crops: list[Tensor],
    deadzone: float = 0.0,
    shrink: bool = False,
    coded: bool = False,
) -> list[dict[str, float]]:
    """Mean bpp (ideal code length, or with `coded` the bits a real rANS stream spends)
    and mean PSNR (8-bit RGB) on the crops at each step. Crops are cut to multiples of
    64 (the pyramid's depth)."""
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
            if coded:
                bits = torch.tensor([float(coded_bits(model, q_ll, qs, spreads, step))])
            bpp.append(float(bits[0]) / (h * w))
            psnr.append(10 * math.log10(1 / max(mse, 1e-10)))
        points.append({"step": st, "bpp": sum(bpp) / len(bpp), "psnr": sum(psnr) / len(psnr)})
    return sorted(points, key=lambda p: p["bpp"])


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = PyramidContext(args.hidden, args.k, args.colour)
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
    if args.images:  # whole images (Kodak's 768 x 512, CID22's 512 x 512: multiples of 64)
        crops = [
            torch.from_numpy(im.copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
            for im in load_images(Path(args.images))
        ]
    else:
        crops = validation_crops(Path(args.val), 8, 256)
    pts = rd_points(model, crops, args.deadzone, args.shrink, args.coded)
    print(", ".join(f"{p['bpp']:.3f}/{p['psnr']:.2f}" for p in pts))
    bd = bd_against_peers(pts, Path(args.peers))
    print(bd)
    if args.out:
        from arms import _plot_curves  # lab/, beside this file

        peers = json.loads(Path(args.peers).read_text())["curves"]
        label = f"{Path(args.arm).name}" + (" (coded)" if args.coded else "")
        out: dict[str, Any] = {
            "crops": len(crops),
            "title": (
                f"{Path(args.images).name} ({len(crops)} images)"
                if args.images
                else f"held-out crops ({len(crops)})"
            ),
            "arm": args.arm,
            "deadzone": args.deadzone,
            "shrink": args.shrink,
            "coded": args.coded,
            "curves": {label: {"points": pts}},
            "bd_rate_against": bd,
        }
        for name in args.plot:
            curve = peers[name]
            raw = curve["points"] if isinstance(curve, dict) else curve
            out["curves"][name] = {
                "points": [p if isinstance(p, dict) else {"bpp": p[0], "psnr": p[1]} for p in raw]
            }
        # _plot_curves labels each curve by its BD-rate against the first: ours against each
        from c2f_format.tools.bench import bd_rate

        mine = [(p["bpp"], p["psnr"]) for p in pts]
        out["bd_rate"] = {
            n: bd_rate(mine, [(p["bpp"], p["psnr"]) for p in c["points"]])
            for n, c in out["curves"].items()
            if n != label
        }
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        _plot_curves(out, Path(args.out).with_suffix(".png"))


def plot(args: argparse.Namespace) -> None:
    """BD-rate against WebP on the held-out crops (each scoring's points) against
    CPU-minutes, one line per arm, and the peers' levels (Pillow)."""
    from PIL import Image, ImageDraw

    from c2f_format.tools.bench import bd_rate

    peers = json.loads(Path(args.peers).read_text())
    webp = [(p["bpp"], p["psnr"]) for p in peers["curves"]["webp"]["points"]]
    lines = {}
    for arm in args.arms:
        result = json.loads((Path(arm) / "result.json").read_text())
        start = float(args.offset.get(Path(arm).name, 0.0)) if args.offset else 0.0
        lines[Path(arm).name] = [
            (start + c["cpu_minutes"], bd_rate(webp, [(p["bpp"], p["psnr"]) for p in c["points"]]))
            for c in result["curve"]
            if c["cpu_minutes"] > 0
        ]
    # the peers file's BD-rates are against its first curve, WebP
    levels = {n: v for n, v in peers["bd_rate"].items() if n in ("jpeg2000", "weights/c2f-v3.npz")}
    w, h, m = 720, 480, 60
    x_hi = max(x for pts in lines.values() for x, _ in pts) * 1.05
    y_lo, y_hi = -35.0, 35.0
    im = Image.new("RGB", (w, h + 20 * (len(lines) + len(levels))), "white")
    d = ImageDraw.Draw(im)

    def xy(x: float, y: float) -> tuple[float, float]:
        return m + x / x_hi * (w - m - 20), h - m - (y - y_lo) / (y_hi - y_lo) * (h - 2 * m)

    d.rectangle([m, m, w - 20, h - m], outline="black")
    d.text((m, 20), "held-out crops: BD-rate against WebP (%) against CPU-minutes", fill="black")
    for k in range(8):
        y = y_lo + (y_hi - y_lo) * k / 7
        d.text((8, xy(0, y)[1] - 6), f"{y:+.0f}", fill="black")
        x = x_hi * k / 7
        d.text((xy(x, y_lo)[0] - 8, h - m + 6), f"{x:.0f}", fill="black")
    d.line([xy(0, 0), xy(x_hi, 0)], fill=(160, 160, 160))
    colours = [(200, 30, 30), (30, 120, 200), (30, 160, 60), (200, 140, 0), (150, 60, 160)]
    grey = [(90, 90, 90), (150, 150, 150)]
    row = h
    for (name, v), colour in zip(levels.items(), grey, strict=False):
        d.line([xy(0, v), xy(x_hi, v)], fill=colour, width=1)
        d.text((m + 38, row), f"{name}: {v:+.1f}% (level)", fill="black")
        d.line([m, row + 7, m + 30, row + 7], fill=colour, width=1)
        row += 20
    for (name, pts), colour in zip(lines.items(), colours, strict=False):
        d.line([xy(x, y) for x, y in pts], fill=colour, width=2)
        for x, y in pts:
            px, py = xy(x, y)
            d.ellipse([px - 3, py - 3, px + 3, py + 3], outline=colour)
        d.line([m, row + 7, m + 30, row + 7], fill=colour, width=3)
        d.text((m + 38, row), f"{name}: {pts[-1][1]:+.1f}% at {pts[-1][0]:.0f} min", fill="black")
        row += 20
    im.save(args.out)


@torch.no_grad()
def picture(args: argparse.Namespace) -> None:
    """One image at about `--bpp`: the arm (coded bits, dead zone and bin means as given),
    WebP and `c2f-v3` at their qualities nearest that rate, a crop of each side by side."""
    import numpy as np
    from PIL import Image, ImageDraw

    from c2f_format.tools.bench import CODECS

    result = json.loads((Path(args.arm) / "result.json").read_text())
    model = PyramidContext(**result.get("shape", {}))
    model.load_state_dict(torch.load(Path(args.arm) / "state.pt", weights_only=False)["model"])
    with Image.open(args.image) as src:
        rgb = src.convert("RGB")
    pixels = np.asarray(rgb)
    h, w = pixels.shape[0] // 64 * 64, pixels.shape[1] // 64 * 64
    pixels = np.ascontiguousarray(pixels[:h, :w])
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().unsqueeze(0) / 255
    ll, details = pyramid(x)

    def ours(step: float) -> tuple[float, np.ndarray]:
        st = torch.tensor([step])
        _, q_ll, qs, spreads = model.code(ll, details, st, args.deadzone)
        bpp = coded_bits(model, q_ll, qs, spreads, st) / (h * w)
        rec = reconstruct(q_ll, qs, spreads, st, args.shrink, args.deadzone)
        out = (rec[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        return bpp, out

    lo, hi = math.log(0.005), math.log(2.0)  # bisect the step for the rate
    for _ in range(14):
        mid = (lo + hi) / 2
        bpp, _ = ours(math.exp(mid))
        lo, hi = (lo, mid) if bpp < args.bpp else (mid, hi)
    panels = [("c2f wavelet-ctx", *ours(math.exp((lo + hi) / 2)))]
    for name, label in (("webp", "WebP (method 6)"), ("c2f", "c2f-v3")):
        codec, grid = CODECS[name]
        best = None
        for q in range(1, 101) if name == "webp" else grid:
            data, decoded, _, _ = codec(Image.fromarray(pixels), q)
            bpp = len(data) * 8 / (h * w)
            if best is None or abs(bpp - args.bpp) < abs(best[0] - args.bpp):
                best = (bpp, np.asarray(decoded.convert("RGB")))
        assert best is not None
        panels.append((label, *best))
    top, left, size = args.crop
    tiles = Image.new("RGB", (len(panels) * (size + 8), size + 40), "white")
    d = ImageDraw.Draw(tiles)
    for k, (label, bpp, img) in enumerate(panels):
        mse = float(((img.astype(float) - pixels) ** 2).mean())
        psnr = 10 * math.log10(255**2 / max(mse, 1e-10))
        crop = Image.fromarray(img[top : top + size, left : left + size])
        tiles.paste(crop, (k * (size + 8), 0))
        d.text((k * (size + 8), size + 4), f"{label}", fill="black")
        d.text((k * (size + 8), size + 20), f"{bpp:.3f} bpp, {psnr:.2f} dB", fill="black")
        print(f"{label}: {bpp:.3f} bpp, {psnr:.2f} dB (whole image)")
    tiles.save(args.out)


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
    t.add_argument("--colour", action="store_true", help="luma first, then chroma")
    t.add_argument("--deadzone", type=float, default=0.0, help="trained and scored with it")
    t.add_argument("--init-from", default="", help="a state.pt to start from")
    t.add_argument("--peers", default="lab/arms/curves-round13-crops.json")
    c = sub.add_parser("curves")
    c.add_argument("arm")
    c.add_argument("--val", default="../shared/data/val")
    c.add_argument("--images", default="", help="whole images of this folder, not crops")
    c.add_argument("--peers", default="lab/arms/curves-round13-crops.json")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--deadzone", type=float, default=0.0)
    c.add_argument("--shrink", action="store_true", help="reconstruct at the bin's mean")
    c.add_argument("--coded", action="store_true", help="bits of a real rANS stream")
    c.add_argument("-o", "--out", default="", help="JSON (and a PNG beside it)")
    c.add_argument("--plot", nargs="*", default=["webp", "jpeg2000"], help="peers drawn")
    v = sub.add_parser("picture")
    v.add_argument("arm")
    v.add_argument("image")
    v.add_argument("--bpp", type=float, default=0.25)
    v.add_argument("--deadzone", type=float, default=0.15)
    v.add_argument("--shrink", action="store_true")
    v.add_argument("--crop", type=int, nargs=3, default=[0, 0, 256], help="top left size")
    v.add_argument("-o", "--out", required=True)
    g = sub.add_parser("plot")
    g.add_argument("arms", nargs="+")
    g.add_argument("--peers", default="lab/arms/curves-round13-crops.json")
    g.add_argument("--offset", type=json.loads, default={}, help='{"arm": start minutes}')
    g.add_argument("-o", "--out", required=True)
    a = p.parse_args(argv)
    {"train": train, "curves": curves, "plot": plot, "picture": picture}[a.cmd](a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
