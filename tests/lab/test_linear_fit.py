"""lab/linear_fit.py: the least-squares start reads each pixel's latents through the
taps the transposed convolutions use, so solving it recovers a linear decoder exactly."""

from __future__ import annotations

import torch
from linear_fit import PAD, STRIDE, _features, _targets, neighbours
from shallow import ShallowC2F

from c2f_format.networks.model import ModelConfig


def _linear_decoder(model: ShallowC2F) -> None:
    """up1 silent, up2 depth-to-space: the synthesis is up2(res1(v) + hyper_up(h2))."""
    with torch.no_grad():
        model.up1.weight.zero_()
        model.up2.weight.zero_()
        for c in range(3):
            for ay in range(2):
                for ax in range(2):
                    model.up2.weight[c * 4 + ay * 2 + ax, c, ay + PAD, ax + PAD] = 1.0
        for conv in (model.up1, model.up2, model.hyper_up):
            assert conv.bias is not None
            conv.bias.zero_()


def test_every_phase_is_its_features_times_the_taps_of_its_neighbours() -> None:
    torch.manual_seed(0)
    model = ShallowC2F(ModelConfig(lambdas=[0.013], m=16, h2=8), "two-layer")
    _linear_decoder(model)
    v, h2 = torch.randn(2, 16, 3, 4), torch.randn(2, 8, 3, 4)
    with torch.no_grad():
        x = model.up2(model.igdn(model.up1(v)) + model.res1(v) + model.hyper_up(h2))
    assert x.shape == (2, 3, 48, 64)
    assert model.res1.bias is not None
    for ry in range(STRIDE):
        for rx in range(STRIDE):
            weights = [
                torch.cat(
                    [model.res1.weight[:, :12, ky, kx], model.hyper_up.weight[:, :12, ky, kx]]
                )
                for _, ky in neighbours(ry)
                for _, kx in neighbours(rx)
            ]
            w = torch.cat([*weights, model.res1.bias[None, :12]])
            predicted = _features(v, h2, ry, rx) @ w
            torch.testing.assert_close(predicted, _targets(x, ry, rx), rtol=1e-4, atol=1e-4)


def test_a_pixel_reads_one_or_two_latents_a_side_depending_on_its_phase() -> None:
    counts = [len(neighbours(r)) for r in range(STRIDE)]
    assert counts == [2, 2, 1, 1, 1, 1, 2, 2]
    assert all(0 <= k < 12 for r in range(STRIDE) for _, k in neighbours(r))
