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

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..format.quantiser import STEP_CODE_REF, amplitude, dequantise, table_index
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
MASKED = frozenset({"luma_rest", "chroma_rest"})  # the networks whose last input is the anchor mask
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
    constants = np.zeros(1 + LEVELS, dtype=np.float64)
    constants[0] = u - STEP_CODE_REF
    constants[level] = ONE
    coarse = None
    if parent is not None:
        coarse = np.concatenate([parent.amplitude, parent.carried], axis=2)
    low_f = low_feature(low, level).transpose(1, 2, 0)
    shared = LevelInput(model, low_f, coarse, constants)
    carry = ["carry"] if level > 1 else []  # the finest level hands nothing down
    shared.prepare(["luma_anchor", "chroma_anchor", *carry], ANCHORS)
    shared.prepare(["luma_rest", "chroma_rest", *carry], REST)

    def features(net: str, extras: list[np.ndarray]) -> Features:
        more = np.concatenate(extras, axis=2) if extras else None
        return Features(low_f, coarse, constants, more, net in MASKED)

    anchor = anchors(h, w)
    base = model.base[level - 1]
    q = np.zeros((h, w, 9), dtype=np.int64)
    index = np.zeros((h, w, 9), dtype=np.int64)
    amp = np.zeros((h, w, 9), dtype=np.int64)

    def do_pass(net: str, f: Features, channels: list[int], at: np.ndarray) -> None:
        parities = ANCHORS if at is anchor else REST
        out = _gather(_evaluate(model, net, f, parities, shared), parities, at)
        idx = table_index(out + base[channels], u)  # [n, len(channels)]
        values = read(idx, at, channels)
        for target, part in ((q, values), (index, idx), (amp, amplitude(values, u))):
            _scatter(target, part, parities, at, channels)

    rest = ~anchor
    do_pass("luma_anchor", features("luma_anchor", []), LUMA, anchor)
    y = amp[..., LUMA]
    do_pass("luma_rest", features("luma_rest", [y * anchor[..., None]]), LUMA, rest)
    y = amp[..., LUMA]
    do_pass("chroma_anchor", features("chroma_anchor", [y]), CHROMA, anchor)
    c_seen = amp[..., CHROMA] * anchor[..., None]
    do_pass("chroma_rest", features("chroma_rest", [y, c_seen]), CHROMA, rest)
    if carry:
        carried = _evaluate(model, "carry", features("carry", [amp]), ANCHORS + REST, shared)
    else:
        carried = np.zeros((h, w, CARRY), dtype=np.int64)
    return LevelResult(q, index, amp, carried)


def _gather(x: np.ndarray, parities: list[tuple[int, int]], at: np.ndarray) -> np.ndarray:
    """`x[at]`: the elements of one checkerboard half in raster order. On an even grid
    its rows alternate between the two parity classes, so it is two strided slices
    interleaved (no mask)."""
    h, w = at.shape
    if h % 2 or w % 2:
        return x[at]
    (_, even), (_, odd) = parities  # the column parity of even rows, of odd rows
    both = np.stack([x[0::2, even::2], x[1::2, odd::2]], axis=1)
    return both.reshape(-1, *x.shape[2:])


