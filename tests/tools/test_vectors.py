"""The conformance vectors in spec/vectors decode as the spec says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import VECTORS
from PIL import Image

import c2f_format
from c2f_format.codec import precision
from c2f_format.format.weights_file import weights_index
from c2f_format.tools.conformance import ConformanceError, check_vector

ENTRIES = json.loads((VECTORS / "vectors.json").read_text())["vectors"]


def test_vectors_exist() -> None:
    assert len(ENTRIES) >= 4


@pytest.mark.parametrize("choice", ["float32", "bfloat16"])
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["stream"] for e in ENTRIES])
def test_vector_decodes_exactly(entry: dict[str, object], choice: str) -> None:
    """float32 is the reference (precision.py); the bfloat16 synthesis, the default on
    CPUs that have it, is held to the same tolerance."""
    data = (VECTORS / str(entry["stream"])).read_bytes()
    assert data[20:36].hex() in weights_index(), "vector made with a model not shipped"
    with precision.using(choice):
        check_vector(VECTORS, entry, device="cpu")


def test_a_vector_has_alpha_and_metadata_and_the_others_stay_1_0() -> None:
    """Streams without 1.1 features keep version 1.0 (spec 2.5), byte for byte."""
    infos = {
        e["stream"]: c2f_format.info((VECTORS / str(e["stream"])).read_bytes()) for e in ENTRIES
    }
    with_alpha = [name for name, i in infos.items() if i.header.mode in ("RGBA", "LA")]
    assert with_alpha, "no vector exercises alpha"
    for name, result in infos.items():
        kinds = {kind for kind, _, _ in result.segments}
        if name in with_alpha:
            assert result.header.version == (1, 1)
            assert {"ALPH", "eXIf", "iCCP"} <= kinds
        else:
            assert result.header.version == (1, 0) and "ALPH" not in kinds


@pytest.mark.parametrize("damage", ["alpha", "exif", "icc_profile"])
def test_the_check_catches_alpha_and_metadata(tmp_path: Path, damage: str) -> None:
    """A reference whose alpha is one step off, or whose metadata differs, fails."""
    entry = next(e for e in ENTRIES if "rgba" in str(e["stream"]))
    shutil.copy(VECTORS / str(entry["stream"]), tmp_path)
    with Image.open(VECTORS / str(entry["reference"])) as ref:
        ref.load()
    pixels = np.asarray(ref).copy()
    exif, icc = ref.info["exif"], ref.info["icc_profile"]
    if damage == "alpha":
        pixels[5, 7, 3] ^= 1
    elif damage == "exif":
        exif = exif[:-1] + bytes([exif[-1] ^ 1])
    else:
        icc = icc[:-1] + bytes([icc[-1] ^ 1])
    Image.fromarray(pixels).save(tmp_path / str(entry["reference"]), exif=exif, icc_profile=icc)
    with pytest.raises(ConformanceError, match=f"{damage} differs"):
        check_vector(tmp_path, entry, device="cpu")
