"""Version 2 streams (the wavelet model) through the public API, Pillow and the
streaming decoder, with a small model trained here and installed as the newest."""

from __future__ import annotations

import io
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import KODIM23
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from c2f_format.codec.api import decode, encode, info
from c2f_format.codec.streaming import StreamDecoder
from c2f_format.format.bitstream import PYRAMID_MAJOR, StreamParser
from c2f_format.format.errors import (
    CorruptStreamError,
    InvalidArgumentError,
    TruncatedStreamError,
)
from c2f_format.networks.context_model import TrainableContextModel
from c2f_format.train.context_trainer import export_weights

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wavelet_weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A weights set with a briefly trained wavelet model first and `c2f-v3` after it."""
    folder = tmp_path_factory.mktemp("weights")
    shutil.copy(REPO / "weights" / "c2f-v3.npz", folder)
    shutil.copy(REPO / "weights" / "index.json", folder)
    with Image.open(KODIM23) as im:
        rgb = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    batch = np.stack([rgb[:, r : r + 64, c : c + 64] for r, c in ((0, 0), (200, 300), (300, 600))])
    torch.manual_seed(0)
    model = TrainableContextModel()
    model.init_from_data(batch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for i in range(8):
        bits = model(batch, np.array([260, 330, 400]) + i)
        opt.zero_grad()
        torch.log(bits).mean().backward()
        opt.step()
    export_weights(model, folder / "wavelet.npz", (424, 293))
    mp = pytest.MonkeyPatch()
    mp.setenv("C2F_WEIGHTS_DIR", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(KODIM23) as im:
        return im.convert("RGB").crop((250, 150, 250 + 200, 150 + 136))


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(i.convert("RGB"), dtype=np.float64) for i in (a, b))
    return float(10 * np.log10(255**2 / max(((x - y) ** 2).mean(), 1e-10)))


def test_the_newest_model_writes_version_2(wavelet_weights: Path, photo: Image.Image) -> None:
    data = encode(photo, quality=60)
    assert info(data).header.version == (PYRAMID_MAJOR, 0)
    kinds = [s[0] for s in info(data).segments]
    assert kinds == ["LOWP", *["LEVL"] * 6, "IEND"]
    out = decode(data)
    assert out.size == photo.size and out.mode == "RGB"
    assert _psnr(out, photo) > 28
    assert decode(data, backend="numpy").tobytes() == out.tobytes()  # exact everywhere


def test_quality_orders_size_and_fidelity(wavelet_weights: Path, photo: Image.Image) -> None:
    sizes, psnrs = [], []
    for q in (1, 30, 70, 100):
        data = encode(photo, quality=q)
        sizes.append(len(data))
        psnrs.append(_psnr(decode(data), photo))
    assert sizes == sorted(sizes) and psnrs == sorted(psnrs)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA"])
def test_modes_and_metadata(wavelet_weights: Path, photo: Image.Image, mode: str) -> None:
    im = photo.convert(mode)
    if "A" in mode:
        a = np.zeros(im.size[::-1], np.uint8)
        a[20:90, 30:150] = 255
        im.putalpha(Image.fromarray(a))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(im, quality=50, exif=exif, icc_profile=b"not really a profile")
    out = decode(data)
    assert out.mode == mode and out.size == im.size
    if "A" in mode:
        assert np.array_equal(np.asarray(out)[..., -1], np.asarray(im)[..., -1])
    assert out.info["icc_profile"] == b"not really a profile"
    assert out.getexif()[0x0112] == 6


def test_reduced_scales_and_the_preview(wavelet_weights: Path, photo: Image.Image) -> None:
    data = encode(photo, quality=80)
    full = decode(data)
    for r in (2, 4, 8):
        small = decode(data, reduce=r)
        assert small.size == (-(-200 // r), -(-136 // r))
        ref = full.resize(small.size, Image.Resampling.BOX)
        # the wavelet's low-pass, not a box: they differ more the coarser the scale
        assert _psnr(small, ref) > {2: 30, 4: 26, 8: 22}[r], r
        # and only a reduced-scale decoder's work: the same pixels as a whole decode's
        whole = StreamDecoder()
        whole.feed(data)
        again = whole.preview() if r == 8 else whole.image(reduce=r)
        assert np.array_equal(np.asarray(small), np.asarray(again))


def test_a_reduced_scale_decoder_skips_the_finer_levels(
    wavelet_weights: Path, photo: Image.Image
) -> None:
    """`StreamDecoder(reduce=4)` reads every segment but decodes levels 6..3 only: the
    same 1/4 image, and a clear error if asked for a finer one; Pillow's draft uses it."""
    data = encode(photo, quality=70)
    dec = StreamDecoder(reduce=4)
    dec.feed(data)
    assert dec.complete
    assert np.array_equal(np.asarray(dec.image(reduce=4)), np.asarray(decode(data, reduce=4)))
    with pytest.raises(InvalidArgumentError, match="StreamDecoder\\(reduce=2\\)"):
        dec.image(reduce=2)
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (100, 68))
        assert im.size == (100, 68)
        im.load()
        assert np.array_equal(np.asarray(im), np.asarray(decode(data, reduce=2)))