def _scatter(
    x: np.ndarray,
    values: np.ndarray,
    parities: list[tuple[int, int]],
    at: np.ndarray,
    channels: list[int],
) -> None:
    """`x[at][:, channels] = values`, written into `x` (the inverse of `_gather`)."""
    h, w = at.shape
    if h % 2 or w % 2:
        x.reshape(-1, x.shape[2])[np.ix_(np.flatnonzero(at.reshape(-1)), np.asarray(channels))] = (
            values
        )
        return
    (_, even), (_, odd) = parities
    v = values.reshape(h // 2, 2, w // 2, len(channels))
    for into, part in _by_colour(tuple(channels)):  # strided slices, not a fancy index
        x[0::2, even::2, into] = v[:, 0, :, part]
        x[1::2, odd::2, into] = v[:, 1, :, part]


@functools.cache
def _by_colour(channels: tuple[int, ...]) -> list[tuple[slice | list[int], slice | list[int]]]:
    """`channels` (3 * band + colour) as (channels, their places in the list) a colour
    at a time, as slices where they are evenly spaced (LUMA, CHROMA: always)."""
    out: list[tuple[slice | list[int], slice | list[int]]] = []
    for colour in dict.fromkeys(c % 3 for c in channels):
        places = [k for k, c in enumerate(channels) if c % 3 == colour]
        chans = [channels[k] for k in places]
        step = places[1] - places[0] if len(places) > 1 else 1
        if chans == list(range(chans[0], chans[-1] + 1, 3)) and places == list(
            range(places[0], places[-1] + 1, step)
        ):
            out.append((slice(chans[0], chans[-1] + 1, 3), slice(places[0], places[-1] + 1, step)))
        else:
            out.append((chans, places))
    return out


@dataclass(frozen=True)
class Features:
    """A network's input, split by how it varies over the level. In the networks' channel
    order it is: `low`, `coarse` repeated 2 x 2, `constants` everywhere, `extras`, and,
    with `mask`, a last channel ONE at the anchors (spec v2 section 6)."""

    low: np.ndarray  # [h, w, 3] the low-pass feature
    coarse: np.ndarray | None  # [h/2, w/2, 9 + CARRY] the parent's; None: zeros
    constants: np.ndarray  # [1 + LEVELS] the log step and the level's one-hot
    extras: np.ndarray | None  # [h, w, e] amplitudes decoded in earlier passes
    mask: bool = False


# a checkerboard's halves as row and column parities: anchors have r + c even
ANCHORS, REST = [(0, 0), (1, 1)], [(0, 1), (1, 0)]
BAND_VALUES = 1 << 21  # im2col values per band: memory stays bounded for any image
# which of a 3 x 3 kernel's rows meet which of the 2 rows of the parent below an output
# row of parity 0 (parent rows i - 1, i) or 1 (i, i + 1): nearest-neighbour repetition
PARENT_ROWS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], dtype=np.float64)
FLOAT_EXACT = 1 << 52  # below this, float64 holds every integer and its halves exactly
FLOAT32_EXACT = 1 << 24  # below this, float32 holds every integer
HIDDEN_MAX = 1024  # every network input's magnitude bound (spec v2 section 9)
SPLIT_ROWS = 64  # products with fewer rows stay in float64 (ExactProduct)
KEEP_VALUES = 1 << 24  # first-layer products kept per parity group (128 MiB; 256 a level)
# which networks read the anchor mask (their last input channel)


