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
from .numpy_layers import IntLayer

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
# one integer layer as the weights file stores it: weight, bias, multiplier, shift, range
IntegerLayerArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]


LOW_MAX = 1024  # the low-pass feature's clamp: a real image's stays within +-256


def low_feature(low: np.ndarray, level: int) -> np.ndarray:
    """The low-pass at level `level` (coefficient units, gain 2**level) as the networks
    read it: in half pixel levels, 1/64 on their grid; clamped, so that no stream, however
    made, takes an input past the integer networks' bound (spec 6.3)."""
    return np.clip(low >> (FRACTION + level + 1), -LOW_MAX, LOW_MAX)


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
    mask = (anchor * ONE)[..., None]
    base = model.base[level - 1]
    q = np.zeros((h, w, 9), dtype=np.int64)
    index = np.zeros((h, w, 9), dtype=np.int64)
    amp = np.zeros((h, w, 9), dtype=np.int64)

    def do_pass(net: str, extra: list[np.ndarray], channels: list[int], at: np.ndarray) -> None:
        x = np.concatenate([ctx, *extra], axis=2) if extra else ctx
        out = _evaluate(model, net, x, ANCHORS if at is anchor else REST)[at]
        idx = table_index(out + base[channels], u)  # [n, len(channels)]
        values = read(idx, at, channels)
        sel = np.ix_(np.flatnonzero(at.reshape(-1)), np.asarray(channels))
        q.reshape(-1, 9)[sel] = values
        index.reshape(-1, 9)[sel] = idx
        amp.reshape(-1, 9)[sel] = amplitude(values, u)

    rest = ~anchor
    do_pass("luma_anchor", [], LUMA, anchor)
    y = amp[..., LUMA]
    do_pass("luma_rest", [y * anchor[..., None], mask], LUMA, rest)
    y = amp[..., LUMA]
    do_pass("chroma_anchor", [y], CHROMA, anchor)
    c_seen = amp[..., CHROMA] * anchor[..., None]
    do_pass("chroma_rest", [y, c_seen, mask], CHROMA, rest)
    x = np.concatenate([ctx, amp], axis=2)
    carried = _evaluate(model, "carry", x, ANCHORS + REST)
    return LevelResult(q, index, amp, carried.astype(np.int64))


# a checkerboard's halves as row and column parities: anchors have r + c even
ANCHORS, REST = [(0, 0), (1, 1)], [(0, 1), (1, 0)]
BAND_VALUES = 1 << 21  # im2col values per band: memory stays bounded for any image


def _evaluate(
    model: ContextModel, net: str, x: np.ndarray, parities: list[tuple[int, int]]
) -> np.ndarray:
    """The network's integer output `[h, w, cout]` on `x` (`[h, w, cin]`), exact (spec
    6.1: what `numpy_layers.int_conv` layer after layer gives), computed only at the
    positions of the given parities (row, column); the
    others hold zeros. A parity class is a dense grid at half resolution, so its 3 x 3
    im2col rows are plain slices of the zero-padded input's parity planes, and the
    layer is one matrix product a band of rows at a time (float64, exact as
    `int_conv`'s)."""
    layers = [model.layers[f"{net}.{name}"] for name in LAYERS]
    h, w, cin = x.shape
    ph, pw = h + 2 + h % 2, w + 2 + w % 2  # padded by one, and to even sizes
    padded = np.zeros((ph, pw, cin), dtype=np.float64)
    padded[1 : h + 1, 1 : w + 1] = x
    planes = {(a, b): padded[a::2, b::2] for a in (0, 1) for b in (0, 1)}
    out = np.zeros((h, w, layers[-1].matrix.shape[1]), dtype=np.int64)
    for py, px in parities:
        ni, nj = (h - py + 1) // 2, (w - px + 1) // 2
        if not (ni and nj):
            continue
        band = max(1, BAND_VALUES // (nj * 9 * cin))
        for i0 in range(0, ni, band):
            i1 = min(ni, i0 + band)
            cols = np.empty((i1 - i0, nj, 9, cin), dtype=np.float64)
            for dy in range(3):
                for dx in range(3):
                    a, b = (py + dy) % 2, (px + dx) % 2
                    oi, oj = (py + dy) // 2, (px + dx) // 2
                    cols[:, :, 3 * dy + dx] = planes[a, b][i0 + oi : i1 + oi, oj : oj + nj]
            v = _requantise(cols.reshape(-1, 9 * cin) @ layers[0].matrix, layers[0])
            for layer in layers[1:]:
                v = _requantise(v.astype(np.float64) @ layer.matrix, layer)
            out[py + 2 * i0 : py + 2 * i1 : 2, px::2][:, :nj] = v.reshape(i1 - i0, nj, -1)
    return out


def _requantise(acc: np.ndarray, layer: IntLayer) -> np.ndarray:
    """Spec 6.1's requantisation of exact float64 sums."""
    a = acc.astype(np.int64)
    a += layer.bias
    a *= layer.multiplier
    a += layer.rounding
    a >>= layer.shift
    return np.clip(a, layer.out_min, layer.out_max, out=a)


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
