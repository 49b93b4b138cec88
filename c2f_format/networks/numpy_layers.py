"""The decoder's arithmetic in NumPy: exact integer convolutions and the float layers.

Everything runs channels-last (`[H, W, C]`, batch 1), so a convolution is one matrix
product of an im2col matrix (rows: positions, columns: (dy, dx, cin)) with the weights,
which NumPy hands to its BLAS. Rows are processed in bands so the im2col matrix stays
near `BAND_ELEMENTS` values whatever the image size.

The integer layers (spec 6.1) multiply in float64: every product and partial sum is an
integer below 2**53 (spec 6.3), so any summation order the BLAS picks gives the exact
result, which then requantises in int64. The float layers (spec 8, 9) run in float32,
as the torch decoder does; they only shape pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BAND_ELEMENTS = 1 << 22  # values per im2col band (32 MiB of float64, 16 MiB of float32)


@dataclass(frozen=True)
class IntLayer:
    """One integer layer (spec 6.1) prepared for `int_conv`."""

    kernel: int
    matrix: np.ndarray  # float64 [k*k*cin, cout], rows in (dy, dx, cin) order
    bias: np.ndarray  # int64 [cout]
    multiplier: np.ndarray  # int64 [cout]
    rounding: np.ndarray  # int64 [cout], 2**(shift-1)
    shift: np.ndarray  # int64 [cout]
    out_min: int
    out_max: int

    @classmethod
    def from_arrays(
        cls,
        weight: np.ndarray,
        bias: np.ndarray,
        multiplier: np.ndarray,
        shift: np.ndarray,
        out_min: int,
        out_max: int,
        channel_order: np.ndarray | None = None,
    ) -> IntLayer:
        """`weight` as stored (`[cout, cin, k, k]`); `channel_order` permutes the output
        channels (so a depth-to-space after it can run channels-last)."""
        order = np.arange(weight.shape[0]) if channel_order is None else channel_order
        shift64 = shift.astype(np.int64)[order]
        return cls(
            kernel=int(weight.shape[2]),
            matrix=conv_matrix(weight[order], np.float64),
            bias=bias.astype(np.int64)[order],
            multiplier=multiplier.astype(np.int64)[order],
            rounding=np.left_shift(np.int64(1), shift64 - 1),
            shift=shift64,
            out_min=int(out_min),
            out_max=int(out_max),
        )


def conv_matrix(weight: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
    """`[cout, cin, k, k]` weights as the `[k*k*cin, cout]` matrix `im2col` rows meet."""
    cout = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, cout), dtype=dtype)


def _band_rows(width: int, columns: int) -> int:
    """Rows per band for an im2col matrix of about BAND_ELEMENTS values."""
    return max(1, BAND_ELEMENTS // max(1, columns * width))


def _im2col(padded: np.ndarray, r0: int, r1: int, width: int, k: int) -> np.ndarray:
    """Rows r0..r1 of a `k x k` im2col matrix from an input padded by k // 2."""
    if k == 1:
        return padded[r0:r1].reshape((r1 - r0) * width, -1)
    cin = padded.shape[2]
    cols = np.empty((r1 - r0, width, k, k, cin), dtype=padded.dtype)
    for dy in range(k):
        for dx in range(k):
            cols[:, :, dy, dx] = padded[r0 + dy : r1 + dy, dx : dx + width]
    return cols.reshape((r1 - r0) * width, k * k * cin)


def _padded(x: np.ndarray, k: int, dtype: type[np.floating]) -> np.ndarray:
    p = k // 2
    if not p:
        return np.ascontiguousarray(x, dtype=dtype)
    out = np.zeros((x.shape[0] + 2 * p, x.shape[1] + 2 * p, x.shape[2]), dtype=dtype)
    out[p:-p, p:-p] = x
    return out


