"""Image quality measures, with NumPy alone (usable by a decode-only install).

PSNR is defined here once; the benchmarks, calibration, conformance checks, training's
validation and the tests all use it. (Training's loss computes a batched torch PSNR on
the graph, which is different work.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """10 log10(peak² / mse) in dB; infinite for identical images."""
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def psnr(a: ArrayLike, b: ArrayLike, peak: float = 255.0) -> float:
    """PSNR of `b` against `a` over every sample, computed in float64."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return psnr_from_mse(mse, peak)


__all__ = ["psnr", "psnr_from_mse"]
