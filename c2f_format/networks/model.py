"""The coarse-to-fine hyper-prior model (Hu, Yang, Liu, AAAI 2020), sized for our compute.

    x --g_a--> y (1/16) --h_a2--> z2 (1/32) --h_a1--> z1 (1/64)
    z1       : factorized per-channel Gaussian (learned mean and scale per channel)
    z2 | z1  : Gaussian, (mu2, sigma2) = P2(h1),  h1 = h_s1(z1_hat)
    y  | z2  : Gaussian, (mu3, sigma3) = P3(h2),  h2 = h_s2(z2_hat)
    x_hat    = g_s(y_hat, h2, h1)   (aggregation at 1/8 resolution)
    preview  = V(h2, h1)            (1/8 resolution, needs no byte of y)

h_s1, P2, h_s2 and P3 are `IntConv` stacks: they decide every probability table and
every mean, so they must agree bit for bit between encoder and decoder. The hyper
analysis transforms are space-to-depth followed by 1x1 convolutions (signal-preserving),
and one network covers all rates through per-channel gain units (Cui et al. 2021).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..format.constants import SCALE_LEVELS, TRANSFORM_KERNEL
from .layers import (
    GDN,
    HIDDEN_MAX,
    HIDDEN_STEP,
    MEAN_MAX,
    MEAN_STEP,
    IntConv,
    LinearDown,
    LinearUp,
    conv,
    deconv,
    depth_to_space,
    space_to_depth,
    ste_round,
)

SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_STEP = math.log(SCALE_MAX / SCALE_MIN) / (SCALE_LEVELS - 1)  # log-spacing of the table
LIKELIHOOD_FLOOR = 1e-9


def scale_table() -> Tensor:
    """The 64 standard deviations a scale index can select (log-spaced)."""
    return SCALE_MIN * torch.exp(SCALE_STEP * torch.arange(SCALE_LEVELS, dtype=torch.float64))


def index_to_scale(index: Tensor) -> Tensor:
    """Continuous relaxation of the scale table, used in training."""
    return SCALE_MIN * torch.exp(SCALE_STEP * index)


def lambdas_at(lambdas: list[float], level: Tensor) -> Tensor:
    """lambda at continuous levels, geometric between the trained ones: the trade-off
    training optimises at a level, and the encoder's search (codec/search.py) too."""
    lam = torch.tensor(lambdas, dtype=torch.float32, device=level.device).log()
    if len(lam) == 1:
        return lam.exp().expand_as(level)
    lo = level.floor().long().clamp(0, len(lam) - 2)
    t = level - lo
    return torch.exp(lam[lo] * (1 - t) + lam[lo + 1] * t)


@dataclass
class ModelConfig:
    """Sizes of one model; stored in the weights file so the code stays generic."""

    n: int = 96  # channels of g_a / g_s
    m: int = 128  # channels of y
    c2: int = 64  # channels of z2
    c1: int = 32  # channels of z1
    h2: int = 64  # channels of h2 (1/16)
    h1: int = 48  # channels of h1 (1/32)
    p3: int = 128  # hidden channels of P3
    p2: int = 64  # hidden channels of P2
    fuse: int = 32  # channels of the hyper features fused into g_s
    lambdas: list[float] = field(
        default_factory=lambda: [0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483]
    )
    # the levels quality 1 and quality 100 map to: calibrated after training to the range
    # where rate and quality both rise with the level (None: all trained levels)
    quality_levels: list[float] | None = None
    # "fixed": each channel's gain moves with the level as sqrt(lambda), only its base is
    # learned; "line": the slope in log-gain over the levels is learned per channel too
    gain_schedule: str = "line"
    # linear paths beside every stride-2 stage of g_a and g_s (layers.LinearDown/Up)
    linear_paths: bool = False
    # the kernel of g_a's and g_s's stride-2 stages: 5 in bitstream v1's model section;
    # 3 (2.8x fewer multiply-adds there) only in training arms until the spec has it
    kernel: int = TRANSFORM_KERNEL

    def level_of_quality(self, quality: float) -> float:
        """quality 1..100 -> continuous level, linear between `quality_levels`."""
        lo, hi = self.quality_levels or (0.0, float(len(self.lambdas) - 1))
        return lo + (float(quality) - 1.0) / 99.0 * (hi - lo)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _hidden(cin: int, cout: int, kernel: int, in_step: float = HIDDEN_STEP) -> IntConv:
    return IntConv(cin, cout, kernel, in_step, HIDDEN_STEP, 0, HIDDEN_MAX)


class HyperSynthesis(nn.Module):
    """h_s: 1x1 integer conv then depth-to-space: hat latent -> finer representation."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.expand = _hidden(cin, 4 * cout, 1, in_step=MEAN_STEP)
        self.mix = _hidden(cout, cout, 3)

    def forward(self, z_hat: Tensor) -> Tensor:
        return self.mix(depth_to_space(self.expand(z_hat)))


class Predictor(nn.Module):
    """P: hyper representation -> (mean, scale index) of every element of the finer layer."""

    def __init__(self, cin: int, hidden: int, cout: int) -> None:
        super().__init__()
        self.body = _hidden(cin, hidden, 3)
        self.mean = IntConv(hidden, cout, 1, HIDDEN_STEP, MEAN_STEP, -MEAN_MAX, MEAN_MAX)
        self.scale = IntConv(hidden, cout, 1, HIDDEN_STEP, 1.0, 0, SCALE_LEVELS - 1)
        with torch.no_grad():
            self.scale.bias.fill_(20.0)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        f = self.body(h)
        return self.mean(f), self.scale(f)


class HyperAnalysis(nn.Module):
    """h_a: space-to-depth then 1x1 convolutions, with a linear path kept beside the
    non-linear one so no information is thrown away by the activation."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Conv2d(4 * cin, cout, 1)
        self.inner = nn.Conv2d(4 * cin, 2 * cout, 1)
        self.outer = nn.Conv2d(2 * cout, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = space_to_depth(x)
        return self.linear(s) + self.outer(F.leaky_relu(self.inner(s), 0.1))


class C2FModel(nn.Module):
    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        n, m, k = cfg.n, cfg.m, cfg.kernel
        levels = len(cfg.lambdas)
        self.g_a = nn.Sequential(
            conv(3, n, k), GDN(n), conv(n, n, k), GDN(n), conv(n, n, k), GDN(n), conv(n, m, k)
        )
        # For MSE the best quantiser step scales as lambda**-0.5, so the gains start at
        # sqrt(lambda / geometric-mean lambda) and training refines them per channel.
        lam = torch.tensor(cfg.lambdas, dtype=torch.float32)
        g0 = torch.sqrt(lam / lam.log().mean().exp()).view(levels, 1)
        self.gain = nn.Parameter(g0.repeat(1, m))
        self.inv_gain = nn.Parameter((1.0 / g0).repeat(1, m))
        self.h_a2 = HyperAnalysis(m, cfg.c2)
        self.h_a1 = HyperAnalysis(cfg.c2, cfg.c1)
        # z1: factorized prior, a learned mean and scale index per channel
        self.z1_mean = nn.Parameter(torch.zeros(cfg.c1))
        self.z1_scale = nn.Parameter(torch.full((cfg.c1,), 20.0))
        self.h_s1 = HyperSynthesis(cfg.c1, cfg.h1)
        self.p2 = Predictor(cfg.h1, cfg.p2, cfg.c2)
        self.h_s2 = HyperSynthesis(cfg.c2, cfg.h2)
        self.p3 = Predictor(cfg.h2, cfg.p3, m)
        # reconstruction: g_s with the hyper representations aggregated at 1/8
        self.g_s_head = nn.Sequential(deconv(m, n, k), GDN(n, inverse=True))
        self.fuse_h2 = nn.Conv2d(cfg.h2, 4 * cfg.fuse, 1)
        self.fuse_h1 = nn.Conv2d(cfg.h1, 16 * cfg.fuse, 1)
        self.fuse_mix = nn.Conv2d(n + 2 * cfg.fuse, n, 3, padding=1)
        self.g_s_tail = nn.Sequential(
            deconv(n, n, k),
            GDN(n, inverse=True),
            deconv(n, n, k),
            GDN(n, inverse=True),
            deconv(n, 3, k),
        )
        # preview head V(h2, h1) -> image at 1/8 scale
        self.preview_body = nn.Conv2d(cfg.h2 + cfg.h1, 64, 3, padding=1)
        self.preview_out = nn.Conv2d(64, 12, 1)
        if cfg.linear_paths:
            self.a_paths = nn.ModuleList(
                [LinearDown(3, n), LinearDown(n, n), LinearDown(n, n), LinearDown(n, m)]
            )
            self.s_paths = nn.ModuleList(
                [LinearUp(m, n), LinearUp(n, n), LinearUp(n, n), LinearUp(n, 3)]
            )
        self.fake_quant = False
        self.mixed_precision = False
        # training only: a weight per channel of y on its bits (None: all 1), so channels
        # being brought to life can learn before they pay for their rate (train/growth.py)
        self.rate_weight_y: Tensor | None = None
        # training only: rates of the rounded latents (straight-through) instead of the
        # noisy ones, the rate the codec pays; for fine-tuning an encoder against a fixed
        # entropy model, where the noisy proxy misprices the small scales
        self.rounded_rates = False

    # ---- pieces shared by training and coding -------------------------------------

    def int_modules(self) -> list[IntConv]:
        return [mod for mod in self.modules() if isinstance(mod, IntConv)]

    def set_fake_quant(self, enabled: bool) -> None:
        self.fake_quant = enabled
        for mod in self.int_modules():
            mod.fake_quant = enabled

    def gains(self, level: Tensor | float) -> tuple[Tensor, Tensor]:
        """Gain and inverse gain at a continuous level in [0, levels-1].

        Between trained levels the gains are interpolated geometrically, which keeps
        rate and distortion monotone in the level (Cui et al. 2021).
        """
        levels = self.gain.shape[0]
        lvl = torch.as_tensor(level, dtype=torch.float32).clamp(0, levels - 1)
        lo = (
            torch.floor(lvl).long().clamp(max=levels - 2)
            if levels > 1
            else torch.zeros((), dtype=torch.long)
        )
        t = (lvl - lo).unsqueeze(-1)
        g = self.gain.abs() + 1e-4
        ig = self.inv_gain.abs() + 1e-4
        if levels == 1:
            return g[0], ig[0]
        gain = g[lo] ** (1 - t) * g[lo + 1] ** t
        inv = ig[lo] ** (1 - t) * ig[lo + 1] ** t
        return gain, inv

    @torch.no_grad()
    def project_gains(self) -> None:
        """Put each channel's gains and inverse gains on a straight line in log-gain
        over the levels (least squares on their magnitudes, which is what the model uses).

        Free per-level gain vectors drift apart channel by channel in training, and the
        geometric interpolation then gives rate spikes at the trained levels (the first
        weights spent 1.02 bpp at level 1 against 0.68 on the line, for the same PSNR).
        On a line, interpolation between levels is exact and rate and distortion move
        monotonically with the level, while the weights file keeps its per-level form.
        Under the "fixed" schedule the line's slope is not learned: every channel's gain
        follows sqrt(lambda) (the MSE-optimal quantiser step scales as lambda**-0.5), so
        the levels cannot collapse onto one trade-off.
        """
        levels = self.gain.shape[0]
        if levels < 2:
            return
        device = self.gain.device
        if self.config.gain_schedule == "fixed":
            lam = torch.tensor(self.config.lambdas, dtype=torch.float32, device=device).log()
            shape = 0.5 * (lam - lam.mean()).view(-1, 1)
            for param, sign in ((self.gain, 1.0), (self.inv_gain, -1.0)):
                if not param.requires_grad:  # frozen (an encoder-only fine-tune): kept as is
                    continue
                log = (param.abs() + 1e-4).log()
                base = (log - sign * shape).mean(0)
                param.copy_(torch.exp(base + sign * shape) - 1e-4)
            return
        if levels < 3:
            return
        t = torch.arange(levels, dtype=torch.float32, device=device).view(-1, 1)
        t = t - t.mean()
        for param in (self.gain, self.inv_gain):
            if not param.requires_grad:
                continue
            log = (param.abs() + 1e-4).log()
            slope = (t * (log - log.mean(0))).sum(0) / (t * t).sum()
            param.copy_(torch.exp(log.mean(0) + slope * t) - 1e-4)

    @contextlib.contextmanager
    def transforms_autocast(self, device_type: str, force: bool = False) -> Iterator[None]:
        """bfloat16 for the float transforms when `mixed_precision` (training) or `force`
        (the encoder's search) is set. The integer networks and every likelihood stay in
        float32: their grids (1/32 up to 1024) and probabilities near 1e-9 are beyond
        bfloat16."""
        enabled = self.mixed_precision or force
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled):
            yield

    def analysis(self, x: Tensor, gain: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Encoder side: y (gained), z2, z1 as floats."""
        with self.transforms_autocast(x.device.type):
            y = self.analysis_transform(x)
        y = y.float() * gain.view(-1, self.config.m, 1, 1)
        z2 = self.h_a2(y)
        z1 = self.h_a1(z2)
        return y, z2, z1

    def synthesis(
        self,
        y_hat: Tensor,
        inv_gain: Tensor,
        h2: Tensor,
        h1: Tensor,
        stages: int = 5,
        bf16: bool = False,
    ) -> Tensor:
        """The image; with `stages=2`, the features at 1/4 scale that reduced decoding
        finishes from (inference.ReducedTail); `bf16` forces bfloat16 products."""
        with self.transforms_autocast(y_hat.device.type, force=bf16):
            y_in = y_hat * inv_gain.view(-1, self.config.m, 1, 1)
            u = self.g_s_head(y_in)
            if self.config.linear_paths:
                u = u + self.s_paths[0](y_in)
            f2 = depth_to_space(self.fuse_h2(h2))
            f1 = depth_to_space(self.fuse_h1(h1), 4)
            u = u + self.fuse_mix(torch.cat([u, F.relu(f2), F.relu(f1)], dim=1))
            if self.config.linear_paths:
                return self._paths_tail(u, stages).float()
            tail = self.g_s_tail if stages >= len(self.g_s_tail) else self.g_s_tail[:stages]
            return tail(u).float()  # the whole tail itself: progress bars hook it

    def analysis_transform(self, x: Tensor) -> Tensor:
        """g_a: the image in [0, 1] -> y before its gain, with the linear paths if any."""
        return self.g_a(x) if not self.config.linear_paths else self._paths_analysis(x)

    def _paths_analysis(self, x: Tensor) -> Tensor:
        """g_a stage by stage, each stride-2 stage's output plus its linear path's."""
        layers = list(self.g_a)
        for i, path in enumerate(self.a_paths):
            out = layers[2 * i](x)
            if 2 * i + 1 < len(layers):
                out = layers[2 * i + 1](out)
            x = out + path(x)
        return x

    def _paths_tail(self, u: Tensor, stages: int) -> Tensor:
        """g_s_tail's first `stages` layers (2: its first stage, 5: all three)."""
        return self.tail_stages(u, 0, (stages + 1) // 2)

    def tail_stages(self, u: Tensor, start: int, stop: int) -> Tensor:
        """Stages `start` to `stop` - 1 of g_s_tail's three (transposed convolution and
        IGDN, the last without), each plus its linear path where the model has them."""
        layers = list(self.g_s_tail)
        paths = list(self.s_paths)[1:] if self.config.linear_paths else None
        for i in range(start, stop):
            out = layers[2 * i](u)
            if 2 * i + 1 < len(layers):
                out = layers[2 * i + 1](out)
            u = out + paths[i](u) if paths is not None else out
        return u

    def tail_path_weights(self) -> tuple[Tensor, Tensor] | None:
        """The last two tail stages' linear path weights (reduced decoding folds them)."""
        if not self.config.linear_paths:
            return None
        paths = [cast(LinearUp, p) for p in self.s_paths]
        return paths[2].mix.weight, paths[3].mix.weight

    def preview(self, h2: Tensor, h1: Tensor) -> Tensor:
        with self.transforms_autocast(h2.device.type):
            h = torch.cat([h2, F.interpolate(h1, scale_factor=2.0, mode="nearest")], dim=1)
            return depth_to_space(self.preview_out(F.relu(self.preview_body(h)))).float() + 0.5

    # ---- training forward ---------------------------------------------------------

    def forward(self, x: Tensor, level: Tensor) -> dict[str, Tensor]:
        """Training pass. `x` in [0, 1], `level` one continuous level per image.

        Rates come from noisy latents in training and from the rounded ones in eval
        mode (what the codec codes); the reconstruction always sees the rounded ones
        with a straight-through gradient (the "mixed" surrogate).
        """
        gain, inv_gain = self.gains(level)
        y, z2, z1 = self.analysis(x, gain)
        mu1 = self.z1_mean.view(1, -1, 1, 1)
        idx1 = self.z1_scale.view(1, -1, 1, 1).clamp(0, SCALE_LEVELS - 1)
        if self.fake_quant:
            mu1 = ste_round(mu1 / MEAN_STEP) * MEAN_STEP
            idx1 = ste_round(idx1)
        z1_hat = ste_round(z1 - mu1) + mu1
        bits_z1 = gaussian_bits(self._coded(z1, z1_hat), mu1, index_to_scale(idx1))
        h1 = self.h_s1(z1_hat)
        mu2, idx2 = self.p2(h1)
        z2_hat = ste_round(z2 - mu2) + mu2
        bits_z2 = gaussian_bits(self._coded(z2, z2_hat), mu2, index_to_scale(idx2))
        h2 = self.h_s2(z2_hat)
        mu3, idx3 = self.p3(h2)
        y_hat = ste_round(y - mu3) + mu3
        weight = self.rate_weight_y if self.training else None
        bits_y = gaussian_bits(self._coded(y, y_hat), mu3, index_to_scale(idx3), weight)
        x_hat = self.synthesis(y_hat, inv_gain, h2, h1)
        return {
            "x_hat": x_hat,
            "preview": self.preview(h2, h1),
            "bits_y": bits_y,
            "bits_z": bits_z1 + bits_z2,
        }

    def _coded(self, value: Tensor, rounded: Tensor) -> Tensor:
        return value + _noise(value) if self.training and not self.rounded_rates else rounded


def _noise(x: Tensor) -> Tensor:
    return torch.empty_like(x).uniform_(-0.5, 0.5)


def gaussian_bits(
    value: Tensor, mean: Tensor, scale: Tensor, channel_weight: Tensor | None = None
) -> Tensor:
    """Bits per image of `value` under N(mean, scale) integrated over unit bins (each
    channel's bits times `channel_weight`, where given)."""
    v = (value - mean).abs()
    s = scale * math.sqrt(2.0)
    upper = 0.5 * torch.erfc((v - 0.5) / s)
    lower = 0.5 * torch.erfc((v + 0.5) / s)
    p = (upper - lower).clamp_min(LIKELIHOOD_FLOOR)
    bits = -torch.log2(p)
    if channel_weight is not None:
        bits = bits * channel_weight.view(1, -1, 1, 1)
    return bits.sum(dim=(1, 2, 3))
