"""The caller's images and the stream's: a PIL image or array as the colour and alpha
planes the encoder codes (with the lossless mode conversions), the metadata segments
that travel with them, and the decoded planes back as a PIL image of the stream's mode
(`ImageSink`, which the synthesis writes its tiles into)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..format.bitstream import (
    ALPHA_MODES,
    MAX_DIMENSION,
    MAX_METADATA_BYTES,
    MODES,
    SEG_EXIF,
    SEG_ICC,
    Header,
    Segment,
)
from ..format.errors import (
    InvalidArgumentError,
    UnsupportedImageError,
)

if TYPE_CHECKING:
    pass

EXIF_PREFIX = b"Exif\x00\x00"  # JPEG's APP1 marker text, which Pillow's Exif.tobytes() adds
# Modes converted without loss before encoding (P and PA by their palette, 1 and L/RGB
# with a `transparency` colour key as Pillow's converters read it); the rest is refused.
_LOSSLESS_CONVERSIONS = {"1": "L", "P": "RGB", "PA": "RGBA"}
_WITH_TRANSPARENCY = {"1": "LA", "L": "LA", "RGB": "RGBA", "P": "RGBA"}

ImageLike = Image.Image | np.ndarray


class FromImage(enum.Enum):
    """Default of `encode`'s metadata arguments: take the value from `image.info`."""

    FROM_IMAGE = "from image.info"

    def __repr__(self) -> str:
        return "<from image.info>"


FROM_IMAGE = FromImage.FROM_IMAGE


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """The pixels of a PIL image in one of the stored modes, converted losslessly."""
    mode = image.mode
    if mode == "P" and (image.palette is None or image.palette.mode not in ("RGB", "RGBA")):
        raise UnsupportedImageError(
            "palette image with a palette that is not RGB or RGBA: convert it to RGB, "
            "RGBA or L yourself"
        )
    if mode in _WITH_TRANSPARENCY and "transparency" in image.info:
        target = _WITH_TRANSPARENCY[mode]  # a transparent colour or palette entries
    elif mode == "P" and image.palette is not None and image.palette.mode == "RGBA":
        target = "RGBA"
    else:
        target = _LOSSLESS_CONVERSIONS.get(mode, mode)
    if target not in MODES.values():
        raise UnsupportedImageError(
            f"image mode {mode!r} is not supported: c2f encodes RGB, L, RGBA and LA "
            "(8 bits a channel, alpha not premultiplied; 1, P and PA are converted "
            "losslessly); convert explicitly, e.g. image.convert('RGB'), accepting what "
            "that drops"
        )
    return np.asarray(image.convert(target) if target != mode else image)


