"""What the tests share besides fixtures: data paths and the fuzzer's replay contract.

Tests import these (`from helpers import KODIM23`); conftest.py holds only fixtures and
collection settings. Torch-free: the decode-only job (.ci/run) imports it too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

DATA = Path(__file__).parent / "data"
KODIM23 = DATA / "kodim23.png"
FUZZ = Path(__file__).parent / "fuzz"


def _load_replay() -> ModuleType:
    """tests/fuzz/replay.py: the decoding contract for one input (shared with the fuzzer)."""
    spec = importlib.util.spec_from_file_location("c2f_fuzz_replay", FUZZ / "replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


replay = _load_replay()
