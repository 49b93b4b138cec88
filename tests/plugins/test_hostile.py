"""Hostile and broken input: a seeded corpus of damaged streams through the API and
through Pillow, and decoding from several threads at once."""

from __future__ import annotations

import io
import threading
import time
import tracemalloc
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
import pytest
from helpers import damaged_streams, replay
from PIL import Image, ImageFile

import c2f_format
from c2f_format.format import alpha as alpha_coding
from c2f_format.format import bitstream as bs

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)

PILLOW_ERRORS = (Image.UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError)


@pytest.fixture(scope="module")
def corpus(small_stream_v1: bytes, small_rgb: np.ndarray) -> list[tuple[str, bytes]]:
    other = c2f_format.encode(small_rgb[:, ::-1].copy(), quality=30)
    return damaged_streams(small_stream_v1, other, 400, seed=2026)


def _outcomes(
    corpus: list[tuple[str, bytes]], outcomes_of: Callable[[str, bytes], Iterable[str]]
) -> tuple[float, Counter[str]]:
    """Each damaged stream through `outcomes_of(kind, data)`, warnings silenced: the
    seconds the slowest one took, and how often each outcome came."""
    slowest = 0.0
    outcomes: Counter[str] = Counter()
    for kind, data in corpus:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcomes.update(outcomes_of(kind, data))
        slowest = max(slowest, time.perf_counter() - start)
    return slowest, outcomes


def _through_the_api(kind: str, data: bytes) -> list[str]:
    try:
        c2f_format.decode(data, allow_truncated=kind == "truncate")
    except c2f_format.C2FError as exc:
        return [type(exc).__name__]
    return ["image"]


def test_damaged_streams_through_the_api(corpus: list[tuple[str, bytes]]) -> None:
    slowest, outcomes = _outcomes(corpus, _through_the_api)
    assert slowest < 10.0
    assert sum(outcomes.values()) == 400
    assert outcomes.get("CorruptStreamError", 0) > 50  # the CRCs catch the flips


def test_damaged_streams_through_pillow(corpus: list[tuple[str, bytes]]) -> None:
    """`load()`, a draft load and `ImageFile.Parser` (tests/fuzz/replay.py): each raises
    nothing but Pillow's documented errors."""
    slowest, outcomes = _outcomes(corpus, lambda _, data: replay.through_pillow(data))
    assert slowest < 10.0
    assert sum(outcomes.values()) == 3 * 400
    # the plugin really decodes (header garbles that keep the size, cuts after IEND, ...)
    # and really refuses (CRC failures surface as OSError)
    assert outcomes.get("image", 0) > 30
    assert outcomes.get("OSError", 0) > 300


