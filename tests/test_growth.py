"""Growing a model keeps what it computes: more latent channels, other trade-offs."""

from __future__ import annotations

import pytest
import torch

from c2f_format.growth import grow, retarget_lambdas, widen_latent
from c2f_format.model import C2FModel, ModelConfig
from c2f_format.train import make_optimizer, rd_loss


def _model(m: int = 16) -> C2FModel:
    torch.manual_seed(0)
    config = ModelConfig(n=16, m=m, c2=8, c1=8, h2=8, h1=8, p3=16, p2=8, fuse=4)
    config.gain_schedule = "fixed"
    model = C2FModel(config)
    model.project_gains()
    return model.eval()


def _image() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 128, 128)


def test_widening_keeps_the_reconstruction_and_the_hyper_rates() -> None:
    small = _model()
    wide = widen_latent(small, 24)
    assert wide.config.m == 24 and small.config.m == 16
    x = _image()
    with torch.no_grad():
        a = small(x, torch.full((1,), 2.0))
        b = wide(x, torch.full((1,), 2.0))
    torch.testing.assert_close(b["x_hat"], a["x_hat"], rtol=0, atol=1e-6)
    torch.testing.assert_close(b["bits_z"], a["bits_z"])
    # the new channels are zeros at the smallest scale: they cost (almost) nothing
    new_elements = 8 * (128 // 16) ** 2
    assert 0 <= float(b["bits_y"] - a["bits_y"]) < 1e-3 * new_elements


def test_widened_channels_learn() -> None:
    """The new analysis filters receive a gradient through the synthesis."""
    wide = widen_latent(_model(), 24).train()
    rd_loss(wide, _image(), torch.full((1,), 2.0))["loss"].backward()
    grad = wide.g_a[6].weight.grad
    assert grad is not None and float(grad[16:].abs().sum()) > 0


def test_narrowing_is_refused() -> None:
    with pytest.raises(ValueError, match="narrow"):
        widen_latent(_model(), 8)


def test_retargeting_keeps_each_gain_at_its_lambda() -> None:
    model = _model()
    old = model.config.lambdas
    new = [old[0] / 2, *old, old[-1] * 2]  # one more level at each end
    moved = retarget_lambdas(model, new)
    for i in range(len(old)):
        g_old, ig_old = model.gains(float(i))
        g_new, ig_new = moved.gains(float(i + 1))
        torch.testing.assert_close(g_new, g_old, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ig_new, ig_old, rtol=1e-4, atol=1e-6)
    assert moved.config.quality_levels is None


@pytest.mark.parametrize("bad", [[0.01, 0.005], [0.0, 0.01], [0.01, 0.01]])
def test_retargeting_refuses_bad_lambdas(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="increasing"):
        retarget_lambdas(_model(), bad)


def test_grow_carries_adam_and_is_idempotent() -> None:
    model = _model().train()
    opt = make_optimizer(model, 1e-4)
    rd_loss(model, _image(), torch.full((1,), 1.0))["loss"].backward()
    opt.step()
    grown, new_opt, changes = grow(model, opt, lambda m: make_optimizer(m, 1e-4), latent=24)
    assert changes == ["latent 16 -> 24 channels"]
    sq = new_opt.state[grown.g_a[6].weight]["exp_avg_sq"]
    old_sq = opt.state[model.g_a[6].weight]["exp_avg_sq"]
    assert sq.shape[0] == 24 and torch.equal(sq[:16], old_sq)
    again, same_opt, none = grow(grown, new_opt, lambda m: make_optimizer(m, 1e-4), latent=24)
    assert again is grown and same_opt is new_opt and none == []