def image_planes(image: ImageLike) -> tuple[np.ndarray, str, np.ndarray | None]:
    """(colour as uint8 [H, W, 3], colour mode, alpha as uint8 [H, W] or None) from a
    PIL image or an array (HxW, HxWx1 and HxWx3 as L and RGB, HxWx2 and HxWx4 with
    alpha)."""
    if isinstance(image, Image.Image):
        arr = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise UnsupportedImageError(f"array dtype {arr.dtype} is not supported: use uint8")
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in MODES)):
            raise UnsupportedImageError(
                f"array shape {arr.shape} is not supported: use HxW (L), HxWx2 (LA), "
                "HxWx3 (RGB) or HxWx4 (RGBA)"
            )
    else:
        raise UnsupportedImageError(
            f"cannot encode a {type(image).__name__}: pass a PIL image or a uint8 array"
        )
    height, width = arr.shape[:2]
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise UnsupportedImageError(
            f"image size {width}x{height} is outside 1..{MAX_DIMENSION} per side"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    mode = MODES[arr.shape[2]]  # the header's colour mode is the number of channels
    alpha = np.ascontiguousarray(arr[:, :, -1]) if mode in ALPHA_MODES else None
    colour = arr[:, :, :3] if mode.startswith("RGB") else np.repeat(arr[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(colour), mode, alpha


def metadata_segments(
    image: ImageLike, exif: object, icc_profile: object
) -> list[tuple[bytes, bytes]]:
    """The iCCP and eXIf segments for `encode`, from its arguments or the image's info."""
    info = image.info if isinstance(image, Image.Image) else {}
    out = []
    for kind, value, name in ((SEG_ICC, icc_profile, "icc_profile"), (SEG_EXIF, exif, "exif")):
        source = name
        if value is FROM_IMAGE:
            value, source = info.get(name), f"image.info[{name!r}]"
        if isinstance(value, Image.Exif):
            value = value.tobytes()
        if value is None or value == b"":
            continue
        if not isinstance(value, (bytes, bytearray)):
            raise InvalidArgumentError(f"{source} must be bytes, not {type(value).__name__}")
        if kind == SEG_EXIF:
            value = bytes(value).removeprefix(EXIF_PREFIX)  # the TIFF structure, as PNG's eXIf
            if not value.startswith((b"MM\x00*", b"II*\x00")):
                hint = "" if source == name else "; pass exif=None to leave it out"
                raise InvalidArgumentError(
                    f"{source} must be TIFF-structured Exif data (MM or II){hint}"
                )
        out.append((kind, bytes(value)))
    metadata = sum(len(v) for _, v in out)
    if metadata > MAX_METADATA_BYTES:
        raise InvalidArgumentError(
            f"exif and icc_profile take {metadata} bytes, more than the "
            f"{MAX_METADATA_BYTES >> 20} MiB a stream may carry"
        )
    return out


class ImageSink:
    """A PIL image of `mode` that the synthesis writes its tiles into (tiling.TileSink):
    a large image is then held once, as Pillow's, not also as an array (a 100 MP decode
    would hold both, 700 MB). Grey modes get each tile converted as `to_image`
    converts the whole; alpha is put in at the end (`finish`)."""

    def __init__(self, mode: str, width: int, height: int) -> None:
        self.image = Image.new(mode, (width, height))
        self._grey = mode in ("L", "LA")

    def __setitem__(self, key: tuple[slice, slice], value: np.ndarray) -> None:
        rows, cols = key
        tile = Image.fromarray(np.ascontiguousarray(value), "RGB")
        if self._grey:
            tile = tile.convert("L")
        self.image.paste(tile, (cols.start or 0, rows.start or 0))

    def finish(self, alpha: np.ndarray | None) -> Image.Image:
        if alpha is not None:
            self.image.putalpha(Image.fromarray(alpha, "L"))
        return self.image


def to_image(rgb: np.ndarray, mode: str, alpha: np.ndarray | None) -> Image.Image:
    """The decoded colour (uint8 [H, W, 3]) and alpha as a PIL image of `mode`."""
    im = Image.fromarray(rgb, "RGB")
    if mode in ("L", "LA"):
        im = im.convert("L")  # spec 8: ITU-R 601-2 in fixed point, as Pillow computes it
    if alpha is None:
        return im
    return Image.merge(mode, (*im.split(), Image.fromarray(alpha, "L")))


METADATA_KEYS = {SEG_EXIF: "exif", SEG_ICC: "icc_profile"}


def image_info(segments: Iterable[Segment]) -> dict[str, bytes]:
    """`Image.info` entries for the metadata among `segments`, named and shaped as
    Pillow's PNG and JPEG readers give them: `exif` with the `Exif\\0\\0` prefix (so
    `getexif()` and every Pillow writer take it), `icc_profile` verbatim."""
    info = {}
    for seg in segments:
        key = METADATA_KEYS.get(seg.kind)
        if key is not None:
            info[key] = EXIF_PREFIX + seg.payload if seg.kind == SEG_EXIF else seg.payload
    return info


def file_info(header: Header, segments: Iterable[Segment]) -> dict[str, Any]:
    """What the Pillow and imageio plugins report of a file (`Image.info`,
    `iio.immeta`): its `quality`, `c2f_model` (hex), `c2f_version` ("major.minor") and
    the metadata of `image_info(segments)`."""
    info: dict[str, Any] = {
        "quality": header.quality,
        "c2f_model": header.model_id.hex(),
        "c2f_version": header.version_text,
    }
    info.update(image_info(segments))
    return info


__all__ = [
    "EXIF_PREFIX",
    "FROM_IMAGE",
    "METADATA_KEYS",
    "ImageLike",
    "ImageSink",
    "file_info",
    "image_info",
    "image_planes",
    "metadata_segments",
    "to_image",
]
