"""The decoding contract, checked on one input: every way c2f reads bytes either gives
an image or raises a documented exception. Shared by the fuzzer (`fuzz_c2f.py`), the
campaign's clean replays (`campaign.py`) and the regression test over the kept corpus
(`tests/plugins/test_fuzz_corpus.py`); any other exception propagates, which is the finding.

The paths: `info`, `decode` (strict and tolerant), `StreamDecoder` (strict and
tolerant) fed in 97-byte pieces with a preview as soon as one is ready, Pillow's
`Image.open().load()`, a 1/8 draft load and `ImageFile.Parser` fed in 256-byte pieces
(strict and under `LOAD_TRUNCATED_IMAGES`), and imageio's v3 `imread` and progressive
`imiter`.
"""

from __future__ import annotations

import io
import warnings

import imageio.v3 as iio
from PIL import Image, ImageFile

import c2f_format
from c2f_format.format.bitstream import MAGIC

# Small limits keep each run fast; the limits themselves are part of what is checked.
MAX_PIXELS = 1 << 16
PILLOW_ERRORS = (Image.UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError)


def through_api(data: bytes) -> None:
    try:
        c2f_format.info(data)
    except c2f_format.C2FError:
        pass
    for allow in (False, True):
        try:
            c2f_format.decode(data, max_pixels=MAX_PIXELS, allow_truncated=allow)
        except c2f_format.C2FError:
            pass
    for tolerate in (False, True):
        dec = c2f_format.StreamDecoder(max_pixels=MAX_PIXELS, allow_truncated=tolerate)
        try:
            for pos in range(0, len(data), 97):
                dec.feed(data[pos : pos + 97])
                if dec.preview_ready:
                    dec.preview()
            dec.image(partial=True)
        except c2f_format.C2FError:
            pass


def through_pillow(data: bytes) -> list[str]:
    """`load()`, a 1/8 draft load, `ImageFile.Parser`; `check` runs this strict and
    under `ImageFile.LOAD_TRUNCATED_IMAGES`. Returns each path's outcome: "image" or
    the documented exception's name."""
    outcomes = []
    for draft in (False, True):
        try:
            with Image.open(io.BytesIO(data)) as im:
                if draft:
                    im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
            outcomes.append("image")
        except PILLOW_ERRORS as exc:
            outcomes.append(type(exc).__name__)
    parser = ImageFile.Parser()
    try:
        for pos in range(0, len(data), 256):
            parser.feed(data[pos : pos + 256])
        parser.close()
        outcomes.append("image")
    except PILLOW_ERRORS as exc:
        outcomes.append(type(exc).__name__)
    return outcomes


IMAGEIO_ERRORS = c2f_format.C2FError


def through_imageio(data: bytes) -> None:
    # Bytes without the magic are not ours: imageio hands them to its other plugins,
    # whose behaviour on garbage is theirs (Pillow's legacy BMP check, for one, raises
    # struct.error on a 1-byte input).
    if not data.startswith(MAGIC):
        return
    try:
        iio.imread(data, extension=".c2f", max_pixels=MAX_PIXELS)
    except IMAGEIO_ERRORS:
        pass
    try:
        for _ in iio.imiter(data, extension=".c2f", progressive=True, max_pixels=MAX_PIXELS):
            pass
    except IMAGEIO_ERRORS:
        pass


def check(data: bytes) -> None:
    """Run `data` through every path; raise only if the contract is broken."""
    saved, truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            through_api(data)
            through_pillow(data)
            through_imageio(data)
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            through_pillow(data)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated
