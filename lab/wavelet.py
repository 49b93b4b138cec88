"""c2f's hyper stack on a fixed wavelet transform: how far does the entropy model alone go?

JPEG 2000 (a fixed CDF 9/7 wavelet, context-coded bit planes) is 14% ahead of WebP by
BD-rate on Kodak in `c2f bench` (docs/bench/kodak-c2f-v3.json), while c2f's learned
transforms, after about 17 CPU-hours, are 72% behind. Here the analysis is that wavelet,
orthonormal by construction, and the synthesis its exact inverse: nothing in either is
learned, so all the compute goes to the gains and the coarse-to-fine hyper prior, which
is what c2f adds to transform coding. If it reaches JPEG 2000 in an hour of two cores,
the line's transform can start from it and learn only what a wavelet cannot (AuxT's
principle, Li et al. ICLR 2025, with the linear part fixed instead of learned).

Layout: pixels - 0.5 -> an orthonormal colour rotation (the RGB KLT of natural images,
luma and two opponent axes) -> four levels of the 2-D CDF 9/7 DWT (lifting, symmetric
extension, each step scaled to unit norm) -> every subband folded onto the 1/16 grid:
level k's three subbands by space-to-depth 2^(4-k), the level-4 approximation as is;
256 channels a colour, 768 in all, one wavelet coefficient each. Training arms only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from shallow import DEEP_SYNTHESIS  # lab/, beside this file
from torch import Tensor

from c2f_format.format.constants import SCALE_LEVELS
from c2f_format.networks.model import SCALE_MIN, SCALE_STEP, C2FModel, ModelConfig

LEVELS = 4  # 1/16: y's grid in c2f
CHANNELS = 3 * 4**LEVELS  # one coefficient per latent channel, 768
# CDF 9/7 lifting constants (JPEG 2000 part 1, the irreversible transform)
ALPHA, BETA, GAMMA, DELTA = (
    -1.586134342059924,
    -0.052980118572961,
    0.882911075530934,
    0.443506852043971,
)
K = 1.230174104914001
LOW, HIGH = math.sqrt(2.0) / K, K / math.sqrt(2.0)  # unit-norm analysis steps (near-orthonormal)
# the opponent colour rotation: luma, red-blue, green-magenta (orthonormal rows)
COLOUR = torch.tensor(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
        [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
        [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)],
    ]
)
REPLACED = ("g_a.", *DEEP_SYNTHESIS)  # c2f's transforms, both ways


def _next(s: Tensor) -> Tensor:
    """s[n + 1] along the last axis, mirrored past the end (whole-sample symmetry)."""
    return torch.cat([s[..., 1:], s[..., -1:]], dim=-1)


def _prev(d: Tensor) -> Tensor:
    """d[n - 1] along the last axis, mirrored before the start."""
    return torch.cat([d[..., :1], d[..., :-1]], dim=-1)


def dwt_1d(x: Tensor) -> tuple[Tensor, Tensor]:
    """One level along the last axis (even length): (low, high)."""
    s, d = x[..., 0::2], x[..., 1::2]
    d = d + ALPHA * (s + _next(s))
    s = s + BETA * (_prev(d) + d)
    d = d + GAMMA * (s + _next(s))
    s = s + DELTA * (_prev(d) + d)
    return s * LOW, d * HIGH


def idwt_1d(s: Tensor, d: Tensor) -> Tensor:
    """The exact inverse of `dwt_1d`."""
    s, d = s / LOW, d / HIGH
    s = s - DELTA * (_prev(d) + d)
    d = d - GAMMA * (s + _next(s))
    s = s - BETA * (_prev(d) + d)
    d = d - ALPHA * (s + _next(s))
    return torch.stack([s, d], dim=-1).flatten(-2)


def dwt_2d(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(LL, HL, LH, HH) at half resolution: rows, then columns."""
    lo, hi = dwt_1d(x)
    ll, lh = (t.transpose(-1, -2) for t in dwt_1d(lo.transpose(-1, -2)))
    hl, hh = (t.transpose(-1, -2) for t in dwt_1d(hi.transpose(-1, -2)))
    return ll, hl, lh, hh


def idwt_2d(ll: Tensor, hl: Tensor, lh: Tensor, hh: Tensor) -> Tensor:
    lo = idwt_1d(ll.transpose(-1, -2), lh.transpose(-1, -2)).transpose(-1, -2)
    hi = idwt_1d(hl.transpose(-1, -2), hh.transpose(-1, -2)).transpose(-1, -2)
    return idwt_1d(lo, hi)


def wavelet_analysis(x: Tensor) -> Tensor:
    """[B, 3, H, W] pixels in [0, 1] (H, W multiples of 16) -> [B, 768, H/16, W/16]."""
    with torch.autocast(x.device.type, enabled=False):  # float32 throughout
        return _analysis(x.float())


def _analysis(x: Tensor) -> Tensor:
    c = torch.einsum("oc,bchw->bohw", COLOUR.to(x), x - 0.5)
    parts = []
    for level in range(1, LEVELS + 1):
        c, hl, lh, hh = dwt_2d(c)
        fold = 2 ** (LEVELS - level)
        for band in (hl, lh, hh):
            parts.append(F.pixel_unshuffle(band, fold) if fold > 1 else band)
    parts.append(c)
    return torch.cat(parts, dim=1)


def wavelet_synthesis(y: Tensor) -> Tensor:
    """The exact inverse of `wavelet_analysis`."""
    with torch.autocast(y.device.type, enabled=False):
        return _synthesis(y.float())


