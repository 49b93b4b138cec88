"""Grow a model in training without losing what it has learned.

Training here is a long line of short rounds, so a change of size must continue the
state rather than start again. Each change below keeps the function the network
computes at the moment of the change:

* **More latent channels** (`widen_latent`). The main latent y bounds the detail a model
  can keep: with 128 channels at 1/16 scale (1/6 of the input's dimensions) the shipped
  transforms reconstructed 31.3 dB with no quantisation at all, the level a linear
  transform with 128 components reaches on 16x16 blocks (30.6 dB), so every rate above
  about 0.6 bpp bought almost nothing. New channels start as zeros that cost nothing
  (`reset_channels`). (Starting them with random analysis filters and near-zero
  synthesis ones failed: the rate term silenced them before the synthesis learned to
  use them; synthesis filters still at 1/100 after 3,500 steps.)
* **Silent channels** (`silent_channels`, `reset_channels`): channels whose scale
  collapsed early carry nothing at any rate and cannot come back by themselves; they
  are started again like new ones.
* **Other trade-offs** (`retarget_lambdas`), under the fixed gain schedule: each channel
  keeps its gain at every lambda, only the trained points move (a wider span of
  qualities, or more levels).

New and restarted channels then enter the rate term gradually (`RateWarmup`).
The optimiser is rebuilt and keeps Adam's second moments (padded with each tensor's
mean where it grew), so the step sizes of the old weights carry on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import cast

import torch
from torch import Tensor, nn

from ..networks.model import C2FModel


def _pad(t: Tensor, dim: int, size: int, fill: Tensor | float) -> Tensor:
    """`t` grown along `dim` to `size`, the new part filled with `fill` (broadcast)."""
    extra = list(t.shape)
    extra[dim] = size - t.shape[dim]
    new = torch.empty(extra, dtype=t.dtype, device=t.device)
    new.copy_(torch.as_tensor(fill, dtype=t.dtype, device=t.device).expand_as(new))
    return torch.cat([t, new], dim=dim)


def widen_latent(model: C2FModel, m: int, seed: int = 0) -> C2FModel:
    """A copy of `model` with `m` latent channels, computing the same image and rates."""
    old = model.config.m
    if m < old:
        raise ValueError(f"cannot narrow the latent from {old} to {m} channels")
    wide = C2FModel(replace(model.config, m=m)).to(model.gain.device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if m > old:
        state["g_a.6.weight"] = _pad(state["g_a.6.weight"], 0, m, 0.0)
        state["g_a.6.bias"] = _pad(state["g_a.6.bias"], 0, m, 0.0)
        for name in ("gain", "inv_gain"):  # new channels: the geometric mean gain
            g = state[name].abs() + 1e-4
            state[name] = _pad(state[name], 1, m, g.log().mean(1, keepdim=True).exp())
        # h_a2 sees space_to_depth(y): input channel c*4 + i
        for layer in ("h_a2.linear", "h_a2.inner"):
            state[f"{layer}.weight"] = _pad(state[f"{layer}.weight"], 1, 4 * m, 0.0)
        for layer in ("p3.mean", "p3.scale"):
            state[f"{layer}.weight"] = _pad(state[f"{layer}.weight"], 0, m, 0.0)
            state[f"{layer}.bias"] = _pad(state[f"{layer}.bias"], 0, m, 0.0)
        # ConvTranspose2d weights are [in, out, k, k]
        state["g_s_head.0.weight"] = _pad(state["g_s_head.0.weight"], 0, m, 0.0)
    wide.load_state_dict(state)
    reset_channels(wide, list(range(old, m)), seed)
    _copy_flags(model, wide)
    return wide


@torch.no_grad()
def reset_channels(model: C2FModel, channels: list[int], seed: int = 0) -> None:
    """Start channels of y again, in place, as zeros that cost nothing: zero analysis
    filters and hyper-analysis weights, mean 0 at the smallest scale, and synthesis
    filters of the others' size so the distortion's gradient reaches the analysis.
    What the network computes does not change where the channels were silent already."""
    if not channels:
        return
    idx = torch.tensor(channels, device=model.gain.device)
    keep = torch.ones(model.config.m, dtype=torch.bool, device=idx.device)
    keep[idx] = False
    last = cast(nn.Conv2d, model.g_a[6])  # analysis: its last convolution makes y
    last.weight[idx] = 0.0
    cast(Tensor, last.bias)[idx] = 0.0
    inputs = (idx.view(-1, 1) * 4 + torch.arange(4, device=idx.device)).flatten()
    for layer in (model.h_a2.linear, model.h_a2.inner):
        layer.weight[:, inputs] = 0.0
    for head in (model.p3.mean, model.p3.scale):
        head.weight[idx] = 0.0
        head.bias[idx] = 0.0
    w = cast(nn.ConvTranspose2d, model.g_s_head[0]).weight  # [in = m, out, k, k]
    rms = w[keep].pow(2).mean().sqrt() if bool(keep.any()) else torch.tensor(0.03)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = torch.randn((len(channels), *w.shape[1:]), dtype=w.dtype) * rms
    w[idx] = fresh.to(w.device)


@torch.no_grad()
def silent_channels(model: C2FModel, crops: list[Tensor], threshold: float = 0.5) -> list[int]:
    """Channels of y whose standard deviation at the highest trained level stays below
    `threshold` quantisation steps on `crops`: they carry (almost) nothing at any rate,
    since every channel's gain follows the same schedule."""
    was = model.training
    model.eval()
    gain, _ = model.gains(float(len(model.config.lambdas) - 1))
    ys = [model.analysis(x.to(model.gain.device), gain)[0] for x in crops]
    model.train(was)
    std = torch.cat([y.flatten(2) for y in ys], dim=2).std(dim=(0, 2))
    return [int(c) for c in torch.nonzero(std < threshold).flatten()]


