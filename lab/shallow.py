"""c2f with a shallow synthesis: does a near-linear decoder learn faster per CPU-minute?

The line's transforms are nearly linear after 800 CPU-minutes (training.md, round 2),
and Yang and Mandt (ICCV 2023, *Computationally-Efficient Neural Image Compression with
Shallow Decoders*; mandt-lab/shallow-ntc) report that a synthesis that *is* linear, one
transposed convolution of kernel 18 and stride 16 from y to pixels (learned overlapping
basis images), reaches -21% BD-rate against BPG on Kodak, and a two-layer one
(kernel 13 stride 8 to 12 channels, inverse GDN beside a linear residual, kernel 5
stride 2 to pixels) -5%, with a mean-scale hyperprior and a strong analysis, after
1.8 M steps. Those decoders cost 1.2 and 5.3 kMAC a pixel against about 27 k for c2f's.

Here c2f's network keeps its analysis, hyper stack and preview; only the reconstruction
is replaced, and the hyper representation h2 still feeds it through its own linear map
(the coarse-to-fine model's aggregation, at the decoder's price). Training arms only:
the bitstream's model section has no such synthesis. Kernel sizes are even where the
paper's are odd so that transposed convolutions tile exactly (16 x the latent grid).
"""

from __future__ import annotations

from torch import Tensor, nn

from c2f_format.networks.layers import GDN
from c2f_format.networks.model import C2FModel, ModelConfig

HIDDEN = 12  # the two-layer synthesis' channels at 1/2 scale (shallow-ntc's N)
# parameter names of c2f's own synthesis, and of the two-layer one that replaces it
DEEP_SYNTHESIS = ("g_s_head.", "fuse_h2.", "fuse_h1.", "fuse_mix.", "g_s_tail.")
SHALLOW_SYNTHESIS = ("up1.", "res1.", "hyper_up.", "igdn.", "up2.")


def _up(cin: int, cout: int, kernel: int, stride: int) -> nn.ConvTranspose2d:
    """A transposed convolution whose output is exactly `stride` x its input."""
    pad = (kernel - stride) // 2
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=pad)


class ShallowC2F(C2FModel):
    """`kind` "linear": x = B(y / gain) + B_h(h2); "two-layer":
    x = U2(IGDN(U1(y / gain)) + R(y / gain) + F(h2))."""

    def __init__(self, config: ModelConfig, kind: str, hidden: int = HIDDEN) -> None:
        super().__init__(config)
        if kind not in ("linear", "two-layer"):
            raise ValueError(f"unknown shallow synthesis {kind!r}")
        self.kind = kind
        for name in DEEP_SYNTHESIS:
            delattr(self, name.rstrip("."))
        m, h2 = config.m, config.h2
        if kind == "linear":
            self.basis = _up(m, 3, 18, 16)
            self.hyper_basis = _up(h2, 3, 18, 16)
            assert self.basis.bias is not None
            nn.init.constant_(self.basis.bias, 0.5)  # mid-grey before anything is learned
        else:
            self.up1 = _up(m, hidden, 12, 8)
            self.res1 = _up(m, hidden, 12, 8)
            self.hyper_up = _up(h2, hidden, 12, 8)
            self.igdn = GDN(hidden, inverse=True)
            self.up2 = _up(hidden, 3, 6, 2)
            assert self.up2.bias is not None
            nn.init.constant_(self.up2.bias, 0.5)

    def synthesis(
        self,
        y_hat: Tensor,
        inv_gain: Tensor,
        h2: Tensor,
        h1: Tensor,
        stages: int = 5,
        bf16: bool = False,
    ) -> Tensor:
        del h1, stages  # h1 reaches the reconstruction through h2 (h_s2 of z2 | z1)
        with self.transforms_autocast(y_hat.device.type, force=bf16):
            y_in = y_hat * inv_gain.view(-1, self.config.m, 1, 1)
            if self.kind == "linear":
                return (self.basis(y_in) + self.hyper_basis(h2)).float()
            u = self.igdn(self.up1(y_in)) + self.res1(y_in) + self.hyper_up(h2)
            return self.up2(u).float()


def synthesis_macs_per_pixel(model: ShallowC2F) -> float:
    """Multiply-adds per output pixel of the shallow synthesis (transposed convolutions:
    (kernel / stride)^2 x in x out per output position)."""
    total = 0.0
    scale = {"basis": 1, "hyper_basis": 1, "up1": 4, "res1": 4, "hyper_up": 4, "up2": 1}
    for name, div in scale.items():
        layer = getattr(model, name, None)
        if isinstance(layer, nn.ConvTranspose2d):
            k, s = layer.kernel_size[0], layer.stride[0]
            total += (k / s) ** 2 * layer.in_channels * layer.out_channels / div
    return total
