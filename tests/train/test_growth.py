"""Growing a model keeps what it computes: more latent channels, other trade-offs."""

from __future__ import annotations

import pytest
import torch

from c2f_format.networks.model import C2FModel, ModelConfig
from c2f_format.train.growth import (
    RateWarmup,
    grow,
    reset_channels,
    retarget_lambdas,
    silent_channels,
    widen_latent,
)
from c2f_format.train.objective import rd_loss
from c2f_format.train.state import make_optimizer


def _model(m: int = 16) -> C2FModel:
    torch.manual_seed(0)
    config = ModelConfig(n=16, m=m, c2=8, c1=8, h2=8, h1=8, p3=16, p2=8, fuse=4)
    config.gain_schedule = "fixed"
    model = C2FModel(config)
    model.project_gains()
    return model.eval()


def _weight(module: torch.nn.Module, name: str = "weight") -> torch.Tensor:
    """A layer's parameter, typed (a `Sequential`'s items are plain modules to mypy)."""
    param = getattr(module, name)
    assert isinstance(param, torch.Tensor)
    return param


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
    grad = _weight(wide.g_a[6]).grad
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
    sq = new_opt.state[_weight(grown.g_a[6])]["exp_avg_sq"]
    old_sq = opt.state[_weight(model.g_a[6])]["exp_avg_sq"]
    assert sq.shape[0] == 24 and torch.equal(sq[:16], old_sq)
    again, same_opt, none = grow(grown, new_opt, lambda m: make_optimizer(m, 1e-4), latent=24)
    assert again is grown and same_opt is new_opt and none == []


def test_silent_channels_are_found_and_restarted_without_changing_the_image() -> None:
    model = _model()
    with torch.no_grad():
        _weight(model.g_a[6])[3] *= 1e-6  # a channel whose scale collapsed
        _weight(model.g_a[6], "bias")[3] = 0.0
    x = _image()
    silent = silent_channels(model, [x], threshold=0.05)
    assert 3 in silent and len(silent) < 16
    with torch.no_grad():
        before = model(x, torch.full((1,), 2.0))["x_hat"]
    reset_channels(model, [3])
    with torch.no_grad():
        after = model(x, torch.full((1,), 2.0))["x_hat"]
    assert float(_weight(model.g_a[6])[3].detach().abs().max()) == 0.0
    assert float(_weight(model.g_s_head[0])[3].detach().abs().mean()) > 0.0
    torch.testing.assert_close(after, before, rtol=0, atol=1e-4)


def test_rate_warmup_ramps_the_channels_and_ends() -> None:
    warm = RateWarmup([1, 2], start=100, steps=50)
    w = warm.weight(125, 4, torch.device("cpu"))
    assert w is not None and w.tolist() == [1.0, 0.5, 0.5, 1.0]
    w0 = warm.weight(90, 4, torch.device("cpu"))
    assert w0 is not None and w0.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert warm.weight(150, 4, torch.device("cpu")) is None
    assert RateWarmup(**warm.to_dict()) == warm  # type: ignore[arg-type]


def test_a_channel_out_of_the_rate_term_costs_nothing_in_training() -> None:
    model = _model().train()
    x = _image()
    weight = torch.ones(16)
    weight[5] = 0.0
    torch.manual_seed(3)
    full = model(x, torch.full((1,), 2.0))["bits_y"]
    model.rate_weight_y = weight
    torch.manual_seed(3)
    partial = model(x, torch.full((1,), 2.0))["bits_y"]
    assert float(partial.detach()) < float(full.detach())
    model.eval()  # evaluation always counts every bit
    with torch.no_grad():
        counted = model(x, torch.full((1,), 2.0))["bits_y"]
    model.rate_weight_y = None
    with torch.no_grad():
        assert torch.equal(counted, model(x, torch.full((1,), 2.0))["bits_y"])


def test_linear_paths_added_at_zero_change_nothing() -> None:
    from c2f_format.train.growth import add_linear_paths

    model = _model()
    grown = add_linear_paths(model).eval()
    x, level = _image(), torch.tensor([1.5])
    with torch.no_grad():
        before, after = model(x, level), grown(x, level)
    for key in ("x_hat", "bits_y", "bits_z"):
        assert torch.equal(before[key], after[key]), key
    with pytest.raises(ValueError, match="already"):
        add_linear_paths(grown)
    # the paths learn: the first analysis path and the last synthesis path (which see
    # the image and make it) get a gradient at once
    rd_loss(grown.train(), x, level)["loss"].backward()
    for path in (grown.a_paths[0], grown.s_paths[-1]):
        grad = _weight(path.get_submodule("mix")).grad
        assert grad is not None and float(grad.abs().sum()) > 0


def test_linear_paths_have_their_own_learning_rate() -> None:
    from c2f_format.train.growth import add_linear_paths

    grown = add_linear_paths(_model())
    opt = make_optimizer(grown, 1e-4, path_lr_scale=10.0)
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 10.0, 10.0]
    paths = {id(p) for p in (*grown.a_paths.parameters(), *grown.s_paths.parameters())}
    assert {id(p) for p in opt.param_groups[2]["params"]} == paths


def test_a_model_with_linear_paths_trains_and_reduces() -> None:
    config = ModelConfig(n=16, m=16, c2=8, c1=8, h2=8, h1=8, p3=16, p2=8, fuse=4)
    config.linear_paths = True
    model = C2FModel(config)
    x = _image()
    out = model(x, torch.tensor([0.5]))
    assert out["x_hat"].shape == x.shape
    y = model.analysis_transform(x)
    assert y.shape == (1, 16, 8, 8)
    _, inv = model.gains(0.5)
    h2, h1 = torch.zeros(1, 8, 8, 8), torch.zeros(1, 8, 4, 4)
    assert model.synthesis(y, inv, h2, h1, stages=2).shape == (1, 16, 32, 32)


@pytest.mark.parametrize(("bottom", "top"), [(3.0, 3.0), (1.0, 2.5)])
def test_crops_draw_their_levels_between_the_schedules_bounds(
    monkeypatch: pytest.MonkeyPatch, bottom: float, top: float
) -> None:
    """One rate first (bottom == top) or a band of levels: every crop's level lies in it."""
    from c2f_format.train import loop
    from c2f_format.train.data import CropSampler
    from c2f_format.train.objective import Trainable
    from c2f_format.train.state import Progress

    model = _model()
    drawn: list[torch.Tensor] = []

    def recording(
        model: Trainable, x: torch.Tensor, level: torch.Tensor, balance: float
    ) -> dict[str, torch.Tensor]:
        drawn.append(level.clone())
        return rd_loss(model, x, level, balance)

    monkeypatch.setattr(loop, "rd_loss", recording)
    images = [(torch.rand(96, 96, 3) * 255).to(torch.uint8).numpy()]
    schedule = loop.Schedule(iters=10**6, lr=1e-4, batch=3, top_level=top, bottom_level=bottom)
    loop.train_loop(
        model.train(),
        make_optimizer(model, 1e-4),
        CropSampler(images, 64, 0),
        schedule,
        Progress(seed=0),
        torch.device("cpu"),
        max_steps=4,
    )
    levels = torch.cat(drawn)
    assert len(levels) == 12
    assert float(levels.min()) >= bottom and float(levels.max()) <= top
