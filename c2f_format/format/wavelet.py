"""The exact wavelet pyramid of c2f's wavelet model, in integers (NumPy only).

Why integers: the decoder's context model reads the low-pass image rebuilt from the
levels decoded so far, and the image it outputs; both must be the same bits on every
machine, so the inverse transform is exact integer arithmetic (the forward transform is
the encoder's choice; the reference encoder uses the same arithmetic). The transform is
the CDF 9/7 wavelet of JPEG 2000 part 1 in lifting form, each lifting constant a ratio
over 2**16 with a flooring shift, the subbands scaled to near-unit norm, after an
orthonormal opponent colour rotation (luma, red-blue, green-magenta) in 14-bit fixed
point. Coefficients are integers in units of 2**-FRACTION of an 8-bit pixel level.

Arrays are `[..., H, W]` (`[3, H, W]` for an image, `[B, 3, H, W]` for a batch); one level
halves H and W, which must be even.
"""

from __future__ import annotations

import numpy as np

FRACTION = 6  # coefficient units: 2**-6 of a pixel level
LEVELS = 6  # the pyramid's depth: images are padded to multiples of 2**LEVELS
PAD = 1 << LEVELS
LIFT_BITS = 16
# CDF 9/7 lifting (JPEG 2000 part 1, the irreversible transform), times 2**16, rounded
ALPHA, BETA, GAMMA, DELTA = -103949, -3472, 57862, 29066
# the subbands' scaling to near-unit norm: low by sqrt(2)/K, high by K/sqrt(2), with
# K = 1.230174104914001; their product is 1, so the inverse swaps them
SCALE_LOW, SCALE_HIGH = 75340, 57007
COLOUR_BITS = 14
# rows: luma (1,1,1)/sqrt 3, red-blue (1,0,-1)/sqrt 2, green-magenta (1,-2,1)/sqrt 6
COLOUR = np.array([[9459, 9459, 9459], [11585, 0, -11585], [6689, -13377, 6689]], np.int64)


def _mul(x: np.ndarray, c: int, bits: int = LIFT_BITS) -> np.ndarray:
    """floor(x * c / 2**bits + 1/2): a fixed-point product, rounded."""
    return (x * c + (1 << (bits - 1))) >> bits


def _along(x: np.ndarray, axis: int, part: slice) -> np.ndarray:
    """`x[..., part, ...]` with `part` on `axis` (a view)."""
    index = [slice(None)] * x.ndim
    index[axis] = part
    return x[tuple(index)]


def _next(s: np.ndarray, axis: int) -> np.ndarray:
    """s[n + 1] along `axis`, mirrored past the end (whole-sample symmetry)."""
    n = s.shape[axis]
    return np.concatenate([_along(s, axis, slice(1, n)), _along(s, axis, slice(n - 1, n))], axis)


def _prev(d: np.ndarray, axis: int) -> np.ndarray:
    """d[n - 1] along `axis`, mirrored before the start."""
    n = d.shape[axis]
    return np.concatenate([_along(d, axis, slice(0, 1)), _along(d, axis, slice(0, n - 1))], axis)


