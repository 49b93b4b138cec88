"""The container: header, segments, CRCs, order, limits."""

from __future__ import annotations

import itertools
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c2f_format.format import bitstream as bs
from c2f_format.format.constants import REDUCE_FACTORS
from c2f_format.format.errors import (
    C2FError,
    CorruptStreamError,
    ImageTooLargeError,
    NotC2FError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

MODEL = bytes(range(16))


def header(**kw: object) -> bs.Header:
    fields: dict[str, object] = {
        "width": 100,
        "height": 70,
        "mode": "RGB",
        "quality": 50,
        "model_id": MODEL,
    }
    fields.update(kw)
    return bs.Header(**fields)  # type: ignore[arg-type]


def stream(h: bs.Header | None = None, bands: list[tuple[int, int]] | None = None) -> bytes:
    h = h or header()
    rows = h.latent_size[0]
    parts = [
        h.pack(),
        bs.pack_segment(bs.SEG_HYP1, b"a" * 4),
        bs.pack_segment(bs.SEG_HYP2, b"b" * 8),
    ]
    for row, count in bands if bands is not None else [(0, rows)]:
        parts.append(bs.pack_band(row, count, b"c" * 4))
    parts.append(bs.pack_segment(bs.SEG_END, b""))
    return b"".join(parts)


def test_header_round_trip() -> None:
    h = header(width=1, height=65536, mode="L", quality=100)
    assert bs.parse_header(h.pack()) == h
    assert len(h.pack()) == bs.HEADER_SIZE == 40


def test_padded_and_latent_sizes() -> None:
    h = header(width=100, height=70)
    assert h.padded_size == (128, 128)
    assert h.latent_size == (8, 8)
    assert header(width=1, height=1).latent_size == (4, 4)


def test_reduced_sizes_round_up() -> None:
    h = header(width=299, height=141)
    sizes = {f: h.reduced_size(f) for f in REDUCE_FACTORS}
    assert sizes == {1: (299, 141), 2: (150, 71), 4: (75, 36), 8: (38, 18)}
    assert header(width=1, height=1).reduced_size(8) == (1, 1)


def test_segment_layout_matches_spec() -> None:
    seg = bs.pack_segment(bs.SEG_HYP1, b"xyz")
    assert seg[:4] == b"HYP1"
    assert struct.unpack(">I", seg[4:8]) == (3,)
    assert seg[8:11] == b"xyz"
    assert struct.unpack(">I", seg[11:]) == (zlib.crc32(b"HYP1xyz"),)


def test_parser_accepts_any_split() -> None:
    data = stream(bands=[(0, 3), (3, 5)])
    whole = bs.StreamParser()
    kinds = [s.kind for s in whole.feed(data)]
    assert kinds == [b"HYP1", b"HYP2", b"YBND", b"YBND", b"IEND"]
    bytewise = bs.StreamParser()
    got = [s.kind for i in range(len(data)) for s in bytewise.feed(data[i : i + 1])]
    assert got == kinds and bytewise.finished


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=12))
def test_parser_gives_the_same_segments_however_the_bytes_are_split(cuts: list[int]) -> None:
    data = stream(bands=[(0, 3), (3, 5)])
    whole = [(s.kind, s.offset, s.payload) for s in bs.StreamParser().feed(data)]
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    parser = bs.StreamParser()
    pieces = [
        (s.kind, s.offset, s.payload)
        for a, b in itertools.pairwise(points)
        for s in parser.feed(data[a:b])
    ]
    assert pieces == whole and parser.finished


