"""The wavelet model's context model, exact (NumPy, integer networks): which table codes
each wavelet coefficient, from what the decoder has already decoded.

The levels are coded coarsest first, each in four passes: the luma's checkerboard
anchors, the rest of the luma, the chroma's anchors, the rest of the chroma (He et al.,
CVPR 2021, for the checkerboard; luma before chroma, as an edge sits in all three).
Every pass's tables come from integer networks (spec 6.1) over integer features:

* the low-pass image at the level's resolution, rebuilt from the levels decoded so far
  (the preview at that scale: an edge there is where detail will be);
* the parent level's log amplitudes and the features the parent level's `carry` network
  hands down, both repeated 2 x 2 (nearest neighbour);
* the log step, which level (one-hot), and in later passes the amplitudes decoded in
  earlier passes of the same level.

The coarse levels are thus both the hyper representation and the picture: coarse
predicts fine, as in Hu, Yang and Liu (AAAI 2020), with no side information at all.
Encoder and decoder run the same `code_level`; only the `read` callback differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..format.quantiser import amplitude, dequantise, table_index
from ..format.wavelet import FRACTION, LEVELS
from .numpy_layers import IntLayer, int_conv

CARRY = 16  # features a level hands to the next finer one
HIDDEN = 32  # the networks' width
ONE = 32  # 1.0 on the networks' input grid (1/32)
LOG_SPREAD_MAX = 4096  # the heads' output range: +-128 octaves, in 1/32
LUMA, CHROMA = [0, 3, 6], [1, 2, 4, 5, 7, 8]  # a level's channels: (HL, LH, HH) x colour
# the features every pass sees: low-pass (3), parent amplitudes (9), carried, log step,
# level one-hot
CONTEXT = 3 + 9 + CARRY + 1 + LEVELS
# name: (input channels, output channels); every network is 3x3 -> 1x1 -> 1x1
NETWORKS = {
    "luma_anchor": (CONTEXT, 3),
    "luma_rest": (CONTEXT + 3 + 1, 3),
    "chroma_anchor": (CONTEXT + 3, 6),
    "chroma_rest": (CONTEXT + 3 + 6 + 1, 6),
    "carry": (CONTEXT + 9, CARRY),
}
LAYERS = ("a", "b", "c")


def low_feature(low: np.ndarray, level: int) -> np.ndarray:
    """The low-pass at level `level` (coefficient units, gain 2**level) as the networks
    read it: in half pixel levels, 1/64 on their grid."""
    return low >> (FRACTION + level + 1)


def anchors(h: int, w: int) -> np.ndarray:
    """True at the checkerboard's anchors, coded first: (row + column) even."""
    return (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0


def upsample2(x: np.ndarray) -> np.ndarray:
    """[h, w, c] -> [2h, 2w, c], each element repeated 2 x 2."""
    return np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)


@dataclass(frozen=True)
class ContextModel:
    """The integer context model: five networks, a base log spread per level and
    channel, the 1/64 low-pass's per-colour mean and spread, and the reconstruction
    offset of each table."""

    layers: dict[str, IntLayer]  # "<network>.<a|b|c>"
    base: np.ndarray  # int [LEVELS, 9]: log spread at level l is base[l - 1] + network
    ll_mean: np.ndarray  # int [3], coefficient units
    ll_log_spread: np.ndarray  # int [3], 32 * log2(spread in coefficient units) - 320
    offsets: np.ndarray  # int [64], reconstruction offset of each table, 1/256 step

    def run(self, name: str, x: np.ndarray) -> np.ndarray:
        for layer in LAYERS:
            x = int_conv(x, self.layers[f"{name}.{layer}"])
        return x


# read(tables [n, channels], positions [h, w] bool, channels) -> the integers [n, channels]
Reader = Callable[[np.ndarray, np.ndarray, list[int]], np.ndarray]


