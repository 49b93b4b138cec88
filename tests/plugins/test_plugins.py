"""Pillow and imageio, driven through their own public APIs."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest
from helpers import KODIM23
from PIL import Image, ImageCms, ImageFile

import c2f_format
from c2f_format.codec.metrics import psnr
from c2f_format.format import bitstream


class CountingFile(io.BytesIO):
    """Remembers the furthest byte read."""

    furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return data


@pytest.fixture(scope="module")
def c2f_file(tmp_path_factory: pytest.TempPathFactory, kodim23_stream: bytes) -> Path:
    """kodim23 at quality 75 (as `save(path, quality=75)` writes it)."""
    path = tmp_path_factory.mktemp("plugins") / "kodim23.c2f"
    path.write_bytes(kodim23_stream)
    return path


@pytest.fixture(scope="module")
def c2f_file_v1(tmp_path_factory: pytest.TempPathFactory, kodim23_stream_v1: bytes) -> Path:
    path = tmp_path_factory.mktemp("plugins") / "kodim23-v1.c2f"
    path.write_bytes(kodim23_stream_v1)
    return path


def test_registration_is_idempotent_and_leaves_others_alone(tmp_path: Path) -> None:
    c2f_format.register()
    c2f_format.register()
    assert Image.registered_extensions()[".c2f"] == "C2F"
    assert Image.MIME["C2F"] == "image/x-c2f"
    png = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(png)
    with Image.open(png) as im:
        assert im.format == "PNG"
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(io.BytesIO(b"\x89c2X" + bytes(60)))


def test_open_reads_only_the_header(c2f_file: Path) -> None:
    data = c2f_file.read_bytes()
    fp = CountingFile(data)
    with Image.open(fp) as im:
        assert (im.format, im.size, im.mode) == ("C2F", (768, 512), "RGB")
        assert im.info["quality"] == 75
        assert fp.furthest <= bitstream.HEADER_SIZE + 8
        im.load()
        assert fp.furthest == len(data)


def test_save_and_open_round_trip(tmp_path: Path, kodim23: Image.Image, c2f_file: Path) -> None:
    with Image.open(c2f_file) as im:
        out = np.asarray(im.convert("RGB"))
    assert psnr(np.asarray(kodim23), out) >= 30.0
    buf = io.BytesIO()
    kodim23.convert("L").save(buf, format="C2F", quality=40)
    buf.seek(0)
    with Image.open(buf) as gray:
        assert gray.mode == "L" and gray.info["quality"] == 40
        gray.load()


def test_icc_and_exif_survive(tmp_path: Path, kodim23: Image.Image) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "c2f test camera"  # Make
    exif[0x0131] = "c2f"  # Software
    path = tmp_path / "meta.c2f"
    kodim23.crop((0, 0, 64, 64)).save(path, icc_profile=icc, exif=exif, quality=50)
    with Image.open(path) as im:
        assert im.info["icc_profile"] == icc
        assert im.getexif()[0x010F] == "c2f test camera"
        assert im.getexif()[0x0131] == "c2f"
        im.load()
        # kept through another save, as PNG keeps the ICC profile
        again = tmp_path / "again.c2f"
        im.save(again)
    with Image.open(again) as im2:
        assert im2.info["icc_profile"] == icc


def test_draft_reads_only_hyper_segments(c2f_file: Path, kodim23: Image.Image) -> None:
    data = c2f_file.read_bytes()
    fp = CountingFile(data)
    with Image.open(fp) as im:
        assert im.draft("RGB", (96, 64)) == ("RGB", (0, 0, 96.0, 64.0))
        assert im.size == (96, 64)
        im.load()
        assert fp.furthest <= bitstream.hyper_end(bitstream.iter_segments(data)) + 8
        small = np.asarray(im)
    box = np.asarray(kodim23.reduce(8))
    assert small.shape == box.shape
    assert psnr(box, small) >= 22.0
    # a size no reduced scale can serve leaves the image alone
    with Image.open(c2f_file) as im:
        assert im.draft("RGB", (385, 256)) is None and im.size == (768, 512)


@pytest.mark.v1
@pytest.mark.parametrize("scale", [2, 4])
def test_draft_at_half_and_quarter_scale(
    c2f_file_v1: Path, kodim23: Image.Image, scale: int
) -> None:
    with Image.open(c2f_file_v1) as im:
        im.load()
        full = im.copy()
    with Image.open(c2f_file_v1) as im:
        want = (768 // scale, 512 // scale)
        # the largest reduction that still covers the request, as JPEG's draft
        request = (want[0] - 1, want[1] - 1)
        assert im.draft("RGB", request) == ("RGB", (0, 0, 768 / scale, 512 / scale))
        assert im.size == want
        im.load()
        small = np.asarray(im)
    assert small.shape == (want[1], want[0], 3)
    # close to the full decode reduced, and about as close to the original reduced
    assert psnr(np.asarray(full.reduce(scale)), small) >= 38.0
    assert (
        psnr(np.asarray(kodim23.reduce(scale)), small)
        >= psnr(np.asarray(kodim23.reduce(scale)), np.asarray(full.reduce(scale))) - 3.0
    )


@pytest.mark.v1
@pytest.mark.parametrize("factor", [2, 4, 6, 8, (4, 2), 3])
def test_reduce_decodes_at_a_reduced_scale(
    c2f_file_v1: Path, factor: int | tuple[int, int]
) -> None:
    with Image.open(c2f_file_v1) as im:
        im.load()
        want = np.asarray(im.reduce(factor))
    fp = CountingFile(c2f_file_v1.read_bytes())
    with Image.open(fp) as im:
        got = im.reduce(factor)
        assert im.size == (768, 512)  # this image is left as it was
        assert np.asarray(im).shape == (512, 768, 3)
    assert np.asarray(got).shape == want.shape
    assert psnr(want, np.asarray(got)) >= (30.0 if factor == 8 else 38.0)


def test_thumbnail_of_a_large_image_decodes_at_a_quarter(
    kodim23: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = kodim23.resize((1536, 1024))
    buf = io.BytesIO()
    big.save(buf, format="C2F", quality=50)
    plugin = type(Image.open(io.BytesIO(buf.getvalue())))
    scales: list[int] = []
    original = plugin._decode_reduced  # type: ignore[attr-defined]

    def spy(self: ImageFile.ImageFile, reduce: int) -> None:
        scales.append(reduce)
        original(self, reduce)

    monkeypatch.setattr(plugin, "_decode_reduced", spy)
    with Image.open(buf) as im:
        im.thumbnail((192, 128))  # draft asks for (384, 256): 1/4 serves it
        assert im.size == (192, 128)
    assert scales == [4]


def test_thumbnail_uses_the_preview(c2f_file: Path) -> None:
    data = c2f_file.read_bytes()
    fp = CountingFile(data)
    with Image.open(fp) as im:
        im.thumbnail((48, 32))
        assert im.size == (48, 32)
        assert fp.furthest <= bitstream.hyper_end(bitstream.iter_segments(data)) + 8


def test_parser_shows_preview_early(c2f_file: Path, kodim23: Image.Image) -> None:
    data = c2f_file.read_bytes()
    parser = ImageFile.Parser()
    first_preview = None
    for start in range(0, len(data), 1024):
        parser.feed(data[start : start + 1024])
        image = parser.image
        if first_preview is None and image is not None and np.asarray(image).any():
            first_preview = min(start + 1024, len(data))  # the preview is drawn
            shown = np.asarray(image.copy())
    # drawn with the chunk that completes the hyper segments, as the docs say
    hyper = bitstream.hyper_end(bitstream.iter_segments(data))
    assert first_preview == -(-hyper // 1024) * 1024
    assert first_preview <= 0.3 * len(data)
    assert psnr(np.asarray(kodim23), shown) >= 20.0
    final = parser.close()
    assert psnr(np.asarray(kodim23), np.asarray(final)) >= 30.0


def test_truncated_files(c2f_file: Path) -> None:
    data = c2f_file.read_bytes()
    cut = data[: bitstream.hyper_end(bitstream.iter_segments(data)) + 3000]
    with Image.open(io.BytesIO(cut)) as im, pytest.raises(OSError, match="truncated"):
        im.load()
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(io.BytesIO(cut)) as im:
                im.load()
                assert im.size == (768, 512)
        assert any("missing levels left out" in str(w.message) for w in caught)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_corrupt_file_is_oserror(c2f_file: Path) -> None:
    data = bytearray(c2f_file.read_bytes())
    data[bitstream.hyper_end(bitstream.iter_segments(bytes(data))) + 100] ^= 0xFF
    with Image.open(io.BytesIO(bytes(data))) as im, pytest.raises(OSError, match="CRC"):
        im.load()


def test_max_image_pixels_applies_at_open(c2f_file: Path) -> None:
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 768 * 512 // 3
    try:
        with pytest.raises(Image.DecompressionBombError):
            Image.open(c2f_file)
    finally:
        Image.MAX_IMAGE_PIXELS = old


def test_pixel_limits_behave_as_pillow_s(c2f_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between MAX_IMAGE_PIXELS and twice it Pillow only warns, and the image loads
    (c2f's padding does not turn the warning into an error); past c2f's own memory
    limit the load raises DecompressionBombError, as Pillow users expect."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 768 * 512 * 2 // 3)
    with pytest.warns(Image.DecompressionBombWarning), Image.open(c2f_file) as im:
        im.load()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1 << 20)
    monkeypatch.setattr(c2f_format.codec.api, "DEFAULT_MAX_PIXELS", 768 * 512 - 1)  # c2f's
    with Image.open(c2f_file) as im, pytest.raises(Image.DecompressionBombError, match="c2f"):
        im.load()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(c2f_file) as im:
        im.load()


def test_save_refuses_modes_it_cannot_store(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot write mode CMYK as C2F"):
        Image.new("CMYK", (8, 8)).save(tmp_path / "x.c2f")
    with pytest.raises(OSError, match="cannot write mode I;16 as C2F"):
        Image.new("I;16", (8, 8)).save(tmp_path / "x.c2f")
    Image.new("P", (8, 8)).save(tmp_path / "p.c2f")  # lossless conversion to RGB


def test_imageio_v3(tmp_path: Path, kodim23: Image.Image) -> None:
    arr = np.asarray(kodim23)[:128, :192]
    path = tmp_path / "a.c2f"
    iio.imwrite(path, arr, quality=80)
    back = iio.imread(path)
    assert back.shape == arr.shape and back.dtype == np.uint8
    assert psnr(arr, back) > 25
    props = iio.improps(path)
    assert props.shape == (128, 192, 3) and props.dtype == np.uint8
    batch = iio.improps(path, index=...)  # type: ignore[arg-type]  # imageio types index int
    assert batch.shape == (1, 128, 192, 3)
    meta = iio.immeta(path)
    assert meta["quality"] == 80 and meta["mode"] == "RGB"
    with Image.open(path) as im:  # both plugins report the same facts
        assert meta == {"mode": im.mode, **im.info}
        assert im.info["c2f_version"] == "2.0" and len(im.info["c2f_model"]) == 32
    stages = list(iio.imiter(path, progressive=True))
    assert len(stages) == 2 and all(s.shape == arr.shape for s in stages)
    assert np.array_equal(stages[1], back)
    assert len(list(iio.imiter(path))) == 1
    data = iio.imwrite("<bytes>", arr[:, :, 0], extension=".c2f")
    assert iio.imread(data).shape == (128, 192)
    assert iio.imread(path, preview=True).shape == (16, 24, 3)


def test_imageio_v2(tmp_path: Path) -> None:
    with Image.open(KODIM23) as im:
        arr = np.asarray(im.convert("RGB"))[:64, :64]
    path = tmp_path / "b.c2f"
    iio2.imwrite(path, arr)
    assert iio2.imread(path).shape == (64, 64, 3)


def test_imageio_leaves_other_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.png"
    iio.imwrite(path, np.zeros((4, 4, 3), np.uint8))
    assert iio.imread(path).shape == (4, 4, 3)


def test_imageio_errors_on_damaged_input(small_stream: bytes) -> None:
    """Found while adding imageio to the fuzz harness: a stream cut inside the header hit an
    assertion in the progressive iterator instead of raising a C2FError."""
    for cut in (20, bitstream.HEADER_SIZE + 5):
        with pytest.raises(c2f_format.TruncatedStreamError):
            list(iio.imiter(small_stream[:cut], extension=".c2f", progressive=True))
        with pytest.raises(c2f_format.TruncatedStreamError):
            iio.imread(small_stream[:cut], extension=".c2f")
    with pytest.raises(c2f_format.ImageTooLargeError):
        iio.imread(small_stream, extension=".c2f", max_pixels=1000)
