"""The conformance vectors in spec/vectors decode as the spec says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from c2f_format.codec import weights_index
from c2f_format.conformance import check_vector

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
ENTRIES = json.loads((VECTORS / "vectors.json").read_text())["vectors"]


def test_vectors_exist() -> None:
    assert len(ENTRIES) >= 4


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["stream"] for e in ENTRIES])
def test_vector_decodes_exactly(entry: dict[str, object]) -> None:
    data = (VECTORS / str(entry["stream"])).read_bytes()
    assert data[20:36].hex() in weights_index(), "vector made with a model not shipped"
    check_vector(VECTORS, entry, device="cpu")