def narrowest_int(lo: int, hi: int) -> np.dtype:
    """The smallest of uint8, int16, int32, int64 that holds every integer in [lo, hi]:
    what an integer layer's output is stored in (hidden values 0..1024 in int16, scale
    indices in uint8), so a large image's latents take a quarter of int64's memory."""
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def int_conv(x: np.ndarray, layer: IntLayer) -> np.ndarray:
    """Spec 6.1 on an integer `[H, W, cin]` array: zero padding, exact sums, requantisation
    `floor((acc * M + 2**(S-1)) / 2**S)` (an arithmetic right shift), clamp. The output
    is of the narrowest type that holds the layer's clamp range (`narrowest_int`)."""
    height, width, _ = x.shape
    k = layer.kernel
    padded = _padded(x, k, np.float64)
    dtype = narrowest_int(int(layer.out_min), int(layer.out_max))
    out = np.empty((height, width, layer.matrix.shape[1]), dtype=dtype)
    flat = out.reshape(height * width, -1)
    step = _band_rows(width, layer.matrix.shape[0])
    for r0 in range(0, height, step):
        r1 = min(height, r0 + step)
        acc = (_im2col(padded, r0, r1, width, k) @ layer.matrix).astype(np.int64)
        acc += layer.bias
        acc *= layer.multiplier
        acc += layer.rounding
        acc >>= layer.shift
        flat[r0 * width : r1 * width] = np.clip(acc, layer.out_min, layer.out_max)
    return out


