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
    step = step_size(u)
    h, w = -(-height // (1 << LEVELS)), -(-width // (1 << LEVELS))
    first = UnitDecoder(units[0], tables)
    q_ll = first.read(ll_index(model, u, (h, w))) + ll_offset(model, step)
    first.finish()
    low = q_ll * step
    parent: LevelResult | None = None
    for level, data in zip(range(LEVELS, 0, -1), units[1:], strict=True):
        unit = UnitDecoder(data, tables)
        parent = code_level(model, level, low, parent, u, _reader(unit))
        unit.finish()
        low = synthesis(low, dequantise_level(model, parent, step))
    return to_pixels(low)[:, :height, :width]


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
