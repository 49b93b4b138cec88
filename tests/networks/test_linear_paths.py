"""A model with linear paths beside its stride-2 stages (spec 8) exports, encodes, and
decodes alike on the torch and NumPy engines, at full and reduced scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import c2f_format
from c2f_format.codec import numpy_engine, precision, torch_engine
from c2f_format.format.weights_file import weights_dir, weights_index
from c2f_format.networks.weights import publish_weights, trainable_model
from c2f_format.train.growth import add_linear_paths

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


@pytest.fixture
def paths_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped model with linear paths of random weights, installed alone."""
    shipped = weights_dir() / next(iter(weights_index().values()))
    model = add_linear_paths(trainable_model(shipped))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in (*model.a_paths.parameters(), *model.s_paths.parameters()):
            p.normal_(std=0.02)
    model.set_fake_quant(True)
    publish_weights(model.eval(), tmp_path / "weights" / "paths.npz")
    monkeypatch.setenv("C2F_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(torch_engine, "_CACHE", {})
    monkeypatch.setattr(numpy_engine, "_CACHE", {})


def test_linear_paths_decode_alike_on_both_engines(
    paths_model: None, small_rgb: np.ndarray, small_stream_v1: bytes
) -> None:
    data = c2f_format.encode(small_rgb, quality=50)
    assert c2f_format.info(data).header.model_id != c2f_format.info(small_stream_v1).header.model_id
    for reduce in (1, 2, 4):
        with precision.using("float32"):  # NumPy's precision: bfloat16 adds its own steps
            by_torch = np.asarray(c2f_format.decode(data, backend="torch", reduce=reduce), np.int16)
        by_numpy = np.asarray(c2f_format.decode(data, backend="numpy", reduce=reduce), np.int16)
        assert by_torch.shape == by_numpy.shape
        assert int(np.abs(by_torch - by_numpy).max()) <= 1, reduce
    full = np.asarray(c2f_format.decode(data), np.float64)
    assert 10 * np.log10(255**2 / np.mean((full - small_rgb) ** 2)) > 20


def test_a_config_key_the_decoder_lacks_is_refused(tmp_path: Path) -> None:
    import json

    from c2f_format.format.errors import WeightsError
    from c2f_format.format.weights_file import read_arrays
    from c2f_format.networks.numpy_model import load_model
    from c2f_format.networks.weights import load_weights

    shipped = weights_dir() / next(iter(weights_index().values()))
    arrays = dict(read_arrays(shipped))
    config = json.loads(arrays["config"].tobytes().decode())
    config["attention"] = True
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)  # type: ignore[arg-type]
    for load in (load_weights, load_model):
        with pytest.raises(WeightsError, match="attention"):
            load(bad)
