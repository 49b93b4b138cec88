"""Hostile and broken input: a seeded corpus of damaged streams through the API and
through Pillow, and decoding from several threads at once."""

from __future__ import annotations

import io
import threading
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

import c2f_format
from c2f_format import bitstream as bs

PILLOW_ERRORS = (Image.UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError)


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


@pytest.fixture(scope="module")
def corpus(small_stream: bytes, small_rgb: np.ndarray) -> list[tuple[str, bytes]]:
    other = c2f_format.encode(small_rgb[:, ::-1].copy(), quality=30)
    return damaged_streams(small_stream, other, 400, seed=2026)


def test_damaged_streams_through_the_api(corpus: list[tuple[str, bytes]]) -> None:
    slowest = 0.0
    outcomes: dict[str, int] = {}
    for kind, data in corpus:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                c2f_format.decode(data, allow_truncated=kind == "truncate")
                outcome = "image"
            except c2f_format.C2FError as exc:
                outcome = type(exc).__name__
        slowest = max(slowest, time.perf_counter() - start)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert slowest < 10.0
    assert sum(outcomes.values()) == 400
    assert outcomes.get("CorruptStreamError", 0) > 50  # the CRCs catch the flips


def test_damaged_streams_through_pillow(corpus: list[tuple[str, bytes]]) -> None:
    slowest = 0.0
    for _, data in corpus:
        start = time.perf_counter()
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except PILLOW_ERRORS:
            pass
        parser = ImageFile.Parser()
        try:
            for pos in range(0, len(data), 700):
                parser.feed(data[pos : pos + 700])
            parser.close()
        except PILLOW_ERRORS:
            pass
        slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 10.0


def test_concurrent_decodes_agree(small_stream: bytes, kodim23_stream: bytes) -> None:
    """One shared model, several threads, no state leaking between calls."""
    expected = {
        "small": c2f_format.decode(small_stream).tobytes(),
        "kodim23": c2f_format.decode(kodim23_stream).tobytes(),
    }
    results: list[tuple[str, bytes]] = []
    errors: list[BaseException] = []

    def work(name: str, data: bytes) -> None:
        try:
            for _ in range(2):
                results.append((name, c2f_format.decode(data).tobytes()))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(name, data))
        for name, data in [("small", small_stream), ("kodim23", kodim23_stream)] * 2
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert len(results) == 8
    assert all(img == expected[name] for name, img in results)
    from c2f_format.codec import _CACHE

    assert len({id(c) for c in _CACHE.values()}) == len(_CACHE)  # one model per device


def test_header_limits_are_checked_before_allocation() -> None:
    h = bs.Header(65536, 65536, "RGB", 50, bytes(16))
    with pytest.raises(c2f_format.ImageTooLargeError):
        c2f_format.decode(h.pack())
