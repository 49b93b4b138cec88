"""The float network rewritten for inference, computing the same functions faster.

PyTorch's CPU transposed convolution scatters through a col2im pass and is the slowest
layer of the synthesis. A 5x5 stride-2 transposed convolution equals a 3x3 convolution
with four times the output channels followed by a pixel shuffle: each output phase
(row parity, column parity) sees a fixed subset of the 5x5 taps. The rewritten network
runs in channels-last memory, which oneDNN convolutions prefer, and GDN's parameter
reparametrisation (abs, epsilon) is done once instead of on every call.

(oneDNN's own transposed convolution on channels-last tensors is about 1.5x faster than
the sub-pixel form for the 96-channel stages, since it skips the taps the sub-pixel form
multiplies by zero, but its results change with the thread count (3 or 5 threads give
other pixels than 1, 2 or 4), and the thread count follows the machine's load
(codec/threads.py): the same file would decode differently from one call to the next.)

Only the float path is rewritten: it shapes pixels and decides no probability, so the
small rounding differences (about 1e-4 on [0, 1] pixels) change no symbol.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import GDN
from .numpy_layers import reduced_tail_weights, subpixel_weights

M = TypeVar("M", bound=nn.Module)


class SubpixelDeconv(nn.Module):
    """`ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1)` as conv + shuffle."""

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        cin, cout = deconv.weight.shape[:2]
        if (
            (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding)
            != ((5, 5), (2, 2), (2, 2), (1, 1))
            or deconv.groups != 1
            or deconv.dilation != (1, 1)
        ):
            raise ValueError("only 5x5, stride 2, padding 2, output padding 1 is supported")
        w_t = deconv.weight.detach()
        # [a, b, cout, ...] -> [cout, a, b, ...]: pixel_shuffle takes each output
        # channel's four phases as consecutive channels
        phases = subpixel_weights(w_t.cpu().numpy()).transpose(2, 0, 1, 3, 4, 5)
        weight = torch.from_numpy(np.ascontiguousarray(phases)).to(w_t.device)
        self.weight = nn.Parameter(weight.reshape(cout * 4, cin, 3, 3), requires_grad=False)
        bias = (
            deconv.bias.detach()
            if deconv.bias is not None
            else torch.zeros(cout, dtype=w_t.dtype, device=w_t.device)
        )
        self.bias = nn.Parameter(bias.repeat_interleave(4), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=1), 2)


class FrozenGDN(nn.Module):
    """GDN / IGDN with its parameters reparametrised once."""

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        self.inverse = gdn.inverse
        self.beta = nn.Parameter(gdn.beta.detach().abs() + 1e-6, requires_grad=False)
        self.gamma = nn.Parameter(gdn.gamma.detach().abs(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        norm = F.conv2d(x.abs(), self.gamma, self.beta)
        return x * norm if self.inverse else x / norm


class ReducedTail(nn.Module):
    """The synthesis's last two stages plus a box filter of `reduce` (2 or 4), as one 5x5
    convolution on its 1/4-scale features (`numpy_layers.reduced_tail_weights`)."""

    def __init__(
        self, tail: nn.Sequential, reduce: int, paths: tuple[Tensor, Tensor] | None = None
    ) -> None:
        """`paths`: the last two stages' linear path weights, for a model that has them."""
        super().__init__()
        deconv2, gdn, deconv3 = tail[2], tail[3], tail[4]
        if not (
            isinstance(deconv2, nn.ConvTranspose2d)
            and isinstance(gdn, GDN)
            and isinstance(deconv3, nn.ConvTranspose2d)
        ):
            raise TypeError("g_s_tail is not (deconv, IGDN, deconv, IGDN, deconv)")
        assert deconv2.bias is not None and deconv3.bias is not None

        def array(t: Tensor) -> np.ndarray:
            return t.detach().float().cpu().numpy()

        weight, bias = reduced_tail_weights(
            array(deconv2.weight),
            array(deconv2.bias),
            array(gdn.beta.abs() + 1e-6),
            array(deconv3.weight),
            array(deconv3.bias),
            reduce,
            None if paths is None else (array(paths[0][:, :, 0, 0]), array(paths[1][:, :, 0, 0])),
        )
        u = 4 // reduce
        # [a, b, colour, ...] -> [colour, a, b, ...], the order pixel_shuffle reads
        torch_order = np.ascontiguousarray(weight.transpose(2, 0, 1, 3, 4, 5))
        device = deconv2.weight.device
        self.factor = u
        self.weight = nn.Parameter(
            torch.from_numpy(torch_order).reshape(3 * u * u, -1, 5, 5).to(device),
            requires_grad=False,
        )
        self.bias = nn.Parameter(
            torch.from_numpy(bias).repeat_interleave(u * u).to(device), requires_grad=False
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(x, self.weight, self.bias, padding=2)
        return F.pixel_shuffle(out, self.factor) if self.factor > 1 else out


def _rewrite(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ConvTranspose2d):
            setattr(module, name, SubpixelDeconv(child))
        elif type(child) is GDN:  # the simplified form only (FrozenGDN computes it)
            setattr(module, name, FrozenGDN(child))
        else:
            _rewrite(child)


def for_inference(net: M) -> M:
    """A rewritten, channels-last, eval-mode copy of `net` (the original is untouched)."""
    fast = copy.deepcopy(net).eval()
    _rewrite(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return fast


__all__ = ["FrozenGDN", "ReducedTail", "SubpixelDeconv", "for_inference"]
