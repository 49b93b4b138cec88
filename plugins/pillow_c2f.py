"""Pillow support for c2f: `Image.open("x.c2f")`, `im.save("x.c2f", quality=...)`.

* Opening reads the header and the metadata segments only; `load()` decodes. The mode
  (RGB, L, RGBA, LA) comes from the header; `info` has `exif` (with the `Exif\\0\\0`
  prefix, as Pillow's PNG and JPEG readers give it) and `icc_profile`. Pixels are as
  stored: apply the Exif orientation with `ImageOps.exif_transpose`, as for JPEG.
* `draft(mode, size)` works as for JPEG, at the largest of 1/8, 1/4 and 1/2 that still
  covers `size`: at 1/8 the preview is decoded from the hyper segments alone (and the
  alpha, reduced by 8, which precedes them), and nothing after them is read; at 1/4 and
  1/2 the whole stream is read and the synthesis stops at 1/4 scale, about 40% of a
  full decode (`api.StreamDecoder.image(reduce=...)`). `im.thumbnail()` calls draft
  with twice the target size; `im.reduce(f)` of an unloaded image decodes at 1/2, 1/4
  or 1/8 where f is a multiple of it, and reduces the rest of the way (colour and alpha
  each averaged, where Pillow's own reduce of RGBA weights colour by alpha).
* `ImageFile.Parser` decodes while bytes arrive: its `image` shows the preview
  (upsampled) once the hyper segments are in, and the final image after `close()`.
* `ImageFile.LOAD_TRUNCATED_IMAGES`: a file cut inside y loads with the missing rows
  predicted (cut earlier: left blank), with a warning; otherwise a truncated file
  raises `OSError`, as for Pillow's own formats.
* Pixel limits: Pillow's `MAX_IMAGE_PIXELS` applies at open, and c2f's own limit
  (`c2f_format.DEFAULT_MAX_PIXELS`, from the decoder's memory use) at load, unless
  `MAX_IMAGE_PIXELS` is set to None; either raises `DecompressionBombError`.
* Saving takes `quality` (1..100, default 75), `exif` (bytes or `Image.Exif`, written
  only when given, as by Pillow's other writers), `icc_profile` (kept from the source
  image unless given, as PNG does) and `device`. Modes RGB, L, RGBA and LA are written
  as such (alpha exactly), 1, P and PA converted losslessly (P with transparency to
  RGBA); other modes raise `OSError` ("cannot write mode CMYK as C2F").
"""

from __future__ import annotations

import io
import warnings
from typing import IO, Any

from PIL import Image, ImageFile

from c2f_format.codec import api, precision
from c2f_format.codec.effort import DEFAULT_EFFORT
from c2f_format.codec.options import check_save_options
from c2f_format.format import bitstream
from c2f_format.format.constants import PREVIEW_SCALE, REDUCE_FACTORS
from c2f_format.format.errors import (
    C2FError,
    CorruptStreamError,
    ImageTooLargeError,
    NotC2FError,
    TorchRequiredError,
    TruncatedStreamError,
    UnsupportedImageError,
)
from c2f_format.format.weights_file import weights_index

from . import EXTENSION, FORMAT, MIME

DECODER = "c2f"
DRAFT_SCALES = tuple(sorted(set(REDUCE_FACTORS) - {1}, reverse=True))  # 8, 4, 2


TOLERANCE_HINT = "ImageFile.LOAD_TRUNCATED_IMAGES = True decodes it from what arrived"


