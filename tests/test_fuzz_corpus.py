"""The fuzzer's kept corpus and every input it ever flagged, replayed through all
decoding paths (tests/fuzz/replay.py): documented exceptions only, none slow."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
_spec = importlib.util.spec_from_file_location("c2f_fuzz_replay", FUZZ / "replay.py")
assert _spec is not None and _spec.loader is not None
replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(replay)

KEPT = sorted(p for d in ("corpus", "crashes") for p in (FUZZ / d).iterdir() if p.is_file())
KEPT = [p for p in KEPT if p.name != "README.md"]


def test_corpus_is_there() -> None:
    assert len(KEPT) >= 6


@pytest.mark.parametrize("path", KEPT, ids=[f"{p.parent.name}/{p.name[:24]}" for p in KEPT])
def test_kept_input_keeps_the_contract(path: Path) -> None:
    start = time.perf_counter()
    replay.check(path.read_bytes())
    assert time.perf_counter() - start < 10.0