@dataclass
class RateWarmup:
    """Channels that pay for their bits gradually: weight 0 at `start`, 1 after `steps`.

    A channel of zeros at the smallest scale cannot grow while it pays full rate: the
    first values it takes cost bits at a scale that has not learned to widen yet, and
    the rate's noisy gradient drowns the distortion's (measured: analysis filters still
    at 2.5e-5 RMS after 1,500 steps). Free of rate for a while, it learns what to carry
    from the distortion alone; the ramp then teaches the scales and lets the rate term
    silence what is not worth its bits.
    """

    channels: list[int]
    start: int
    steps: int

    def weight(self, step: int, m: int, device: torch.device) -> Tensor | None:
        """The per-channel rate weight at `step` (None once the ramp is over)."""
        t = (step - self.start) / max(self.steps, 1)
        if t >= 1.0:
            return None
        w = torch.ones(m, device=device)
        w[self.channels] = max(t, 0.0)
        return w

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def retarget_lambdas(model: C2FModel, lambdas: list[float]) -> C2FModel:
    """A copy of `model` trained at `lambdas`, every channel's gain at each lambda kept.

    Only for the fixed schedule, where a gain is a function of lambda; learned per-level
    gains have no value between or beyond their levels to carry over.
    """
    if model.config.gain_schedule != "fixed":
        raise ValueError("retargeting the lambdas needs the fixed gain schedule")
    if sorted(lambdas) != lambdas or len(set(lambdas)) != len(lambdas) or lambdas[0] <= 0:
        raise ValueError(f"lambdas must be positive and increasing, got {lambdas}")
    # the quality range is calibrated again at export
    config = replace(model.config, lambdas=list(lambdas), quality_levels=None)
    out = C2FModel(config).to(model.gain.device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    old_log = torch.tensor(model.config.lambdas, device=model.gain.device).log()
    new_log = torch.tensor(lambdas, device=model.gain.device).log()
    for name, sign in (("gain", 1.0), ("inv_gain", -1.0)):
        log = (state[name].abs() + 1e-4).log()
        base = (log - sign * 0.5 * (old_log - old_log.mean()).view(-1, 1)).mean(0)
        # the gain at lambda is base * (lambda / mean lambda)^(sign/2): moving the mean
        # moves the base so that the gain at every lambda stays
        base = base + sign * 0.5 * (new_log.mean() - old_log.mean())
        shape = sign * 0.5 * (new_log - new_log.mean()).view(-1, 1)
        state[name] = torch.exp(base + shape) - 1e-4
    out.load_state_dict(state)
    _copy_flags(model, out)
    return out


def extended_lambdas(lambdas: list[float], below: int, above: int) -> list[float]:
    """`lambdas` with `below` more trade-offs under the lowest and `above` over the
    highest, continuing their mean geometric ratio (new ones to 3 significant digits).

    With the fixed schedule a gain is a function of lambda, so `retarget_lambdas` to this
    list gives levels beyond the trained ones that are the same quantiser scaled on: a
    wider quality range from a trained network, with no training at the new levels
    (training at them made the model worse: round 3 in lab/training.md).
    """
    if below < 0 or above < 0:
        raise ValueError(f"levels to add are counts >= 0, got {below} and {above}")
    if len(lambdas) < 2 and (below or above):
        raise ValueError("extending the levels needs at least two trained lambdas")
    if not (below or above):
        return list(lambdas)
    ratio = (lambdas[-1] / lambdas[0]) ** (1 / (len(lambdas) - 1))
    low = [float(f"{lambdas[0] / ratio**k:.3g}") for k in range(below, 0, -1)]
    high = [float(f"{lambdas[-1] * ratio**k:.3g}") for k in range(1, above + 1)]
    return low + list(lambdas) + high


def add_linear_paths(model: C2FModel) -> C2FModel:
    """A copy of `model` with a linear path beside every stride-2 stage of its
    transforms (`layers.LinearDown` / `LinearUp`), each starting at zero so that the copy
    computes exactly what `model` does and training decides what the paths carry."""
    if model.config.linear_paths:
        raise ValueError("the model has linear paths already")
    out = C2FModel(replace(model.config, linear_paths=True)).to(model.gain.device)
    for module in (*out.a_paths, *out.s_paths):
        with torch.no_grad():
            module.mix.weight.zero_()
    missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith(("a_paths.", "s_paths.")) for k in missing):
        raise ValueError(f"state does not match: missing {missing}, unexpected {unexpected}")
    _copy_flags(model, out)
    return out


