"""Alpha (spec 2.4): the ALPH coding on its own, then RGBA, LA and transparent P images
through the API, Pillow and imageio, alpha exact and the colour coded as without it."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from helpers import KODIM23
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

import c2f_format
from c2f_format.codec.metrics import psnr
from c2f_format.format import alpha as coding
from c2f_format.format import bitstream as bs
from c2f_format.format.errors import CorruptStreamError

# ---- the coding ----------------------------------------------------------------------


@st.composite
def planes(draw: st.DrawFn) -> np.ndarray:
    """Alpha planes as they come: noise, flat, hard-edged masks, ramps, and mixtures."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["noise", "flat", "mask", "ramp", "mixed"]))
    if kind == "noise":
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    if kind == "flat":
        return np.full((height, width), draw(st.integers(0, 255)), np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    if kind == "mask":
        return np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < width * height / 5, 255, 0)
    ramp = np.clip(x * draw(st.integers(1, 40)) + y * 3, 0, 255).astype(np.uint8)
    if kind == "ramp":
        return ramp
    ramp[rng.random((height, width)) < 0.2] = 0
    return ramp


@settings(max_examples=300, deadline=None)
@given(planes(), st.data())
def test_any_plane_round_trips_exactly(plane: np.ndarray, data: st.DataObject) -> None:
    plane = np.ascontiguousarray(plane, dtype=np.uint8)
    height, width = plane.shape
    payload = coding.encode_plane(plane)
    assert len(payload) <= coding.max_payload(width, height)
    assert np.array_equal(coding.decode_plane(payload, width, height), plane)
    filters = np.array(data.draw(st.lists(st.integers(0, 3), min_size=height, max_size=height)))
    forced = coding.encode_plane(plane, filters)
    assert np.array_equal(coding.decode_plane(forced, width, height), plane)
    rows = np.frombuffer(zlib.decompress(forced[1:]), np.uint8).reshape(height, width + 1)
    assert np.array_equal(rows[:, 0], filters)


def test_constant_planes_cost_two_bytes() -> None:
    for value in (0, 128, 255):
        payload = coding.encode_plane(np.full((300, 200), value, np.uint8))
        assert payload == bytes((0, value))
        assert (coding.decode_plane(payload, 200, 300) == value).all()


def test_the_shorter_coding_is_kept() -> None:
    """Hard-edged masks deflate best unfiltered, ramps filtered; the encoder keeps each."""
    y, x = np.mgrid[0:200, 0:300]
    hard = np.where(np.sin(x / 7) + np.cos(y / 5) + np.sin((x + y) / 11) > 0.3, 255, 0)
    hard = hard.astype(np.uint8)
    soft = np.clip(128 + (x - 150) * 0.9 + (y - 100) * 0.7, 0, 255).astype(np.uint8)
    unfiltered = [coding.encode_plane(p, np.zeros(200, np.uint8)) for p in (hard, soft)]
    assert coding.encode_plane(hard) == unfiltered[0]
    assert len(coding.encode_plane(soft)) < len(unfiltered[1]) / 2


def test_preview_alpha_is_the_rounded_block_mean() -> None:
    rng = np.random.default_rng(5)
    plane = rng.integers(0, 256, (21, 35), dtype=np.uint8)
    got = coding.reduce_plane(plane, 8)
    assert got.shape == (3, 5)
    for r in range(3):
        for c in range(5):
            block = plane[8 * r : 8 * r + 8, 8 * c : 8 * c + 8].astype(int)
            assert got[r, c] == (block.sum() + block.size // 2) // block.size


def _deflated(raw: bytes) -> bytes:
    return bytes((1,)) + zlib.compress(raw)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "empty"),
        (b"\x07", "method 7 is unknown"),
        (b"\x00", "constant payload is 1 bytes"),
        (b"\x00\xff\xff", "constant payload is 3 bytes"),
        (b"\x01", "inflates to 0 of its 12 bytes"),
        (b"\x01not zlib", "deflate data is invalid"),
        (_deflated(bytes(11)), "inflates to 11 of its 12 bytes"),
        (_deflated(bytes(13)), "more than its 12 bytes"),
        (_deflated(bytes(12))[:-3], "cut short"),
        (_deflated(bytes(12))[:5], r"inflates to \d+ of its 12 bytes \(deflate data cut short"),
        (_deflated(bytes(12)) + b"x", "1 bytes after the end"),
        (_deflated(bytes(4) + b"\x04" + bytes(7)), "row 1 has filter type 4"),
    ],
)
def test_corrupt_payloads_are_named(payload: bytes, words: str) -> None:
    with pytest.raises(CorruptStreamError, match=words):
        coding.decode_plane(payload, 3, 3)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 9), st.integers(1, 9))
