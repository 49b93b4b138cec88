"""Round 16's measurement of what an encoder search could still gain on version 2 streams.

    python lab/effort_search.py lambda --every 4 -o runs/effort-lambda.json
    python lab/effort_search.py level --every 4
    python lab/effort_search.py penalty --every 4

Every `--every`-th Kodak image at qualities 10, 30, 50, 75 and 90 is encoded with the
shipped model under each variant of the rate-distortion quantiser (`lambda`: the
trade-off k of k * D**2 per bit; `level`: k per level; `penalty`: extra bits charged to
every non-zero integer). Printed: each variant's BD-rate against effort 3's choice (k =
0.1), and that of picking, for each image and quality, the variant with the least
squared error + 0.1 D**2 x bits (what a search at the quality's own cost would pick).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from c2f_format.codec import pyramid_coding
from c2f_format.codec.metrics import bd_rate
from c2f_format.format.quantiser import dequantise, step_size
from c2f_format.networks.pyramid_weights import newest_pyramid

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
QUALITIES = (10, 30, 50, 75, 90)
BASE = 0.1  # effort 3's k (pyramid_stream.RDO_LAMBDA)


@dataclass(frozen=True)
class Row:
    image: str
    quality: int
    step: int
    variant: str
    bits: int
    sse: float
    pixels: int

    def point(self) -> tuple[float, float]:
        """(bpp, PSNR-RGB)."""
        return self.bits / self.pixels, 10 * float(np.log10(255**2 * 3 * self.pixels / self.sse))

    def cost(self) -> float:
        """Squared error (in the coefficients' units, 2**6 a pixel level) + 0.1 D**2 bits."""
        return self.sse * 4096 + BASE * self.step**2 * self.bits


def variants(kind: str) -> dict[str, tuple[float | tuple[float, ...], float]]:
    """name -> (the `rdo` argument of encode_pyramid, extra bits per non-zero integer)."""
    if kind == "lambda":
        return {f"k{k}": (k, 0.0) for k in (0.05, 0.07, 0.1, 0.14, 0.2, 0.3)}
    if kind == "level":
        out: dict[str, tuple[float | tuple[float, ...], float]] = {"k0.1": (BASE, 0.0)}
        for a in (0.7, 0.85, 1.2, 1.4):  # coarser levels less (a < 1) or more eager
            out[f"a{a}"] = (tuple(BASE * a ** (lv - 1) for lv in range(1, 7)), 0.0)
        out["finest0.14"] = ((0.14,) + (BASE,) * 5, 0.0)
        out["finest0.07"] = ((0.07,) + (BASE,) * 5, 0.0)
        return out
    return {f"bits{p}": (BASE, p) for p in (0.0, 0.5, 1.0, 2.0, -0.5)}


@contextmanager
def nonzero_bits(extra: float) -> Iterator[None]:
    """The quantiser's choice with `extra` bits charged to every non-zero candidate."""
    plain = pyramid_coding._RateDistortion.choose

    def choose(
        self: pyramid_coding._RateDistortion, c: np.ndarray, index: np.ndarray
    ) -> np.ndarray:
        near = np.sign(c) * np.floor(np.abs(c) / self.step + 0.5)
        best, best_cost = near, np.full(c.shape, np.inf)
        for cand in (near, near - np.sign(near), np.zeros_like(near)):
            v = dequantise(cand.astype(np.int64), self.step, index, self.offsets)
            r = self.radii[index]
            sym = np.clip(cand, -r - 1, r + 1).astype(np.int64) + r
            bits = self.bits[index, sym] + extra * (cand != 0)
            cost = (c - v) ** 2 + self.lam * bits
            better = cost < best_cost
            best, best_cost = np.where(better, cand, best), np.where(better, cost, best_cost)
        return best.astype(np.int64)

    pyramid_coding._RateDistortion.choose = choose  # type: ignore[method-assign]
    try:
        yield
    finally:
        pyramid_coding._RateDistortion.choose = plain  # type: ignore[method-assign]


def measure(kind: str, every: int) -> list[Row]:
    model = newest_pyramid()
    assert model is not None, "no wavelet model installed"
    rows: list[Row] = []
    for path in sorted(KODAK.glob("*.png"))[::every]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        pixels = np.ascontiguousarray(rgb.transpose(2, 0, 1))
        for quality in QUALITIES:
            u = model.step_code(quality)
            for name, (rdo, extra) in variants(kind).items():
                with nonzero_bits(extra):
                    units, out = pyramid_coding.encode_pyramid(
                        pixels, u, model.context, model.tables, pyramid_coding.DEADZONE, rdo
                    )
                sse = float(((out.astype(np.float64) - pixels) ** 2).sum())
                bits = 8 * sum(len(unit) for unit in units)
                n = rgb.shape[0] * rgb.shape[1]
                rows.append(Row(path.name, quality, step_size(u), name, bits, sse, n))
            print(path.name, quality, flush=True)
    return rows


def summary(rows: list[Row], base: str) -> dict[str, float]:
    """Mean over images of each variant's BD-rate against `base`, and of the search."""
    images = sorted({r.image for r in rows})
    names = list(dict.fromkeys(r.variant for r in rows))
    result: dict[str, list[float]] = {name: [] for name in [*names, "search"] if name != base}
    for image in images:
        mine = [r for r in rows if r.image == image]
        curve = {name: [r.point() for r in mine if r.variant == name] for name in names}
        picked = []
        for quality in QUALITIES:
            at = [r for r in mine if r.quality == quality]
            picked.append(min(at, key=Row.cost).point())
        for name in names:
            if name != base:
                result[name].append(bd_rate(curve[base], curve[name]))
        result["search"].append(bd_rate(curve[base], picked))
    return {name: float(np.mean(v)) for name, v in result.items()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("kind", choices=["lambda", "level", "penalty"])
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("-o", "--out", type=Path)
    args = ap.parse_args()
    rows = measure(args.kind, args.every)
    base = {"lambda": "k0.1", "level": "k0.1", "penalty": "bits0.0"}[args.kind]
    for name, value in summary(rows, base).items():
        print(f"{name}: {value:+.2f}% BD-rate against {base}")
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in rows]))


if __name__ == "__main__":
    main()
