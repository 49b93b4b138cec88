"""The training command end to end, tiny: pack, train, resume, export, then encode and
decode with the exported weights as an installation would."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import c2f_format
from c2f_format.codec import torch_engine
from c2f_format.format.weights_file import weights_dir, weights_index
from c2f_format.train.cli import main as train

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


@pytest.mark.slow
def test_pack_train_resume_export(
    tmp_path: Path, small_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(small_rgb, 11 * i, axis=0)).save(photos / f"p{i}.png")
    pack = tmp_path / "pack"
    assert train(["--data", str(photos), "--pack", str(pack)]) == 0
    assert len(list(pack.glob("*.jpg"))) == 3

    run, weights = tmp_path / "run", tmp_path / "weights" / "tiny.npz"
    common = ["--data", str(pack), "--run", str(run), "--batch", "2", "--crop", "64"]
    common += ["--log-every", "1", "--val-every", "1000", "--threads", "1"]
    assert train([*common, "--iters", "2"]) == 0
    assert (run / "checkpoint.pt").exists()
    assert train([*common, "--iters", "4", "--export", str(weights)]) == 0  # resumes at 2
    with (run / "log.csv").open() as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert steps == sorted(steps) and steps[-1] == 4 and steps.count(1) == 1

    monkeypatch.setenv("C2F_WEIGHTS_DIR", str(weights.parent))
    monkeypatch.setattr(torch_engine, "_CACHE", {})
    data = c2f_format.encode(small_rgb, quality=50)
    assert c2f_format.info(data).header.model_id.hex() in weights_index()
    assert c2f_format.decode(data).size == (80, 96)


def test_a_run_can_start_from_shipped_weights(tmp_path: Path, small_rgb: np.ndarray) -> None:
    """--init-from: the float model rebuilt from a weights file exports to the same
    integer layers, and training goes on from it."""
    from c2f_format.networks.weights import export_arrays, trainable_model

    shipped = weights_dir() / next(iter(weights_index().values()))
    model = trainable_model(shipped)
    model.set_fake_quant(True)
    again = export_arrays(model)
    with np.load(shipped) as original:
        int_names = [k for k in original.files if k.startswith("int/")]
        same = [k for k in int_names if np.array_equal(original[k], again[k])]
        # a bias may move by one unit where the rebuilt float sits on a rounding edge
        assert len(same) >= len(int_names) - 2
        for k in int_names:
            assert np.abs(original[k].astype(np.int64) - again[k]).max() <= 1

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(small_rgb).save(photos / "p.png")
    run = tmp_path / "run"
    args = ["--data", str(photos), "--run", str(run), "--batch", "1", "--crop", "64"]
    args += ["--iters", "1", "--threads", "1", "--init-from", str(shipped)]
    assert train(args) == 0
    assert (run / "checkpoint.pt").exists()


def test_gains_are_projected_onto_a_line_in_log_gain() -> None:
    """After projection every channel's log-gain is linear in the level, so the
    interpolation between trained levels follows the same line (no rate spikes at the
    trained levels) and projecting again changes nothing."""
    import torch

    from c2f_format.networks.model import C2FModel

    model = C2FModel()
    with torch.no_grad():
        model.gain.mul_(torch.rand_like(model.gain) + 0.5)  # scramble, as training drifts
    model.project_gains()
    for param in (model.gain, model.inv_gain):
        log = (param.detach().abs() + 1e-4).log().double()
        assert torch.allclose(
            log[2:] - 2 * log[1:-1] + log[:-2], torch.zeros(1).double(), atol=1e-4
        )
    before = model.gain.detach().clone()
    model.project_gains()
    assert torch.allclose(model.gain, before, rtol=1e-5)
    gain_at = lambda t: model.gains(t)[0].log()  # noqa: E731
    assert torch.allclose(gain_at(1.5), (gain_at(1.0) + gain_at(2.0)) / 2, atol=1e-4)
    assert torch.allclose(gain_at(2.5) - gain_at(1.5), gain_at(3.5) - gain_at(2.5), atol=1e-4)


def test_second_moments_pack_to_a_byte_within_a_quarter_octave() -> None:
    """The committed state stores Adam's second moments as 8-bit logarithms."""
    from c2f_format.train.state import pack_second_moment, unpack_second_moment

    sq = torch.cat([torch.zeros(3), torch.logspace(-29, 7, 500)])
    packed = pack_second_moment(sq)
    assert packed.dtype == torch.uint8
    back = unpack_second_moment(packed)
    assert torch.equal(back[:3], torch.zeros(3))
    ratio = back[3:] / sq[3:]
    assert float(ratio.min()) >= 2**-0.25 - 1e-6 and float(ratio.max()) <= 2**0.25 + 1e-6
    # states written before stored bfloat16: still read
    assert torch.equal(unpack_second_moment(sq.to(torch.bfloat16)), sq.to(torch.bfloat16).float())


@pytest.mark.slow
def test_export_extends_the_levels_and_calibrates_them(
    tmp_path: Path, small_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--extend-levels: the exported model has the asked levels beyond the trained ones,
    a quality range inside them, and codes with it as an installation would."""
    from c2f_format.networks.weights import load_weights

    shipped = weights_dir() / next(iter(weights_index().values()))
    trained = load_weights(shipped).net.config.lambdas
    val = tmp_path / "val"
    val.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(small_rgb, 17 * i, axis=1)).save(val / f"v{i}.png")
    out = tmp_path / "weights" / "wider.npz"
    args = ["--run", str(tmp_path / "run"), "--init-from", str(shipped), "--export-only"]
    args += ["--export", str(out), "--val", str(val), "--extend-levels", "1", "2"]
    assert train([*args, "--threads", "1"]) == 0
    config = load_weights(out).net.config
    assert len(config.lambdas) == len(trained) + 3
    assert config.lambdas[1 : 1 + len(trained)] == trained
    assert config.quality_levels is not None
    t0, t1 = config.quality_levels
    assert 0.0 <= t0 < t1 <= len(config.lambdas) - 1

    monkeypatch.setenv("C2F_WEIGHTS_DIR", str(out.parent))
    monkeypatch.setattr(torch_engine, "_CACHE", {})
    sizes = [len(c2f_format.encode(small_rgb, quality=q)) for q in (1, 100)]
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize(
    ("extend", "val", "message"),
    [(["-1", "0"], True, "counts >= 0"), (["1", "1"], False, "needs --val")],
)
def test_extend_levels_is_checked_before_any_work(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extend: list[str],
    val: bool,
    message: str,
) -> None:
    shipped = weights_dir() / next(iter(weights_index().values()))
    args = ["--run", str(tmp_path / "run"), "--init-from", str(shipped), "--export-only"]
    args += ["--export", str(tmp_path / "w.npz"), "--extend-levels", *extend]
    args += ["--val", str(tmp_path)] if val else []
    with pytest.raises(SystemExit) as exc:
        train(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w.npz").exists()
