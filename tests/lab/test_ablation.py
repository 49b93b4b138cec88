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


def test_every_arm_is_scored_where_its_lambda_is_the_yardstick_s() -> None:
    """A variable-rate model is scored at the continuous level whose lambda is 0.013."""
    from c2f_format.networks.model import C2FModel, ModelConfig, lambdas_at

    for lambdas in ([0.0018, 0.0035, 0.0067, 0.013, 0.025], [0.0009, 0.0128, 0.0248], [0.013]):
        model = C2FModel(ModelConfig(lambdas=lambdas))
        level = ablation.eval_level(model)
        lam = float(lambdas_at(lambdas, torch.tensor([level]))[0])
        assert lam == pytest.approx(ablation.LAMBDA, rel=1e-5)


@pytest.mark.slow
def test_a_trained_state_is_scored_and_drawn_beside_the_arms(tmp_path: Path) -> None:
    arm = "c2f-single-bf16"
    args = ["run", arm, "--data", str(DATA), "--val", str(DATA), "--val-count", "1"]
    args += ["--cpu-minutes", "0.05", "--crop", "64", "--batch", "2", "--out", str(tmp_path)]
    assert ablation.main(args) == 0
    state = tmp_path / arm / "checkpoint.pt"
    args = ["score", str(state), "--name", "ref", "--what", "a reference", "--val", str(DATA)]
    assert ablation.main([*args, "--val-count", "1", "--out", str(tmp_path)]) == 0
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    arm_end = json.loads((tmp_path / arm / "result.json").read_text())["curve"][-1]
    assert ref["reference"] and ref["steps"] == arm_end["steps"]
    # the arm scores itself with its bfloat16 transforms on, `score` in float32
    assert ref["curve"][0]["cost"] == pytest.approx(arm_end["cost"], rel=1e-2)
    out = tmp_path / "curves.png"
    assert ablation.main(["plot", str(tmp_path), "-o", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size[0] > 0


@pytest.mark.slow
def test_an_arm_resumed_goes_on_where_it_stopped(tmp_path: Path) -> None:
    """Run for 0.04 CPU-minutes, then to 0.08: the second run starts from the first's
    state and adds to its curve instead of starting again."""
    arm = "balle2018"
    args = ["run", arm, "--data", str(DATA), "--val", str(DATA), "--val-count", "1"]
    args += ["--crop", "64", "--batch", "2", "--out", str(tmp_path)]
    assert ablation.main([*args, "--cpu-minutes", "0.04"]) == 0
    first = json.loads((tmp_path / arm / "result.json").read_text())
    assert ablation.main([*args, "--cpu-minutes", "0.08"]) == 0
    second = json.loads((tmp_path / arm / "result.json").read_text())
    assert second["curve"][: len(first["curve"])] == first["curve"]
    assert len(second["curve"]) > len(first["curve"])
    assert second["steps"] > first["steps"] and second["cpu_minutes"] >= 0.079


def test_webp_is_scored_on_the_same_crops_as_a_reference(tmp_path: Path) -> None:
    args = ["webp", "--val", str(DATA), "--val-count", "1", "--out", str(tmp_path)]
    assert ablation.main(args) == 0
    ref = json.loads((tmp_path / "webp" / "result.json").read_text())
    assert ref["reference"] and len(ref["levels"]) == 20
    rates = [p["bpp"] for p in ref["levels"]]
    assert rates == sorted(rates)  # quality up, rate up
    assert ref["curve"][0]["cost"] == min(p["cost"] for p in ref["levels"])
    assert "WebP at its best quality" in ablation.table(tmp_path)  # no rate per CPU-second
