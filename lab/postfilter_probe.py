"""Round 17's probe: how much would a small learned filter on the decoded image gain?

    python lab/postfilter_probe.py --crops 3000 --minutes 30 --width 16
    python lab/postfilter_probe.py --minutes 40 --width 16 --lr 3e-4 \
        --init lab/postfilter/postfilter-w16.pt --name w16-cont

The shipped model's reconstruction is a CDF 9/7 wavelet synthesis: at low rates its
errors are ringing and blur that a small convolutional filter, run by the decoder on the
decoded image, could partly undo (as in-loop and post filters do in video codecs).
This trains such a filter in float (three 3 x 3 layers, `--width` channels, the step's
log as an extra input) on crops of the training pack coded at random qualities by the
shipped encoder, and prints its PSNR gain on CID22 validation crops (never trained on)
at qualities 10, 30, 50, 75, 90. A gain of g dB at a point is worth about g / 6 * 100%
of rate where the curve gains 6 dB an octave (read the BD estimate printed beside it).
Nothing here is in the format: it measures whether a filter is worth specifying.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from c2f_format.codec.metrics import bd_rate
from c2f_format.codec.pyramid_coding import encode_pyramid
from c2f_format.format.quantiser import step_size
from c2f_format.networks.pyramid_weights import PyramidModel, newest_pyramid

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared" / "data" / "val" / "cid22"
QUALITIES = (10, 30, 50, 75, 90)


def coded(pm: PyramidModel, img: np.ndarray, quality: int) -> tuple[np.ndarray, int, int]:
    """`img` ([h, w, 3] uint8) coded at `quality` at effort 3: (decoded, step code, bits)."""
    u = pm.step_code(quality)
    units, out = encode_pyramid(img.transpose(2, 0, 1).copy(), u, pm.context, pm.tables, rdo=0.1)
    return out.transpose(1, 2, 0), u, 8 * sum(len(x) for x in units)


class Filter(torch.nn.Module):
    def __init__(self, width: int, layers: int = 3) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(4, width, 3, padding=1)
        self.b = torch.nn.Conv2d(width, width, 3, padding=1)
        self.more = torch.nn.ModuleList(
            torch.nn.Conv2d(width, width, 3, padding=1) for _ in range(layers - 3)
        )
        self.c = torch.nn.Conv2d(width, 3, 3, padding=1)
        torch.nn.init.zeros_(self.c.weight)  # starts as the identity: nothing lost
        assert self.c.bias is not None
        torch.nn.init.zeros_(self.c.bias)

    def forward(self, x: torch.Tensor, logstep: torch.Tensor) -> torch.Tensor:
        s = logstep.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        h = torch.relu(self.a(torch.cat([x, s], 1)))
        h = torch.relu(self.b(h))
        for layer in self.more:
            h = torch.relu(layer(h))
        return x + self.c(h)


def to_t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255.0 - 0.5).permute(0, 3, 1, 2)


def logstep_of(u: int) -> float:
    return float(np.log2(step_size(u))) / 8 - 1


def training_crops(
    pm: PyramidModel, cache: Path, count: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(originals, decoded, step codes) of `count` random crops of the training pack,
    each coded at a random quality; kept in `cache` for the next arm."""
    if cache.exists():
        z = np.load(cache)
        return z["orig"], z["dec"], z["us"]
    files = sorted((ROOT / "runs" / "pack").glob("*"))
    orig_l: list[np.ndarray] = []
    dec_l: list[np.ndarray] = []
    u_l: list[int] = []
    t0 = time.time()
    for k in range(count):
        im = np.asarray(Image.open(files[rng.integers(len(files))]).convert("RGB"))
        if min(im.shape[:2]) < size:
            continue
        y, x = rng.integers(im.shape[0] - size + 1), rng.integers(im.shape[1] - size + 1)
        crop = np.ascontiguousarray(im[y : y + size, x : x + size])
        out, u, _ = coded(pm, crop, int(rng.integers(1, 101)))
        orig_l.append(crop)
        dec_l.append(out)
        u_l.append(u)
        if k % 500 == 0:
            print(f"coded {k} crops, {time.time() - t0:.0f} s", flush=True)
    orig, dec, us = np.stack(orig_l), np.stack(dec_l), np.array(u_l)
    np.savez(cache, orig=orig, dec=dec, us=us)
    return orig, dec, us


