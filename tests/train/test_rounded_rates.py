"""`C2FModel.rounded_rates`: in training, the rates of the latents the codec codes."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from c2f_format.networks.model import C2FModel, ModelConfig


def test_rounded_rates_in_training_are_the_rates_the_codec_pays() -> None:
    torch.manual_seed(0)
    model = C2FModel(ModelConfig(gain_schedule="fixed"))
    x, level = torch.rand(1, 3, 64, 64), torch.tensor([3.0])
    model.eval()
    with torch.no_grad():
        coded = model(x, level)
    model.train()
    model.rounded_rates = True
    trained = model(x, level)
    assert torch.allclose(trained["bits_y"], coded["bits_y"])
    assert torch.allclose(trained["bits_z"], coded["bits_z"])
    trained["bits_y"].sum().backward()  # straight through the rounding to the encoder
    grad = cast(nn.Conv2d, model.g_a[0]).weight.grad
    assert grad is not None and grad.abs().sum() > 0
    model.rounded_rates = False
    with torch.no_grad():
        noisy = model(x, level)
    assert not torch.allclose(noisy["bits_y"], coded["bits_y"])
