"""Calibrate the quality scale of a trained model: which levels quality 1..100 spans.

A single network trained over a range of lambdas need not be monotone at the ends of
that range: at the lowest levels the gained latents get so small that the level-agnostic
prior overestimates their spread and the hyper side information stays, so a smooth
image's file stops shrinking (or grows again) as the level falls; at the highest levels
the transforms, not the quantiser, set the distortion, so rate buys almost nothing.
The export therefore measures the real codec on held-out images (never the benchmark)
and keeps the longest stretch of levels over which each step up buys at least
`MIN_SLOPE` dB per doubling of the mean rate and every image's rate and PSNR rise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..codec.decoding import decode_stream
from ..codec.metrics import psnr as psnr_of
from ..codec.progress import progress
from ..codec.torch_engine import TorchEngine
from ..networks.model import C2FModel
from ..networks.weights import load_weights, save_weights

GRID_STEP = 0.5  # levels apart of the measured grid
MIN_SLOPE = 0.25  # dB per doubling of the rate below which quality 100 stops


def rd_table(model: C2FModel, images: list[np.ndarray], step: float = GRID_STEP) -> np.ndarray:
    """[levels, images, 3] of (level, bpp, PSNR) of the real codec over every trained and
    extended level, on a grid `step` levels apart."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calibrating.npz"
        save_weights(model, path)
        codec = TorchEngine(load_weights(path), torch.device("cpu"))
    config = codec.net.config
    top = len(config.lambdas) - 1
    levels = [float(v) for v in np.arange(0.0, top + 1e-9, step)]
    if levels[-1] < top:
        levels.append(float(top))
    table = np.zeros((len(levels), len(images), 3))
    for i, level in enumerate(progress(levels, len(levels), "calibrate")):
        config.quality_levels = [level, level]  # every quality codes at this level
        for j, rgb in enumerate(images):
            data = codec.encode(rgb, "RGB", 1)
            out = decode_stream(codec, data)
            table[i, j] = (level, len(data) * 8 / (rgb.shape[0] * rgb.shape[1]), psnr_of(rgb, out))
    return table


def quality_range(table: np.ndarray, min_slope: float = MIN_SLOPE) -> list[float]:
    """[t0, t1] from `rd_table`'s measurements.

    A step between neighbouring levels is useful when the mean rate and mean PSNR both
    rise and it buys at least `min_slope` dB per doubling of the mean rate. Within the
    longest run of useful steps, [t0, t1] is the longest stretch over which every
    image's rate and PSNR rise strictly at each step (ties go to the higher levels).
    Raises ValueError when no step qualifies: a weights file needs t0 < t1.
    """
    level, bpp, psnr = table[:, 0, 0], table[:, :, 1], table[:, :, 2]
    mean_bpp, mean_psnr = bpp.mean(axis=1), psnr.mean(axis=1)
    best, start = (0, 0), 0
    with np.errstate(invalid="ignore", divide="ignore"):  # inf PSNR: lossless, no step
        for i in range(1, len(level)):
            doublings = float(np.log2(mean_bpp[i] / mean_bpp[i - 1]))
            gain = float(mean_psnr[i] - mean_psnr[i - 1])
            if not (doublings > 0 and gain > 0 and gain >= min_slope * doublings):
                start = i
            if i - start >= best[1] - best[0]:
                best = (start, i)
    first, last = best
    rises = [
        bool(np.all(bpp[i] > bpp[i - 1]) and np.all(psnr[i] > psnr[i - 1]))
        for i in range(len(level))
    ]
    span = (last, last)
    for top in range(last, first, -1):
        bottom = top
        while bottom > first and rises[bottom]:
            bottom -= 1
        if top - bottom > span[1] - span[0]:
            span = (bottom, top)
    if span[0] == span[1]:
        raise ValueError(
            "no two measured levels between which every image's rate and PSNR rise and "
            f"a doubling of the rate buys {min_slope} dB"
        )
    return [round(float(level[span[0]]), 3), round(float(level[span[1]]), 3)]
