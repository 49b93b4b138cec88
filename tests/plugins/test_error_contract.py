"""One exception contract, held for each failure class on every surface (docs/reliability.md,
"What each surface raises"): the API raises typed `C2FError`s, Pillow its own `OSError`
family (`ValueError` for a bad option) as every Pillow plugin does, imageio passes c2f's
errors through, and the CLI exits 1 with `c2f: error: FILE: ...`. Where a caller can go
on (a limit, a stream cut or damaged in its rows), the message says how, in that
surface's terms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import c2f_format
from c2f_format.format import bitstream as bs
from c2f_format.format.errors import (
    CorruptStreamError,
    ImageTooLargeError,
    InvalidArgumentError,
    NotC2FError,
    TruncatedStreamError,
    UnsupportedImageError,
)
from c2f_format.tools.cli import main


def _streams(good: bytes) -> dict[str, bytes]:
    """The failure classes, made from a good stream (its first y band, or finest level
    but one in a version 2 stream, damaged or cut)."""
    kinds = {bs.SEG_YBND, bs.SEG_LEVL}
    band = [s for s in bs.iter_segments(good) if s.kind in kinds][-2]
    damaged = bytearray(good)
    damaged[band.offset + 12] ^= 0xFF
    h = bs.parse_header(good[: bs.HEADER_SIZE])
    huge = bs.Header(8192, 8192, h.mode, h.quality, h.model_id, h.version).pack()
    return {
        "not an image": b"plain text, not an image\n" * 8,
        "truncated": good[: band.offset + 20],
        "damaged": bytes(damaged),
        "too large": huge + good[bs.HEADER_SIZE :],
    }


# failure class -> (API / imageio type, Pillow type, the API's hint, the CLI's, Pillow's)
READS: dict[str, tuple[type[Exception], type[Exception], str, str, str]] = {
    "not an image": (
        NotC2FError,
        UnidentifiedImageError,
        "magic bytes",
        "magic bytes",
        "cannot identify",
    ),
    "truncated": (
        TruncatedStreamError,
        OSError,
        "allow_truncated=True decodes it",
        "--allow-truncated decodes it",
        "LOAD_TRUNCATED_IMAGES = True decodes it",
    ),
    "damaged": (
        CorruptStreamError,
        OSError,
        "allow_truncated=True decodes it",
        "--allow-truncated decodes it",
        "LOAD_TRUNCATED_IMAGES = True decodes it",
    ),
    "too large": (
        ImageTooLargeError,
        Image.DecompressionBombError,
        "max_pixels=None lifts the limit",
        "--max-pixels none lifts the limit",
        "MAX_IMAGE_PIXELS = None lifts it",
    ),
}


# imageio, finding no plugin for the text file, tries its deprecated legacy ones too
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("case", list(READS))
def test_reading(
    case: str,
    small_stream: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = _streams(small_stream)[case]
    api_type, pillow_type, api_hint, cli_hint, pillow_hint = READS[case]
    path = tmp_path / "x.c2f"
    path.write_bytes(data)

    with pytest.raises(api_type, match=api_hint):
        c2f_format.decode(data)
    with pytest.raises(pillow_type, match=pillow_hint):
        with Image.open(path) as im:
            im.load()
    if case == "not an image":  # no plugin claims it: imageio's own error
        with pytest.raises(OSError, match="Could not find a backend"):
            iio.imread(path)
    else:  # c2f's error as it is (imageio's reader takes no allow_truncated)
        with pytest.raises(api_type):
            iio.imread(path)
    assert main(["decode", str(path), "-o", str(tmp_path / "o.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"c2f: error: {path}: ") and cli_hint in err
    assert "Traceback" not in err


def _write(writer: str, image: Image.Image, options: dict[str, Any], out: Path) -> None:
    if writer == "api":
        c2f_format.encode(image, **options)
    elif writer == "pillow":
        image.save(out, **options)
    else:
        # imageio takes arrays: CMYK's counterpart is an array of 5 channels
        array = np.zeros((4, 4, 5), np.uint8) if image.mode == "CMYK" else np.asarray(image)
        iio.imwrite(out, array, **options)


# failure class -> (image, save options, the type each writer raises)
WRITES: dict[str, tuple[Image.Image, dict[str, Any], dict[str, type[Exception]]]] = {
    "unsupported mode": (
        Image.new("CMYK", (16, 16)),
        {},
        {"api": UnsupportedImageError, "pillow": OSError, "imageio": UnsupportedImageError},
    ),
    "option not supported": (
        Image.new("RGB", (16, 16)),
        {"lossless": True},
        {"api": InvalidArgumentError, "pillow": ValueError, "imageio": InvalidArgumentError},
    ),
}


@pytest.mark.parametrize("case", list(WRITES))
@pytest.mark.parametrize("writer", ["api", "pillow", "imageio"])
def test_writing(case: str, writer: str, tmp_path: Path) -> None:
    image, options, expected = WRITES[case]
    out = tmp_path / "y.c2f"
    with pytest.raises(expected[writer], match=r"not supported|lossy"):
        _write(writer, image, options, out)
    assert not out.exists()
