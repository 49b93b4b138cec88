"""Shared fixtures: the sample image and streams encoded once per session. (Helpers that
tests import, such as the data paths, are in helpers.py.)"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import KODIM23, REPO
from PIL import Image

import c2f_format

# A decode-only install (no torch: .ci/run's second job) runs these modules, whose
# streams come from files; the others encode or test torch itself and are not collected.
# Paths are relative to tests/ (collect_ignore's are resolved against this folder).
TORCH_FREE = {
    "test_architecture.py",
    "format/test_bitstream.py",
    "format/test_reference_rans.py",
    "plugins/test_fuzz_corpus.py",
    "codec/test_numpy_engine.py",
    "tools/test_vectors.py",
}
HAS_TORCH = importlib.util.find_spec("torch") is not None
_HERE = Path(__file__).parent
collect_ignore = (
    []
    if HAS_TORCH
    else sorted(
        path
        for path in (p.relative_to(_HERE).as_posix() for p in _HERE.rglob("test_*.py"))
        if path not in TORCH_FREE
    )
)


def pytest_report_header() -> str | None:
    if HAS_TORCH:
        return None
    return f"torch is not installed: {len(collect_ignore)} test modules that need it left out"


@pytest.fixture(scope="session")
def v1_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights set with c2f-v3 alone, so `encode` writes version 1 streams."""
    folder = tmp_path_factory.mktemp("weights-v1")
    index = json.loads((REPO / "weights" / "index.json").read_text())
    entry = next(m for m in index["models"] if m["file"] == "c2f-v3.npz")
    (folder / entry["file"]).symlink_to(REPO / "weights" / entry["file"])
    (folder / "index.json").write_text(json.dumps({"models": [entry]}))
    return folder


@pytest.fixture(scope="module", autouse=True)
def _version_1_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module marked `v1` as a whole has c2f-v3 alone for its module fixtures too."""
    if request.node.get_closest_marker("v1"):
        with _weights_dir(request.getfixturevalue("v1_weights")):
            yield
    else:
        yield


@pytest.fixture(autouse=True)
def _version_1_model(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests marked `v1` (version 1's segments, tiles, latents and c2f-v3 itself) run
    with c2f-v3 as the newest installed model; the others with the shipped set. Their
    streams are `small_stream_v1` and `kodim23_stream_v1`."""
    if request.node.get_closest_marker("v1"):
        monkeypatch.setenv("C2F_WEIGHTS_DIR", str(request.getfixturevalue("v1_weights")))


@contextlib.contextmanager
def _weights_dir(folder: Path) -> Iterator[None]:
    """$C2F_WEIGHTS_DIR set to `folder` for a session fixture (monkeypatch is per test)."""
    before = os.environ.get("C2F_WEIGHTS_DIR")
    os.environ["C2F_WEIGHTS_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["C2F_WEIGHTS_DIR"]
        else:
            os.environ["C2F_WEIGHTS_DIR"] = before


@pytest.fixture(scope="session")
def kodim23() -> Image.Image:
    with Image.open(KODIM23) as im:
        return im.convert("RGB")


@pytest.fixture(scope="session")
def small_rgb() -> np.ndarray:
    """A 96x80 crop: big enough to be a real photo, small enough to be fast."""
    with Image.open(KODIM23) as im:
        return np.asarray(im.convert("RGB"))[200:296, 300:380].copy()


@pytest.fixture(scope="session")
def small_stream(small_rgb: np.ndarray) -> bytes:
    return c2f_format.encode(small_rgb, quality=60)


@pytest.fixture(scope="session")
def small_stream_v1(small_rgb: np.ndarray, v1_weights: Path) -> bytes:
    with _weights_dir(v1_weights):
        return c2f_format.encode(small_rgb, quality=60)


@pytest.fixture
def small_file(tmp_path: Path, small_stream: bytes) -> Path:
    """`small_stream` as the file tmp_path/s.c2f, the input of the CLI's tests."""
    path = tmp_path / "s.c2f"
    path.write_bytes(small_stream)
    return path


@pytest.fixture(scope="session")
def kodim23_stream(kodim23: Image.Image) -> bytes:
    return c2f_format.encode(kodim23, quality=75)


@pytest.fixture(scope="session")
def kodim23_stream_v1(kodim23: Image.Image, v1_weights: Path) -> bytes:
    with _weights_dir(v1_weights):
        return c2f_format.encode(kodim23, quality=75)
