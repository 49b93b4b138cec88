"""lab/wavelet.py: the fixed CDF 9/7 analysis is inverted exactly by its synthesis, is
near-orthonormal (so a coefficient's error is the pixels' error), and P3 predicts a mean
for the approximation only, and keeps it so through training."""

from __future__ import annotations

import torch
from wavelet import CHANNELS, WaveletC2F, wavelet_analysis, wavelet_config, wavelet_synthesis

from c2f_format.train.objective import rd_loss
from c2f_format.train.state import make_optimizer


def test_the_synthesis_inverts_the_analysis() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 96)
    y = wavelet_analysis(x)
    assert y.shape == (2, CHANNELS, 4, 6)
    assert torch.allclose(wavelet_synthesis(y), x, atol=1e-5)


def test_every_basis_image_has_about_unit_norm() -> None:
    for channel in (0, 300, 575, 600, 719, 740, 760, 767):  # level 1, 2, 3, 4, approximation
        e = torch.zeros(1, CHANNELS, 6, 6)
        e[0, channel, 3, 3] = 1.0
        norm = float((wavelet_synthesis(e) - 0.5).norm())
        assert 0.95 < norm < 1.1, (channel, norm)


def test_detail_channels_get_no_mean_before_or_after_a_step() -> None:
    torch.manual_seed(0)
    model = WaveletC2F(wavelet_config([0.002, 0.02]), magnitudes=True)
    opt = make_optimizer(model, 1e-2)
    rd_loss(model, torch.rand(2, 3, 64, 64), torch.tensor([0.0, 1.0]))["loss"].backward()
    opt.step()
    mean = model.p3.mean
    assert torch.count_nonzero(mean.weight[:-3]) == 0 and torch.count_nonzero(mean.bias[:-3]) == 0
    assert torch.count_nonzero(mean.weight[-3:]) > 0
