"""The wavelet model's context model in its training form (torch).

The same networks as `numpy_context_model`, as `IntConv` layers that train in float
(optionally fake-quantised) and export to the exact integer form. The features they read
are computed exactly as the decoder computes them (the transform, the quantiser and the
reconstruction of the coarser levels are fixed integer arithmetic, in NumPy); only the
networks' outputs, and the carried features, are float here. Training is maximum
likelihood: the loss is the code length of the quantised coefficients under a
zero-mean discretised Laplacian whose spread the networks predict.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..format.constants import HIDDEN_MAX, HIDDEN_STEP
from ..format.quantiser import (
    AMPLITUDE_MAX,
    LOG_AMPLITUDE,
    LOG_UNIT,
    RECON_BITS,
    STEP_CODE_REF,
    TABLE_FLOOR,
    TABLE_SPACING,
    TABLES,
    dequantise,
    quantise,
    step_size,
    table_index,
    table_spreads,
)
from ..format.wavelet import LEVELS, pyramid, synthesis
from .layers import IntConv, ste_round
from .numpy_context_model import (
    CARRY,
    CHROMA,
    HIDDEN,
    LAYERS,
    LOG_SPREAD_MAX,
    LUMA,
    NETWORKS,
    ContextModel,
    IntegerLayerArrays,
    low_feature,
)
from .numpy_layers import IntLayer

SPREAD_MIN = 2.0 ** (TABLE_FLOOR / LOG_UNIT)  # the narrowest table's spread, in steps
SPREAD_MAX = 2.0 ** ((TABLE_FLOOR + TABLE_SPACING * (TABLES - 1)) / LOG_UNIT)
DEADZONE = 38  # the reference encoder's dead zone, 1/256 step (about 0.15)


def laplace_bits(q: Tensor, spread: Tensor) -> Tensor:
    """-log2 P(q) for integers q under a zero-mean Laplacian of `spread` (steps),
    discretised to unit bins; stable for tiny and huge spreads."""
    b = spread.clamp(SPREAD_MIN, SPREAD_MAX)
    a = q.abs()
    zero = -torch.log(-torch.expm1(-0.5 / b))
    other = (a - 0.5) / b - torch.log(-torch.expm1(-1.0 / b)) + math.log(2.0)
    return torch.where(a < 0.5, zero, other) / math.log(2.0)


def reconstruction_offsets(deadzone: int = DEADZONE) -> np.ndarray:
    """Each table's bin-mean offset, 1/256 step: how far toward zero the mean of a
    Laplacian of that spread lies within the bin [n - 1/2 + dz, n + 1/2 + dz) of a
    non-zero integer n, for the encoder's dead zone dz."""
    b = table_spreads()
    inside = b - 1.0 / np.expm1(1.0 / b)  # mean of an exponential truncated to [0, 1)
    shrink = 0.5 - deadzone / (1 << RECON_BITS) - inside
    return np.round(shrink * (1 << RECON_BITS)).astype(np.int64)


class ContextNet(nn.Module):
    """3x3 -> 1x1 -> 1x1 integer layers; hidden activations a bounded ReLU on 1/32."""

    def __init__(self, cin: int, cout: int, head: bool) -> None:
        super().__init__()
        out_min, out_max = (-LOG_SPREAD_MAX, LOG_SPREAD_MAX) if head else (0, HIDDEN_MAX)
        s = HIDDEN_STEP
        self.a = IntConv(cin, HIDDEN, 3, s, s, 0, HIDDEN_MAX)
        self.b = IntConv(HIDDEN, HIDDEN, 1, s, s, 0, HIDDEN_MAX)
        self.c = IntConv(HIDDEN, cout, 1, s, s, out_min, out_max)
        if head:  # predictions start at each level's base
            with torch.no_grad():
                self.c.weight.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.c(self.b(self.a(x))).float()


def _amplitude(q: Tensor, u: Tensor) -> Tensor:
    """`quantiser.amplitude` for a batch with one step code per image, in log2 units."""
    table = torch.as_tensor(LOG_AMPLITUDE, dtype=torch.float32)
    a = table[q.abs().clamp_max(AMPLITUDE_MAX).long()]
    return (a + (u - STEP_CODE_REF).view(-1, 1, 1, 1)) / LOG_UNIT


