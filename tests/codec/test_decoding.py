"""The decoding pipeline beside the encoder (decoding.py, `TorchEngine.decode`) and the plain
classes that feed it (`StreamDecoder`, `StreamParser`)."""

from __future__ import annotations

import numpy as np
import pytest

import c2f_format
from c2f_format.codec.decoding import LatentDecoder, decode_stream, latent_digest
from c2f_format.codec.numpy_engine import get_numpy_engine
from c2f_format.codec.torch_engine import get_torch_engine, pick_device
from c2f_format.format import bitstream as bs
from c2f_format.format.errors import InvalidArgumentError, TruncatedStreamError, UnknownModelError

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


@pytest.mark.parametrize("reduce", [1, 2, 8])
def test_codec_decode_mirrors_encode(small_rgb: np.ndarray, reduce: int) -> None:
    """`decode_stream(codec, codec.encode(...))` is `c2f_format.decode` pixel for pixel."""
    codec = get_torch_engine(pick_device("cpu"))
    data = codec.encode(small_rgb, "RGB", 60)
    assert data == c2f_format.encode(small_rgb, quality=60, device="cpu")
    expected = np.asarray(c2f_format.decode(data, device="cpu", backend="torch", reduce=reduce))
    assert np.array_equal(decode_stream(codec, data, reduce), expected)


def test_numpy_engine_decode_matches_the_api(small_stream_v1: bytes) -> None:
    expected = np.asarray(c2f_format.decode(small_stream_v1, backend="numpy"))
    assert np.array_equal(decode_stream(get_numpy_engine(), small_stream_v1), expected)


def test_latent_decoder_gives_the_stream_decoders_integers(small_stream_v1: bytes) -> None:
    codec = get_torch_engine(pick_device("cpu"))
    parser = bs.StreamParser()
    segments = parser.feed(small_stream_v1)
    assert parser.header is not None
    latent = LatentDecoder(codec, parser.header)
    for seg in segments:
        latent.add(seg)
    assert latent.preview_ready and latent.rows == parser.header.latent_size[0]
    dec = c2f_format.StreamDecoder(device="cpu", backend="torch")
    dec.feed(small_stream_v1)
    assert latent_digest(latent.latents()) == latent_digest(dec.latents())
    assert "LatentDecoder" in repr(latent)


def test_decode_stream_refuses_what_it_cannot_decode(small_stream_v1: bytes) -> None:
    codec = get_torch_engine(pick_device("cpu"))
    with pytest.raises(TruncatedStreamError, match="before IEND"):
        decode_stream(codec, small_stream_v1[:-20])
    with pytest.raises(InvalidArgumentError, match="reduce"):
        decode_stream(codec, small_stream_v1, 3)
    header = bs.parse_header(small_stream_v1)
    other_model = bytes(b ^ 0xFF for b in header.model_id)
    swapped = bs.Header(
        header.width, header.height, header.mode, header.quality, other_model, header.version
    )
    data = swapped.pack() + small_stream_v1[bs.HEADER_SIZE :]
    with pytest.raises(UnknownModelError, match="not this engine's"):
        decode_stream(codec, data)


def _no_payload(text: str, data: bytes) -> None:
    assert len(text) < 100, text
    assert "\\x" not in text and "b'" not in text and "bytearray" not in text
    assert data[-40:-20].hex() not in text


def test_reprs_are_short_and_hold_no_bytes(small_stream_v1: bytes) -> None:
    dec = c2f_format.StreamDecoder(backend="numpy")
    assert repr(dec) == "<StreamDecoder: no header yet, 0 bytes>"
    dec.feed(small_stream_v1[:-30])
    _no_payload(repr(dec), small_stream_v1)
    assert repr(dec).startswith("<StreamDecoder 80x96 RGB: ")
    dec.feed(small_stream_v1[-30:])
    assert repr(dec).endswith(f"latent rows, {len(small_stream_v1)} bytes, complete>")
    parser = bs.StreamParser()
    assert repr(parser) == "<StreamParser no header yet: 0 segments, 0 bytes>"
    parser.feed(small_stream_v1)
    _no_payload(repr(parser), small_stream_v1)
    assert repr(parser).endswith(f"{len(small_stream_v1)} bytes, finished>")


def test_damaged_decoder_says_so(small_stream_v1: bytes) -> None:
    seg = next(s for s in bs.iter_segments(small_stream_v1) if s.kind == bs.SEG_YBND)
    data = bytearray(small_stream_v1)
    data[seg.offset + seg.size - 1] ^= 1  # its CRC
    dec = c2f_format.StreamDecoder(allow_truncated=True, backend="numpy")
    dec.feed(bytes(data))
    assert repr(dec).endswith(", damaged>") and dec.damage
    parser = bs.StreamParser(skip_damaged_bands=True)
    parser.feed(bytes(data))
    assert ", 1 damaged" in repr(parser)


def test_decoders_and_parsers_compare_by_identity() -> None:
    assert c2f_format.StreamDecoder() != c2f_format.StreamDecoder()
    assert bs.StreamParser() != bs.StreamParser()
    dec = c2f_format.StreamDecoder()
    assert dec == dec and len({dec, c2f_format.StreamDecoder()}) == 2


def test_constructor_order_is_kept() -> None:
    dec = c2f_format.StreamDecoder("cpu", None, True, "numpy")
    assert (dec.device, dec.max_pixels, dec.allow_truncated, dec.backend) == (
        "cpu",
        None,
        True,
        "numpy",
    )
    parser = bs.StreamParser(1000, True)
    assert (parser.max_pixels, parser.skip_damaged_bands) == (1000, True)


def test_the_engines_old_names_still_work() -> None:
    from c2f_format.codec import numpy_engine, torch_engine

    assert torch_engine.Codec is torch_engine.TorchEngine
    assert torch_engine.get_codec is torch_engine.get_torch_engine
    assert numpy_engine.NumpyDecoder is numpy_engine.NumpyEngine
    assert numpy_engine.get_decoder is numpy_engine.get_numpy_engine


def test_tolerate_damage_is_the_old_name_of_allow_truncated() -> None:
    with pytest.warns(DeprecationWarning, match="allow_truncated"):
        dec = c2f_format.StreamDecoder(tolerate_damage=True, backend="numpy")
    assert dec.allow_truncated and dec.tolerate_damage
    assert not c2f_format.StreamDecoder(backend="numpy").tolerate_damage