def test_any_payload_decodes_or_is_corrupt(payload: bytes, width: int, height: int) -> None:
    for data in (payload, b"\x01" + zlib.compress(payload)):
        try:
            plane = coding.decode_plane(data, width, height)
        except CorruptStreamError:
            continue
        assert plane.shape == (height, width) and plane.dtype == np.uint8


# ---- images --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cutout() -> tuple[np.ndarray, np.ndarray]:
    """A 96x80 photo crop and a cut-out's alpha for it: a soft-edged disc with a hard
    transparent notch."""
    with Image.open(KODIM23) as im:
        rgb = np.asarray(im.convert("RGB"))[200:296, 300:380].copy()
    y, x = np.mgrid[0:96, 0:80]
    soft = np.clip((36 - np.hypot(x - 40, y - 48)) * 40, 0, 255).astype(np.uint8)
    soft[10:30, 50:] = 0
    return rgb, soft


def _segments(data: bytes) -> list[bs.Segment]:
    return list(bs.iter_segments(data))


@pytest.mark.v1
def test_rgba_round_trip_exact_alpha_and_the_same_colour(
    cutout: tuple[np.ndarray, np.ndarray],
) -> None:
    """The colour segments are those of the RGB image: alpha costs its ALPH only."""
    rgb, alpha = cutout
    rgba = np.dstack((rgb, alpha))
    data = c2f_format.encode(rgba, quality=60)
    plain = c2f_format.encode(rgb, quality=60)
    kinds = [s.kind for s in _segments(data)]
    assert kinds[0] == bs.SEG_ALPHA and kinds[1] == bs.SEG_HYP1
    colour = [(s.kind, s.payload) for s in _segments(data) if s.kind != bs.SEG_ALPHA]
    assert colour == [(s.kind, s.payload) for s in _segments(plain)]
    header = c2f_format.info(data).header
    assert header.mode == "RGBA" and header.version == (1, 1)
    out = c2f_format.decode(data)
    assert out.mode == "RGBA" and out.size == (80, 96)
    got = np.asarray(out)
    assert np.array_equal(got[:, :, 3], alpha)
    assert np.array_equal(got[:, :, :3], np.asarray(c2f_format.decode(plain)))
    assert psnr(rgb, got[:, :, :3]) > 25


def test_opaque_rgba_costs_14_bytes_and_stays_rgba(small_rgb: np.ndarray) -> None:
    image = Image.fromarray(small_rgb).convert("RGBA")
    data = c2f_format.encode(image, quality=60)
    assert len(data) - len(c2f_format.encode(small_rgb, quality=60)) == 14
    out = c2f_format.decode(data)
    assert out.mode == "RGBA" and (np.asarray(out)[:, :, 3] == 255).all()
    assert "alpha, constant 255" in str(c2f_format.info(data))


