"""The ablation runner and its yardstick, tiny: every arm trains, scores and tabulates."""

from __future__ import annotations

import json
from pathlib import Path

import ablation  # lab/ (pytest's pythonpath)
import pytest
import torch
from helpers import DATA
from yardstick import FactorizedDensity


@pytest.mark.parametrize("arm", ["c2f-variable-fixed", "c2f-single-int", "balle2018"])
@pytest.mark.slow
def test_an_arm_runs_and_scores(tmp_path: Path, arm: str) -> None:
    args = ["run", arm, "--data", str(DATA), "--val", str(DATA), "--val-count", "1"]
    args += ["--cpu-minutes", "0.05", "--crop", "64", "--batch", "2", "--out", str(tmp_path)]
    assert ablation.main(args) == 0
    result = json.loads((tmp_path / arm / "result.json").read_text())
    assert result["steps"] > 0 and result["curve"][-1]["bpp"] > 0
    assert len(result["levels"]) == (6 if "variable" in arm else 1)
    assert result["what"] in ablation.table(tmp_path)


def test_factorized_density_is_a_distribution() -> None:
    """Each channel's probabilities of all integers sum to one, whatever the parameters."""
    density = FactorizedDensity(1)
    with torch.no_grad():
        for p in density.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    z = torch.arange(-300, 301, dtype=torch.float32).view(1, 1, 1, -1)
    bits = torch.stack([density.bits(z[:, :, :, i : i + 1]) for i in range(z.shape[3])])
    total = torch.exp2(-bits).sum()
    assert total.item() == pytest.approx(1.0, abs=1e-3)
