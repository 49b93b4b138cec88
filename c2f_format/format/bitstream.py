"""Bitstream v1 container: header and CRC-checked segments (spec/bitstream-v1.md).

This module knows bytes, not images: it packs and parses the container, validating
every field before anything is allocated from it. `StreamParser` accepts bytes in any
pieces and reports each segment the moment its CRC has been checked, which is what a
progressive decoder needs.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .alpha import max_payload as max_alpha_payload
from .constants import MODEL_ID_BYTES
from .errors import (
    CorruptStreamError,
    ImageTooLargeError,
    NotC2FError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

MAGIC = b"\x89c2f\r\n\x1a\n"
VERSION_MAJOR = 1
PYRAMID_MAJOR = 2  # version 2: the wavelet model (LOWP and LEVL segments instead of y)
MAJOR_VERSIONS = (VERSION_MAJOR, PYRAMID_MAJOR)
PYRAMID_LEVELS = 6  # LEVL segments in a version 2 stream, coarsest (6) first
ALPHA_MINOR = 1  # the revision (1.1) that added colour modes 2 and 4 and ALPH
MAX_DIMENSION = 1 << 16  # width and height are at most 65536
# colour mode field: the number of channels
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
ALPHA_MODES = ("LA", "RGBA")  # carried by an ALPH segment, new in version 1.1
PAD_MULTIPLE = 64  # the model works on images padded to a multiple of this
LATENT_FACTOR = 16  # y is at 1/16 of the padded size

# magic, major, minor, width, height, mode, quality, model id
_HEADER = struct.Struct(f">8sBBIIBB{MODEL_ID_BYTES}s")
HEADER_SIZE = _HEADER.size + 4  # + CRC-32
_SEG_HEAD = struct.Struct(">4sI")
SEGMENT_OVERHEAD = _SEG_HEAD.size + 4
MAX_SEGMENT_LENGTH = (1 << 31) - 1
_BAND = struct.Struct(">HH")

SEG_HYP1 = b"HYP1"
SEG_HYP2 = b"HYP2"
SEG_YBND = b"YBND"
SEG_END = b"IEND"
SEG_EXIF = b"eXIf"
SEG_ICC = b"iCCP"
SEG_ALPHA = b"ALPH"
SEG_LOWP = b"LOWP"  # version 2: the 1/64 low-pass, one coded unit
SEG_LEVL = b"LEVL"  # version 2: a level byte, then the level's coded unit
# the names of before they were named as the spec names the segments, kept working
SEG_Z1, SEG_Z2, SEG_Y = SEG_HYP1, SEG_HYP2, SEG_YBND
CRITICAL_TYPES = (SEG_ALPHA, SEG_HYP1, SEG_HYP2, SEG_YBND, SEG_END, SEG_LOWP, SEG_LEVL)


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    mode: str  # one of MODES' values: "L", "LA", "RGB", "RGBA"
    quality: int
    model_id: bytes
    version: tuple[int, int] = (VERSION_MAJOR, 0)  # writers: version_for(mode)

    @property
    def version_text(self) -> str:
        """The version as written in reports: "major.minor"."""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def has_alpha(self) -> bool:
        return self.mode in ALPHA_MODES

    @property
    def padded_size(self) -> tuple[int, int]:
        """(height, width) rounded up to the model's multiple."""
        return (_round_up(self.height), _round_up(self.width))

    @property
    def latent_size(self) -> tuple[int, int]:
        """(rows, columns) of y."""
        h, w = self.padded_size
        return (h // LATENT_FACTOR, w // LATENT_FACTOR)

    def reduced_size(self, factor: int) -> tuple[int, int]:
        """(width, height) of the image decoded at 1/`factor` (see `reduced_size`)."""
        return reduced_size(self.width, self.height, factor)

    def pack(self) -> bytes:
        mode = {v: k for k, v in MODES.items()}[self.mode]
        body = _HEADER.pack(
            MAGIC,
            self.version[0],
            self.version[1],
            self.width,
            self.height,
            mode,
            self.quality,
            self.model_id,
        )
        return body + struct.pack(">I", zlib.crc32(body))


def version_for(mode: str, pyramid: bool = False) -> tuple[int, int]:
    """The version a writer puts in the header: the oldest revision that has everything
    the stream uses (GIF's rule), so a stream without alpha stays 1.0 byte for byte.
    The wavelet model's streams are 2.0 (alpha included)."""
    if pyramid:
        return (PYRAMID_MAJOR, 0)
    return (VERSION_MAJOR, ALPHA_MINOR if mode in ALPHA_MODES else 0)


def pack_level(level: int, coded: bytes) -> bytes:
    return pack_segment(SEG_LEVL, bytes([level]) + coded)


def parse_level(payload: bytes) -> tuple[int, bytes]:
    if not payload:
        raise CorruptStreamError("LEVL segment has no level byte")
    return payload[0], payload[1:]


def reduced_size(width: int, height: int, factor: int) -> tuple[int, int]:
    """(width, height) of an image reduced by `factor` (one of REDUCE_FACTORS): each side
    rounded up, so the last row and column of blocks, however partial, keep a pixel."""
    return (-(-width // factor), -(-height // factor))


def _round_up(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


def parse_header(data: bytes, max_pixels: int | None = None) -> Header:
    """Validate and decode the fixed-size header at the start of `data`."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(bytes(data[: len(MAGIC)])):
            raise TruncatedStreamError(f"stream ends inside the magic ({len(data)} bytes)")
        raise NotC2FError("not a c2f stream (magic bytes do not match)")
    if len(data) < HEADER_SIZE:
        raise TruncatedStreamError(
            f"stream ends inside the header ({len(data)} of {HEADER_SIZE} bytes)"
        )
    body = bytes(data[: _HEADER.size])
    _, major, minor, width, height, mode, quality, model_id = _HEADER.unpack(body)
    (crc,) = struct.unpack(">I", data[_HEADER.size : HEADER_SIZE])
    if major not in MAJOR_VERSIONS:
        readable = " and ".join(f"{v}.x" for v in MAJOR_VERSIONS)
        raise UnsupportedVersionError(
            f"c2f version {major}.{minor} is not supported (this decoder reads {readable})"
        )
    if crc != zlib.crc32(body):
        raise CorruptStreamError("header CRC mismatch")
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise ImageTooLargeError(
            f"image size {width}x{height} is outside 1..{MAX_DIMENSION} per side"
        )
    # the decoder works at the padded size, so that is what the limit counts
    padded = _round_up(width) * _round_up(height)
    if max_pixels is not None and padded > max_pixels:
        raise ImageTooLargeError(
            f"image size {width}x{height} ({padded} pixels padded to a multiple of "
            f"{PAD_MULTIPLE}) exceeds the limit of {max_pixels} pixels"
        )
    if mode not in MODES:
        raise CorruptStreamError(f"unknown colour mode {mode}")
    if not 1 <= quality <= 100:
        raise CorruptStreamError(f"quality {quality} is outside 1..100")
    return Header(width, height, MODES[mode], quality, bytes(model_id), (major, minor))


@dataclass(frozen=True)
class Segment:
    kind: bytes
    offset: int  # where the segment starts in the stream
    payload: bytes

    @property
    def size(self) -> int:
        return SEGMENT_OVERHEAD + len(self.payload)


def pack_segment(kind: bytes, payload: bytes) -> bytes:
    if len(kind) != 4:
        raise ValueError("segment type must be 4 bytes")
    head = _SEG_HEAD.pack(kind, len(payload))
    return head + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))


def pack_band(row: int, rows: int, coded: bytes) -> bytes:
    return pack_segment(SEG_YBND, _BAND.pack(row, rows) + coded)


def parse_band(payload: bytes) -> tuple[int, int, bytes]:
    if len(payload) < _BAND.size:
        raise CorruptStreamError("YBND segment is shorter than its band header")
    row, rows = _BAND.unpack_from(payload)
    return row, rows, payload[_BAND.size :]


def _type_name(kind: bytes) -> str:
    return kind.decode("ascii", "backslashreplace")


MAX_ANCILLARY = 64  # more metadata segments than this is not a real image
# Metadata payloads together (ICC profiles run to a few hundred KiB, Exif to 64 KiB in
# JPEG): checked from the segment heads, so metadata cannot make a reader hold much.
MAX_METADATA_BYTES = 16 << 20


class StreamParser:
    """Incremental parser: `feed()` bytes in any pieces, get checked segments back.

    Enforces segment order (ancillary segments, then ALPH if the colour mode has alpha,
    HYP1, HYP2, one or more YBND covering y's rows in order, then IEND) and each
    segment's CRC. The order of a segment (and the length of an ALPH) is checked as
    soon as its 8-byte head arrives, before its payload. Work is linear in the stream
    length however it is split. With `skip_damaged_bands`, a YBND
    segment whose CRC fails is skipped (its offset goes to `damaged`) and the next band
    may start at a later row: its rows are lost, the rest of the image is not.
    """

    def __init__(self, max_pixels: int | None = None, skip_damaged_bands: bool = False) -> None:
        self.max_pixels = max_pixels
        # Skip a YBND segment whose CRC fails (its rows stay unknown) instead of raising.
        self.skip_damaged_bands = skip_damaged_bands
        self.header: Header | None = None
        self.segments: list[Segment] = []
        self.finished = False
        self.damaged: list[int] = []  # offsets of skipped YBND segments
        self._buffer = bytearray()
        self._pos = 0  # parse position in _buffer
        self._offset = 0  # stream offset of _buffer[0]
        self._critical = 0  # critical segments accepted so far
        self._ancillary: set[bytes] = set()
        self._ancillary_count = 0
        self._ancillary_bytes = 0
        self._rows_seen = 0
        self._levels_seen = 0  # version 2's LEVL segments
        self._gap = False  # a damaged band was skipped; the next band may start later

    def __repr__(self) -> str:
        """Where the parser stands, in a line (never the buffered bytes)."""
        h = self.header
        size = "no header yet" if h is None else f"{h.width}x{h.height} {h.mode}"
        state = ", finished" if self.finished else ""
        damaged = f", {len(self.damaged)} damaged" if self.damaged else ""
        return (
            f"<StreamParser {size}: {len(self.segments)} segments, "
            f"{self.bytes_received} bytes{damaged}{state}>"
        )

    @property
    def bytes_received(self) -> int:
        return self._offset + len(self._buffer)

    @property
    def _here(self) -> int:
        return self._offset + self._pos

    def incomplete(self) -> str | None:
        """The segment that the received bytes end inside, in words, or None when they
        end between segments. A length field damaged into a larger number looks the
        same as a cut stream, so the message names both."""
        if self.header is None or self.finished or len(self._buffer) - self._pos < 8:
            return None
        kind, length = _SEG_HEAD.unpack_from(self._buffer, self._pos)
        follow = len(self._buffer) - self._pos - _SEG_HEAD.size
        return (
            f"the {_type_name(kind)} segment at offset {self._here} declares {length} "
            f"payload bytes and {follow} bytes follow its head (cut short, or its length "
            "field is damaged)"
        )

    def feed(self, data: bytes) -> list[Segment]:
        """Add bytes; return the segments completed by them."""
        if self.finished:
            return []
        self._buffer += data
        done: list[Segment] = []
        if self.header is None:
            if len(self._buffer) < HEADER_SIZE:
                if not MAGIC.startswith(bytes(self._buffer[: len(MAGIC)])):
                    parse_header(bytes(self._buffer))  # raises NotC2FError
                return done
            self.header = parse_header(bytes(self._buffer[:HEADER_SIZE]), self.max_pixels)
            self._pos = HEADER_SIZE
        while not self.finished and len(self._buffer) - self._pos >= _SEG_HEAD.size:
            kind, length = _SEG_HEAD.unpack_from(self._buffer, self._pos)
            self._check_head(kind, length)
            total = SEGMENT_OVERHEAD + length
            if len(self._buffer) - self._pos < total:
                break
            start = self._pos + _SEG_HEAD.size
            payload = bytes(self._buffer[start : start + length])
            (crc,) = struct.unpack_from(">I", self._buffer, start + length)
            if crc != zlib.crc32(payload, zlib.crc32(kind)):
                if self.skip_damaged_bands and kind == SEG_YBND:
                    if len(self.damaged) >= self.header.latent_size[0]:  # bounded work
                        raise CorruptStreamError("more damaged YBND segments than latent rows")
                    self.damaged.append(self._here)
                    self._gap = True
                    self._pos += total
                    continue
                raise CorruptStreamError(
                    f"CRC mismatch in {_type_name(kind)} segment at offset {self._here}"
                )
            seg = Segment(kind, self._here, payload)
            self._check_body(seg)
            self._pos += total
            self.segments.append(seg)
            done.append(seg)
            self.finished = kind == SEG_END
        if self._pos > len(self._buffer) // 2:  # compact now and then, not per segment
            del self._buffer[: self._pos]
            self._offset += self._pos
            self._pos = 0
        return done

    def _check_head(self, kind: bytes, length: int) -> None:
        where = f"at offset {self._here}"
        if not (kind[:1].isalpha() and kind.isalnum() and kind.isascii()):
            raise CorruptStreamError(f"invalid segment type {kind!r} {where}")
        if length > MAX_SEGMENT_LENGTH:
            raise CorruptStreamError(f"segment length {length} {where} is too large")
        name = _type_name(kind)
        if 97 <= kind[0] <= 122:  # ancillary
            if self._critical:
                raise CorruptStreamError(
                    f"{name} segment {where} after a critical segment (ancillary ones come first)"
                )
            if self._ancillary_count >= MAX_ANCILLARY:
                raise CorruptStreamError(f"more than {MAX_ANCILLARY} ancillary segments")
            if self._ancillary_bytes + length > MAX_METADATA_BYTES:
                raise CorruptStreamError(
                    f"{name} segment {where} takes the metadata past {MAX_METADATA_BYTES >> 20} MiB"
                )
            return
        if kind not in CRITICAL_TYPES:
            raise CorruptStreamError(f"unknown critical segment {name} {where}")
        assert self.header is not None
        if kind == SEG_ALPHA and not self.header.has_alpha:
            raise CorruptStreamError(
                f"ALPH segment {where} in a stream of colour mode {self.header.mode}, "
                "which has no alpha"
            )
        alpha: tuple[bytes, ...] = (SEG_ALPHA,) if self.header.has_alpha else ()
        expected: tuple[bytes, ...]
        if self.header.version[0] == PYRAMID_MAJOR:
            order = (*alpha, SEG_LOWP, *(SEG_LEVL,) * PYRAMID_LEVELS, SEG_END)
            expected = (order[min(self._critical, len(order) - 1)],)
        else:
            fixed = (*alpha, SEG_HYP1, SEG_HYP2)
            expected = (
                (fixed[self._critical],) if self._critical < len(fixed) else (SEG_YBND, SEG_END)
            )
        if kind not in expected:
            raise CorruptStreamError(
                f"{name} segment out of order {where} (expected {_type_name(expected[0])})"
            )
        if kind == SEG_ALPHA and length > max_alpha_payload(self.header.width, self.header.height):
            raise CorruptStreamError(
                f"ALPH segment {where} declares {length} bytes, more than any alpha plane "
                f"of {self.header.width}x{self.header.height} needs"
            )

    def _check_body(self, seg: Segment) -> None:
        assert self.header is not None
        if seg.kind not in CRITICAL_TYPES:
            if seg.kind in (SEG_EXIF, SEG_ICC) and seg.kind in self._ancillary:
                raise CorruptStreamError(f"second {_type_name(seg.kind)} segment")
            self._ancillary.add(seg.kind)
            self._ancillary_count += 1
            self._ancillary_bytes += len(seg.payload)
            return
        rows = self.header.latent_size[0]
        if seg.kind == SEG_LEVL:
            level, _ = parse_level(seg.payload)
            expected_level = PYRAMID_LEVELS - self._levels_seen
            if level != expected_level:
                raise CorruptStreamError(
                    f"LEVL segment at offset {seg.offset} is level {level}, "
                    f"expected level {expected_level}"
                )
            self._levels_seen += 1
        elif seg.kind == SEG_YBND:
            row, count, _ = parse_band(seg.payload)
            starts_right = row >= self._rows_seen if self._gap else row == self._rows_seen
            if not starts_right or count < 1 or row + count > rows:
                raise CorruptStreamError(
                    f"YBND segment covers latent rows {row}..{row + count - 1}, "
                    f"expected a band starting at row {self._rows_seen} within {rows} rows"
                )
            self._rows_seen = row + count
            self._gap = False
        elif seg.kind == SEG_END and self.header.version[0] == VERSION_MAJOR:
            if self._rows_seen != rows and not self._gap:
                raise CorruptStreamError(f"IEND after {self._rows_seen} of {rows} latent rows")
        if seg.kind == SEG_END and seg.payload:
            raise CorruptStreamError("IEND segment must be empty")
        self._critical += 1


def iter_segments(data: bytes, max_pixels: int | None = None) -> Iterator[Segment]:
    parser = StreamParser(max_pixels=max_pixels)
    yield from parser.feed(data)


PREVIEW_LEVEL = 4  # version 2: the preview (1/8) is complete after this LEVL segment


def hyper_end(segments: Iterable[Segment]) -> int:
    """Where the segments the preview needs end: the offset just past HYP2 (version 1)
    or past the LEVL of level 4 (version 2), so that the stream's bytes up to there are
    all the preview needs. Raises `TruncatedStreamError` when `segments` has neither."""
    for seg in segments:
        if seg.kind == SEG_HYP2 or (seg.kind == SEG_LEVL and seg.payload[:1] == b"\x04"):
            return seg.offset + seg.size
    raise TruncatedStreamError("the stream ends before its hyper segments are complete")
