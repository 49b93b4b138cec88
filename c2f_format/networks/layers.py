"""Network building blocks: GDN, lossless resampling, and integer convolutions.

`IntConv` is the piece that makes streams portable. It trains as an ordinary float
convolution (optionally fake-quantised, straight-through) and deploys as integer
arithmetic: integer weights and activations, an integer bias, and requantisation by an
integer multiplier and a right shift. The deployed form is evaluated with float64
products and sums of integers whose magnitudes are bounded well below 2**53 (see
spec/bitstream-v1.md, "Integer networks"), so every CPU and GPU gets the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..format.constants import HIDDEN_MAX, MAX_SHIFT, MULT_BITS, TRANSFORM_KERNEL, WEIGHT_MAX
from ..format.constants import HIDDEN_STEP as HIDDEN_STEP  # re-exported: spec 6's grids
from ..format.constants import MEAN_MAX as MEAN_MAX
from ..format.constants import MEAN_STEP as MEAN_STEP
from .numpy_layers import narrowest_int

BAND_ELEMENTS = 1 << 22  # values per unfolded band in `exact_conv` (32 MiB of float64)


def ste_round(x: Tensor) -> Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


def space_to_depth(x: Tensor, factor: int = 2) -> Tensor:
    """Lossless downsampling: each factor x factor block becomes channels."""
    return F.pixel_unshuffle(x, factor)


def depth_to_space(x: Tensor, factor: int = 2) -> Tensor:
    """Inverse of `space_to_depth`."""
    return F.pixel_shuffle(x, factor)


class GDN(nn.Module):
    """Simplified generalized divisive normalisation (L1 form, Johnston et al. 2019).

    `inverse=True` gives IGDN for the synthesis transform.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels).view(channels, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        beta = self.beta.abs() + 1e-6
        gamma = self.gamma.abs()
        norm = F.conv2d(x.abs(), gamma, beta)
        return x * norm if self.inverse else x / norm


class LinearDown(nn.Module):
    """A linear path beside a stride-2 analysis stage (after AuxT, Li et al. ICLR 2025):
    space-to-depth, then a 1x1 convolution, initially orthogonal (every 2x2 block's
    energy kept) or zero (a network that already works is left unchanged)."""

    def __init__(self, cin: int, cout: int, zero: bool = False) -> None:
        super().__init__()
        self.mix = nn.Conv2d(4 * cin, cout, 1, bias=False)
        _init_path(self.mix.weight, zero)

    def forward(self, x: Tensor) -> Tensor:
        return self.mix(space_to_depth(x))


class LinearUp(nn.Module):
    """The synthesis side of `LinearDown`: a 1x1 convolution, then depth-to-space."""

    def __init__(self, cin: int, cout: int, zero: bool = False) -> None:
        super().__init__()
        self.mix = nn.Conv2d(cin, 4 * cout, 1, bias=False)
        _init_path(self.mix.weight, zero)

    def forward(self, x: Tensor) -> Tensor:
        return depth_to_space(self.mix(x))


def _init_path(weight: Tensor, zero: bool) -> None:
    with torch.no_grad():
        if zero:
            weight.zero_()
        else:
            nn.init.orthogonal_(weight)


def conv(cin: int, cout: int, kernel: int = TRANSFORM_KERNEL, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(
    cin: int, cout: int, kernel: int = TRANSFORM_KERNEL, stride: int = 2
) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


@dataclass(frozen=True)
class IntegerConvParams:
    """Deployed form of one `IntConv`: everything an exact decoder needs."""

    weight: Tensor  # int64 [cout, cin, k, k], |w| <= WEIGHT_MAX
    bias: Tensor  # int64 [cout], in accumulator units
    multiplier: Tensor  # int64 [cout], in [2**14, 2**16)
    shift: Tensor  # int64 [cout], >= 1
    out_min: int
    out_max: int
    # derived once, on the parameters' device, for `exact_conv`
    matrix: Tensor = field(init=False, repr=False)  # float64 [cout, cin*k*k]
    requant: tuple[Tensor, Tensor, Tensor, Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cout = self.weight.shape[0]
        object.__setattr__(self, "matrix", self.weight.to(torch.float64).reshape(cout, -1))
        shape = (1, cout, 1, 1)
        shift = self.shift.view(shape)
        rounding = torch.bitwise_left_shift(torch.ones_like(shift), shift - 1)
        object.__setattr__(
            self, "requant", (self.bias.view(shape), self.multiplier.view(shape), rounding, shift)
        )

    def to(self, device: torch.device) -> IntegerConvParams:
        return IntegerConvParams(
            self.weight.to(device),
            self.bias.to(device),
            self.multiplier.to(device),
            self.shift.to(device),
            self.out_min,
            self.out_max,
        )


class IntConv(nn.Module):
    """A convolution that deploys as an integer network layer.

    The layer maps inputs on the grid `in_step` to outputs on the grid `out_step`,
    clamped to [out_min, out_max] integer steps. In float training the clamp is the only
    non-linearity (a bounded ReLU for hidden layers); `fake_quant=True` additionally
    rounds weights, bias and outputs to what the integer form will compute.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        in_step: float,
        out_step: float,
        out_min: int,
        out_max: int,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.in_step = in_step
        self.out_step = out_step
        self.out_min = out_min
        self.out_max = out_max
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.fake_quant = False

    def _weight_scale(self) -> Tensor:
        """Each output's weight step: its largest weight maps to WEIGHT_MAX. A row of zero
        or near-zero weights (a channel not in use yet) gets the smallest step whose
        requantisation shift stays within MAX_SHIFT: its weights round to zero anyway."""
        # shift = floor(log2(2**(MULT_BITS-1) / ratio)) <= MAX_SHIFT - 1 where
        # ratio = step * in_step / out_step >= 2**(MULT_BITS - MAX_SHIFT)
        floor = 2.0 ** (MULT_BITS - MAX_SHIFT) * self.out_step / self.in_step
        step = self.weight.detach().abs().amax(dim=(1, 2, 3)) / WEIGHT_MAX
        return step.clamp_min(floor)

    def forward(self, x: Tensor) -> Tensor:
        weight: Tensor = self.weight
        bias: Tensor = self.bias
        if self.fake_quant:
            sw = self._weight_scale()
            weight = ste_round(weight / sw.view(-1, 1, 1, 1)) * sw.view(-1, 1, 1, 1)
            acc_step = sw * self.in_step
            bias = ste_round(bias / acc_step) * acc_step
        out = F.conv2d(x, weight, bias, padding=self.kernel // 2) / self.out_step
        if self.fake_quant:
            out = ste_round(out)
        lo, hi = float(self.out_min), float(self.out_max)
        # Clamp with a straight-through gradient at the ends for the head layers
        # (so means and scale indices can come back into range); hidden layers
        # (out_min == 0) keep the true gradient of a bounded ReLU.
        if self.out_min == 0 and self.out_max == HIDDEN_MAX:
            out = out.clamp(lo, hi)
        else:
            out = out + (out.clamp(lo, hi) - out).detach()
        return out * self.out_step

    @torch.no_grad()
    def export(self) -> IntegerConvParams:
        """The integer form of this layer (see spec, "Integer networks")."""
        sw = self._weight_scale().double()
        w = self.weight.double()
        w_int = torch.round(w / sw.view(-1, 1, 1, 1)).clamp(-WEIGHT_MAX, WEIGHT_MAX)
        b_int = torch.round(self.bias.double() / (sw * self.in_step))
        ratio = sw * self.in_step / self.out_step
        shift = torch.floor(torch.log2(float(2 ** (MULT_BITS - 1)) / ratio)).clamp_min(1)
        mult = torch.round(ratio * torch.pow(2.0, shift))
        # Guard against log2 rounding at the edges of the interval.
        too_big = mult >= 2**MULT_BITS
        mult = torch.where(too_big, torch.round(mult / 2), mult)
        shift = torch.where(too_big, shift - 1, shift)
        return IntegerConvParams(
            weight=w_int.long(),
            bias=b_int.long(),
            multiplier=mult.long(),
            shift=shift.long(),
            out_min=self.out_min,
            out_max=self.out_max,
        )


def exact_conv(x: Tensor, p: IntegerConvParams) -> Tensor:
    """Integer convolution with requantisation, bit-exact on every device.

    `x` holds integers. The products and sums run in float64 through a plain matrix
    product (never a Winograd or FFT algorithm), which is exact because every partial
    sum is an integer below 2**53; requantisation then runs in int64, and the output is
    stored in the narrowest type that holds the clamp range (`narrowest_int`).
    """
    cout, cin, k, _ = p.weight.shape
    n, _, h, w = x.shape
    pad = k // 2
    wf = p.matrix
    bias, mult, rounding, shift = p.requant
    dtype = getattr(torch, narrowest_int(int(p.out_min), int(p.out_max)).name)
    out = torch.empty((n, cout, h, w), dtype=dtype, device=x.device)
    # Row bands keep the unfolded matrix near BAND_ELEMENTS values whatever the image
    # size, and requantising band by band keeps every temporary band-sized too.
    band = max(1, BAND_ELEMENTS // max(1, n * max(cin * k * k, cout) * w))
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        lo, hi = max(0, r0 - pad), min(h, r1 + pad)
        rows = x[:, :, lo:hi].to(torch.float64)  # converted a band at a time, too
        if pad:
            rows = F.pad(rows, (pad, pad, pad - (r0 - lo), pad - (hi - r1)))
        cols = F.unfold(rows, k) if k > 1 else rows.reshape(n, cin, (r1 - r0) * w)
        # the sums are exact integers, so the conversion is exact too
        acc = torch.matmul(wf, cols).view(n, cout, r1 - r0, w).to(torch.int64)
        acc.add_(bias).mul_(mult).add_(rounding).bitwise_right_shift_(shift)
        out[:, :, r0:r1] = acc.clamp_(p.out_min, p.out_max)
    return out
