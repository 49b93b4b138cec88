"""Coding an image with the wavelet model: pixels to coded units and back, exactly.

One coded unit for the 1/64 low-pass, then one a level, coarsest first, each holding the
level's four passes (`numpy_context_model.code_level`). Every number the decoder derives
is an integer, so the decoded pixels are the same bits on every machine, and the encoder
knows them: it runs the decoder's own context model on what it writes.
"""

from __future__ import annotations

import numpy as np

from ..format.entropy import TOTAL, EntropyTables, UnitDecoder, encode, encode_passes
from ..format.quantiser import dequantise, quantise, step_size
from ..format.wavelet import LEVELS, pad_to_pyramid, pyramid, reduced, synthesis, to_pixels
from ..networks.numpy_context_model import (
    ContextModel,
    LevelResult,
    Reader,
    code_level,
    dequantise_level,
    ll_index,
    ll_offset,
)
from .threads import blas_threads

DEADZONE = 38  # the reference encoder's dead zone, 1/256 step
# code lengths on a grid of 2**-16 bit: libm's log2 may differ in its last bits from one
# build to another; rounded, the encoder's choices (and its streams) do not
BIT_GRID = float(1 << 16)


def encode_pyramid(
    pixels: np.ndarray,
    u: int,
    model: ContextModel,
    tables: EntropyTables,
    deadzone: int = DEADZONE,
    rdo: float | tuple[float, ...] = 0.0,
) -> tuple[list[bytes], np.ndarray]:
    """uint8 RGB `[3, H, W]` at step code `u` -> (the coded units, coarsest first; the
    image the decoder will output). With `rdo` > 0, each detail coefficient's integer is
    chosen, once its table is known, among rounding to nearest, one step toward zero and
    zero, for the least squared error plus `rdo * D**2` times its bits (rate-distortion
    optimised quantisation against the decoder's own tables); otherwise the dead zone."""
    with blas_threads():
        return _encode_pyramid(pixels, u, model, tables, deadzone, rdo)


def _encode_pyramid(
    pixels: np.ndarray,
    u: int,
    model: ContextModel,
    tables: EntropyTables,
    deadzone: int,
    rdo: float | tuple[float, ...],
) -> tuple[list[bytes], np.ndarray]:
    _, height, width = pixels.shape
    step = step_size(u)
    unit, low, details = start_pyramid(pixels, u, model, tables)
    units = [unit]
    parent: LevelResult | None = None
    for level in range(LEVELS, 0, -1):
        c9 = details[level - 1]
        passes: list[tuple[np.ndarray, np.ndarray]] = []
        k = rdo[level - 1] if isinstance(rdo, tuple) else rdo
        if k > 0:
            chooser = _RateDistortion(c9, step, k, model.offsets, tables)
            writer = chooser.writer(passes)
        else:
            writer = _writer(quantise(c9, step, deadzone), passes)
        parent = code_level(model, level, low, parent, u, writer)
        units.append(encode_passes(passes, tables))
        low = synthesis(low, dequantise_level(model, parent, step))
    return units, to_pixels(low)[:, :height, :width]


def start_pyramid(
    pixels: np.ndarray, u: int, model: ContextModel, tables: EntropyTables
) -> tuple[bytes, np.ndarray, list[np.ndarray]]:
    """What every encoder of the pyramid starts from: (the 1/64 low-pass's coded unit,
    the low-pass as the decoder rebuilds it, each level's coefficients `[h, w, 9]`,
    finest first)."""
    step = step_size(u)
    ll, details = pyramid(pad_to_pyramid(pixels))
    q_ll = quantise(ll, step, 0)
    unit = encode(q_ll - ll_offset(model, step), ll_index(model, u, ll.shape[1:]), tables)
    levels = [c.reshape(9, *c.shape[2:]).transpose(1, 2, 0) for c in details]  # [3, 3, h, w]
    return unit, q_ll * step, levels


def decode_pyramid(
    units: list[bytes], height: int, width: int, u: int, model: ContextModel, tables: EntropyTables
) -> np.ndarray:
    """The inverse of `encode_pyramid`: uint8 RGB `[3, height, width]`."""
    dec = PyramidDecoder(model, tables, u, height, width)
    dec.add_low(units[0])
    for level, data in zip(range(LEVELS, 0, -1), units[1:], strict=True):
        dec.add_level(level, data)
    return dec.pixels().transpose(2, 0, 1)


