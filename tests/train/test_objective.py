"""The training objective: the RD cost per image and how the levels are weighted."""

from __future__ import annotations

import pytest
import torch

from c2f_format.networks.model import C2FModel, ModelConfig, lambdas_at
from c2f_format.train.objective import rd_loss


def _model() -> C2FModel:
    torch.manual_seed(0)
    config = ModelConfig(n=16, m=16, c2=8, c1=8, h2=8, h1=8, p3=16, p2=8, fuse=4)
    return C2FModel(config).eval()


@pytest.mark.parametrize("balance", [0.5, 1.0])
def test_balance_weights_each_image_by_its_lambda(balance: float) -> None:
    """Each image's cost is scaled by (lambda_mid / lambda)^p: the highest level's no
    longer outweighs the lowest's by the ratio of their costs."""
    model = _model()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64)
    level = torch.tensor([0.0, float(len(model.config.lambdas) - 1)])
    with torch.no_grad():
        plain = [rd_loss(model, x[i : i + 1], level[i : i + 1])["loss"] for i in range(2)]
        both = rd_loss(model, x, level, balance)["loss"]
    lambdas = model.config.lambdas
    middle = (min(lambdas) * max(lambdas)) ** 0.5
    weights = (middle / lambdas_at(lambdas, level)) ** balance
    expected = (weights[0] * plain[0] + weights[1] * plain[1]) / 2
    torch.testing.assert_close(both, expected, rtol=1e-4, atol=0)
    assert weights[0] > 1 > weights[1]


def test_no_balance_is_the_plain_mean() -> None:
    model = _model()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64)
    level = torch.tensor([1.0, 4.5])
    with torch.no_grad():
        plain = [rd_loss(model, x[i : i + 1], level[i : i + 1])["loss"] for i in range(2)]
        both = rd_loss(model, x, level)["loss"]
    torch.testing.assert_close(both, (plain[0] + plain[1]) / 2, rtol=1e-4, atol=0)
