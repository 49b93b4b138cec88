"""Exif and ICC profiles (spec 2.3) from the source into the stream and out into the
decoded image's `info`, through the API, Pillow and imageio; the Exif orientation is
carried, not applied, as in JPEG."""

from __future__ import annotations

import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

import c2f_format
from c2f_format.format.errors import InvalidArgumentError

ORIENTATION = 0x0112
MAKE = 0x010F


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def rotated_jpeg(small_rgb: np.ndarray, icc: bytes) -> bytes:
    """A camera JPEG stored sideways: 80 wide, 96 high, Orientation 6 (turn 90 degrees
    clockwise to view), with a make and an ICC profile."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "c2f test camera"
    buf = io.BytesIO()
    Image.fromarray(small_rgb).save(buf, "JPEG", quality=95, exif=exif, icc_profile=icc)
    return buf.getvalue()


def _check_upright(image: Image.Image, icc: bytes) -> None:
    """The stored pixels with the orientation tag: viewers turn it upright."""
    assert image.size == (80, 96)
    assert image.info["exif"].startswith(b"Exif\x00\x00")  # as Pillow's JPEG and PNG give it
    assert image.getexif()[ORIENTATION] == 6
    assert image.getexif()[MAKE] == "c2f test camera"
    assert image.info["icc_profile"] == icc
    assert ImageOps.exif_transpose(image).size == (96, 80)


def test_rotated_jpeg_through_the_api(rotated_jpeg: bytes, icc: bytes) -> None:
    """`encode(Image.open(...))` takes Exif and ICC from the image's info, as the CLI
    relies on; `decode()` hands them back in `info`."""
    with Image.open(io.BytesIO(rotated_jpeg)) as source:
        data = c2f_format.encode(source, quality=60)
    out = c2f_format.decode(data)
    _check_upright(out, icc)
    dec = c2f_format.StreamDecoder()
    dec.feed(data)
    assert dec.preview().info == out.info == dec.info
    assert dec.metadata["exif"][:4] in (b"MM\x00*", b"II*\x00")  # stored without the prefix
    buf = io.BytesIO()  # what the CLI does when decoding to a file
    out.save(buf, "JPEG", exif=out.info["exif"], icc_profile=out.info["icc_profile"])
    with Image.open(buf) as again:
        _check_upright(again, icc)


def test_rotated_jpeg_through_pillow(tmp_path: Path, rotated_jpeg: bytes, icc: bytes) -> None:
    path = tmp_path / "photo.c2f"
    with Image.open(io.BytesIO(rotated_jpeg)) as source:
        # Exif only when asked for, as Pillow's writers do; ICC kept, as PNG's writer does
        source.save(path, exif=source.getexif(), quality=60)
    with Image.open(path) as im:
        _check_upright(im, icc)  # from the header and metadata segments, before load
        im.load()
        _check_upright(im, icc)
    with Image.open(io.BytesIO(rotated_jpeg)) as source:
        source.save(path, quality=60)
    with Image.open(path) as im:
        assert "exif" not in im.info and im.info["icc_profile"] == icc


def test_rotated_jpeg_through_imageio(tmp_path: Path, rotated_jpeg: bytes, icc: bytes) -> None:
    with Image.open(io.BytesIO(rotated_jpeg)) as source:
        exif, pixels = source.info["exif"], np.asarray(source)
    path = tmp_path / "photo.c2f"
    iio.imwrite(path, pixels, quality=60, exif=exif, icc_profile=icc)
    meta = iio.immeta(path)
    assert meta["exif"] == exif and meta["icc_profile"] == icc
    shown = Image.fromarray(iio.imread(path))
    shown.info.update(exif=meta["exif"])
    assert ImageOps.exif_transpose(shown).size == (96, 80)


def test_keywords_override_the_image_info(small_rgb: np.ndarray, icc: bytes) -> None:
    image = Image.fromarray(small_rgb)
    exif = Image.Exif()
    exif[MAKE] = "from info"
    image.info.update(exif=exif.tobytes(), icc_profile=icc)
    other = Image.Exif()
    other[MAKE] = "from the keyword"
    cases = [
        ({}, "from info", icc),
        ({"exif": other}, "from the keyword", icc),  # an Image.Exif, as Pillow's writers take
        ({"exif": other.tobytes()[6:], "icc_profile": b"another"}, "from the keyword", b"another"),
        ({"exif": None, "icc_profile": None}, None, None),
    ]
    for kwargs, make, profile in cases:
        out = c2f_format.decode(c2f_format.encode(image, quality=30, **kwargs))  # type: ignore[arg-type]
        assert out.getexif().get(MAKE) == make
        assert out.info.get("icc_profile") == profile


def test_metadata_that_cannot_be_stored_is_named(small_rgb: np.ndarray) -> None:
    image = Image.fromarray(small_rgb)
    image.info["exif"] = b"Exif\x00\x00not tiff"
    with pytest.raises(InvalidArgumentError, match=r"image.info\['exif'\].*exif=None"):
        c2f_format.encode(image)
    assert "exif" not in c2f_format.decode(c2f_format.encode(image, exif=None)).info
    image.info["icc_profile"] = "sRGB"
    with pytest.raises(InvalidArgumentError, match=r"image.info\['icc_profile'\] must be bytes"):
        c2f_format.encode(image, exif=None)


def test_images_without_metadata_decode_with_none(small_stream: bytes) -> None:
    out = c2f_format.decode(small_stream)
    assert "exif" not in out.info and "icc_profile" not in out.info
