"""The quality range a model's export calibrates, and the levels it may extend to."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2f_format.train.calibration import quality_range
from c2f_format.train.growth import extended_lambdas


def table(
    bpp: Sequence[Sequence[float]], psnr: Sequence[Sequence[float]], step: float = 0.5
) -> np.ndarray:
    """rd_table's layout, [levels, images, (level, bpp, PSNR)], from per-level lists."""
    b, p = np.array(bpp, dtype=float), np.array(psnr, dtype=float)
    level = np.broadcast_to((np.arange(len(b)) * step)[:, None], b.shape)
    return np.stack([level, b, p], axis=2)


def test_a_healthy_curve_spans_every_level() -> None:
    bpp = [[0.1, 0.2], [0.2, 0.4], [0.4, 0.8], [0.8, 1.6]]
    psnr = [[24, 25], [26, 27], [28, 29], [30, 31]]
    assert quality_range(table(bpp, psnr)) == [0.0, 1.5]


def test_quality_100_stops_where_rate_buys_too_little() -> None:
    # the last step doubles the rate for 0.1 dB: below MIN_SLOPE = 0.25 dB per doubling
    bpp = [[0.1], [0.2], [0.4], [0.8]]
    psnr = [[24.0], [26.0], [28.0], [28.1]]
    assert quality_range(table(bpp, psnr)) == [0.0, 1.0]
    assert quality_range(table(bpp, psnr), min_slope=0.05) == [0.0, 1.5]


def test_quality_1_starts_above_any_images_rate_floor() -> None:
    # the mean rises everywhere, but the second image's file grows again as the level
    # falls below 0.5: quality 1 must not make a bigger file than the qualities above it
    bpp = [[0.10, 0.31], [0.20, 0.30], [0.40, 0.32], [0.80, 0.64]]
    psnr = [[24, 24], [26, 25], [28, 26], [30, 28]]
    assert quality_range(table(bpp, psnr)) == [0.5, 1.5]


def test_a_psnr_that_falls_with_the_level_also_moves_quality_1() -> None:
    bpp = [[0.1, 0.1], [0.2, 0.2], [0.4, 0.4]]
    psnr = [[24.0, 25.0], [26.0, 24.9], [28.0, 27.0]]
    assert quality_range(table(bpp, psnr)) == [0.5, 1.0]


def test_the_longest_useful_run_wins() -> None:
    # a dip of the mean PSNR at level 0.5 breaks the run; the longer run above it wins
    bpp = [[0.1], [0.2], [0.3], [0.6], [1.2], [2.4]]
    psnr = [[24], [23], [25], [27], [29], [31]]
    assert quality_range(table(bpp, psnr)) == [0.5, 2.5]


@given(st.lists(st.integers(1, 200), min_size=2, max_size=12), st.integers(1, 4))
def test_the_range_is_measured_levels_in_order(steps: list[int], images: int) -> None:
    rates = [k / 100 for k in steps]
    bpp = [[r * (1 + i / 10) for i in range(images)] for r in rates]
    psnr = [[20 + 5 * np.log2(r) for _ in range(images)] for r in rates]
    if all(b >= a for a, b in zip(rates[1:], rates, strict=False)):  # never rises
        with pytest.raises(ValueError):
            quality_range(table(bpp, psnr))
        return
    t0, t1 = quality_range(table(bpp, psnr))
    assert 0.0 <= t0 < t1 <= 0.5 * (len(rates) - 1)
    assert (t0 * 2).is_integer() and (t1 * 2).is_integer()


def test_one_image_stalling_at_the_top_shortens_the_range_from_above() -> None:
    # the second image's rate stalls on the last step: that step cannot be quality 100
    bpp = [[0.1, 0.1], [0.2, 0.2], [0.4, 0.4], [0.8, 0.4]]
    psnr = [[24.0, 24.0], [26.0, 26.0], [28.0, 28.0], [30.0, 29.0]]
    assert quality_range(table(bpp, psnr)) == [0.0, 1.0]


def test_no_useful_step_is_an_error_not_an_empty_range() -> None:
    bpp = [[0.4], [0.3], [0.2]]  # the rate falls as the level rises
    psnr = [[24.0], [26.0], [28.0]]
    with pytest.raises(ValueError, match="no two measured levels"):
        quality_range(table(bpp, psnr))
    with pytest.raises(ValueError, match="no two measured levels"):
        quality_range(table([[0.2]], [[30.0]]))  # a single level


def test_extended_lambdas_continue_the_geometric_ratio() -> None:
    lam = [0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483]
    out = extended_lambdas(lam, 2, 1)
    assert out[2:8] == lam
    ratio = (lam[-1] / lam[0]) ** (1 / 5)
    assert out[1] == pytest.approx(lam[0] / ratio, rel=1e-3)
    assert out[0] == pytest.approx(lam[0] / ratio**2, rel=1e-3)
    assert out[-1] == pytest.approx(lam[-1] * ratio, rel=1e-3)
    assert out == sorted(out) and len(set(out)) == len(out)
    assert extended_lambdas(lam, 0, 0) == lam


def test_extended_lambdas_refuses_what_it_cannot_extend() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        extended_lambdas([0.01, 0.02], -1, 0)
    with pytest.raises(ValueError, match="two trained lambdas"):
        extended_lambdas([0.01], 1, 0)
