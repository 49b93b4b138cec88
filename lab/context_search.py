"""Round 17's measurement: does choosing integers for their effect on the tables of
the integers coded after them (the context model's 3 x 3 reach within a level) pay?

    python lab/context_search.py --every 8 --rounds 1

Each level is first quantised as effort 3 does (greedy rate-distortion against the
decoder's own tables). Then, for every non-zero integer whose value feeds later passes
of its level (luma anywhere, chroma at the anchors), moving it one step toward zero is
priced exactly: the level is coded again with the moves of one batch (positions 3 apart
in both directions, one channel), and each move's change of squared error + lambda x
bits summed over its 3 x 3 window (its own cost, and the tables and reconstruction
offsets of its neighbours in later passes). Moves that lower the cost are kept. The
finer levels' use of the level (their parent features) is not priced. Printed: BD-rate
of the search against effort 3 over the images and qualities.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from c2f_format.codec import pyramid_coding as pc
from c2f_format.codec.metrics import bd_rate
from c2f_format.format.entropy import EntropyTables, encode_passes
from c2f_format.format.quantiser import dequantise, step_size
from c2f_format.format.wavelet import LEVELS, synthesis, to_pixels
from c2f_format.networks.numpy_context_model import (
    LUMA,
    ContextModel,
    LevelResult,
    anchors,
    code_level,
    dequantise_level,
)
from c2f_format.networks.pyramid_weights import PyramidModel, newest_pyramid

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
K = 0.1  # effort 3's trade-off


Passes = list[tuple[np.ndarray, np.ndarray]]


def costs(
    model: ContextModel,
    tables: EntropyTables,
    level: int,
    low: np.ndarray,
    parent: LevelResult | None,
    u: int,
    c9: np.ndarray,
    q: np.ndarray,
    lam: float,
) -> tuple[LevelResult, Passes, np.ndarray]:
    """The level coded with the integers `q`: its result, its passes, and each
    element's squared error + lam x bits."""
    passes: Passes = []
    res = code_level(model, level, low, parent, u, pc._writer(q, passes))
    bits, radii = pc._code_lengths(tables)
    r = radii[res.index]
    sym = np.clip(q, -r - 1, r + 1) + r
    v = dequantise(q, step_size(u), res.index, model.offsets)
    return res, passes, (c9 - v) ** 2 + lam * bits[res.index, sym]


def window_sum(d: np.ndarray) -> np.ndarray:
    """Each position's sum of `d` over its 3 x 3 window."""
    p = np.pad(d, 1)
    out = np.zeros_like(d)
    for a in range(3):
        for b in range(3):
            out += p[a : a + d.shape[0], b : b + d.shape[1]]
    return out


def encode_searched(
    pixels: np.ndarray, u: int, model: ContextModel, tables: EntropyTables, rounds: int
) -> tuple[list[bytes], np.ndarray]:
    """`encode_pyramid` at effort 3, then `rounds` rounds of the search on each level."""
    _, height, width = pixels.shape
    step = step_size(u)
    lam = K * float(step) ** 2
    unit, low, details = pc.start_pyramid(pixels, u, model, tables)
    units = [unit]
    parent: LevelResult | None = None
    for level in range(LEVELS, 0, -1):
        c9 = details[level - 1].astype(np.float64)
        passes: Passes = []
        chooser = pc._RateDistortion(c9, step, K, model.offsets, tables)
        res = code_level(model, level, low, parent, u, chooser.writer(passes))
        q = res.q.copy()
        h, w, _ = q.shape
        anchor = anchors(h, w)
        rows, cols = np.indices((h, w))
        for _ in range(rounds):
            _, _, base = costs(model, tables, level, low, parent, u, c9, q, lam)
            moves = np.zeros_like(q)
            for k in range(9):
                allowed = np.ones((h, w), bool) if k in LUMA else anchor
                for a in range(3):
                    for b in range(3):
                        at = allowed & (rows % 3 == a) & (cols % 3 == b) & (q[..., k] != 0)
                        if not at.any():
                            continue
                        trial = q.copy()
                        trial[at, k] -= np.sign(trial[at, k])
                        _, _, new = costs(model, tables, level, low, parent, u, c9, trial, lam)
                        gain = window_sum((new - base).sum(axis=2))
                        keep = at & (gain < 0)
                        moves[keep, k] = -np.sign(q[keep, k])
            if not moves.any():
                break
            trial = q + moves
            _, _, new = costs(model, tables, level, low, parent, u, c9, trial, lam)
            if new.sum() >= base.sum():
                break
            q = trial
        res, passes, _ = costs(model, tables, level, low, parent, u, c9, q, lam)
        parent = res
        units.append(encode_passes(passes, tables))
        low = synthesis(low, dequantise_level(model, parent, step))
    return units, to_pixels(low)[:, :height, :width]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--qualities", default="10,30,50,75,90")
    args = ap.parse_args()
    pm = newest_pyramid()
    if not isinstance(pm, PyramidModel):
        raise SystemExit("no wavelet model installed")
    model, tables = pm.context, pm.tables
    quals = [int(x) for x in args.qualities.split(",")]
    base_pts: list[list[tuple[float, float]]] = []
    new_pts: list[list[tuple[float, float]]] = []
    for path in sorted(KODAK.glob("*.png"))[:: args.every]:
        img = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
        n = img.shape[1] * img.shape[2]
        bp: list[tuple[float, float]] = []
        np_: list[tuple[float, float]] = []
        for qual in quals:
            u = pm.step_code(qual)
            for fn, pts in ((None, bp), (args.rounds, np_)):
                t0 = time.perf_counter()
                if fn is None:
                    units, out = pc.encode_pyramid(img, u, model, tables, rdo=K)
                else:
                    units, out = encode_searched(img, u, model, tables, fn)
                bits = 8 * sum(len(x) for x in units)
                mse = float(((out.astype(np.float64) - img) ** 2).mean())
                pts.append((bits / n, 10 * np.log10(255**2 / mse)))
                print(
                    f"{path.name} q{qual} {'search' if fn else 'greedy'} {bits / n:.4f} bpp "
                    f"{pts[-1][1]:.3f} dB {time.perf_counter() - t0:.1f} s",
                    flush=True,
                )
        base_pts.append(bp)
        new_pts.append(np_)
        print(
            "BD so far",
            np.mean([bd_rate(b, s) for b, s in zip(base_pts, new_pts, strict=True)]),
            flush=True,
        )


if __name__ == "__main__":
    main()
