"""The wavelet model's exact transform and quantiser (format/wavelet.py, quantiser.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from c2f_format.format import quantiser, wavelet


def _image(seed: int, h: int = 128, w: int = 192) -> np.ndarray:
    """A smooth image with edges and noise, uint8 [3, h, w]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + 40 * (x > w // 2)
    img = base[None] + rng.normal(0, 8, (3, h, w)) + np.array([0, 20, -20])[:, None, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _rebuild(ll: np.ndarray, details: list[np.ndarray]) -> np.ndarray:
    c = ll
    for d in reversed(details):
        c = wavelet.synthesis(c, d)
    return wavelet.to_pixels(c)


def test_the_pyramid_inverts_to_the_same_pixels() -> None:
    img = _image(0)
    ll, details = wavelet.pyramid(img)
    assert ll.shape == (3, 2, 3)
    assert [d.shape for d in details] == [(3, 3, 128 >> i, 192 >> i) for i in range(1, 7)]
    assert np.array_equal(_rebuild(ll, details), img)


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint8, (3, 64, 64)))
def test_any_image_survives_the_round_trip(img: np.ndarray) -> None:
    """Integer lifting loses nothing visible: the rounding errors of the two directions
    stay far below a pixel level, also for noise and extremes."""
    ll, details = wavelet.pyramid(img)
    assert np.abs(_rebuild(ll, details).astype(int) - img).max() == 0


def test_subbands_are_near_unit_norm() -> None:
    """An impulse in any subband rebuilds to about unit energy (times the fixed-point
    scale): the coefficients of every level are on the same scale, so one step suits
    them all."""
    size = 1024  # level 6 is 16 x 16: its centre is far from the mirrored edges
    ll, details = wavelet.pyramid(np.full((3, size, size), 128, np.uint8))
    for level in (1, 3, 6):
        for band in range(3):
            d = [np.zeros_like(x) for x in details]
            n = d[level - 1].shape[-1]
            d[level - 1][band, 0, n // 2, n // 2] = 1 << 16
            c = np.zeros_like(ll)
            for x in reversed(d):
                c = wavelet.synthesis(c, x)
            energy = float((c[0].astype(np.float64) ** 2).sum()) / float(1 << 32)
            assert 0.8 < energy < 1.25, (level, band, energy)


def test_padding_repeats_the_last_row_and_column() -> None:
    img = _image(1, 70, 65)
    padded = wavelet.pad_to_pyramid(img)
    assert padded.shape == (3, 128, 128)
    assert np.array_equal(padded[:, 69:, 64], np.repeat(img[:, 69:70, 64], 59, axis=1))
    assert np.array_equal(padded[:, :70, :65], img)


def test_step_sizes_double_every_32_codes() -> None:
    steps = [quantiser.step_size(u) for u in range(quantiser.STEP_CODE_MIN, 512)]
    assert all(b > a for a, b in itertools.pairwise(steps))
    assert quantiser.step_size(320) == 1024
    for u in range(200, 480, 7):
        assert -1e-4 < u / 32 - math.log2(quantiser.step_size(u)) < math.log2(65 / 64)  # floor
        d = quantiser.step_size(u)
        assert quantiser.step_size(u + 32) in (2 * d, 2 * d + 1)


def test_the_amplitude_table_has_no_ties() -> None:
    """Every entry is at least 1e-6 from a rounding tie, so any libm's log2 builds it."""
    n = np.arange(quantiser.AMPLITUDE_MAX + 1, dtype=np.float64)
    exact = 32 * np.log2(2 * n + 1)
    assert np.abs(exact - np.floor(exact) - 0.5).min() > 1e-6


@given(st.integers(-(1 << 24), 1 << 24), st.integers(200, 450), st.integers(0, 128))
def test_the_dead_zone_quantiser(c: int, u: int, deadzone: int) -> None:
    """q = sign(c) floor(|c| / D + 1/2 - dz / 256), and dequantising with no offset lands
    within the dead-zoned bin."""
    step = quantiser.step_size(u)
    q = int(quantiser.quantise(np.array([c]), step, deadzone)[0])
    expected = math.copysign(max(0, math.floor(abs(c) / step + 0.5 - deadzone / 256)), c)
    assert q == int(expected)


def test_table_index_picks_the_nearest_spread() -> None:
    spreads = quantiser.table_spreads()
    u = 300
    for i in (0, 5, 40, 63):
        # a log spread (coefficient units, less 10 octaves) equal to table i's, in steps
        log_spread = np.array([quantiser.TABLE_FLOOR + 7 * i + u - 320])
        assert quantiser.table_index(log_spread, u)[0] == i
        assert math.isclose(spreads[i], 2 ** ((quantiser.TABLE_FLOOR + 7 * i) / 32))
    assert quantiser.table_index(np.array([-(10**6), 10**6]), u).tolist() == [0, 63]
