"""CPU <-> CUDA exactness. Runs wherever CUDA is present (CI has none: skipped there);
`python -m pytest tests/tools/test_cuda.py -rs` on a GPU machine records what ran."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import VECTORS

import c2f_format
from c2f_format.codec.decoding import latent_digest
from c2f_format.codec.metrics import psnr
from c2f_format.tools.conformance import check_vector

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]
ENTRIES = json.loads((VECTORS / "vectors.json").read_text())["vectors"]


def _latents(data: bytes, device: str) -> str:
    dec = c2f_format.StreamDecoder(device=device)
    dec.feed(data)
    assert dec.complete
    return latent_digest(dec.latents())


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["stream"] for e in ENTRIES])
def test_vectors_decode_on_cuda(entry: dict[str, object]) -> None:
    check_vector(VECTORS, entry, device="cuda")


def test_streams_cross_devices(kodim23_stream: bytes, small_rgb: np.ndarray) -> None:
    """Encoded on one device, decoded on the other: the same integers, images within the
    spec's float tolerance."""
    from_cuda = c2f_format.encode(small_rgb, quality=60, device="cuda")
    for data in (kodim23_stream, from_cuda):
        assert _latents(data, "cpu") == _latents(data, "cuda")
        on_cpu = np.asarray(c2f_format.decode(data, device="cpu"), dtype=np.int16)
        on_cuda = np.asarray(c2f_format.decode(data, device="cuda"), dtype=np.int16)
        assert np.abs(on_cpu - on_cuda).max() <= 8  # spec section 11's bounds
        assert psnr(on_cpu, on_cuda) >= 45