class PyramidDecoder:
    """The levels of one image decoded as they arrive, coarsest first; `pixels` gives the
    image at any scale from what has arrived (the finer levels missing read as zero: a
    blurred image, the preview a wavelet gives for free)."""

    def __init__(
        self, model: ContextModel, tables: EntropyTables, u: int, height: int, width: int
    ) -> None:
        self.model, self.tables, self.u = model, tables, u
        self.step = step_size(u)
        self.height, self.width = height, width
        self.lows: dict[int, np.ndarray] = {}  # the low-pass at each level decoded so far
        self.level = LEVELS  # the finest level whose low-pass is known
        self._parent: LevelResult | None = None

    def add_low(self, data: bytes) -> None:
        h, w = -(-self.height // (1 << LEVELS)), -(-self.width // (1 << LEVELS))
        unit = UnitDecoder(data, self.tables)
        q = unit.read(ll_index(self.model, self.u, (h, w))) + ll_offset(self.model, self.step)
        unit.finish()
        self.lows[LEVELS] = q * self.step

    def add_level(self, level: int, data: bytes) -> None:
        """Decode level `level` (the next one: LEVELS, LEVELS - 1, ..., 1)."""
        if LEVELS not in self.lows or level != self.level:
            raise ValueError(f"level {level} out of order")
        low = self.lows[level]
        unit = UnitDecoder(data, self.tables)
        with blas_threads():
            self._parent = code_level(self.model, level, low, self._parent, self.u, _reader(unit))
        unit.finish()
        self.lows[level - 1] = synthesis(low, dequantise_level(self.model, self._parent, self.step))
        self.level = level - 1

    def pixels(self, reduce: int = 1) -> np.ndarray:
        """uint8 RGB `[ceil(H / reduce), ceil(W / reduce), 3]`, `reduce` a power of 2 up
        to 2**LEVELS: the low-pass at that scale (levels finer than it are not needed;
        levels not yet decoded above it read as zero)."""
        if LEVELS not in self.lows:
            raise ValueError("the low-pass has not been decoded")
        shift = reduce.bit_length() - 1
        c = self.lows[max(shift, self.level)]
        for _ in range(self.level - shift):  # levels missing above the scale asked for
            c = synthesis(c, np.zeros((3, 3, *c.shape[1:]), dtype=np.int64))
        if shift:
            c = reduced(c, shift)
        h, w = -(-self.height // reduce), -(-self.width // reduce)
        return to_pixels(c)[:, :h, :w].transpose(1, 2, 0)


def _writer(q9: np.ndarray, passes: list[tuple[np.ndarray, np.ndarray]]) -> Reader:
    """The encoder's side of `code_level`: hand back its own integers, and keep each
    pass with its tables for coding."""

    def read(index: np.ndarray, where: np.ndarray, channels: list[int]) -> np.ndarray:
        values = q9[where][:, channels]
        passes.append((values, index))
        return values

    return read


class _RateDistortion:
    """Rate-distortion optimised quantisation of one level's coefficients `c9`
    (`[h, w, 9]`): each element's integer, once its table is known, is the cheapest of
    three candidates by squared error + lambda * bits, lambda = `k` * D**2 (with the
    table's reconstruction offset, as the decoder rebuilds it)."""

    def __init__(
        self, c9: np.ndarray, step: int, k: float, offsets: np.ndarray, tables: EntropyTables
    ) -> None:
        self.c9, self.step, self.offsets = c9, step, offsets
        self.lam = k * float(step) ** 2
        self.bits, self.radii = _code_lengths(tables)

    def writer(self, passes: list[tuple[np.ndarray, np.ndarray]]) -> Reader:
        def read(index: np.ndarray, where: np.ndarray, channels: list[int]) -> np.ndarray:
            c = self.c9[where][:, channels].astype(np.float64)
            values = self.choose(c, index)
            passes.append((values, index))
            return values

        return read

    def choose(self, c: np.ndarray, index: np.ndarray) -> np.ndarray:
        step = self.step
        near = np.sign(c) * np.floor(np.abs(c) / step + 0.5)
        toward = near - np.sign(near)
        best, best_cost = near, None
        for cand in (near, toward, np.zeros_like(near)):
            v = dequantise(cand.astype(np.int64), step, index, self.offsets)
            r = self.radii[index]
            sym = np.clip(cand, -r - 1, r + 1).astype(np.int64) + r  # escape past the edge
            cost = (c - v) ** 2 + self.lam * self.bits[index, sym]
            if best_cost is None:
                best_cost = cost
            else:
                better = cost < best_cost
                best = np.where(better, cand, best)
                best_cost = np.where(better, cost, best_cost)
        return best.astype(np.int64)


_LENGTHS: dict[int, tuple[EntropyTables, np.ndarray, np.ndarray]] = {}


def _code_lengths(tables: EntropyTables) -> tuple[np.ndarray, np.ndarray]:
    """Bits of each symbol of each table, `[64, Wt + 1]` (column 2R + 1: an escape, with
    its 16-bit payload; index -1 likewise), and the radii."""
    key = id(tables)
    if key not in _LENGTHS or _LENGTHS[key][0] is not tables:
        f = tables.freqs.astype(np.float64)
        bits = np.full((f.shape[0], f.shape[1] + 1), np.inf)
        radii = tables.radii.astype(np.int64)
        for j, r in enumerate(radii):
            row = -np.log2(f[j, : 2 * r + 2] / TOTAL)
            row[2 * r + 1] += np.log2(65535)
            bits[j, : 2 * r + 2] = np.round(row * BIT_GRID) / BIT_GRID
            bits[j, -1] = bits[j, 2 * r + 1]  # below -R: an escape too
        _LENGTHS[key] = (tables, bits, radii)
    return _LENGTHS[key][1:]


def _reader(unit: UnitDecoder) -> Reader:
    """The decoder's side: decode each pass from the level's unit."""

    def read(index: np.ndarray, where: np.ndarray, channels: list[int]) -> np.ndarray:
        return unit.read(index)

    return read
