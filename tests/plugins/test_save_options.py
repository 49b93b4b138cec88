"""Other formats' save options are honoured or refused with a message, never ignored."""

from __future__ import annotations

import io
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

import c2f_format
from c2f_format.format.errors import InvalidArgumentError

REFUSED = [
    ({"lossless": True}, "lossy format.*PNG"),
    ({"speed": 6}, "effort=1..9.*not speed="),
    ({"method": 6}, "effort=1..9.*not method="),
    ({"subsampling": "4:2:0"}, "full resolution"),
    ({"optimize": True}, "does not take the save option optimize="),
    ({"append_images": [Image.new("RGB", (4, 4))]}, "one image"),
]
HONOURED = [{"lossless": False}, {"subsampling": "4:4:4"}, {"subsampling": 0}]


def _pillow(small_rgb: np.ndarray, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(small_rgb).save(buf, format="C2F", quality=60, **options)
    return buf.getvalue()


@pytest.mark.parametrize(("options", "message"), REFUSED)
def test_pillow_refuses_what_it_cannot_honour(
    small_rgb: np.ndarray, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _pillow(small_rgb, **options)


@pytest.mark.parametrize(("options", "message"), REFUSED[:5])
def test_imageio_refuses_what_it_cannot_honour(
    small_rgb: np.ndarray, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        iio.imwrite("<bytes>", small_rgb, extension=".c2f", **options)


@pytest.mark.parametrize("options", HONOURED)
def test_options_that_ask_for_what_c2f_does_are_honoured(
    small_rgb: np.ndarray, small_stream: bytes, options: dict[str, Any]
) -> None:
    assert _pillow(small_rgb, **options) == small_stream
    got = iio.imwrite("<bytes>", small_rgb, extension=".c2f", quality=60, **options)
    assert got == small_stream


def test_the_api_refuses_lossless(small_rgb: np.ndarray) -> None:
    with pytest.raises(InvalidArgumentError, match="lossy format"):
        c2f_format.encode(small_rgb, lossless=True)
    assert c2f_format.encode(small_rgb, quality=60, lossless=False)