@dataclass
class LevelResult:
    q: np.ndarray  # [h, w, 9] the level's integers
    index: np.ndarray  # [h, w, 9] their tables
    amplitude: np.ndarray  # [h, w, 9] their log amplitudes
    carried: np.ndarray  # [h, w, CARRY] handed to the next finer level


def code_level(
    model: ContextModel,
    level: int,
    low: np.ndarray,
    parent: LevelResult | None,
    u: int,
    read: Reader,
) -> LevelResult:
    """One level's four passes. `low` is the low-pass at this level ([3, h, w],
    coefficient units); `read` is called once a pass, in order, with the tables of the
    pass's elements (`[n, channels]`: positions in raster order, channels in order
    within a position), the positions and the channels, and returns their integers:
    the encoder hands back its own, the decoder decodes them."""
    _, h, w = low.shape
    ctx = np.empty((h, w, CONTEXT), dtype=np.int64)
    ctx[..., :3] = low_feature(low, level).transpose(1, 2, 0)
    if parent is None:
        ctx[..., 3 : 12 + CARRY] = 0
    else:
        ctx[..., 3:12] = upsample2(parent.amplitude)
        ctx[..., 12 : 12 + CARRY] = upsample2(parent.carried)
    ctx[..., 12 + CARRY] = u - 320
    ctx[..., 13 + CARRY :] = 0
    ctx[..., 13 + CARRY + level - 1] = ONE
    anchor = anchors(h, w)
    mask = (anchor * ONE)[..., None].astype(np.int64)
    base = model.base[level - 1]
    q = np.zeros((h, w, 9), dtype=np.int64)
    index = np.zeros((h, w, 9), dtype=np.int64)
    amp = np.zeros((h, w, 9), dtype=np.int64)

    def do_pass(out: np.ndarray, channels: list[int], where: np.ndarray) -> None:
        idx = table_index(out[where] + base[channels], u)  # [n, len(channels)]
        values = read(idx, where, channels)
        sel = np.ix_(np.flatnonzero(where.reshape(-1)), np.asarray(channels))
        q.reshape(-1, 9)[sel] = values
        index.reshape(-1, 9)[sel] = idx
        amp.reshape(-1, 9)[sel] = amplitude(values, u)

    do_pass(model.run("luma_anchor", ctx), LUMA, anchor)
    y_seen = amp[..., LUMA] * anchor[..., None]
    do_pass(model.run("luma_rest", np.concatenate([ctx, y_seen, mask], axis=2)), LUMA, ~anchor)
    y = amp[..., LUMA]
    do_pass(model.run("chroma_anchor", np.concatenate([ctx, y], axis=2)), CHROMA, anchor)
    c_seen = amp[..., CHROMA] * anchor[..., None]
    rest = model.run("chroma_rest", np.concatenate([ctx, y, c_seen, mask], axis=2))
    do_pass(rest, CHROMA, ~anchor)
    carried = model.run("carry", np.concatenate([ctx, amp], axis=2))
    return LevelResult(q, index, amp, carried.astype(np.int64))


def ll_index(model: ContextModel, u: int, shape: tuple[int, int]) -> np.ndarray:
    """Tables of the 1/64 low-pass ([3, h, w]): one spread per colour."""
    idx = table_index(model.ll_log_spread, u)
    return np.broadcast_to(idx[:, None, None], (3, *shape)).copy()


def ll_offset(model: ContextModel, step: int) -> np.ndarray:
    """The 1/64 low-pass's integers are coded less this ([3, 1, 1]): its mean, in steps."""
    return ((2 * model.ll_mean + step) // (2 * step))[:, None, None]


def dequantise_level(model: ContextModel, result: LevelResult, step: int) -> np.ndarray:
    """A level's coefficients `[3 bands, 3 colours, h, w]` from its integers and tables."""
    v = dequantise(result.q, step, result.index, model.offsets)  # [h, w, 9]
    h, w, _ = v.shape
    return v.transpose(2, 0, 1).reshape(3, 3, h, w)
