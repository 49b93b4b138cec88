"""What the tests share besides fixtures: data paths, the fuzzer's replay contract and a
Python subprocess that runs the installed package.

Tests import these (`from helpers import KODIM23`); conftest.py holds only fixtures and
collection settings. Torch-free: the decode-only job (.ci/run) imports it too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"
KODIM23 = DATA / "kodim23.png"
FUZZ = TESTS / "fuzz"
VECTORS = REPO / "spec" / "vectors"  # version 1's, made with c2f-v3
VECTORS_V2 = REPO / "spec" / "vectors-v2"  # the shipped model's
KODAK = REPO.parent / "shared" / "data" / "kodak"  # ../shared beside the checkout, as in CI


def _load_replay() -> ModuleType:
    """tests/fuzz/replay.py: the decoding contract for one input (shared with the fuzzer)."""
    spec = importlib.util.spec_from_file_location("c2f_fuzz_replay", FUZZ / "replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


replay = _load_replay()


def run_python(
    code: str,
    *args: str,
    timeout: float = 300,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`python -c code args` in an empty folder, so that it imports the installed
    c2f_format (the code always runs installed) and not the checkout's folder; `env`
    adds to this process's environment."""
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            input=stdin,
            capture_output=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
            env=None if env is None else {**os.environ, **env},
        )


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[tuple[Path, str]]:
    """A new folder nobody may write, and the error the OS gives for writing it:
    permissions do unless we are root, for whom a read-only tmpfs is mounted there
    (the test is skipped where that is not allowed)."""
    import pytest

    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path, "Permission denied"
        finally:
            path.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "c2f-test", str(path)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"root, and no read-only folder can be mounted: {done.stderr.strip()}")
    try:
        yield path, "Read-only file system"
    finally:
        subprocess.run(["umount", str(path)], check=False)


def damaged_streams(a: bytes, b: bytes, count: int, seed: int) -> list[tuple[str, bytes]]:
    """Bit flips, truncations, insertions, splices and garbled header fields."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        kind = ["flip", "truncate", "insert", "splice", "header"][i % 5]
        buf = bytearray(a)
        if kind == "flip":
            for _ in range(int(rng.integers(1, 9))):
                pos = int(rng.integers(len(buf)))
                buf[pos] ^= 1 << int(rng.integers(8))
        elif kind == "truncate":
            del buf[int(rng.integers(len(buf))) :]
        elif kind == "insert":
            pos = int(rng.integers(len(buf)))
            buf[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == "splice":
            cut_a, cut_b = int(rng.integers(len(a))), int(rng.integers(len(b)))
            buf = bytearray(a[:cut_a] + b[cut_b:])
        else:  # a header field set to an arbitrary value, CRC fixed up so it gets parsed
            field_at = [8, 9, 10, 14, 18, 19, 20][int(rng.integers(7))]
            width = 4 if field_at in (10, 14) else 1
            buf[field_at : field_at + width] = rng.integers(0, 256, width, dtype=np.uint8).tobytes()
            if rng.random() < 0.8:
                body = bytes(buf[:36])
                buf[36:40] = zlib.crc32(body).to_bytes(4, "big")
        out.append((kind, bytes(buf)))
    return out
