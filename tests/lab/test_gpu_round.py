"""The GPU round cannot rot: its whole path (checks, resume, device-resident crops,
training, state and log out, accept back) runs here on the CPU for a few steps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gpu_round  # lab/ (pytest's pythonpath)
import pytest
import torch
from helpers import REPO

from c2f_format.train.loop import LOG_FILE
from c2f_format.train.state import STATE_FILE, load_state

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


@pytest.mark.slow
def test_dry_run_then_accept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert gpu_round.main(["--dry-run", "--repo", str(REPO), "--out", str(out)]) == 0
    summary = json.loads((out / "round.json").read_text())
    assert summary["dry_run"] and summary["round"]["steps"] == 3
    assert summary["checks"]["test_cuda_exit"] == 0  # skipped without CUDA, never failed
    cross = summary["checks"]["cross_device"].values()
    assert all(c["same_symbols_on_cpu_and_device"] for c in cross)
    assert summary["state_bytes"] <= gpu_round.RETURN_FILE_LIMIT
    assert len(list(out.iterdir())) <= 8  # what may come back

    committed = REPO / gpu_round.TRAINING / STATE_FILE
    _, _, after = load_state(out / "state.pt", torch.device("cpu"), 1e-4)
    before = load_state(committed, torch.device("cpu"), 1e-4)[2].step if committed.exists() else 0
    assert after.step == before + 3 and after.rounds[-1]["steps"] == 3

    training = tmp_path / "training"
    assert gpu_round.accept(out, training) == 0
    with (training / LOG_FILE).open() as f:
        assert [int(row[0]) for row in csv.reader(f)] == [before + 1, before + 2, before + 3]
    assert gpu_round.accept(out, training) == 1  # not ahead of what is there now


def test_what_travels_fits() -> None:
    """Code, weights and committed state leave room for the packed photos and wheels."""
    tracked = gpu_round.travel_size(REPO, [])
    assert tracked + gpu_round.CARRIED_BUDGET <= gpu_round.TRAVEL_LIMIT
