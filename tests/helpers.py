"""What the tests share besides fixtures: data paths, the fuzzer's replay contract and a
Python subprocess that runs the installed package.

Tests import these (`from helpers import KODIM23`); conftest.py holds only fixtures and
collection settings. Torch-free: the decode-only job (.ci/run) imports it too.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"
KODIM23 = DATA / "kodim23.png"
FUZZ = TESTS / "fuzz"
VECTORS = REPO / "spec" / "vectors"


def _load_replay() -> ModuleType:
    """tests/fuzz/replay.py: the decoding contract for one input (shared with the fuzzer)."""
    spec = importlib.util.spec_from_file_location("c2f_fuzz_replay", FUZZ / "replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


replay = _load_replay()


def run_python(
    code: str, *args: str, timeout: float = 300, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """`python -c code args` in an empty folder, so that it imports the installed
    c2f_format (the code always runs installed) and not the checkout's folder."""
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            input=stdin,
            capture_output=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
