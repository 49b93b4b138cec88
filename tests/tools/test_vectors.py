"""The conformance vectors decode as the spec says: spec/vectors-v2 (the shipped model's,
exact to the bit) and spec/vectors (version 1's, made with c2f-v3)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import KODIM23, VECTORS, VECTORS_V2, run_python
from PIL import Image

import c2f_format
from c2f_format.codec import precision
from c2f_format.format.weights_file import weights_index
from c2f_format.tools.conformance import ConformanceError, check_vector, make_vectors

ENTRIES = json.loads((VECTORS / "vectors.json").read_text())["vectors"]
ENTRIES_V2 = json.loads((VECTORS_V2 / "vectors.json").read_text())["vectors"]
BACKENDS = ["numpy"] + (["torch"] if importlib.util.find_spec("torch") else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("entry", ENTRIES_V2, ids=[e["stream"] for e in ENTRIES_V2])
def test_version_2_vector_decodes_to_the_bit(entry: dict[str, object], backend: str) -> None:
    data = (VECTORS_V2 / str(entry["stream"])).read_bytes()
    assert data[20:36].hex() == next(iter(weights_index())), "not the shipped model's"
    assert c2f_format.info(data).header.version[0] == 2
    check_vector(VECTORS_V2, entry, backend=backend)


def test_version_2_vectors_are_what_the_encoder_writes(tmp_path: Path) -> None:
    """Remade from the sample image, the streams are the same bytes: the encoder's
    choices run on the decoder's integers, and its bit costs lie on a 2**-16 grid
    (pyramid_coding.BIT_GRID), so a libm's last bits do not move them."""
    entries = make_vectors(KODIM23, tmp_path)
    assert [e["stream_sha256"] for e in entries] == [e["stream_sha256"] for e in ENTRIES_V2]
    for entry in ENTRIES_V2:
        data = (VECTORS_V2 / str(entry["stream"])).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["stream_sha256"]


def test_version_2_decodes_alike_at_every_thread_count() -> None:
    """The context model's products are sums of integers below 2**24 in float32 or below
    2**53 in float64, exact in any order: one BLAS thread or four (asked for with
    $C2F_THREADS, which the coder hands to the BLAS) give the same pixels."""
    stream = VECTORS_V2 / "kodim23-crop-q50.c2f"
    code = (
        "import sys, hashlib, numpy as np, c2f_format; "
        "from threadpoolctl import threadpool_info; "
        "from c2f_format.codec.threads import blas_threads; "
        "im = c2f_format.decode(open(sys.argv[1], 'rb').read()); "
        "ctx = blas_threads(); ctx.__enter__(); "
        "print(sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'})); "
        "print(hashlib.sha256(np.asarray(im).tobytes()).hexdigest())"
    )
    digests = set()
    for n in ("1", "4"):
        env = {"C2F_THREADS": n}
        done = run_python(code, str(stream), env=env)
        assert done.returncode == 0, done.stderr.decode()
        threads, digest = done.stdout.decode().split("\n")[:2]
        assert threads == f"[{n}]"
        digests.add(digest)
    assert len(digests) == 1


def test_the_exact_digest_is_what_each_version_holds_exact() -> None:
    """`StreamDecoder.exact_digest`: version 2's pixels, as the reference PNG has them;
    version 1's decoded integers, as vectors.json records them."""
    entry = ENTRIES_V2[0]
    dec = c2f_format.StreamDecoder()
    dec.feed((VECTORS_V2 / str(entry["stream"])).read_bytes())
    with Image.open(VECTORS_V2 / str(entry["reference"])) as ref:
        pixels = np.asarray(ref.convert("RGB")).tobytes()
    assert dec.exact_digest() == hashlib.sha256(pixels).hexdigest()
    entry = ENTRIES[0]
    old = c2f_format.StreamDecoder()
    old.feed((VECTORS / str(entry["stream"])).read_bytes())
    assert old.exact_digest() == entry["latents_sha256"]


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
    """Version 1 streams without 1.1 features keep version 1.0 (spec 2.5), byte for byte."""
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