def validation_points(pm: PyramidModel) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """(original, decoded, step code, bits) of the middle 256^2 of every 5th CID22
    validation image at each of QUALITIES."""
    val = []
    for path in sorted(VAL.glob("*.png"))[::5]:
        im = np.asarray(Image.open(path).convert("RGB"))
        h, w = im.shape[:2]
        crop = np.ascontiguousarray(
            im[(h - 256) // 2 : (h + 256) // 2, (w - 256) // 2 : (w + 256) // 2]
        )
        for q in QUALITIES:
            out, u, bits = coded(pm, crop, q)
            val.append((crop, out, u, bits))
    return val


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crops", type=int, default=3000)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cache", default="runs/postfilter-data.npz")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--init", default="", help="a filter's state_dict to start from")
    ap.add_argument("--name", default="", help="the saved filter's name (default: its width)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pm = newest_pyramid()
    if not isinstance(pm, PyramidModel):
        raise SystemExit("no wavelet model installed")
    rng = np.random.default_rng(0)
    orig, dec, us = training_crops(pm, Path(args.cache), args.crops, args.crop, rng)
    val = validation_points(pm)
    print(f"{len(orig)} training crops, {len(val)} validation points", flush=True)
    net = Filter(args.width, args.layers)
    if args.init:
        net.load_state_dict(torch.load(args.init))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    t_orig, t_dec = to_t(orig), to_t(dec)
    t_s = torch.tensor([logstep_of(int(u)) for u in us])

    def evaluate() -> None:
        gains: dict[int, list[float]] = {q: [] for q in QUALITIES}
        base, filt = [], []
        with torch.no_grad():
            for i, (crop, out, u, bits) in enumerate(val):
                y = net(to_t(out[None]), torch.tensor([logstep_of(u)]))
                rec = np.clip(np.round((y[0].permute(1, 2, 0).numpy() + 0.5) * 255), 0, 255)
                mse0 = float(((out.astype(np.float64) - crop) ** 2).mean())
                mse1 = float(((rec - crop) ** 2).mean())
                p0, p1 = 10 * np.log10(255**2 / mse0), 10 * np.log10(255**2 / mse1)
                gains[QUALITIES[i % len(QUALITIES)]].append(p1 - p0)
                base.append((bits / crop.shape[0] / crop.shape[1], p0))
                filt.append((bits / crop.shape[0] / crop.shape[1], p1))
        n = len(QUALITIES)
        bds = [bd_rate(base[k : k + n], filt[k : k + n]) for k in range(0, len(base), n)]
        print(
            "  gain dB by quality: "
            + ", ".join(f"q{q} {np.mean(g):+.3f}" for q, g in gains.items())
            + f"; BD-rate {np.mean(bds):+.2f}%",
            flush=True,
        )

    t0, steps = time.process_time(), 0
    next_eval = 0.0
    while (time.process_time() - t0) / 60 < args.minutes:
        idx = torch.from_numpy(rng.integers(0, len(t_orig), args.batch))
        y = net(t_dec[idx], t_s[idx])
        loss = torch.mean((y - t_orig[idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        cpu = (time.process_time() - t0) / 60
        if cpu >= next_eval:
            print(f"step {steps} cpu {cpu:.1f} min loss {loss.item() * 255**2:.2f}", flush=True)
            evaluate()
            next_eval += 5
    evaluate()
    torch.save(net.state_dict(), f"runs/postfilter-{args.name or f'w{args.width}'}.pt")


if __name__ == "__main__":
    main()
