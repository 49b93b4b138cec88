"""Calibrate the quality scale of a trained model: which levels quality 1..100 spans.

A single network trained over a range of lambdas need not be monotone at the ends of
that range (at the lowest levels the gained latents get so small that the level-agnostic
prior overestimates their spread, and the rate rises again). The export therefore
measures the real codec on held-out images (never the benchmark) and maps quality 1
to the lowest level from which both rate and PSNR rise with the level.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from .codec import Codec
from .metrics import psnr as psnr_of
from .model import C2FModel
from .progress import progress
from .weights import load_weights, save_weights

QUALITIES = sorted({int(q) for q in np.linspace(1, 100, 34).round()})  # measured grid


def rd_by_level(model: C2FModel, images: list[np.ndarray]) -> list[tuple[float, float, float]]:
    """(level, mean bpp, mean PSNR) of the real codec over the full trained range."""
    saved = model.config.quality_levels
    model.config.quality_levels = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "calibrating.npz"
            save_weights(model, path)
            codec = Codec(load_weights(path), torch.device("cpu"))
    finally:
        model.config.quality_levels = saved
    rows = []
    for quality in progress(QUALITIES, len(QUALITIES), "calibrate"):
        level = codec.net.config.level_of_quality(quality)
        bpp, psnr = [], []
        for rgb in images:
            data = codec.encode(rgb, "RGB", quality)
            out = codec.decode(data)
            bpp.append(len(data) * 8 / (rgb.shape[0] * rgb.shape[1]))
            psnr.append(psnr_of(rgb, out))
        rows.append((float(level), float(np.mean(bpp)), float(np.mean(psnr))))
    return rows


def monotone_range(rows: list[tuple[float, float, float]]) -> list[float]:
    """[t0, t1]: the longest run of consecutive measured levels over which both bpp and
    PSNR rise strictly (ties go to the higher levels)."""
    best = (0, 0)
    start = 0
    for i in range(1, len(rows)):
        if not (rows[i][1] > rows[i - 1][1] and rows[i][2] > rows[i - 1][2]):
            start = i
        if i - start >= best[1] - best[0]:
            best = (start, i)
    return [round(rows[best[0]][0], 3), round(rows[best[1]][0], 3)]