def test_la_round_trip(cutout: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, alpha = cutout
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    for image in (Image.fromarray(np.dstack((grey, alpha))), np.dstack((grey, alpha))):
        data = c2f_format.encode(image, quality=70)
        assert c2f_format.info(data).header.mode == "LA"
        out = c2f_format.decode(data)
        assert out.mode == "LA"
        assert np.array_equal(np.asarray(out)[:, :, 1], alpha)
        assert psnr(grey, np.asarray(out)[:, :, 0]) > 22


def test_palette_and_colour_key_transparency_become_alpha(small_rgb: np.ndarray) -> None:
    """P with a transparent index or an RGBA palette, PA, and L or RGB with a
    `transparency` colour key: all decode with the alpha Pillow gives them."""
    pal = Image.fromarray(small_rgb).quantize(16)
    pal.info["transparency"] = 3
    rgba_pal = pal.copy()
    palette = pal.getpalette()
    assert palette is not None
    rgba_pal.putpalette(
        [v for i in range(16) for v in (*palette[3 * i : 3 * i + 3], 17 * i)], "RGBA"
    )
    keyed = Image.fromarray(small_rgb).convert("L")
    keyed.info["transparency"] = int(np.asarray(keyed)[0, 0])
    rgb_keyed = Image.fromarray(small_rgb)
    rgb_keyed.info["transparency"] = tuple(int(v) for v in small_rgb[5, 5])
    cases = [
        (pal, "RGBA"),
        (rgba_pal, "RGBA"),
        (pal.convert("PA"), "RGBA"),
        (keyed, "LA"),
        (rgb_keyed, "RGBA"),
    ]
    for image, mode in cases:
        expected = np.asarray(image.convert(mode))[:, :, -1]
        assert 0 < (expected == 0).sum() < expected.size
        out = c2f_format.decode(c2f_format.encode(image, quality=50))
        assert out.mode == mode
        assert np.array_equal(np.asarray(out)[:, :, -1], expected)


@pytest.mark.v1
def test_preview_carries_reduced_alpha(cutout: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, alpha = cutout
    data = c2f_format.encode(np.dstack((rgb, alpha)), quality=60)
    hyp2 = next(s for s in _segments(data) if s.kind == bs.SEG_HYP2)
    dec = c2f_format.StreamDecoder()
    dec.feed(data[: hyp2.offset + hyp2.size])
    preview = dec.preview()
    assert preview.mode == "RGBA" and preview.size == (10, 12)
    assert np.array_equal(np.asarray(preview)[:, :, 3], coding.reduce_plane(alpha, 8))
    assert dec.image(partial=True).mode == "RGBA"


def test_pillow_round_trip(tmp_path: Path, cutout: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, alpha = cutout
    path = tmp_path / "cut.c2f"
    Image.fromarray(np.dstack((rgb, alpha))).save(path, quality=60)
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        assert (im.mode, im.size) == ("RGBA", (80, 96))  # before load, from the header
        im.load()
        assert np.array_equal(np.asarray(im)[:, :, 3], alpha)
    with Image.open(path) as im:
        im.draft("RGBA", (10, 12))
        assert im.size == (10, 12)
        assert np.array_equal(np.asarray(im)[:, :, 3], coding.reduce_plane(alpha, 8))
    parser = ImageFile.Parser()
    for start in range(0, len(data), 200):
        parser.feed(data[start : start + 200])
    final = parser.close()
    assert final.mode == "RGBA" and np.array_equal(np.asarray(final)[:, :, 3], alpha)
    Image.fromarray(np.dstack((rgb[:, :, 0], alpha))).save(path)
    with Image.open(path) as im:
        assert im.mode == "LA"
        assert np.array_equal(np.asarray(im)[:, :, 1], alpha)


def test_imageio_round_trip(tmp_path: Path, cutout: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, alpha = cutout
    path = tmp_path / "cut.c2f"
    iio.imwrite(path, np.dstack((rgb, alpha)), quality=60)
    assert iio.improps(path).shape == (96, 80, 4)
    back = iio.imread(path)
    assert back.shape == (96, 80, 4) and np.array_equal(back[:, :, 3], alpha)
    stages = list(iio.imiter(path, progressive=True))
    assert [s.shape for s in stages] == [(96, 80, 4)] * 2
    assert iio.immeta(path)["mode"] == "RGBA"
    data = iio.imwrite("<bytes>", np.dstack((rgb[:, :, 1], alpha)), extension=".c2f")
    assert iio.improps(data, extension=".c2f").shape == (96, 80, 2)
    assert np.array_equal(iio.imread(data, extension=".c2f")[:, :, 1], alpha)