def _split(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The even and odd samples along `axis` (views)."""
    return _along(x, axis, slice(0, None, 2)), _along(x, axis, slice(1, None, 2))


def _analysis_1d(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    s, d = _split(x, axis)
    d = d + _mul(s + _next(s, axis), ALPHA)
    s = s + _mul(_prev(d, axis) + d, BETA)
    d = d + _mul(s + _next(s, axis), GAMMA)
    s = s + _mul(_prev(d, axis) + d, DELTA)
    return _mul(s, SCALE_LOW), _mul(d, SCALE_HIGH)


def _synthesis_1d(s: np.ndarray, d: np.ndarray, axis: int = -1) -> np.ndarray:
    s, d = _mul(s, SCALE_HIGH), _mul(d, SCALE_LOW)
    s = s - _mul(_prev(d, axis) + d, DELTA)
    d = d - _mul(s + _next(s, axis), GAMMA)
    s = s - _mul(_prev(d, axis) + d, BETA)
    d = d - _mul(s + _next(s, axis), ALPHA)
    shape = list(s.shape)
    shape[axis] *= 2
    out = np.empty(shape, dtype=np.int64)
    even, odd = _split(out, axis)
    even[...], odd[...] = s, d
    return out


def analysis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level: `[..., H, W]` -> (LL `[..., H/2, W/2]`, details `[..., 3, C, H/2, W/2]`
    ordered HL, LH, HH), where HL is high horizontally and low vertically. Rows are
    filtered first, then columns (along the rows' axis, which keeps memory contiguous)."""
    lo, hi = _analysis_1d(x)
    ll, lh = _analysis_1d(lo, -2)
    hl, hh = _analysis_1d(hi, -2)
    return ll, np.stack([hl, lh, hh], axis=-4)


def synthesis(ll: np.ndarray, details: np.ndarray) -> np.ndarray:
    """The inverse of `analysis`, exact in integers (not bit-for-bit the input: the
    roundings of the two directions differ by a few units)."""
    hl, lh, hh = (details[..., i, :, :, :] for i in range(3))
    lo = _synthesis_1d(ll, lh, -2)
    hi = _synthesis_1d(hl, hh, -2)
    return _synthesis_1d(lo, hi)


def reduced(low: np.ndarray, k: int) -> np.ndarray:
    """The low-pass at level `k` (gain 2**k) as the image at 1/2**k, in coefficient
    units: each sample moved from the top-left corner of its 2**k block, where the
    filters centre it, to the block's middle ((2**k - 1) / 2 pixels each way, as a box
    or a DCT reduction places it) by the two-tap filter ((s + 1) / 2s, (s - 1) / 2s), s =
    2**k, along each axis (the last sample repeated), then rounded."""
    s = 1 << k
    c = (s + 1) * low + (s - 1) * _next(low, -2)
    c = (s + 1) * c + (s - 1) * _next(c, -1)
    return (c + (1 << (1 + 3 * k))) >> (2 + 3 * k)


def to_coefficients(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB `[..., 3, H, W]` -> opponent colours `[..., 3, H, W]` in coefficient
    units, centred on mid-grey: (2p - 255) * 2**(FRACTION - 1) is p - 127.5 levels."""
    x = (pixels.astype(np.int64) * 2 - 255) << (FRACTION - 1)
    return _rotate("oc,...chw->...ohw", x)


def _rotate(spec: str, x: np.ndarray) -> np.ndarray:
    return (np.einsum(spec, COLOUR, x) + (1 << (COLOUR_BITS - 1))) >> COLOUR_BITS


def to_pixels(coefficients: np.ndarray) -> np.ndarray:
    """The inverse of `to_coefficients` (the rotation transposed), rounded and clamped
    to uint8."""
    x = _rotate("oc,...ohw->...chw", coefficients)
    p = (x + (255 << (FRACTION - 1)) + (1 << (FRACTION - 1))) >> FRACTION
    return np.clip(p, 0, 255).astype(np.uint8)


def pad_to_pyramid(pixels: np.ndarray) -> np.ndarray:
    """`[..., H, W]` padded on the right and bottom to multiples of PAD by repeating
    the last column and row (spec 3)."""
    h, w = pixels.shape[-2:]
    ph, pw = -h % PAD, -w % PAD
    if not (ph or pw):
        return pixels
    widths = [(0, 0)] * (pixels.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(pixels, widths, mode="edge")


def pyramid(pixels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """uint8 `[..., 3, H, W]` (H, W multiples of PAD) -> (the low-pass at 1/2**LEVELS,
    details of levels 1..LEVELS, finest first, each `[..., 3, 3, H/2**l, W/2**l]`:
    band (HL, LH, HH), colour, row, column)."""
    c = to_coefficients(pixels)
    details = []
    for _ in range(LEVELS):
        c, d = analysis(c)
        details.append(d)
    return c, details
