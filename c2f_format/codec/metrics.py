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


__all__ = ["bd_rate", "psnr", "psnr_from_mse"]


def bd_rate(ref: list[tuple[float, float]], test: list[tuple[float, float]]) -> float:
    """Bjøntegaard delta rate (%) of `test` against `ref`; points are (bpp, psnr).

    Cubic fits of log-rate against PSNR, integrated over the PSNR range both cover.
    Negative: `test` needs fewer bits for the same quality.
    """
    r = np.array(sorted(ref, key=lambda p: p[1]))
    t = np.array(sorted(test, key=lambda p: p[1]))
    lo, hi = max(r[:, 1].min(), t[:, 1].min()), min(r[:, 1].max(), t[:, 1].max())
    if hi <= lo:
        return float("nan")
    pr = np.polyint(np.polyfit(r[:, 1], np.log(r[:, 0]), 3))
    pt = np.polyint(np.polyfit(t[:, 1], np.log(t[:, 0]), 3))
    diff = (np.polyval(pt, hi) - np.polyval(pt, lo) - np.polyval(pr, hi) + np.polyval(pr, lo)) / (
        hi - lo
    )
    return float((np.exp(diff) - 1) * 100)