class TrainableContextModel(nn.Module):
    """The context model's float form. `forward` codes a batch of images at one step
    code each and returns each image's bits."""

    def __init__(self) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(
            {n: ContextNet(cin, cout, n != "carry") for n, (cin, cout) in NETWORKS.items()}
        )
        self.base = nn.Parameter(torch.zeros(LEVELS, 9))  # log2 units, see ContextModel
        self.ll_mean = nn.Parameter(torch.zeros(3))  # coefficient units
        self.ll_log_spread = nn.Parameter(torch.full((3,), 3.0))  # log2 units

    @property
    def fake_quant(self) -> bool:
        return any(m.fake_quant for m in self.modules() if isinstance(m, IntConv))

    def set_fake_quant(self, on: bool) -> None:
        for m in self.modules():
            if isinstance(m, IntConv):
                m.fake_quant = on

    @torch.no_grad()
    def init_from_data(self, pixels: np.ndarray) -> None:
        """Start each base at the log2 of its level's and channel's mean magnitude, and
        the low-pass's mean and spread at the batch's."""
        ll, details = pyramid(pixels)
        for level in range(1, LEVELS + 1):
            d = np.abs(details[level - 1]).astype(np.float64)  # [B, 3, 3, h, w]
            m = d.mean(axis=(0, 3, 4)).reshape(9) + 1.0
            self.base[level - 1] = torch.as_tensor(np.log2(m) - 10.0, dtype=torch.float32)
        self.ll_mean.copy_(torch.as_tensor(ll.mean(axis=(0, 2, 3)), dtype=torch.float32))
        spread = np.abs(ll - ll.mean(axis=(0, 2, 3), keepdims=True)).mean(axis=(0, 2, 3))
        self.ll_log_spread.copy_(torch.as_tensor(np.log2(spread + 1) - 10, dtype=torch.float32))

    def forward(self, pixels: np.ndarray, u: np.ndarray) -> Tensor:
        """Bits of each image ([B]) of `pixels` (uint8 [B, 3, H, W], H and W multiples
        of 64) quantised at step codes `u` ([B]) by the reference encoder."""
        b = pixels.shape[0]
        steps = [step_size(int(x)) for x in u]
        ut = torch.as_tensor(u, dtype=torch.float32)
        ll, details = pyramid(pixels)
        q_ll = np.stack([quantise(ll[i], steps[i], 0) for i in range(b)])
        step_t = torch.as_tensor(steps, dtype=torch.float32).view(-1, 1, 1, 1)
        spread = 2.0 ** (self.ll_log_spread.view(1, 3, 1, 1) + 10.0) / step_t
        mean = self.ll_mean.view(1, 3, 1, 1) / step_t
        total: Tensor = _laplace_bits_mean(torch.as_tensor(q_ll, dtype=torch.float32), mean, spread)
        low = q_ll * np.array(steps).reshape(-1, 1, 1, 1)
        offsets = reconstruction_offsets()
        parent: Tensor | None = None
        carried: Tensor | None = None
        for level in range(LEVELS, 0, -1):
            d = details[level - 1]
            h, w = d.shape[-2:]
            q_np = np.stack([quantise(d[i], steps[i], DEADZONE) for i in range(b)])
            q = torch.as_tensor(q_np.reshape(b, 9, h, w), dtype=torch.float32)
            ctx = self._context(level, low, parent, carried, ut)
            amp = _amplitude(q, ut)
            log_spread = self._log_spread(ctx, amp) + self.base[level - 1].view(1, 9, 1, 1)
            t = log_spread + (STEP_CODE_REF - ut).view(-1, 1, 1, 1) / LOG_UNIT
            if self.fake_quant:  # the table's spread, as the decoder's
                i = ste_round((t * LOG_UNIT - TABLE_FLOOR) / TABLE_SPACING).clamp(0, TABLES - 1)
                t = (TABLE_FLOOR + TABLE_SPACING * i) / LOG_UNIT
            total = total + laplace_bits(q, 2.0**t).sum(dim=(1, 2, 3))
            carried = self.nets["carry"](torch.cat([ctx, amp], dim=1))
            parent = amp
            # the decoder's reconstruction of this level, for the next level's context
            ints = torch.round(log_spread.detach() * LOG_UNIT).numpy().astype(np.int64)
            rebuilt = []
            for k in range(b):
                index = table_index(ints[k], int(u[k]))
                v = dequantise(q_np[k].reshape(9, h, w), steps[k], index, offsets)
                rebuilt.append(v.reshape(3, 3, h, w))
            low = synthesis(low, np.stack(rebuilt))
        return total

    def _context(
        self,
        level: int,
        low: np.ndarray,
        parent: Tensor | None,
        carried: Tensor | None,
        u: Tensor,
    ) -> Tensor:
        b, _, h, w = low.shape
        feat = torch.as_tensor(low_feature(low, level), dtype=torch.float32) * HIDDEN_STEP
        if parent is None or carried is None:
            amp = feat.new_zeros(b, 9, h, w)
            carried = feat.new_zeros(b, CARRY, h, w)
        else:
            amp = F.interpolate(parent, scale_factor=2.0, mode="nearest")
            carried = F.interpolate(carried, scale_factor=2.0, mode="nearest")
        logstep = ((u - STEP_CODE_REF) / LOG_UNIT).view(-1, 1, 1, 1).expand(b, 1, h, w)
        onehot = feat.new_zeros(b, LEVELS, h, w)
        onehot[:, level - 1] = 1.0
        return torch.cat([feat, amp, carried, logstep, onehot], dim=1)

    def _log_spread(self, ctx: Tensor, amp: Tensor) -> Tensor:
        """A level's log2 spreads less the base, each from what is decoded before it."""
        h, w = amp.shape[-2:]
        i = torch.arange(h).view(-1, 1)
        j = torch.arange(w).view(1, -1)
        anchor = ((i + j) % 2 == 0).float().view(1, 1, h, w)
        m = anchor.expand(amp.shape[0], 1, h, w)
        y, c = amp[:, LUMA], amp[:, CHROMA]
        ya = self.nets["luma_anchor"](ctx)
        yb = self.nets["luma_rest"](torch.cat([ctx, y * anchor, m], dim=1))
        ca = self.nets["chroma_anchor"](torch.cat([ctx, y], dim=1))
        cb = self.nets["chroma_rest"](torch.cat([ctx, y, c * anchor, m], dim=1))
        out = torch.empty_like(amp)
        out[:, LUMA] = torch.where(anchor > 0, ya, yb)
        out[:, CHROMA] = torch.where(anchor > 0, ca, cb)
        return out

    @torch.no_grad()
    def integer_layers(self) -> dict[str, IntegerLayerArrays]:
        """ "<network>.<layer>" -> (weight, bias, multiplier, shift, out_min, out_max) of
        the integer form, as the weights file stores them."""
        out: dict[str, IntegerLayerArrays] = {}
        for name, net in self.nets.items():
            for layer in LAYERS:
                p = getattr(net, layer).export()
                out[f"{name}.{layer}"] = (
                    p.weight.numpy(),
                    p.bias.numpy(),
                    p.multiplier.numpy(),
                    p.shift.numpy(),
                    p.out_min,
                    p.out_max,
                )
        return out

    @torch.no_grad()
    def export(self) -> ContextModel:
        """The exact integer form."""
        return ContextModel(
            layers={n: IntLayer.from_arrays(*p) for n, p in self.integer_layers().items()},
            base=np.round(self.base.numpy() * LOG_UNIT).astype(np.int64),
            ll_mean=np.round(self.ll_mean.numpy()).astype(np.int64),
            ll_log_spread=np.round(self.ll_log_spread.numpy() * LOG_UNIT).astype(np.int64),
            offsets=reconstruction_offsets(),
        )


def _laplace_bits_mean(q: Tensor, mean: Tensor, spread: Tensor) -> Tensor:
    """Bits per image of the low-pass integers under a Laplacian centred at `mean`
    (steps; the decoder rounds it, `numpy_context_model.ll_offset`)."""
    return laplace_bits(q - torch.round(mean), spread).sum(dim=(1, 2, 3))