def test_a_reduced_image_is_centred_like_a_box_reduction(wavelet_weights: Path) -> None:
    """A smooth image's reduced decodes land where Pillow's box reduction puts each
    block (at its middle), not half a block off where the filters centre the low-pass."""
    y, x = np.mgrid[0:128, 0:192]
    ramp = (40 + 0.6 * x + 0.4 * y + 20 * np.sin(x / 23.0) * np.cos(y / 17.0)).round()
    img = Image.fromarray(np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8))
    data = encode(img, quality=100)
    for r in (2, 4, 8):
        box = np.asarray(img.reduce(r), dtype=np.float64)[:-1, :-1]  # the last: repeated
        got = np.asarray(decode(data, reduce=r), dtype=np.float64)[:-1, :-1]
        assert np.abs(got - box).mean() < 0.75, r


def test_streaming_shows_the_preview_after_the_coarse_levels(
    wavelet_weights: Path, photo: Image.Image
) -> None:
    data = encode(photo, quality=70)
    parser = StreamParser()
    segs = parser.feed(data)
    preview_end = next(s for s in segs if s.kind == b"LEVL" and s.payload[0] == 4)
    cut = preview_end.offset + preview_end.size
    assert cut < len(data) / 3
    dec = StreamDecoder()
    dec.feed(data[: cut - 1])
    assert not dec.preview_ready
    dec.feed(data[cut - 1 : cut])
    assert dec.preview_ready
    assert dec.preview().size == (25, 17)
    blurred = dec.image(partial=True)
    assert blurred.size == photo.size and _psnr(blurred, photo) > 20
    with pytest.raises(TruncatedStreamError, match="3 of 6 levels"):
        dec.image()
    dec.feed(data[cut:])
    assert dec.complete and dec.image().tobytes() == decode(data).tobytes()


def test_damage_is_a_clear_error(wavelet_weights: Path, photo: Image.Image) -> None:
    data = bytearray(encode(photo, quality=50))
    segs = StreamParser().feed(bytes(data))
    level3 = next(s for s in segs if s.kind == b"LEVL" and s.payload[0] == 3)
    with pytest.raises(TruncatedStreamError):
        decode(bytes(data[: level3.offset + 20]))
    bad = bytearray(data)
    bad[level3.offset + 12] ^= 0x40
    with pytest.raises(CorruptStreamError, match="CRC mismatch in LEVL"):
        decode(bytes(bad))
    swapped = bytearray(data)
    swapped[level3.offset + 8] = 2  # the level byte (CRC fixed up below)
    payload = bytes(swapped[level3.offset + 8 : level3.offset + 8 + len(level3.payload)])
    crc = zlib.crc32(payload, zlib.crc32(b"LEVL")).to_bytes(4, "big")
    end = level3.offset + 8 + len(level3.payload)
    swapped[end : end + 4] = crc
    with pytest.raises(CorruptStreamError, match="expected level 3"):
        decode(bytes(swapped))


def test_pillow_reads_and_writes_version_2(wavelet_weights: Path, photo: Image.Image) -> None:
    import c2f_format  # noqa: F401  (registers the format with Pillow)

    buf = io.BytesIO()
    photo.save(buf, format="C2F", quality=55)
    buf.seek(0)
    with Image.open(buf) as im:
        assert im.size == photo.size
        im.load()
        assert _psnr(im, photo) > 28


def test_version_1_streams_still_decode(wavelet_weights: Path) -> None:
    v1 = (REPO / "spec" / "vectors" / "pixel-1x1-q1.c2f").read_bytes()
    assert decode(v1).size == (1, 1)


@pytest.fixture(scope="module")
def small_v2(wavelet_weights: Path) -> tuple[bytes, tuple[int, int]]:
    with Image.open(KODIM23) as im:
        small = im.convert("RGB").crop((300, 200, 364, 248))
    return encode(small, quality=40), small.size


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_garbled_levels_fail_cleanly(
    small_v2: tuple[bytes, tuple[int, int]], data: st.DataObject
) -> None:
    """Any byte of any LOWP or LEVL payload changed (its CRC fixed up, so the decoder
    must cope with the coded data itself) gives an image or a CorruptStreamError, never
    another exception."""
    original, size = small_v2
    stream = bytearray(original)
    segs = [s for s in StreamParser().feed(original) if s.kind in (b"LOWP", b"LEVL")]
    seg = data.draw(st.sampled_from(segs))
    at = data.draw(st.integers(1 if seg.kind == b"LEVL" else 0, len(seg.payload) - 1))
    payload = bytearray(seg.payload)
    payload[at] ^= data.draw(st.integers(1, 255))
    start = seg.offset + 8
    stream[start : start + len(payload)] = payload
    crc = zlib.crc32(bytes(payload), zlib.crc32(seg.kind)).to_bytes(4, "big")
    stream[start + len(payload) : start + len(payload) + 4] = crc
    try:
        out = decode(bytes(stream))
    except CorruptStreamError:
        return
    assert out.size == size
