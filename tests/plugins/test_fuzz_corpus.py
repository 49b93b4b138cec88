"""The fuzzer's kept corpus and every input it ever flagged, replayed through all
decoding paths (tests/fuzz/replay.py): documented exceptions only, none slow."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import FUZZ, replay

KEPT = sorted(p for d in ("corpus", "crashes") for p in (FUZZ / d).iterdir() if p.is_file())
KEPT = [p for p in KEPT if p.name != "README.md"]


def test_corpus_is_there() -> None:
    assert len(KEPT) >= 6


@pytest.mark.parametrize("path", KEPT, ids=[f"{p.parent.name}/{p.name[:24]}" for p in KEPT])
def test_kept_input_keeps_the_contract(path: Path) -> None:
    start = time.perf_counter()
    replay.check(path.read_bytes())
    assert time.perf_counter() - start < 10.0
