"""Weights are data, not code: no pickle, and the file must hash to the stream's model id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import c2f_format
from c2f_format.codec import torch_engine
from c2f_format.format.weights_file import weights_dir, weights_index
from c2f_format.networks.weights import load_weights


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran while loading weights",))


@pytest.fixture
def installed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the shipped weights, installed through $C2F_WEIGHTS_DIR."""
    folder = tmp_path / "weights"
    shutil.copytree(weights_dir(), folder)
    monkeypatch.setenv("C2F_WEIGHTS_DIR", str(folder))
    monkeypatch.setattr(torch_engine, "_CACHE", {})  # load from the copy, not the cache
    return folder


def _npz_file(folder: Path) -> Path:
    return folder / next(iter(weights_index().values()))


def test_a_pickled_object_is_refused_not_run(
    installed_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _npz_file(installed_copy)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["config"] = np.array([_Boom()], dtype=object)
    np.savez(path, **arrays)
    assert b"print" in path.read_bytes()  # the pickled call is in the file
    with pytest.raises(c2f_format.WeightsError, match=r"not a valid archive|config"):
        load_weights(path)
    assert "code ran" not in capsys.readouterr().out


@pytest.mark.v1
def test_tampered_weights_do_not_match_the_model_id(
    installed_copy: Path, small_stream_v1: bytes
) -> None:
    path = _npz_file(installed_copy)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    name = next(n for n in arrays if n.endswith("/bias") and n.startswith("int/"))
    arrays[name] = arrays[name].copy()
    arrays[name][0] += 1  # one integer changed: every stream would decode differently
    np.savez(path, **arrays)
    with pytest.raises(c2f_format.WeightsError, match="hashes to"):
        c2f_format.decode(small_stream_v1)


def test_a_malformed_index_is_a_weights_error(installed_copy: Path) -> None:
    (installed_copy / "index.json").write_text(json.dumps({"models": "nope"}))
    with pytest.raises(c2f_format.WeightsError, match="malformed"):
        weights_index()


def test_the_integer_layers_are_the_specs() -> None:
    """weights_file.INTEGER_LAYERS (spec 5's list) names every IntConv of the model, in
    the model's order."""
    from c2f_format.format.weights_file import INTEGER_LAYERS
    from c2f_format.networks.layers import IntConv
    from c2f_format.networks.model import C2FModel, ModelConfig

    net = C2FModel(ModelConfig())
    found = tuple(name for name, mod in net.named_modules() if isinstance(mod, IntConv))
    assert found == INTEGER_LAYERS


def test_only_the_specs_5x5_transforms_export() -> None:
    """A training arm's 3x3 transforms stay in training: no v1 decoder builds them, so
    export names the problem; a 5x5 model's config carries no `kernel` key (spec 5)."""
    import torch

    from c2f_format.networks.model import C2FModel, ModelConfig
    from c2f_format.networks.weights import export_arrays

    def small(kernel: int) -> ModelConfig:
        return ModelConfig(n=16, m=16, c2=8, c1=8, h2=8, h1=8, p3=16, p2=8, fuse=4, kernel=kernel)

    narrow = C2FModel(small(3))
    first = narrow.g_a[0]
    assert isinstance(first, torch.nn.Conv2d) and first.kernel_size == (3, 3)
    out = narrow(torch.rand(1, 3, 64, 64), torch.tensor([1.0]))
    assert out["x_hat"].shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="3x3 kernels"):
        export_arrays(narrow)
    config = json.loads(export_arrays(C2FModel(small(5))).pop("config").tobytes())
    assert "kernel" not in config
