"""Shared fixtures: the sample image and streams encoded once per session. (Helpers that
tests import, such as the data paths, are in helpers.py.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from helpers import KODIM23
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


@pytest.fixture
def small_file(tmp_path: Path, small_stream: bytes) -> Path:
    """`small_stream` as the file tmp_path/s.c2f, the input of the CLI's tests."""
    path = tmp_path / "s.c2f"
    path.write_bytes(small_stream)
    return path


@pytest.fixture(scope="session")
def kodim23_stream(kodim23: Image.Image) -> bytes:
    return c2f_format.encode(kodim23, quality=75)