@dataclass(frozen=True)
class FloatConv:
    """A float32 convolution (stride 1, zero padding k // 2) as matrix products.

    Wide outputs use im2col: one product of `[positions, k*k*cin]` with the weights.
    Narrow ones (cout < cin, such as the last layer's 3 colours in 4 phases) multiply the
    input itself by every tap's weights at once (`[positions, cin]` by `[cin, k*k*cout]`,
    no im2col copy) and add the k*k shifted results, which moves less memory.
    """

    kernel: int
    matrix: np.ndarray  # float32 [k*k*cin, cout]
    bias: np.ndarray  # float32 [cout]
    taps: np.ndarray  # float32 [cin, k*k*cout], columns in (dy, dx, cout) order

    @classmethod
    def from_arrays(
        cls, weight: np.ndarray, bias: np.ndarray, channel_order: np.ndarray | None = None
    ) -> FloatConv:
        order = np.arange(weight.shape[0]) if channel_order is None else channel_order
        matrix = conv_matrix(weight[order], np.float32)
        k, cout = int(weight.shape[2]), matrix.shape[1]
        taps = matrix.reshape(k * k, -1, cout).transpose(1, 0, 2).reshape(-1, k * k * cout)
        return cls(
            k,
            matrix,
            np.ascontiguousarray(bias[order], dtype=np.float32),
            np.ascontiguousarray(taps),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        height, width, cin = x.shape
        k = self.kernel
        cout = self.matrix.shape[1]
        if k == 1:
            flat = x.reshape(height * width, -1) @ self.matrix
            flat += self.bias
            return flat.reshape(height, width, cout)
        if cout < cin:
            return self._tap_sum(x)
        padded = _padded(x, k, np.float32)
        out = np.empty((height, width, cout), dtype=np.float32)
        flat = out.reshape(height * width, -1)
        step = _band_rows(width, self.matrix.shape[0])
        for r0 in range(0, height, step):
            r1 = min(height, r0 + step)
            part = flat[r0 * width : r1 * width]
            np.matmul(_im2col(padded, r0, r1, width, k), self.matrix, out=part)
            part += self.bias
        return out

    def _tap_sum(self, x: np.ndarray) -> np.ndarray:
        height, width, cin = x.shape
        k, p, cout = self.kernel, self.kernel // 2, self.matrix.shape[1]
        per_tap = (x.reshape(height * width, cin) @ self.taps).reshape(height, width, k, k, cout)
        out = np.empty((height, width, cout), dtype=np.float32)
        out[:] = self.bias
        for dy in range(k):  # out[r, c] += per_tap[r + dy - p, c + dx - p, dy, dx]
            r0, r1 = max(0, p - dy), min(height, height + p - dy)
            for dx in range(k):
                c0, c1 = max(0, p - dx), min(width, width + p - dx)
                out[r0:r1, c0:c1] += per_tap[
                    r0 + dy - p : r1 + dy - p, c0 + dx - p : c1 + dx - p, dy, dx
                ]
        return out


def subpixel_weights(weight: np.ndarray) -> np.ndarray:
    """The 3x3 kernels of `ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1)`
    rewritten as a convolution then `depth_to_space`, as [a, b, cout, cin, 3, 3]: output
    row 2i + a takes input row i + t - 1 through tap 4 + a - 2t (when that lies in
    0..4), and likewise column 2j + b. `weight` is the transposed convolution's
    [cin, cout, 5, 5]. Shared by the torch inference form (inference.py) and NumPy."""
    cin, cout, k, _ = weight.shape
    if k != 5:
        raise ValueError("only 5x5 transposed convolutions are supported")
    w = np.zeros((2, 2, cout, cin, 3, 3), dtype=weight.dtype)
    for a in range(2):
        for t in range(3):
            ky = 4 + a - 2 * t
            if not 0 <= ky < k:
                continue
            for b in range(2):
                for u in range(3):
                    kx = 4 + b - 2 * u
                    if 0 <= kx < k:
                        w[a, b, :, :, t, u] = weight[:, :, ky, kx].T
    return w


def subpixel_deconv(weight: np.ndarray, bias: np.ndarray) -> FloatConv:
    """`ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1)` as a 3x3 convolution
    with four times the output channels, ordered (row parity a, column parity b, cout)
    for `depth_to_space` (`subpixel_weights`)."""
    cin, cout = weight.shape[:2]
    w = subpixel_weights(weight.astype(np.float32))
    return FloatConv.from_arrays(w.reshape(4 * cout, cin, 3, 3), np.tile(bias, 4))


def depth_to_space(x: np.ndarray, factor: int) -> np.ndarray:
    """`[H, W, f*f*C]` with channels ordered (a, b, c) -> `[f*H, f*W, C]`, position
    (f*r + a, f*s + b) taking channel (a, b, c) at (r, s)."""
    height, width, channels = x.shape
    c = channels // (factor * factor)
    out = x.reshape(height, width, factor, factor, c).transpose(0, 2, 1, 3, 4)
    return out.reshape(height * factor, width * factor, c)


def phase_order(channels: int, factor: int) -> np.ndarray:
    """Output channel permutation from PyTorch's pixel-shuffle order (c, a, b) to the
    (a, b, c) order `depth_to_space` reads."""
    return (
        np.arange(channels * factor * factor)
        .reshape(channels, factor, factor)
        .transpose(1, 2, 0)
        .reshape(-1)
    )


@dataclass(frozen=True)
class InverseGDN:
    """IGDN (spec 8): x * (|beta| + 1e-6 + |gamma| applied to |x|), a 1x1 matmul."""

    beta: np.ndarray  # float32 [C]
    gamma_t: np.ndarray  # float32 [C, C], transposed for rows of positions

    @classmethod
    def from_arrays(cls, beta: np.ndarray, gamma: np.ndarray) -> InverseGDN:
        c = beta.shape[0]
        return cls(
            (np.abs(beta) + np.float32(1e-6)).astype(np.float32),
            np.ascontiguousarray(np.abs(gamma).reshape(c, c).T, dtype=np.float32),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(-1, x.shape[2])
        norm = np.abs(flat) @ self.gamma_t
        norm += self.beta
        norm *= flat
        return norm.reshape(x.shape)


def to_uint8(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """`[H', W', 3]` float in [0, 1] -> uint8 [height, width, 3], spec 8's rounding (half
    to even, as torch.round)."""
    img = np.clip(x[:height, :width], 0.0, 1.0) * np.float32(255.0)
    return np.round(img).astype(np.uint8)


__all__ = [
    "FloatConv",
    "IntLayer",
    "InverseGDN",
    "depth_to_space",
    "int_conv",
    "phase_order",
    "subpixel_deconv",
    "to_uint8",
]


def _transposed_conv5(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1)` without bias on
    `[B, cin, H, W]` float64, written out directly: for the small maps of
    `reduced_tail_weights` only."""
    batch, _, height, width = x.shape
    out = np.zeros((batch, weight.shape[1], 2 * height + 4, 2 * width + 4))
    for ky in range(5):  # input row i reaches output row 2i - 2 + ky
        for kx in range(5):
            tap = np.einsum("bchw,co->bohw", x, weight[:, :, ky, kx].astype(np.float64))
            out[:, :, ky : ky + 2 * height : 2, kx : kx + 2 * width : 2] += tap
    return out[:, :, 2 : 2 + 2 * height, 2 : 2 + 2 * width]


def _box(x: np.ndarray, factor: int) -> np.ndarray:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def _path_up(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A linear path of the synthesis (1x1 convolution to 4 cout, then depth-to-space)
    on `[B, cin, H, W]` float64; `weight` [4 cout, cin], channel 4c + 2a + b going to
    output channel c at (2i + a, 2j + b), as torch's pixel_shuffle reads it."""
    batch, _, height, width = x.shape
    cout = weight.shape[0] // 4
    w = weight.astype(np.float64).reshape(cout, 2, 2, -1)
    out = np.einsum("nchw,opqc->nohpwq", x, w)
    return out.reshape(batch, cout, 2 * height, 2 * width)


def reduced_tail_weights(
    weight2: np.ndarray,
    bias2: np.ndarray,
    beta: np.ndarray,
    weight3: np.ndarray,
    bias3: np.ndarray,
    reduce: int,
    paths: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The synthesis's last two stages (transposed convolution, IGDN, transposed
    convolution to colours) followed by a `reduce` x `reduce` box filter (2 or 4), as
    one 5x5 convolution on the 1/4-scale features, with the IGDN taken as the linear
    x * beta that it is for small activations (its gamma term was 0.2-7 % of beta on
    real ones: lab/training.md, round 2). Reduced decoding runs the synthesis only to
    1/4 scale, about 30 % of the work, then this (docs/speed/reduced.md).

    `weight2`, `weight3`: the transposed convolutions' [cin, cout, 5, 5]; `beta`: the
    IGDN's |beta| + 1e-6; `paths`, for a model with linear paths, the two stages' path
    weights [4 cout, cin] (spec 8), linear and so folded in too. Returns weights
    [u, u, 3, cin, 5, 5] and bias [3], u = 4 / reduce: output pixel (u*i + a, u*j + b)
    of the reduced image is output channel (a, b, colour) at (i, j), as
    `depth_to_space` reads them."""
    if reduce not in (2, 4):
        raise ValueError(f"reduce must be 2 or 4, not {reduce}")
    cin = weight2.shape[0]
    u = 4 // reduce
    impulses = np.zeros((cin, cin, 5, 5))
    impulses[np.arange(cin), np.arange(cin), 2, 2] = 1.0
    mid = _transposed_conv5(impulses, weight2) * beta.astype(np.float64).reshape(1, -1, 1, 1)
    if paths is not None:
        mid = mid + _path_up(impulses, paths[0])
    out = _transposed_conv5(mid, weight3)
    if paths is not None:
        out = out + _path_up(mid, paths[1])
    response = _box(out, reduce)  # [cin, 3, 5u, 5u]
    weights = np.empty((u, u, 3, cin, 5, 5))
    for dy in range(5):  # the input at i + dy - 2 reaches output u*i + a
        for dx in range(5):
            block = response[:, :, u * (4 - dy) : u * (5 - dy), u * (4 - dx) : u * (5 - dx)]
            weights[:, :, :, :, dy, dx] = block.transpose(2, 3, 1, 0)
    flat = np.broadcast_to((bias2 * beta).astype(np.float64).reshape(1, -1, 1, 1), (1, cin, 6, 6))
    flat = np.ascontiguousarray(flat)
    through_full = _transposed_conv5(flat, weight3)
    if paths is not None:
        through_full = through_full + _path_up(flat, paths[1])
    through = _box(through_full, reduce)
    bias = through[0, :, through.shape[2] // 2, through.shape[3] // 2] + bias3
    return weights.astype(np.float32), bias.astype(np.float32)
