"""The wavelet model's quantiser: step sizes, the amplitude feature, table selection and
reconstruction points, all integer arithmetic (NumPy only).

One number per image, the step code `u`, sets the rate: the quantiser step is
`D(u)`, about 2**(u / 32) coefficient units, from a 32-entry mantissa table (as video
codecs derive their quantiser steps), so `u / 32` is log2 of the step exactly enough for
the context model and the step is the same integer everywhere. Log quantities are
integers in units of 1/32 of log2 (LOG_UNIT), the grid of the integer networks' inputs.
"""

from __future__ import annotations

import numpy as np

LOG_UNIT = 32  # log2 quantities are integers in units of 1/32
STEP_CODE_MIN, STEP_CODE_MAX = 192, 511  # D from 64 to about 64,000 units, each larger
STEP_CODE_REF = 320  # D(320) = 1024: the zero of the log-step feature
# round(2**15 * 2**(i / 32)), i = 0..31
STEP_MANTISSA = np.array(
    [round(2**15 * 2 ** (i / 32)) for i in range(32)],
    dtype=np.int64,
)
AMPLITUDE_MAX = 4095  # |q| beyond this reads as this in the amplitude feature
TABLES = 64
TABLE_SPACING = 7  # tables lie 7/32 of an octave apart ...
TABLE_FLOOR = -144  # ... from a spread of 2**(-144/32) = 0.044 steps up to 2**(297/32) = 622
RECON_BITS = 8  # reconstruction offsets in units of 1/256 step


def step_size(u: int) -> int:
    """D(u) = floor(STEP_MANTISSA[u mod 32] * 2**(u div 32) / 2**15): the quantiser step
    in coefficient units."""
    if not STEP_CODE_MIN <= u <= STEP_CODE_MAX:
        raise ValueError(f"step code {u} outside {STEP_CODE_MIN}..{STEP_CODE_MAX}")
    return int((int(STEP_MANTISSA[u & 31]) << (u >> 5)) >> 15)


def _log2_table() -> np.ndarray:
    # round(32 * log2(n + 1/2)) = round(32 * log2(2n + 1)) - 32; never within 1e-6 of a
    # tie for n <= AMPLITUDE_MAX (checked by the tests), so every libm gives these values
    n = np.arange(AMPLITUDE_MAX + 1, dtype=np.float64)
    return np.round(LOG_UNIT * np.log2(2 * n + 1)).astype(np.int64) - LOG_UNIT


LOG_AMPLITUDE = _log2_table()


def amplitude(q: np.ndarray, u: int) -> np.ndarray:
    """The log amplitude feature of decoded integers q: 32 * log2((|q| + 1/2) * D / 1024),
    rounded; what a coefficient says about the spread around it ("below a step" for 0)."""
    return LOG_AMPLITUDE[np.minimum(np.abs(q), AMPLITUDE_MAX)] + (u - STEP_CODE_REF)


def table_index(log_spread: np.ndarray, u: int) -> np.ndarray:
    """The table of a coefficient whose spread, as 32 * log2 in coefficient units less
    10 octaves (the context model's output), is `log_spread`: the nearest of the tables
    at 32 * log2(spread in steps) = TABLE_FLOOR + TABLE_SPACING * i."""
    t = log_spread.astype(np.int64) + (STEP_CODE_REF - u) - TABLE_FLOOR + TABLE_SPACING // 2
    return np.clip(t // TABLE_SPACING, 0, TABLES - 1)


def table_spreads() -> np.ndarray:
    """Each table's Laplacian spread, in steps."""
    i = np.arange(TABLES, dtype=np.float64)
    return 2.0 ** ((TABLE_FLOOR + TABLE_SPACING * i) / LOG_UNIT)


def quantise(c: np.ndarray, step: int, deadzone: int) -> np.ndarray:
    """The reference encoder's quantiser: magnitudes rounded down by `deadzone`/256 of a
    step more than to nearest (rate for error; 38/256, about 0.15, by default)."""
    mag = (np.abs(c) * (1 << RECON_BITS) + ((1 << (RECON_BITS - 1)) - deadzone) * step) // (
        step << RECON_BITS
    )
    return np.sign(c) * np.maximum(mag, 0)


def dequantise(q: np.ndarray, step: int, index: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Coefficients from integers: q * D, moved toward zero by the bin-mean offset of the
    coefficient's table (units of 1/256 step; the decoder knows the table, so where in
    its bin a Laplacian puts a coefficient on average costs no bits)."""
    shrink = (offsets[index].astype(np.int64) * step + (1 << (RECON_BITS - 1))) >> RECON_BITS
    return q.astype(np.int64) * step - np.sign(q) * shrink
