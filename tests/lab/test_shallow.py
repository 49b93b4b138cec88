"""The shallow-synthesis arms (lab/shallow.py): exact output size, a cost that is what
the docstring says, and gradients that reach every part of the network."""

from __future__ import annotations

from typing import cast

import pytest
import torch
from shallow import ShallowC2F, synthesis_macs_per_pixel
from torch import nn

from c2f_format.networks.model import ModelConfig


@pytest.mark.parametrize("kind", ["linear", "two-layer"])
def test_a_shallow_synthesis_reconstructs_the_crop_size_and_trains(kind: str) -> None:
    torch.manual_seed(0)
    model = ShallowC2F(ModelConfig(lambdas=[0.013]), kind)
    x = torch.rand(2, 3, 64, 128)
    out = model(x, torch.zeros(2))
    assert out["x_hat"].shape == x.shape
    loss = (out["x_hat"] - x).pow(2).mean() + out["bits_y"].mean() * 1e-6
    loss.backward()
    grad = cast(nn.Conv2d, model.g_a[0]).weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert not hasattr(model, "g_s_tail")  # the deep synthesis is gone, not just unused


def test_the_shallow_decoders_cost_a_few_thousand_multiply_adds_a_pixel() -> None:
    linear = ShallowC2F(ModelConfig(lambdas=[0.013]), "linear")
    two = ShallowC2F(ModelConfig(lambdas=[0.013]), "two-layer")
    # (18/16)^2 x (128 + 64) x 3 for the linear basis images of y and h2
    assert synthesis_macs_per_pixel(linear) == pytest.approx(1.265625 * 192 * 3)
    assert 1000 < synthesis_macs_per_pixel(two) < 5000
    # hidden channels at 1/2 scale: y's and h2's maps grow with them, the last layer too
    wide = ShallowC2F(ModelConfig(lambdas=[0.013]), "two-layer", hidden=24)
    assert synthesis_macs_per_pixel(wide) == pytest.approx(2 * synthesis_macs_per_pixel(two))


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="three-layer"):
        ShallowC2F(ModelConfig(lambdas=[0.013]), "three-layer")