def test_ancillary_before_hyper_and_unknown_ancillary_skipped() -> None:
    h = header()
    data = stream(h)
    extra = bs.pack_segment(b"tEXt", b"hello") + bs.pack_segment(bs.SEG_ICC, b"icc")
    data = data[: bs.HEADER_SIZE] + extra + data[bs.HEADER_SIZE :]
    parser = bs.StreamParser()
    assert [s.kind for s in parser.feed(data)][:2] == [b"tEXt", b"iCCP"]
    assert parser.finished


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"GIF89a" + bytes(40), NotC2FError, "magic"),
        (bs.MAGIC[:5], TruncatedStreamError, "magic"),
        (header().pack()[:20], TruncatedStreamError, "header"),
    ],
)
def test_header_errors(data: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        bs.parse_header(data)


def test_unknown_major_version() -> None:
    h = header(version=(3, 0))
    with pytest.raises(UnsupportedVersionError, match=r"version 3\.0 .* reads 1\.x and 2\.x"):
        bs.parse_header(h.pack())
    # a newer minor version is readable
    assert bs.parse_header(header(version=(1, 7)).pack()).version == (1, 7)


def test_header_crc() -> None:
    raw = bytearray(header().pack())
    raw[12] ^= 1
    with pytest.raises(CorruptStreamError, match="header CRC"):
        bs.parse_header(bytes(raw))


@pytest.mark.parametrize(("w", "h"), [(0, 10), (10, 0), (65537, 1), (2**32 - 1, 2**32 - 1)])
def test_absurd_dimensions(w: int, h: int) -> None:
    body = struct.pack(">8sBBIIBB16s", bs.MAGIC, 1, 0, w, h, 3, 50, MODEL)
    with pytest.raises(ImageTooLargeError, match="outside"):
        bs.parse_header(body + struct.pack(">I", zlib.crc32(body)))


def test_max_pixels_checked_in_header() -> None:
    with pytest.raises(ImageTooLargeError, match="exceeds the limit"):
        bs.parse_header(header(width=5000, height=5000).pack(), max_pixels=10_000_000)


def test_segment_crc_names_segment() -> None:
    data = bytearray(stream())
    data[bs.HEADER_SIZE + 8] ^= 0x40  # first payload byte of HYP1
    with pytest.raises(CorruptStreamError, match="CRC mismatch in HYP1"):
        bs.StreamParser().feed(bytes(data))


def test_length_beyond_data_waits() -> None:
    """A segment whose length runs past the data is not an error yet: more may come."""
    data = stream()
    parser = bs.StreamParser()
    done = parser.feed(data[:-6])  # inside IEND
    assert not parser.finished and done[-1].kind == bs.SEG_YBND
    assert [s.kind for s in parser.feed(data[-6:])] == [bs.SEG_END]


def test_order_is_checked_from_the_segment_head() -> None:
    """A misplaced segment fails on its first 8 bytes, before its (huge) payload."""
    data = header().pack() + b"HYP2" + struct.pack(">I", 1 << 30)
    with pytest.raises(CorruptStreamError, match="HYP2 segment out of order"):
        bs.StreamParser().feed(data)


def test_many_ancillary_segments_are_refused() -> None:
    data = header().pack() + bs.pack_segment(b"zzzz", b"") * 65
    with pytest.raises(CorruptStreamError, match="more than 64 ancillary"):
        bs.StreamParser().feed(data)


def test_padded_size_counts_against_the_limit() -> None:
    """65536x15 decodes at 65536x64: the limit sees the padded size."""
    with pytest.raises(ImageTooLargeError, match="padded"):
        bs.parse_header(header(width=65536, height=15).pack(), max_pixels=2_000_000)


@pytest.mark.parametrize(
    ("bands", "words"),
    [
        ([(1, 7)], "expected a band starting at row 0"),
        ([(0, 3), (4, 4)], "starting at row 3"),
        ([(0, 9)], "within 8 rows"),
        ([(0, 4)], "IEND after 4 of 8"),
    ],
)
def test_band_order(bands: list[tuple[int, int]], words: str) -> None:
    with pytest.raises(CorruptStreamError, match=words):
        bs.StreamParser().feed(stream(bands=bands))


def test_segment_order() -> None:
    h = header()
    data = h.pack() + bs.pack_segment(bs.SEG_HYP2, b"x")
    with pytest.raises(CorruptStreamError, match="HYP2 segment out of order"):
        bs.StreamParser().feed(data)
    data = h.pack() + bs.pack_segment(b"ZZZZ", b"")
    with pytest.raises(CorruptStreamError, match="unknown critical segment ZZZZ"):
        bs.StreamParser().feed(data)
    data = h.pack() + b"\x00\x01\x02\x03" + bytes(8)
    with pytest.raises(CorruptStreamError, match="invalid segment type"):
        bs.StreamParser().feed(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 300))
def test_parser_never_raises_foreign_exceptions(noise: bytes, cut: int) -> None:
    base = stream()
    data = base[: cut % (len(base) + 1)] + noise
    try:
        bs.StreamParser(max_pixels=1 << 24).feed(data)
    except C2FError:
        pass


def test_alpha_modes_and_their_segment() -> None:
    """Colour modes 2 and 4 (1.1) need exactly one ALPH, right before HYP1; modes 1 and
    3 take none; writers mark only alpha streams 1.1 (spec 2.5)."""
    assert bs.version_for("RGB") == bs.version_for("L") == (1, 0)
    assert bs.version_for("RGBA") == bs.version_for("LA") == (1, 1)
    for mode in ("LA", "RGBA"):
        h = header(mode=mode, version=bs.version_for(mode))
        assert bs.parse_header(h.pack()) == h and h.has_alpha
        plain = stream(h)
        alpha = bs.pack_segment(bs.SEG_ALPHA, b"\x00\xff")
        data = plain[: bs.HEADER_SIZE] + alpha + plain[bs.HEADER_SIZE :]
        parser = bs.StreamParser()
        assert [s.kind for s in parser.feed(data)][:2] == [bs.SEG_ALPHA, bs.SEG_HYP1]
        assert parser.finished
        with pytest.raises(CorruptStreamError, match=r"HYP1 segment out of order .*ALPH"):
            bs.StreamParser().feed(plain)
    rgb = stream()
    with pytest.raises(CorruptStreamError, match="colour mode RGB, which has no alpha"):
        bs.StreamParser().feed(rgb[: bs.HEADER_SIZE] + bs.pack_segment(bs.SEG_ALPHA, b"\x00\xff"))
    body = struct.pack(">8sBBIIBB16s", bs.MAGIC, 1, 1, 10, 10, 5, 50, MODEL)
    with pytest.raises(CorruptStreamError, match="unknown colour mode 5"):
        bs.parse_header(body + struct.pack(">I", zlib.crc32(body)))


def test_hyper_end_is_just_past_hyp2() -> None:
    data = stream()
    end = bs.HEADER_SIZE + 2 * bs.SEGMENT_OVERHEAD + 4 + 8
    assert bs.hyper_end(bs.iter_segments(data)) == end
    assert bs.hyper_end(bs.iter_segments(data[:end])) == end
    with pytest.raises(TruncatedStreamError, match="hyper segments"):
        bs.hyper_end(bs.iter_segments(data[: end - 1]))
