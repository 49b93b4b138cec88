"""The yardstick for training: Ballé et al. 2018's scale hyperprior, written from the paper.

"Variational image compression with a scale hyperprior" (ICLR 2018), at the sizes of
CompressAI's `bmshj2018-hyperprior` for its lower rates (N=128, M=192): a four-layer
GDN analysis and synthesis, a three-layer hyper analysis and synthesis with ReLUs, a
zero-mean Gaussian for y whose scales the hyper synthesis predicts, and the paper's
non-parametric factorized density for z. It is trained the way the paper does it
(additive uniform noise for the rates and the reconstruction) and only serves to tell
whether c2f's network learns as fast per CPU-minute as the plain model everyone knows.
It has no integer form and no bitstream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from c2f_format.networks.layers import GDN, conv, deconv
from c2f_format.networks.model import LIKELIHOOD_FLOOR, SCALE_MIN, gaussian_bits


class FullGDN(GDN):
    """GDN as in Ballé et al.: x / sqrt(beta + gamma * x**2) (inverse: times). Same
    parameters as c2f's simplified GDN, squared instead of absolute values."""

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.sqrt(F.conv2d(x * x, self.gamma.abs(), self.beta.abs() + 1e-6))
        return x * norm if self.inverse else x / norm


class FactorizedDensity(nn.Module):
    """The per-channel non-parametric density of Ballé et al. 2018 (appendix 6.1).

    Each channel's cumulative distribution is a small monotone network: matrices kept
    positive through softplus, and gated tanh non-linearities whose gates are tanh'd so
    the composition stays monotone; a sigmoid of its output is the CDF.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init: float = 10):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.gates = nn.ParameterList()
        for i in range(len(dims) - 1):
            start = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), start)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.gates.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logit_cdf(self, v: Tensor) -> Tensor:
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            v = torch.matmul(F.softplus(matrix), v) + bias
            if i < len(self.gates):
                v = v + torch.tanh(self.gates[i]) * torch.tanh(v)
        return v

    def bits(self, z: Tensor) -> Tensor:
        """Bits per image of `z` (noisy or rounded) integrated over unit bins."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logit_cdf(v - 0.5)
        upper = self._logit_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the flat tail: accurate
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        p = p.clamp_min(LIKELIHOOD_FLOOR).reshape(c, b, h, w)
        return -torch.log2(p).sum(dim=(0, 2, 3))


@dataclass
class YardstickConfig:
    n: int = 128
    m: int = 192
    lambdas: list[float] = field(default_factory=lambda: [0.013])


class ScaleHyperprior(nn.Module):
    """bmshj2018-hyperprior: y | z ~ N(0, sigma(z)), z factorized."""

    def __init__(self, config: YardstickConfig | None = None) -> None:
        super().__init__()
        cfg = config or YardstickConfig()
        self.config = cfg
        n, m = cfg.n, cfg.m
        self.g_a = nn.Sequential(
            conv(3, n), FullGDN(n), conv(n, n), FullGDN(n), conv(n, n), FullGDN(n), conv(n, m)
        )
        self.g_s = nn.Sequential(
            deconv(m, n),
            FullGDN(n, inverse=True),
            deconv(n, n),
            FullGDN(n, inverse=True),
            deconv(n, n),
            FullGDN(n, inverse=True),
            deconv(n, 3),
        )
        self.h_a = nn.Sequential(conv(m, n, 3, 1), nn.ReLU(), conv(n, n), nn.ReLU(), conv(n, n))
        self.h_s = nn.Sequential(
            deconv(n, n), nn.ReLU(), deconv(n, n), nn.ReLU(), conv(n, m, 3, 1), nn.ReLU()
        )
        self.density = FactorizedDensity(n)
        self.mixed_precision = False

    def forward(self, x: Tensor, level: Tensor) -> dict[str, Tensor]:
        """Same interface as `C2FModel.forward` (the level is ignored: one rate)."""
        del level
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            y = self.g_a(x).float()
        z = self.h_a(y.abs())
        z_coded = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else z.round()
        scales = self.h_s(z_coded).clamp_min(SCALE_MIN)
        y_coded = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else y.round()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            x_hat = self.g_s(y_coded).float()
        return {
            "x_hat": x_hat,
            "bits_y": gaussian_bits(y_coded, torch.zeros_like(y), scales),
            "bits_z": self.density.bits(z_coded),
        }
