"""Coding an image with the wavelet model: pixels to coded units and back, exactly.

One coded unit for the 1/64 low-pass, then one a level, coarsest first, each holding the
level's four passes (`numpy_context_model.code_level`). Every number the decoder derives
is an integer, so the decoded pixels are the same bits on every machine, and the encoder
knows them: it runs the decoder's own context model on what it writes.
"""

from __future__ import annotations

import numpy as np

from ..format.entropy import EntropyTables, UnitDecoder, encode, encode_passes
from ..format.quantiser import quantise, step_size
from ..format.wavelet import LEVELS, pad_to_pyramid, pyramid, synthesis, to_pixels
from ..networks.numpy_context_model import (
    ContextModel,
    LevelResult,
    Reader,
    code_level,
    dequantise_level,
    ll_index,
    ll_offset,
)

DEADZONE = 38  # the reference encoder's dead zone, 1/256 step


def encode_pyramid(
    pixels: np.ndarray,
    u: int,
    model: ContextModel,
    tables: EntropyTables,
    deadzone: int = DEADZONE,
) -> tuple[list[bytes], np.ndarray]:
    """uint8 RGB `[3, H, W]` at step code `u` -> (the coded units, coarsest first; the
    image the decoder will output)."""
    _, height, width = pixels.shape
    step = step_size(u)
    ll, details = pyramid(pad_to_pyramid(pixels))
    q_ll = quantise(ll, step, 0)
    units = [encode(q_ll - ll_offset(model, step), ll_index(model, u, ll.shape[1:]), tables)]
    low = q_ll * step
    parent: LevelResult | None = None
    for level in range(LEVELS, 0, -1):
        d = quantise(details[level - 1], step, deadzone)  # [3, 3, h, w]
        q9 = d.reshape(9, *d.shape[2:]).transpose(1, 2, 0)
        passes: list[tuple[np.ndarray, np.ndarray]] = []
        parent = code_level(model, level, low, parent, u, _writer(q9, passes))
        units.append(encode_passes(passes, tables))
        low = synthesis(low, dequantise_level(model, parent, step))
    return units, to_pixels(low)[:, :height, :width]


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
            c = (c + (1 << (shift - 1))) >> shift  # the low-pass at level k has gain 2**k
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


def _reader(unit: UnitDecoder) -> Reader:
    """The decoder's side: decode each pass from the level's unit."""

    def read(index: np.ndarray, where: np.ndarray, channels: list[int]) -> np.ndarray:
        return unit.read(index)

    return read