def _read_up_to(fp: IO[bytes], n: int) -> bytes:
    """Read `n` bytes or until the file ends, in bounded pieces: a length field from a
    hostile file must not turn into one huge allocation."""
    parts = []
    while n > 0:
        chunk = fp.read(min(n, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _pixel_limit() -> int | None:
    """c2f's memory-based limit on the padded size, for `load()`.

    Pillow applies MAX_IMAGE_PIXELS itself at `open()` to the true size (a warning above
    it, DecompressionBombError above twice it), as for every format; c2f adds its own
    limit, from the decoder's memory use, unless MAX_IMAGE_PIXELS is None (which lifts
    both, as in Pillow)."""
    return None if Image.MAX_IMAGE_PIXELS is None else api.DEFAULT_MAX_PIXELS


def _accept(prefix: bytes) -> bool:
    return prefix[: len(bitstream.MAGIC)] == bitstream.MAGIC


class C2FImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "c2f learned image"

    def _open(self) -> None:
        assert self.fp is not None
        parser = bitstream.StreamParser()
        try:
            parser.feed(_read_up_to(self.fp, bitstream.HEADER_SIZE))
            header = parser.header
            if header is None:
                raise SyntaxError("truncated c2f header")
            if header.model_id.hex() not in weights_index():
                raise OSError(
                    f"c2f image made with model {header.model_id.hex()}, which is not installed"
                )
            # metadata (ancillary) segments come first: read just those
            while True:
                head = _read_up_to(self.fp, 8)
                if len(head) < 8:
                    break
                parser.feed(head)  # type, order and size checked before the payload is read
                if head[:1].isupper():  # critical (ALPH or HYP1): image data, for load()
                    break
                length = int.from_bytes(head[4:8], "big")
                body = _read_up_to(self.fp, length + 4)
                parser.feed(body)
                if len(body) < length + 4:
                    break
        except (NotC2FError, TruncatedStreamError) as exc:
            raise SyntaxError(str(exc)) from None
        except C2FError as exc:
            raise OSError(f"c2f: {api.with_hint(exc, TOLERANCE_HINT)}") from None
        self.info.update(api.file_info(header, parser.segments))
        self._mode = header.mode
        self._size = (header.width, header.height)
        self._c2f_full_size = self._size
        # a precision chosen where the image is opened (precision.using) holds for its
        # later load: Pillow passes decoderconfig to the decoder after the tile's args
        self.decoderconfig = (precision.requested(),)
        self.tile = [ImageFile._Tile(DECODER, (0, 0, *self.size), 0, ("full",))]

    def draft(
        self, mode: str | None, size: tuple[int, int] | None
    ) -> tuple[str, tuple[int, int, float, float]] | None:
        if len(self.tile) != 1 or self.tile[0].args != ("full",) or not size:
            return None
        width, height = self._c2f_full_size
        scale = min(width // max(1, size[0]), height // max(1, size[1]))
        reduce = next((r for r in DRAFT_SCALES if r <= scale), 1)
        if reduce == 1:
            return None
        self._decode_reduced(reduce)
        return self.mode, (0, 0, width / reduce, height / reduce)

    def _decode_reduced(self, reduce: int) -> None:
        width, height = self._c2f_full_size
        self._size = bitstream.reduced_size(width, height, reduce)
        args = ("preview",) if reduce == PREVIEW_SCALE else ("reduce", reduce)
        self.tile = [ImageFile._Tile(DECODER, (0, 0, *self.size), 0, args)]

    def reduce(
        self, factor: int | tuple[int, int], box: tuple[int, int, int, int] | None = None
    ) -> Image.Image:
        """Of the whole image, not yet loaded: decoded at the largest of 1/8, 1/4 and 1/2
        that divides `factor`, then reduced the rest of the way. This image is left as
        it was (unlike `draft`)."""
        fx, fy = (factor, factor) if isinstance(factor, int) else tuple(factor)
        whole = box is None and all(type(f) is int and f >= 1 for f in (fx, fy))
        scale = next((r for r in DRAFT_SCALES if fx % r == 0 and fy % r == 0), 1) if whole else 1
        untouched = len(self.tile) == 1 and self.tile[0].args == ("full",)
        if scale == 1 or not untouched or self.fp is None:  # Pillow's own, and its errors
            return super().reduce(factor, box)
        self.fp.seek(0)
        with Image.open(io.BytesIO(self.fp.read()), formats=[FORMAT]) as other:
            assert isinstance(other, C2FImageFile)
            other._decode_reduced(scale)
            other.load()
            small = other.copy()
        rest = (fx // scale, fy // scale)
        return small if rest == (1, 1) else small.reduce(rest)


class C2FDecoder(ImageFile.PyDecoder):
    """Decodes either by pulling segments from the file (`Image.load`), reading no more
    than needed, or from bytes pushed in by `ImageFile.Parser`."""

    _pulls_fd = True

    def init(self, args: tuple[Any, ...]) -> None:
        tile, self._precision = args, precision.requested()
        if len(args) > 1 and args[-1] in precision.CHOICES:  # the image's decoderconfig
            tile, self._precision = args[:-1], args[-1]
        self._preview_only = tile[0] == "preview"
        self._reduce = int(tile[1]) if tile[0] == "reduce" else 1
        self._preview_shown = False
        self._decoder: api.StreamDecoder | None = None

    @property
    def _stream(self) -> api.StreamDecoder:
        if self._decoder is None:
            self._decoder = api.StreamDecoder(
                max_pixels=_pixel_limit(),
                allow_truncated=bool(ImageFile.LOAD_TRUNCATED_IMAGES),
                reduce=self._reduce,
            )
        return self._decoder

    def decode(
        self, buffer: bytes | bytearray | memoryview | Image.SupportsArrayInterface
    ) -> tuple[int, int]:
        try:
            with precision.using(self._precision):
                if self.fd is not None and not buffer:
                    return self._pull()
                return self._push(bytes(buffer))  # type: ignore[arg-type]
        except ImageTooLargeError as exc:
            hinted = api.with_hint(exc, "Image.MAX_IMAGE_PIXELS = None lifts it")
            raise Image.DecompressionBombError(f"c2f: {hinted}") from None
        except C2FError as exc:
            stream = self._decoder
            if stream is not None and type(exc) is CorruptStreamError and stream.preview_ready:
                raise OSError(f"c2f: {exc}; {TOLERANCE_HINT}") from None  # past the preview
            raise OSError(f"c2f: {api.with_hint(exc, TOLERANCE_HINT)}") from None

    def _push(self, data: bytes) -> tuple[int, int]:
        self._stream.feed(data)
        if self._stream.preview_ready and self._preview_only:
            self._show_preview()
            return -1, 0
        if self._stream.ended:
            self._show_final()
            return -1, 0
        if self._stream.preview_ready and not self._preview_shown:
            self._show_preview()
        return len(data), 0

    def _pull(self) -> tuple[int, int]:
        fd = self.fd
        assert fd is not None
        if not self._read_exact(fd, bitstream.HEADER_SIZE):
            return self._truncated()
        while not self._stream.ended:
            if self._preview_only and self._stream.preview_ready:
                self._show_preview()
                return -1, 0
            head = _read_up_to(fd, 8)
            self._stream.feed(head)
            if self._stream.ended:  # a garbled head ended reading under tolerance
                break
            if len(head) < 8:
                return self._truncated()
            length = int.from_bytes(head[4:8], "big")
            if not self._read_exact(fd, length + 4):
                return self._truncated()
        self._show_final()
        return -1, 0

    def _show_final(self) -> None:
        """The whole image; damage tolerated under LOAD_TRUNCATED_IMAGES is predicted."""
        if self._stream.damage:
            what = f"{self._stream.missing()}; {self._stream.filled(damaged=True)}"
            warnings.warn(f"c2f: {what}", stacklevel=3)
            self._show(self._stream.image(partial=True, reduce=self._reduce))
        else:
            self._show(self._stream.image(reduce=self._reduce))

    def _read_exact(self, fd: IO[bytes], n: int) -> bool:
        """Feed `n` more bytes to the stream decoder; False when the file ends first."""
        data = _read_up_to(fd, n)
        self._stream.feed(data)
        return len(data) == n

    def _truncated(self) -> tuple[int, int]:
        if ImageFile.LOAD_TRUNCATED_IMAGES and not self._stream.preview_ready:
            warnings.warn(f"c2f: {self._stream.missing()}; image left blank", stacklevel=2)
            return -1, 0
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            if self._preview_only:
                self._show_preview()
            else:
                what = f"{self._stream.missing()}; {self._stream.filled()}"
                warnings.warn(f"c2f: {what}", stacklevel=2)
                self._show(self._stream.image(partial=True, reduce=self._reduce))
            return -1, 0
        hinted = api.with_hint(
            TruncatedStreamError(self._stream.missing()),
            TOLERANCE_HINT,
        )
        raise OSError(f"image file is truncated: {hinted}")

    def _show_preview(self) -> None:
        preview = self._stream.preview()
        target = (self.state.xsize, self.state.ysize)
        if preview.size != target:
            preview = preview.resize(target, Image.Resampling.BILINEAR)
        self._show(preview)
        self._preview_shown = True

    def _show(self, image: Image.Image) -> None:
        self.set_as_raw(image.tobytes(), image.mode)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    info = im.encoderinfo
    try:
        check_save_options(info)
        data = api.encode(
            im,
            quality=info.get("quality", 75),
            effort=info.get("effort", DEFAULT_EFFORT),
            device=info.get("device"),
            exif=info.get("exif") or None,
            icc_profile=info.get("icc_profile", im.info.get("icc_profile")) or None,
        )
    except UnsupportedImageError as exc:
        raise OSError(f"cannot write mode {im.mode} as {FORMAT}: {exc}") from None
    except TorchRequiredError as exc:  # as Pillow says of an encoder it was built without
        raise OSError(f"encoder c2f not available: {exc}") from None
    except C2FError as exc:
        text = str(exc)
        raise ValueError(text if text.startswith("c2f") else f"c2f: {text}") from None
    fp.write(data)


def register() -> None:
    """Register the C2F format with Pillow (idempotent)."""
    Image.register_open(FORMAT, C2FImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
    Image.register_decoder(DECODER, C2FDecoder)