def _evaluate(
    model: ContextModel,
    net: str,
    f: Features,
    parities: list[tuple[int, int]],
    shared: LevelInput | None = None,
) -> np.ndarray:
    """The network's integer output `[h, w, cout]` on the input `f` describes, exact (what
    `numpy_layers.int_conv` gives layer after layer on the whole input), computed only at
    the positions of the given parities (row, column); the others hold zeros. `shared`
    is `f`'s `LevelInput` when the caller keeps one for the level.

    The work is the integer convolution's, rearranged. A parity class is a dense grid at
    half resolution, so its 3 x 3 im2col rows are plain slices of the zero-padded input's
    parity planes. The parent's channels are constant on 2 x 2 blocks, so at a given
    parity the 3 x 3 kernel meets only 2 x 2 of them: those taps' weights are summed and
    the parent is read at its own resolution (9 * 25 columns become 4 * 25). The constant
    channels, and the anchor mask (constant at each tap within a parity class), become
    weights on a channel of ones that the zero padding cuts at the borders as it cuts
    them. Each layer is a matrix product a band of rows at a time, in float32 (bounded
    by the inputs' own ranges) or float64 (`ExactProduct`), every partial sum exact
    (spec v2 section 9), so the order of the BLAS's sums does not matter."""
    layers = [model.layers[f"{net}.{name}"] for name in LAYERS]
    if shared is None:
        shared = LevelInput(model, f.low, f.coarse, f.constants)
    h, w = shared.size
    extras = None if f.extras is None else _padded_planes(f.extras)
    extras_range = value_range(f.extras, 9) if f.extras is not None else HIDDEN_MAX
    scales = [_per_layer(layer)[0] for layer in layers]
    hidden = {k: _per_layer(layer)[1] for k, layer in enumerate(layers) if k}
    out = np.zeros((h, w, layers[-1].matrix.shape[1]), dtype=np.int64)
    for py, px in parities:
        ni, nj = (h - py + 1) // 2, (w - px + 1) // 2
        if not (ni and nj):
            continue
        own, on_extras = shared.first_layer(net, f.mask, py, px)
        own_product = ExactProduct(own, shared.input_range, scales[0])
        extra_product = ExactProduct(on_extras, extras_range, scales[0])
        kept = shared.kept.get((net, py, px))
        band = max(1, BAND_VALUES // (nj * (own.shape[0] + on_extras.shape[0])))
        for i0 in range(0, ni, band):
            i1 = min(ni, i0 + band)
            if kept is None:
                v = own_product(shared.columns(py, px, i0, i1, nj))
            else:
                v = kept[i0 * nj : i1 * nj]  # the level's kept products: read, not changed
            if extras is not None:
                v = extra_product(_columns(extras, None, py, px, i0, i1, nj)) + v
            fresh = kept is None or extras is not None
            for k, layer in enumerate(layers):
                if k:
                    v, fresh = hidden[k](v), True
                v = _requantise(v, layer, scales[k], fresh)
            out[py + 2 * i0 : py + 2 * i1 : 2, px::2][:, :nj] = v.reshape(i1 - i0, nj, -1)
    return out


class LevelInput:
    """What every network of a level reads alike: the low-pass, a channel of ones (which
    carries the constants and the anchor mask, and which the zero padding cuts at the
    borders as it cuts them) and the parent, padded once. For a level within KEEP_VALUES,
    `prepare` also makes each parity's first-layer products of these channels with every
    network that runs there, in one matrix product, and keeps them for the passes."""

    def __init__(
        self,
        model: ContextModel,
        low: np.ndarray,
        coarse: np.ndarray | None,
        constants: np.ndarray,
    ) -> None:
        h, w, _ = low.shape
        self.model, self.size, self.constants = model, (h, w), constants
        ones = np.ones((h, w, 1), dtype=np.float32)
        self.planes = _padded_planes(np.concatenate([low, ones], axis=2))
        self.coarse = None
        # the columns' least and greatest values (low and ones at each 3 x 3 tap, then
        # the parent's at each 2 x 2): what the products' float32 bounds read
        lowest, highest = value_range(np.concatenate([low, ones], axis=2), 9)
        if coarse is not None:
            if (2 * coarse.shape[0], 2 * coarse.shape[1]) != (h, w):
                raise ValueError(f"a {h}x{w} level's parent must be {h // 2}x{w // 2}")
            self.coarse = np.pad(coarse.astype(np.float32), ((1, 1), (1, 1), (0, 0)))
            c_low, c_high = value_range(coarse, 4)
            lowest, highest = np.concatenate([lowest, c_low]), np.concatenate([highest, c_high])
        self.input_range = lowest, highest
        self.kept: dict[tuple[str, int, int], np.ndarray] = {}
        self._first: dict[tuple[str, bool, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def prepare(self, nets: list[str], parities: list[tuple[int, int]]) -> None:
        """Keep the shared first-layer products of `nets` (those that take no anchor mask
        and those that do alike) at `parities`, if the level is small enough."""
        h, w = self.size
        scales = [_per_layer(self.model.layers[f"{net}.a"])[0] for net in nets]
        known = [m for m in scales if m is not None]
        if h * w * HIDDEN * len(nets) > 2 * KEEP_VALUES or len(known) < len(nets):
            return  # a large level, or one requantised in int64: each pass makes its own
        scale = np.concatenate(known)
        for py, px in parities:
            ni, nj = (h - py + 1) // 2, (w - px + 1) // 2
            if not (ni and nj):
                continue
            blocks = [self.first_layer(net, net in MASKED, py, px)[0] for net in nets]
            product = ExactProduct(np.concatenate(blocks, axis=1), self.input_range, scale)
            products = product(self.columns(py, px, 0, ni, nj))
            for k, net in enumerate(nets):
                self.kept[net, py, px] = products[:, k * HIDDEN : (k + 1) * HIDDEN]

    def columns(self, py: int, px: int, i0: int, i1: int, nj: int) -> np.ndarray:
        return _columns(self.planes, self.coarse, py, px, i0, i1, nj)

    def first_layer(self, net: str, mask: bool, py: int, px: int) -> tuple[np.ndarray, np.ndarray]:
        """The first layer's weights as the columns meet them at parity (py, px): on
        these shared channels (the 3 x 3 taps of low and ones, then the parent's 2 x 2),
        and on the pass's extra channels (their 3 x 3 taps). Made once a level."""
        key = (net, mask, py, px)
        if key not in self._first:
            self._first[key] = self._first_layer(net, mask, py, px)
        return self._first[key]

    def _first_layer(self, net: str, mask: bool, py: int, px: int) -> tuple[np.ndarray, np.ndarray]:
        layer = self.model.layers[f"{net}.a"]
        weights = layer.matrix.reshape(3, 3, -1, layer.matrix.shape[1])
        c_coarse, c_const = 3, 12 + CARRY
        c_extra = c_const + len(self.constants)
        n_extra = weights.shape[2] - c_extra - int(mask)
        ones = np.einsum("yxco,c->yxo", weights[:, :, c_const:c_extra], self.constants)
        if mask:
            anchor_tap = (np.add.outer(np.arange(3) + py, np.arange(3) + px) % 2) == 0
            ones += ONE * anchor_tap[..., None] * weights[:, :, c_extra + n_extra]
        own = np.concatenate([weights[:, :, :3], ones[:, :, None]], axis=2)
        own = own.reshape(-1, weights.shape[3])
        if self.coarse is not None:
            merged = np.einsum(
                "ay,bx,yxco->abco",
                PARENT_ROWS[py],
                PARENT_ROWS[px],
                weights[:, :, c_coarse:c_const],
            )
            own = np.concatenate([own, merged.reshape(-1, weights.shape[3])])
        on_extras = weights[:, :, c_extra : c_extra + n_extra].reshape(-1, weights.shape[3])
        return own, on_extras


def _padded_planes(x: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """`x` ([h, w, c]) zero-padded by one (and to even sizes), as the four parity planes
    of the padded array."""
    h, w, c = x.shape
    padded = np.zeros((h + 2 + h % 2, w + 2 + w % 2, c), dtype=np.float32)
    padded[1 : h + 1, 1 : w + 1] = x
    return {(a, b): padded[a::2, b::2] for a in (0, 1) for b in (0, 1)}


def _columns(
    fine: dict[tuple[int, int], np.ndarray],
    coarse: np.ndarray | None,
    py: int,
    px: int,
    i0: int,
    i1: int,
    nj: int,
) -> np.ndarray:
    """Rows i0..i1 of parity (py, px)'s im2col matrix, `[(i1 - i0) * nj, columns]`: the
    3 x 3 taps of the padded level-resolution planes, then the 2 x 2 parent taps (the
    parent zero-padded by one: output row 2i + py reads parent rows i - 1 + py, i + py)."""
    cf = fine[0, 0].shape[2]
    cc = 0 if coarse is None else coarse.shape[2]
    cols = np.empty((i1 - i0, nj, 9 * cf + 4 * cc), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            a, b = (py + dy) % 2, (px + dx) % 2
            oi, oj = (py + dy) // 2, (px + dx) // 2
            t = (3 * dy + dx) * cf
            cols[:, :, t : t + cf] = fine[a, b][i0 + oi : i1 + oi, oj : oj + nj]
    if coarse is not None:
        for a in range(2):
            for b in range(2):
                t = 9 * cf + (2 * a + b) * cc
                cols[:, :, t : t + cc] = coarse[i0 + py + a : i1 + py + a, px + b : px + b + nj]
    return cols.reshape(-1, cols.shape[2])


class ExactProduct:
    """`x @ w` for integer `x` and integer `w`, exact, as float64 (times `scale` where
    given). `x_range` bounds the inputs: each row's magnitude (one number or one a row),
    or each row's least and greatest value (two arrays), taken from the data themselves
    where the caller knows them.

    float32 runs at about 2.7 times float64's rate on these CPUs and its columns are half
    the bytes, and it is exact when every partial sum of the product stays below 2**24,
    in whatever order the BLAS sums (`sum_bound`). A wide product runs as one float32
    product where the bounds allow it (real images: about 2**23.5 for the shipped
    models), else as two, `w = 64 * hi + lo` (|lo| <= 32), `64 * (x @ hi) + x @ lo`,
    where they allow that; a narrow one (under SPLIT_ROWS rows) is cheaper in float64,
    where `scale` (`_scale`: exact there) rides in the weights. Otherwise float64, exact
    below 2**53 (spec v2 section 9). Every way gives the same integers."""

    def __init__(
        self,
        w: np.ndarray,
        x_range: np.ndarray | float | tuple[np.ndarray, np.ndarray],
        scale: np.ndarray | None = None,
    ) -> None:
        self.n, self.scale = w.shape[1], scale
        self.single: np.ndarray | None = None
        self.split: np.ndarray | None = None
        self.w = w if scale is None else w * scale
        if w.shape[0] < SPLIT_ROWS:
            return
        if isinstance(x_range, tuple):
            lowest, highest = x_range
        else:
            highest = np.broadcast_to(np.abs(np.asarray(x_range, dtype=np.float64)), w.shape[:1])
            lowest = -highest
        if sum_bound(w, lowest, highest) < FLOAT32_EXACT:
            self.single = w.astype(np.float32)
            return
        hi = np.round(w / 64)
        lo = w - 64 * hi
        if max(sum_bound(part, lowest, highest) for part in (hi, lo)) < FLOAT32_EXACT:
            self.split = np.concatenate([hi, lo], axis=1).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        scale = 1.0 if self.scale is None else self.scale
        if self.single is not None:
            # each sum below 2**24 and the scale's multiplier below 2**16: exact (`_scale`)
            sums = x.astype(np.float32, copy=False) @ self.single
            return np.multiply(sums, scale, dtype=np.float64)
        if self.split is None:
            return x.astype(np.float64, copy=False) @ self.w
        both = x.astype(np.float32, copy=False) @ self.split
        # in float64 before the sum (up to 2**30), scaled term by term: each term and the
        # sum are multiples of 2**-S and below 2**(53 - S), so exact (`_scale`)
        out = np.multiply(both[:, : self.n], 64.0 * scale, dtype=np.float64)
        out += np.multiply(both[:, self.n :], scale, dtype=np.float64)
        return out


def sum_bound(w: np.ndarray, lowest: np.ndarray, highest: np.ndarray) -> float:
    """The largest magnitude any partial sum of `x @ w` can reach, in any order, for
    `lowest <= x <= highest` row by row: the sum of the positive terms or that of the
    negative ones, each at its largest."""
    up, down = np.maximum(highest, 0.0), np.maximum(-np.asarray(lowest, dtype=np.float64), 0.0)
    plus, minus = np.maximum(w, 0.0), np.maximum(-w, 0.0)
    positive = up @ plus + down @ minus
    negative = up @ minus + down @ plus
    return float(np.maximum(positive, negative).max(initial=0.0))


def value_range(x: np.ndarray, taps: int) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's least and greatest value in `x` (`[..., c]`), repeated for `taps`
    im2col taps (columns ordered tap by tap, channels within a tap)."""
    flat = x.reshape(-1, x.shape[-1])
    if not flat.shape[0]:
        zero = np.zeros(taps * x.shape[-1])
        return zero, zero
    return np.tile(flat.min(axis=0), taps).astype(np.float64), np.tile(
        flat.max(axis=0), taps
    ).astype(np.float64)


_PER_LAYER: dict[int, tuple[IntLayer, np.ndarray | None, ExactProduct]] = {}


def _per_layer(layer: IntLayer) -> tuple[np.ndarray | None, ExactProduct]:
    """The layer's `_scale` and its product on hidden inputs, made once a layer."""
    key = id(layer)
    if key not in _PER_LAYER or _PER_LAYER[key][0] is not layer:
        if len(_PER_LAYER) > 256:  # models come and go (training exports): keep it small
            _PER_LAYER.clear()
        scale = _scale(layer)
        _PER_LAYER[key] = (layer, scale, ExactProduct(layer.matrix, HIDDEN_MAX, scale))
    return _PER_LAYER[key][1:]


def _scale(layer: IntLayer) -> np.ndarray | None:
    """The layer's M / 2**S, where its requantisation is exact in float64: true when
    `(sum |w x| + |b|) * M` stays below 2**52 for inputs of magnitude at most 2**10 (spec
    v2 section 9), as it does for the shipped models (about 2**43). Every partial sum
    of the scaled product is then a multiple of 2**-S below 2**(52 - S), and so are the
    bias and the rounding half added to it: all exact. None: requantise in int64."""
    acc = float(np.abs(layer.matrix).sum(axis=0).max()) * HIDDEN_MAX
    top = (acc + float(np.abs(layer.bias).max())) * float(layer.multiplier.max())
    return layer.multiplier * np.ldexp(1.0, -layer.shift) if top < FLOAT_EXACT else None


def _requantise(
    acc: np.ndarray, layer: IntLayer, scale: np.ndarray | None, in_place: bool = False
) -> np.ndarray:
    """Spec 6.1's requantisation, `floor((acc + b) * M / 2**S + 1/2)` clamped, of exact
    sums that are already scaled by `_scale(layer)` (None: unscaled integers, done in
    int64). Returns float64, the next product's input; `acc` is overwritten only when
    `in_place`."""
    if scale is not None:
        shift = layer.bias * scale + 0.5
        v = np.add(acc, shift, out=acc) if in_place else acc + shift
        np.floor(v, out=v)
        return np.clip(v, layer.out_min, layer.out_max, out=v)
    a = acc.astype(np.int64)
    a += layer.bias
    a *= layer.multiplier
    a += layer.rounding
    a >>= layer.shift
    return np.clip(a, layer.out_min, layer.out_max, out=a).astype(np.float64)


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