def _copy_flags(src: C2FModel, dst: C2FModel) -> None:
    dst.mixed_precision = src.mixed_precision
    dst.set_fake_quant(src.fake_quant)
    dst.train(src.training)


def carry_adam(
    old_model: nn.Module, old_opt: torch.optim.Adam, new_model: nn.Module, new_opt: torch.optim.Adam
) -> None:
    """Move Adam's state from `old_opt` to `new_opt` by parameter name; where a tensor
    grew, the new entries get the mean of the old ones (a typical step size)."""
    old_params = dict(old_model.named_parameters())
    for name, p in new_model.named_parameters():
        old = old_params.get(name)
        st = old_opt.state.get(old) if old is not None else None
        if not st or "exp_avg_sq" not in st:
            continue
        sq: Tensor = st["exp_avg_sq"]
        for dim, (a, b) in enumerate(zip(sq.shape, p.shape, strict=True)):
            if a != b:
                sq = _pad(sq, dim, b, sq.mean())
        new_opt.state[p] = {
            "step": st["step"].clone() if isinstance(st["step"], Tensor) else st["step"],
            "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": sq.to(p.device).clone(),
        }


def grow(
    model: C2FModel,
    opt: torch.optim.Adam,
    make_optimizer: Callable[[C2FModel], torch.optim.Adam],
    latent: int | None = None,
    lambdas: list[float] | None = None,
) -> tuple[C2FModel, torch.optim.Adam, list[str]]:
    """`model` grown to `latent` channels and retargeted to `lambdas` where they differ
    from what it has (so a resumed run asking for the same is unchanged), with its
    optimiser (rebuilt by `make_optimizer`) carried over; the third item says what
    changed."""
    changes = []
    grown = model
    if latent is not None and latent != model.config.m:
        changes.append(f"latent {model.config.m} -> {latent} channels")
        grown = widen_latent(grown, latent)
    if lambdas is not None and list(lambdas) != grown.config.lambdas:
        changes.append(f"lambdas {grown.config.lambdas} -> {list(lambdas)}")
        grown = retarget_lambdas(grown, list(lambdas))
    if not changes:
        return model, opt, changes
    new_opt = make_optimizer(grown)
    carry_adam(model, opt, grown, new_opt)
    return grown, new_opt, changes