def test_concurrent_decodes_agree(small_stream_v1: bytes, kodim23_stream_v1: bytes) -> None:
    """One shared model, several threads, no state leaking between calls."""
    expected = {
        "small": c2f_format.decode(small_stream_v1).tobytes(),
        "kodim23": c2f_format.decode(kodim23_stream_v1).tobytes(),
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
        for name, data in [("small", small_stream_v1), ("kodim23", kodim23_stream_v1)] * 2
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert len(results) == 8
    assert all(img == expected[name] for name, img in results)
    from c2f_format.codec.torch_engine import _CACHE

    assert len({id(c) for c in _CACHE.values()}) == len(_CACHE)  # one model per device


def test_header_limits_are_checked_before_allocation() -> None:
    h = bs.Header(65536, 65536, "RGB", 50, bytes(16))
    with pytest.raises(c2f_format.ImageTooLargeError):
        c2f_format.decode(h.pack())


def _with_header(data: bytes, width: int, height: int) -> bytes:
    """`data` with another size in its header, the header CRC fixed (a hostile encoder)."""
    h = bs.parse_header(data)
    head = bs.Header(width, height, h.mode, h.quality, h.model_id).pack()
    return head + data[bs.HEADER_SIZE :]


@pytest.mark.parametrize("size", [(8192, 4096), (65536, 1), (320, 96)])
def test_a_header_claiming_more_pixels_fails_fast(
    small_stream_v1: bytes, size: tuple[int, int]
) -> None:
    """The segments cannot cover the bigger latents: the band layout or the entropy
    decoder (spec 7.5 step 8: a dry coder) says so at once, strict or not, instead of
    decoding the rest as zeros."""
    forged = _with_header(small_stream_v1, *size)
    for allow in (False, True):
        start = time.perf_counter()
        with pytest.raises(c2f_format.CorruptStreamError):
            c2f_format.decode(forged, allow_truncated=allow)
        assert time.perf_counter() - start < 2.0


def test_an_empty_stream_of_any_size_is_refused() -> None:
    """Header, empty hyper segments, IEND: no image may come out of no data."""
    from c2f_format.codec.torch_engine import get_torch_engine, pick_device

    model_id = get_torch_engine(pick_device("cpu")).model_id
    parts = [bs.Header(8192, 4096, "RGB", 75, model_id).pack()]
    parts += [bs.pack_segment(k, b"") for k in (bs.SEG_HYP1, bs.SEG_HYP2)]
    parts += [bs.pack_band(0, 256, b""), bs.pack_segment(bs.SEG_END, b"")]
    start = time.perf_counter()
    with pytest.raises(c2f_format.CorruptStreamError, match="runs out"):
        c2f_format.decode(b"".join(parts), allow_truncated=True)
    assert time.perf_counter() - start < 2.0


def test_a_damaged_length_field_names_its_segment(kodim23_stream_v1: bytes) -> None:
    """A length flipped larger looks like a cut stream; the message says which segment
    and that its length may be damaged."""
    seg = [s for s in _segments(kodim23_stream_v1) if s.kind == bs.SEG_YBND][3]
    buf = bytearray(kodim23_stream_v1)
    buf[seg.offset + 5] ^= 0x80  # high bit of the length's second byte
    where = f"YBND segment at offset {seg.offset}"
    with pytest.raises(c2f_format.TruncatedStreamError, match=where):
        c2f_format.decode(bytes(buf))
    with pytest.raises(OSError, match="length field is damaged"):
        Image.open(io.BytesIO(bytes(buf))).load()


def test_metadata_is_bounded_from_the_segment_head(small_stream_v1: bytes) -> None:
    """An ancillary segment that would take the metadata past 16 MiB is refused from its
    8-byte head, before any of its payload is read or held."""
    head = small_stream_v1[: bs.HEADER_SIZE]
    big = b"zzZz" + (bs.MAX_METADATA_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(c2f_format.CorruptStreamError, match="16 MiB"):
        c2f_format.StreamDecoder().feed(head + big)
    half = bs.pack_segment(b"zzZz", bytes(bs.MAX_METADATA_BYTES // 2))
    with pytest.raises(c2f_format.CorruptStreamError, match="16 MiB"):
        c2f_format.decode(head + half + half + b"zzZz\x00\x00\x00\x01")
    with pytest.raises(c2f_format.InvalidArgumentError, match="16 MiB"):
        c2f_format.encode(np.zeros((8, 8, 3), np.uint8), icc_profile=bytes(17 << 20))


def test_pillow_reads_no_metadata_payload_past_the_cap(small_stream_v1: bytes) -> None:
    """Image.open stops at a metadata segment's head when it would pass 16 MiB, before
    reading any of its (here 40 MiB) payload."""

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, size: int | None = -1) -> bytes:
            out = super().read(size)
            Counting.read_bytes += len(out)
            return out

    head = small_stream_v1[: bs.HEADER_SIZE]
    big = bs.pack_segment(b"zzZz", bytes(40 << 20))
    fp = Counting(head + big + small_stream_v1[bs.HEADER_SIZE :])
    with pytest.raises(OSError, match="16 MiB"):
        Image.open(fp)
    assert Counting.read_bytes < 4096


def test_a_damaged_hyper_length_names_its_segment(small_stream_v1: bytes) -> None:
    seg = next(s for s in _segments(small_stream_v1) if s.kind == bs.SEG_HYP1)
    buf = bytearray(small_stream_v1)
    buf[seg.offset + 5] ^= 0x10  # the length grows by 1 MiB
    with pytest.raises(
        c2f_format.TruncatedStreamError, match=f"HYP1 segment at offset {seg.offset}"
    ):
        c2f_format.decode(bytes(buf))


@pytest.mark.parametrize("device", ["meta", "mps", "xpu", "hpu", "cuda:7", "nonsense"])
def test_unsupported_devices_are_argument_errors(
    small_stream_v1: bytes, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(c2f_format.InvalidArgumentError, match="device"):
        c2f_format.decode(small_stream_v1, device=device)
    monkeypatch.setenv("C2F_DEVICE", device)
    with pytest.raises(c2f_format.InvalidArgumentError, match="device"):
        c2f_format.decode(small_stream_v1)


def test_a_released_buffer_is_an_argument_error(small_stream_v1: bytes) -> None:
    view = memoryview(small_stream_v1)
    view.release()
    for fn in (c2f_format.decode, c2f_format.info, c2f_format.StreamDecoder().feed):
        with pytest.raises(c2f_format.InvalidArgumentError, match="buffer"):
            fn(view)


def _segments(data: bytes) -> list[bs.Segment]:
    return list(bs.iter_segments(data))


def test_truncation_sweep(small_stream_v1: bytes) -> None:
    """Cut at every segment boundary, one byte either side, and at random offsets."""
    segs = _segments(small_stream_v1)
    hyp2_end = bs.hyper_end(segs)
    boundaries = {0, bs.HEADER_SIZE} | {s.offset for s in segs} | {s.offset + s.size for s in segs}
    cuts = {c + d for c in boundaries for d in (-1, 0, 1)}
    cuts |= {int(c) for c in np.random.default_rng(7).integers(0, len(small_stream_v1), 40)}
    cuts = {c for c in cuts if 0 <= c < len(small_stream_v1)}
    full = np.asarray(c2f_format.decode(small_stream_v1))
    for cut in sorted(cuts):
        data = small_stream_v1[:cut]
        with pytest.raises((c2f_format.TruncatedStreamError, c2f_format.NotC2FError)):
            c2f_format.decode(data)
        if cut >= hyp2_end:
            with pytest.warns(UserWarning, match="latent rows"):
                partial = np.asarray(c2f_format.decode(data, allow_truncated=True))
            assert partial.shape == full.shape
        else:
            with pytest.raises((c2f_format.TruncatedStreamError, c2f_format.NotC2FError)):
                c2f_format.decode(data, allow_truncated=True)
        with pytest.raises((OSError, SyntaxError)):
            with Image.open(io.BytesIO(data)) as im:
                im.load()


def test_truncation_sweep_under_load_truncated_images(
    small_stream_v1: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    segs = _segments(small_stream_v1)
    for cut in sorted({s.offset + s.size // 2 for s in segs} | {s.offset for s in segs}):
        with pytest.warns(UserWarning, match="c2f: stream ends"):
            with Image.open(io.BytesIO(small_stream_v1[:cut])) as im:
                im.load()
                assert im.size == (80, 96)


def _flip_in(data: bytes, seg: bs.Segment, at: int = 0) -> bytes:
    buf = bytearray(data)
    buf[seg.offset + 8 + at] ^= 0x10  # inside the payload (or the CRC of an empty one)
    return bytes(buf)


@pytest.fixture(scope="module")
def rgba_stream(small_rgb: np.ndarray) -> bytes:
    """An RGBA stream with every segment type: iCCP, eXIf, ALPH (a soft-edged cut-out)
    and the colour."""
    y, x = np.mgrid[0:96, 0:80]
    alpha = np.clip((36 - np.hypot(x - 40, y - 48)) * 40, 0, 255).astype(np.uint8)
    exif = b"MM\x00*\x00\x00\x00\x08\x00\x00"
    return c2f_format.encode(
        np.dstack((small_rgb, alpha)), quality=60, exif=exif, icc_profile=b"icc profile"
    )


def test_flipped_bits_name_the_segment(rgba_stream: bytes) -> None:
    """Every segment, the metadata and ALPH included; damage before HYP2 (ALPH among
    it: alpha is exact or absent) is an error even when damage is tolerated."""
    kinds = [seg.kind for seg in _segments(rgba_stream)]
    assert kinds[:4] == [bs.SEG_ICC, bs.SEG_EXIF, bs.SEG_ALPHA, bs.SEG_HYP1]
    for seg in _segments(rgba_stream):
        name = seg.kind.decode()
        damaged = _flip_in(rgba_stream, seg)
        with pytest.raises(c2f_format.CorruptStreamError, match=f"CRC mismatch in {name}"):
            c2f_format.decode(damaged)
        if seg.kind in (bs.SEG_ICC, bs.SEG_EXIF, bs.SEG_ALPHA):
            with pytest.raises(c2f_format.CorruptStreamError, match=f"CRC mismatch in {name}"):
                c2f_format.decode(damaged, allow_truncated=True)
        with pytest.raises(OSError, match=f"CRC mismatch in {name}"):
            with Image.open(io.BytesIO(damaged)) as im:
                im.load()


def _with_alpha_payload(data: bytes, payload: bytes) -> bytes:
    """`data` with its ALPH payload replaced, the CRC fixed (a hostile encoder)."""
    seg = next(s for s in _segments(data) if s.kind == bs.SEG_ALPHA)
    fixed = bs.pack_segment(bs.SEG_ALPHA, payload)
    return data[: seg.offset] + fixed + data[seg.offset + seg.size :]


def test_an_alpha_zlib_bomb_is_refused_before_it_allocates(rgba_stream: bytes) -> None:
    """6 MiB of zeros in 6 kB of deflate (within the length limit of a 96x80 plane):
    refused having inflated no more than the plane's own 7,776 bytes (spec 2.4)."""
    bomb = bytes((1,)) + zlib.compress(bytes(6 << 20), 9)
    assert len(bomb) <= alpha_coding.max_payload(80, 96)
    data = _with_alpha_payload(rgba_stream, bomb)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        for allow in (False, True):
            with pytest.raises(c2f_format.CorruptStreamError, match="more than its 7776 bytes"):
                c2f_format.decode(data, allow_truncated=allow)
        with pytest.raises(OSError, match="more than its 7776 bytes"):
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 1 << 20  # the stream's own copies and the plane, not 6 MiB


def test_an_alpha_length_is_checked_from_the_segment_head(rgba_stream: bytes) -> None:
    """A length beyond any deflate of the plane fails on the 8-byte head, before a byte
    of its payload is read (Image.open included)."""
    seg = next(s for s in _segments(rgba_stream) if s.kind == bs.SEG_ALPHA)
    limit = alpha_coding.max_payload(80, 96)
    head = rgba_stream[: seg.offset] + b"ALPH" + (limit + 1).to_bytes(4, "big")
    with pytest.raises(c2f_format.CorruptStreamError, match="more than any alpha plane"):
        c2f_format.StreamDecoder().feed(head)
    with pytest.raises(OSError, match="more than any alpha plane"):
        Image.open(io.BytesIO(head + bytes(limit + 5)))
    # a length within the limit but past the data is a cut stream, named as such
    assert len(rgba_stream) < limit
    cut = head[:-4] + limit.to_bytes(4, "big") + rgba_stream[seg.offset + 8 :]
    for allow in (False, True):
        with pytest.raises(c2f_format.TruncatedStreamError, match="ALPH segment at offset"):
            c2f_format.decode(cut, allow_truncated=allow)


def test_alpha_in_the_wrong_place_is_refused(rgba_stream: bytes, small_stream_v1: bytes) -> None:
    segs = {s.kind: s for s in _segments(rgba_stream)}
    alpha = segs[bs.SEG_ALPHA]
    alpha_bytes = rgba_stream[alpha.offset : alpha.offset + alpha.size]
    missing = rgba_stream[: alpha.offset] + rgba_stream[alpha.offset + alpha.size :]
    twice = rgba_stream[: alpha.offset] + alpha_bytes + rgba_stream[alpha.offset :]
    late = bs.pack_segment(b"tEXt", b"late")
    end = alpha.offset + alpha.size
    after = rgba_stream[:end] + late + rgba_stream[end:]
    h = bs.HEADER_SIZE
    in_rgb = small_stream_v1[:h] + alpha_bytes + small_stream_v1[h:]
    for data, words in [
        (missing, r"HYP1 segment out of order .*\(expected ALPH\)"),
        (twice, r"ALPH segment out of order .*\(expected HYP1\)"),
        (after, "tEXt segment .* after a critical segment"),
        (in_rgb, "ALPH segment .* colour mode RGB, which has no alpha"),
    ]:
        with pytest.raises(c2f_format.CorruptStreamError, match=words):
            c2f_format.decode(data)
        with pytest.raises(OSError, match=words):
            with Image.open(io.BytesIO(data)) as im:
                im.load()


def test_a_stream_cut_inside_alpha_cannot_be_decoded(
    rgba_stream: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha = next(s for s in _segments(rgba_stream) if s.kind == bs.SEG_ALPHA)
    cut = rgba_stream[: alpha.offset + alpha.size // 2]
    for allow in (False, True):
        with pytest.raises(c2f_format.TruncatedStreamError, match="ALPH segment at offset"):
            c2f_format.decode(cut, allow_truncated=allow)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(UserWarning, match="image left blank"):
        with Image.open(io.BytesIO(cut)) as im:
            assert im.mode == "RGBA"
            im.load()


@pytest.mark.slow
def test_damaged_alpha_streams_through_the_api_and_pillow(
    rgba_stream: bytes, small_rgb: np.ndarray
) -> None:
    """The seeded corpus of test_damaged_streams_*, made from an RGBA stream with
    metadata, through every path of tests/fuzz/replay.py."""
    other = c2f_format.encode(np.dstack((small_rgb, small_rgb[:, :, 0])), quality=30)
    corpus = damaged_streams(rgba_stream, other, 120, seed=2027)
    outcomes: dict[str, int] = {}
    for _, data in corpus:
        start = time.perf_counter()
        replay.check(data)  # raises anything but the documented errors
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for outcome in replay.through_pillow(data):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert time.perf_counter() - start < 20.0
    assert outcomes.get("image", 0) > 10 and outcomes.get("OSError", 0) > 100


def test_a_damaged_band_is_predicted_under_tolerance(
    kodim23_stream_v1: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flipped bit in one YBND costs that band's rows (and their neighbourhood in the
    synthesis), not the image; without tolerance it is an error naming the segment."""
    bands = [s for s in _segments(kodim23_stream_v1) if s.kind == bs.SEG_YBND]
    band = bands[4]
    row, count, _ = bs.parse_band(band.payload)
    damaged = _flip_in(kodim23_stream_v1, band, at=20)
    clean = np.asarray(c2f_format.decode(kodim23_stream_v1), dtype=np.int16)
    with pytest.warns(UserWarning, match=f"CRC mismatch in YBND segment at offset {band.offset}"):
        got = np.asarray(c2f_format.decode(damaged, allow_truncated=True), dtype=np.int16)
    reach = 4 * 16  # the synthesis reaches less than 4 latent rows
    top, bottom = row * 16 - reach, (row + count) * 16 + reach
    assert np.abs(got[:top] - clean[:top]).max() <= 1
    assert np.abs(got[bottom:] - clean[bottom:]).max() <= 1
    lost = slice(row * 16, (row + count) * 16)
    assert np.abs(got[lost] - clean[lost]).max() > 8

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(UserWarning, match="damaged rows predicted"):
        with Image.open(io.BytesIO(damaged)) as im:
            im.load()
            assert np.array_equal(np.asarray(im, dtype=np.int16), got)


def test_unreadable_rest_is_predicted_under_tolerance(kodim23_stream_v1: bytes) -> None:
    band = [s for s in _segments(kodim23_stream_v1) if s.kind == bs.SEG_YBND][3]
    buf = bytearray(kodim23_stream_v1)
    buf[band.offset : band.offset + 4] = b"\x00\xff\x00\xff"  # a garbled segment head
    with pytest.raises(c2f_format.CorruptStreamError, match="invalid segment type"):
        c2f_format.decode(bytes(buf))
    with pytest.warns(UserWarning, match="read no further"):
        c2f_format.decode(bytes(buf), allow_truncated=True)
    # damage to the hyper segments cannot be tolerated: nothing would be left to show
    hyp1 = _segments(kodim23_stream_v1)[0]
    with pytest.raises(c2f_format.CorruptStreamError, match="HYP1"):
        c2f_format.decode(_flip_in(kodim23_stream_v1, hyp1), allow_truncated=True)


def test_a_band_with_good_crc_but_bad_coding(kodim23_stream_v1: bytes) -> None:
    """Coded data that the entropy decoder rejects, behind a valid CRC (a buggy or
    hostile encoder): an error naming the segment, or under tolerance a predicted band."""
    band = [s for s in _segments(kodim23_stream_v1) if s.kind == bs.SEG_YBND][2]
    row, count, coded = bs.parse_band(band.payload)
    payload = bs._BAND.pack(row, count) + coded[:-4] + b"\x00\x00\x00\x00"  # last word 0
    fixed = bs.pack_segment(bs.SEG_YBND, payload)
    data = kodim23_stream_v1[: band.offset] + fixed + kodim23_stream_v1[band.offset + band.size :]
    with pytest.raises(c2f_format.CorruptStreamError):
        c2f_format.decode(data)
    with pytest.warns(UserWarning, match=f"YBND segment at offset {band.offset}"):
        assert c2f_format.decode(data, allow_truncated=True).size == (768, 512)


def test_damaged_segments_are_bounded(small_stream_v1: bytes) -> None:
    """A flood of damaged bands cannot grow the tolerant decoder's bookkeeping: more of
    them than the image has latent rows ends the reading."""
    segs = _segments(small_stream_v1)
    hyp2_end = bs.hyper_end(segs)
    junk = bs.pack_segment(bs.SEG_YBND, b"\x00\x00\x00\x01")[:-1] + b"\xff"  # bad CRC
    data = small_stream_v1[:hyp2_end] + junk * 10_000
    dec = c2f_format.StreamDecoder(allow_truncated=True)
    dec.feed(data)
    assert dec.halted and len(dec.damage) <= bs.Header(80, 96, "RGB", 1, b"").latent_size[0] + 1
    assert "more damaged YBND segments than latent rows" in dec.damage[-1]
