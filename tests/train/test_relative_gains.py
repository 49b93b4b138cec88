"""train/loop.relative_gain_step: the gains move by factors, never more than Adam's step
in log space however small the gain, and keep their sign; the other weights take Adam's
ordinary step."""

from __future__ import annotations

import torch

from c2f_format.networks.model import C2FModel, ModelConfig
from c2f_format.train.loop import relative_gain_step
from c2f_format.train.objective import rd_loss
from c2f_format.train.state import make_optimizer


def test_gains_move_by_bounded_factors_whatever_their_size() -> None:
    torch.manual_seed(0)
    model = C2FModel(ModelConfig(n=8, m=16, gain_schedule="fixed", lambdas=[0.002, 0.02]))
    with torch.no_grad():
        model.gain[:, :8] *= 1e-4  # quiet channels beside loud ones, as in the line
    gains = [model.gain, model.inv_gain]
    opt = make_optimizer(model, 1e-3)
    for group in opt.param_groups:  # as train_loop sets them
        group["lr"] = 1e-3 * group["lr_scale"]
    before = model.gain.detach().clone()
    conv = model.g_a[0]
    assert isinstance(conv, torch.nn.Conv2d)
    weight = conv.weight.detach().clone()
    rd_loss(model, torch.rand(2, 3, 64, 64), torch.tensor([0.0, 1.0]))["loss"].backward()
    relative_gain_step(opt, gains)
    factor = (model.gain.detach() / before).log().abs()
    step = 1e-3 * opt.param_groups[1]["lr_scale"]
    # Adam's first step is lr in size, here a factor exp(+-lr x scale); the quiet gains'
    # gradients in log space are small beside Adam's epsilon, so they move less
    assert torch.all(factor <= step * 1.01)
    assert torch.allclose(factor[8:], torch.full_like(factor[8:], step), rtol=1e-2)
    assert torch.all(torch.sign(model.gain) == torch.sign(before))
    moved = (conv.weight.detach() - weight).abs()
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], 1e-3), rtol=1e-2)


def test_an_additive_step_would_have_switched_the_quiet_channels() -> None:
    """The failure the log-space step removes: the same Adam step on the raw gains
    changes a gain of 1e-5 many times over while one of 1 barely moves."""
    gain = torch.nn.Parameter(torch.tensor([1e-5, 1.0]))
    opt = torch.optim.Adam([gain], lr=1e-3)
    gain.grad = torch.tensor([-1.0, -1.0])
    opt.step()
    ratio = gain.detach() / torch.tensor([1e-5, 1.0])
    assert ratio[0] > 50 and abs(float(ratio[1]) - 1) < 2e-3