def _synthesis(y: Tensor) -> Tensor:
    sizes = []
    for level in range(1, LEVELS + 1):
        sizes += [3 * 4 ** (LEVELS - level)] * 3
    sizes.append(3)
    chunks = list(torch.split(y, sizes, dim=1))
    c = chunks[-1]
    for level in range(LEVELS, 0, -1):
        fold = 2 ** (LEVELS - level)
        bands = [chunks[3 * (level - 1) + i] for i in range(3)]
        bands = [F.pixel_shuffle(b, fold) if fold > 1 else b for b in bands]
        c = idwt_2d(c, *bands)
    return torch.einsum("oc,bohw->bchw", COLOUR.to(y), c) + 0.5


class WaveletC2F(C2FModel):
    """c2f with the fixed wavelet as analysis and its inverse as synthesis; the gains,
    hyper stack and preview are c2f's and learn as they do there."""

    def __init__(self, config: ModelConfig, magnitudes: bool = False) -> None:
        if config.m != CHANNELS:
            raise ValueError(f"the wavelet latent has {CHANNELS} channels, not {config.m}")
        super().__init__(config)
        self.magnitudes = magnitudes
        for name in REPLACED:
            delattr(self, name.rstrip("."))
        # high-rate theory for J = bpp + lambda 255^2 MSE on an orthonormal transform:
        # the step that balances them is sqrt(18 / (ln 2 lambda 255^2)) (three values a
        # pixel); the gain is its inverse, at each level
        lam = torch.tensor(config.lambdas, dtype=torch.float32)
        step = torch.sqrt(18.0 / (math.log(2.0) * lam * 255.0**2)).view(-1, 1)
        with torch.no_grad():
            self.gain.copy_((1.0 / step).repeat(1, config.m))
            self.inv_gain.copy_(step.repeat(1, config.m))
        # the detail coefficients keep their zero bin: P3 predicts no mean for them (zero
        # rows in p3.mean, held there), only for the three approximation channels. A
        # predicted mean moves the bin that rounds to the mean, and in the straight-through
        # reconstruction no gradient reaches it from the distortion, so at low rates every
        # small coefficient came back as its (wrong) mean: 18 dB at level 0 after 10 minutes
        mask = torch.zeros(config.m, 1, 1, 1)
        mask[-3:] = 1.0
        mean = self.p3.mean
        with torch.no_grad():
            mean.weight.mul_(mask)
            mean.bias.mul_(mask.view(-1))
        mean.weight.register_hook(lambda g: g * mask)
        mean.bias.register_hook(lambda g: g * mask.view(-1))

    def analysis_transform(self, x: Tensor) -> Tensor:
        return wavelet_analysis(x)

    def analysis(self, x: Tensor, gain: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """With `magnitudes`, the hyper analysis sees |y| of the detail coefficients: what
        their scales depend on, where a sign would be noise it must learn to fold away
        (Ballé et al. 2018 take |y| throughout). It is the encoder's side only: z2 is
        whatever the encoder sends, the decoder's networks are unchanged."""
        if not self.magnitudes:
            return super().analysis(x, gain)
        y = self.analysis_transform(x) * gain.view(-1, self.config.m, 1, 1)
        z2 = self.h_a2(torch.cat([y[:, :-3].abs(), y[:, -3:]], dim=1))
        return y, z2, self.h_a1(z2)

    def synthesis(
        self,
        y_hat: Tensor,
        inv_gain: Tensor,
        h2: Tensor,
        h1: Tensor,
        stages: int = 5,
        bf16: bool = False,
    ) -> Tensor:
        del h2, h1, stages, bf16  # the inverse wavelet, in float32
        return wavelet_synthesis(y_hat.float() * inv_gain.view(-1, self.config.m, 1, 1))


def wavelet_config(lambdas: list[float]) -> ModelConfig:
    return ModelConfig(m=CHANNELS, lambdas=list(lambdas), gain_schedule="fixed")


@torch.no_grad()
def scale_start(model: WaveletC2F, batches: list[Tensor], level: float) -> list[float]:
    """P3's scale indices started at each channel's spread on training crops at `level`.

    The indices live on the 64-step table of section 7.1: the level-1 detail channels
    need index 0 (spread below 0.11) and the approximation about 40, from the 20 every
    channel starts at, and at Adam's step of about lr a step a bias crosses 20 units in
    tens of thousands of steps. The question was whether that is why the entropy model
    stalled at twice the rate of a static histogram per channel: it is not (round 13:
    the arm started nearer, then did worse than `wavelet-abs`). Returns the spreads by
    band group."""
    gain, _ = model.gains(torch.tensor([level]))
    total = torch.zeros(model.config.m)
    count = 0
    for x in batches:
        y = wavelet_analysis(x) * gain.view(1, -1, 1, 1)
        total += y.pow(2).mean(dim=(0, 2, 3))
        count += 1
    spread = (total / count).sqrt()
    spread[-3:] = spread[-3:] / 8  # the approximation's mean is predicted: what is left
    index = (spread.clamp_min(SCALE_MIN) / SCALE_MIN).log() / SCALE_STEP
    scale = model.p3.scale
    scale.bias.copy_(index.clamp(0, SCALE_LEVELS - 1))
    scale.weight.mul_(0.1)
    groups = [(0, 576), (576, 720), (720, 756), (756, 765), (765, 768)]
    return [round(float(spread[a:b].mean()), 3) for a, b in groups]
