"""The public Python API: encode, decode, info, and a streaming decoder."""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..format import alpha as alpha_coding
from ..format.bitstream import (
    ALPHA_MODES,
    MAX_DIMENSION,
    MAX_METADATA_BYTES,
    MODES,
    SEG_ALPHA,
    SEG_END,
    SEG_EXIF,
    SEG_ICC,
    SEG_Y,
    SEG_Z1,
    SEG_Z2,
    Header,
    Segment,
    StreamParser,
    parse_band,
)
from ..format.constants import PREVIEW_SCALE, REDUCE_FACTORS
from ..format.errors import (
    C2FError,
    CorruptStreamError,
    ImageTooLargeError,
    InvalidArgumentError,
    TruncatedStreamError,
    UnsupportedImageError,
)
from ..format.weights_file import weights_index
from . import engines
from .decoding import LatentDecoder, check_reduce
from .effort import DEFAULT_EFFORT, check_effort
from .options import LOSSLESS_HINT

if TYPE_CHECKING:
    import torch

    from .tiling import TileCallback

EXIF_PREFIX = b"Exif\x00\x00"  # JPEG's APP1 marker text, which Pillow's Exif.tobytes() adds
# 33.5 million pixels (6000x4000 fits); pass max_pixels=None to lift it. The float parts
# run in tiles and the integer ones in row bands, and the latents are held whole in
# their narrowest integer types: measured, a 10000x10000 `c2f decode` peaks at 1.35 GiB
# RSS, and a 12 MP Pillow load takes about 0.18 s a megapixel on 2 idle CPU cores
# (docs/speed/open.md).
DEFAULT_MAX_PIXELS = 1 << 25
# what each error adds on how to go on, in the API's terms (the CLI and the Pillow
# plugin say it in theirs)
LIMIT_HINT = "max_pixels=None lifts the limit"
TRUNCATED_HINT = "allow_truncated=True decodes it with the rows lost predicted"
# Modes converted without loss before encoding (P and PA by their palette, 1 and L/RGB
# with a `transparency` colour key as Pillow's converters read it); the rest is refused.
_LOSSLESS_CONVERSIONS = {"1": "L", "P": "RGB", "PA": "RGBA"}
_WITH_TRANSPARENCY = {"1": "LA", "L": "LA", "RGB": "RGBA", "P": "RGBA"}

ImageLike = Image.Image | np.ndarray


class _FromImage(enum.Enum):
    """Default of `encode`'s metadata arguments: take the value from `image.info`."""

    FROM_IMAGE = "from image.info"

    def __repr__(self) -> str:
        return "<from image.info>"


FROM_IMAGE = _FromImage.FROM_IMAGE


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


def _image_planes(image: ImageLike) -> tuple[np.ndarray, str, np.ndarray | None]:
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


def _bytes_of(data: object, what: str) -> bytes:
    """`data` as bytes, or InvalidArgumentError naming `what` took the wrong thing."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"{what} takes bytes, not {type(data).__name__}")
    try:
        return bytes(data)
    except (ValueError, TypeError, BufferError) as exc:  # a released or odd memoryview
        raise InvalidArgumentError(f"{what}: unreadable buffer ({exc})") from None


def _check_max_pixels(max_pixels: object) -> int | None:
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise InvalidArgumentError(f"max_pixels must be an integer or None, not {max_pixels!r}")
    if max_pixels < 1:
        raise InvalidArgumentError(f"max_pixels must be positive, got {max_pixels}")
    return int(max_pixels)


def _check_quality(quality: object) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise InvalidArgumentError(f"quality must be an integer 1..100, not {quality!r}")
    if not 1 <= int(quality) <= 100:
        raise InvalidArgumentError(f"quality must be 1..100, got {quality}")
    return int(quality)


def encode(
    image: ImageLike,
    quality: int = 75,
    device: str | torch.device | None = None,
    *,
    exif: bytes | Image.Exif | _FromImage | None = FROM_IMAGE,
    icc_profile: bytes | _FromImage | None = FROM_IMAGE,
    on_tile: TileCallback | None = None,
    effort: int = DEFAULT_EFFORT,
    lossless: bool = False,
) -> bytes:
    """Compress a PIL image or a uint8 array into a .c2f stream.

    Modes RGB, L, RGBA and LA are stored as such (arrays: HxWx3, HxW, HxWx4, HxWx2);
    1, P and PA are converted losslessly, P with transparency to RGBA. Alpha is stored
    exactly (a constant alpha, such as a fully opaque RGBA image, costs 14 bytes); the
    colour is coded as without it, also where alpha is 0.

    `quality` 1..100 trades size for fidelity as in JPEG. `device` ("cpu", "cuda", ...)
    defaults to $C2F_DEVICE, else CUDA when present, else CPU; the stream is the same
    kind of stream either way and decodes on any device.

    `exif` and `icc_profile` default to the image's `info["exif"]` and
    `info["icc_profile"]` (as Pillow's readers fill them); pass None to leave one out,
    or bytes (or an `Image.Exif`) to store those instead. The ICC profile is stored
    verbatim (iCCP segment); Exif must be TIFF-structured, with or without the
    `Exif\\0\\0` prefix, and is stored without it (eXIf segment, as in PNG). Pixels
    are stored as given: an Exif Orientation tag is carried, not applied, as in JPEG,
    so a viewer (or `ImageOps.exif_transpose`) turns the decoded image upright.

    `on_tile`, if given, is called with (tiles done, tiles in all) before the first
    tile of the analysis transform and after each, to show progress on large images.

    `effort` 1..9 (default 3) is how hard the encoder searches, as in JPEG XL: from
    4 up it refines the latents of this image against the decoder (search.py), for
    smaller files at the same quality, taking longer the higher it goes (effort 9:
    minutes for a 768x512 image on two cores). Every effort writes an ordinary stream
    that every decoder reads.

    c2f is lossy: `lossless=True` raises InvalidArgumentError saying what to use instead.
    """
    if lossless:
        raise InvalidArgumentError(f"c2f is a lossy format: {LOSSLESS_HINT}")
    q = _check_quality(quality)
    level = check_effort(effort)
    ancillary = _metadata_segments(image, exif, icc_profile)
    rgb, mode, alpha = _image_planes(image)
    engines.require_torch("encoding")  # the analysis transform is torch's alone
    from .torch_engine import get_codec

    dev = engines.check_device("torch", device)
    alpha_payload = None if alpha is None else alpha_coding.encode_plane(alpha)
    return get_codec(dev).encode(rgb, mode, q, ancillary, alpha_payload, on_tile, level)


def _metadata_segments(
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
    would hold both, 700 MB). Grey modes get each tile converted as `_to_image`
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


def _to_image(rgb: np.ndarray, mode: str, alpha: np.ndarray | None) -> Image.Image:
    """The decoded colour (uint8 [H, W, 3]) and alpha as a PIL image of `mode`."""
    im = Image.fromarray(rgb, "RGB")
    if mode in ("L", "LA"):
        im = im.convert("L")  # spec 8: ITU-R 601-2 in fixed point, as Pillow computes it
    if alpha is None:
        return im
    return Image.merge(mode, (*im.split(), Image.fromarray(alpha, "L")))


_METADATA_KEYS = {SEG_EXIF: "exif", SEG_ICC: "icc_profile"}


def image_info(segments: Iterable[Segment]) -> dict[str, bytes]:
    """`Image.info` entries for the metadata among `segments`, named and shaped as
    Pillow's PNG and JPEG readers give them: `exif` with the `Exif\\0\\0` prefix (so
    `getexif()` and every Pillow writer take it), `icc_profile` verbatim."""
    info = {}
    for seg in segments:
        key = _METADATA_KEYS.get(seg.kind)
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


class StreamDecoder:
    """Decode a stream as its bytes arrive.

        dec = StreamDecoder()
        for chunk in chunks:
            dec.feed(chunk)
            if dec.preview_ready:
                show(dec.preview())        # from the hyper segments alone
        final = dec.image()

    Each segment is decoded as soon as it is complete and its CRC checked. Images come
    in the stream's mode (RGB, L, RGBA, LA) with its Exif and ICC profile in `info`
    (see `image_info`); the preview's alpha is the exact alpha reduced by 8 (the mean
    of each 8x8 block), since ALPH precedes the hyper segments. `image()`
    on an incomplete stream raises `TruncatedStreamError` unless `partial=True`, which
    fills the latent rows not yet received with their predicted means.

    With `tolerate_damage=True`, damage after the hyper segments does not fail the
    decoder: a YBND segment whose CRC or coded data is bad is skipped, and a stream
    that becomes unreadable (a garbled segment head, say) is read no further. The rows
    lost either way are predicted in `image(partial=True)`; `damage` says what
    happened, in words. Damage to the header or the hyper segments still raises.

    `backend` picks the engine: "torch", "numpy" or "auto" (default: $C2F_BACKEND, else
    torch when installed, else NumPy; see `c2f_format.codec.engines`). Both give the same
    symbols; pixels may differ by float rounding (spec 11). NumPy runs on the CPU only.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        tolerate_damage: bool = False,
        backend: str | None = None,
    ) -> None:
        self.device = device
        self.max_pixels = _check_max_pixels(max_pixels)
        self.tolerate_damage = tolerate_damage
        self.backend = backend
        # exif and icc_profile as stored (Exif without the prefix that `info` adds)
        self.metadata: dict[str, bytes] = {}
        self.damage: list[str] = []
        self._parser = StreamParser(
            max_pixels=self.max_pixels, skip_damaged_bands=self.tolerate_damage
        )
        self._latent: LatentDecoder | None = None  # from the header on
        self._alpha: np.ndarray | None = None
        self._error: C2FError | None = None
        self._halted = False  # tolerated damage made the rest of the stream unreadable
        self._backend = engines.resolve(self.backend)
        self._dev = engines.check_device(self._backend, self.device)

    def __repr__(self) -> str:
        """Where the decoder stands, in a line (never the bytes it holds)."""
        h = self.header
        if h is None:
            return f"<StreamDecoder: no header yet, {self.bytes_received} bytes>"
        state = ""
        if self._error is not None:
            state = ", failed"
        elif self.damage:
            state = ", damaged"
        elif self.complete:
            state = ", complete"
        return (
            f"<StreamDecoder {h.width}x{h.height} {h.mode}: {self.rows_received}/"
            f"{h.latent_size[0]} latent rows, {self.bytes_received} bytes{state}>"
        )

    @property
    def header(self) -> Header | None:
        return self._parser.header

    @property
    def bytes_received(self) -> int:
        return self._parser.bytes_received

    @property
    def info(self) -> dict[str, bytes]:
        """The metadata received so far as `Image.info` holds it (`image_info`)."""
        return image_info(self._parser.segments)

    @property
    def preview_ready(self) -> bool:
        return self._latent is not None and self._latent.preview_ready

    @property
    def rows_received(self) -> int:
        """Latent rows of y covered by the bands received so far (each is 16 pixel rows);
        under `tolerate_damage`, rows of skipped bands are counted but predicted."""
        return 0 if self._latent is None else self._latent.rows

    @property
    def complete(self) -> bool:
        """IEND was reached with every band intact."""
        return self._parser.finished and self._error is None and not self.damage

    @property
    def ended(self) -> bool:
        """No more bytes are needed: IEND was reached, or tolerated damage halted reading."""
        return self._parser.finished or self._halted

    @property
    def halted(self) -> bool:
        """Tolerated damage stopped reading; later bytes are ignored."""
        return self._halted

    def feed(self, data: bytes | bytearray | memoryview) -> list[Segment]:
        """Add bytes; decode every segment they complete; return those segments.

        After an error the decoder stays failed: every later call raises it again.
        """
        chunk = _bytes_of(data, "feed()")
        self._raise_if_failed()
        if self._halted:
            return []
        try:
            done, seen = len(self._parser.segments), len(self._parser.damaged)
            failure = None
            try:
                self._parser.feed(chunk)
            except CorruptStreamError as exc:
                if not self.tolerate_damage:
                    raise
                failure = exc  # the segments completed before it still count
            segments = self._parser.segments[done:]
            if self._latent is None and self.header is not None:
                engine = engines.engine(self._backend, self._dev, self.header.model_id)
                self._latent = LatentDecoder(engine, self.header)
            for offset in self._parser.damaged[seen:]:
                self.damage.append(f"CRC mismatch in YBND segment at offset {offset}")
            for seg in segments:
                self._take(seg)
            if failure is not None:
                if not self.preview_ready:
                    raise failure
                self._halted = True
                self.damage.append(f"{failure}; read no further")
        except C2FError as exc:
            self._error = exc
            raise
        return segments

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise type(self._error)(f"{self._error} (raised earlier by this decoder)")

    def _take(self, seg: Segment) -> None:
        """Metadata and alpha are read here; the rest goes to the latent decoder, with
        bad YBND data skipped under `tolerate_damage` (its rows stay predicted)."""
        header, latent = self.header, self._latent
        assert header is not None and latent is not None
        if seg.kind in _METADATA_KEYS:
            self.metadata[_METADATA_KEYS[seg.kind]] = seg.payload
        elif seg.kind == SEG_ALPHA:
            self._alpha = alpha_coding.decode_plane(seg.payload, header.width, header.height)
        else:
            try:
                latent.add(seg)
            except CorruptStreamError as exc:
                if not self.tolerate_damage or seg.kind != SEG_Y:
                    raise
                self.damage.append(f"YBND segment at offset {seg.offset}: {exc}")

    def latents(self) -> dict[str, np.ndarray]:
        """The decoded integers so far (see `decoding.LatentDecoder.latents`)."""
        return {} if self._latent is None else self._latent.latents()

    def preview(self) -> Image.Image:
        """The reduced-scale image (1/8 of each side, rounded up) from the hyper layers,
        with alpha (each sample the mean of the 8x8 it stands for) when it has alpha."""
        self._raise_if_failed()
        if self._latent is None or not self._latent.preview_ready:
            raise TruncatedStreamError("preview needs the HYP1 and HYP2 segments")
        rgb = self._latent.preview_pixels()
        alpha = None
        if self._alpha is not None:
            alpha = alpha_coding.reduce_plane(self._alpha, PREVIEW_SCALE)
        return self._with_info(_to_image(rgb, self._latent.header.mode, alpha))

    def image(
        self, partial: bool = False, reduce: int = 1, *, on_tile: TileCallback | None = None
    ) -> Image.Image:
        """The decoded image; see the class docstring for `partial`. `reduce` 2 or 4
        gives it at that fraction of each side (rounded up) for about 40% of the work:
        the synthesis stops at 1/4 scale (docs/speed/reduced.md). `on_tile` follows the
        synthesis tiles as in `encode`."""
        reduce = check_reduce(reduce, (1, 2, 4))
        self._raise_if_failed()
        header = self.header
        if self.damage and not partial:
            raise CorruptStreamError(self.missing())
        if not self.complete and not partial:
            raise TruncatedStreamError(self.missing())
        if self._latent is None or header is None or not self._latent.preview_ready:
            raise TruncatedStreamError(self.missing())
        width, height = header.reduced_size(reduce)
        sink = ImageSink(header.mode, width, height)
        self._latent.pixels(reduce, on_tile, sink)
        alpha = self._alpha
        if alpha is not None and reduce > 1:
            alpha = alpha_coding.reduce_plane(alpha, reduce)
        return self._with_info(sink.finish(alpha))

    def _with_info(self, image: Image.Image) -> Image.Image:
        image.info.update(self.info)
        return image

    def missing(self) -> str:
        """What is still missing, in words (for messages about truncation)."""
        if self.header is None:
            return f"stream ends inside the header ({self.bytes_received} bytes)"
        inside = self._parser.incomplete()
        inside = f": {inside}" if inside else ""
        if not self.preview_ready:
            return (
                "stream ends before the hyper segments are complete "
                f"({self.bytes_received} bytes){inside}"
            )
        rows = self.header.latent_size[0]
        where = (
            f"stream ends after {self.rows_received} of {rows} latent rows "
            f"({self.bytes_received} bytes){inside}"
        )
        if not self.damage:
            return where
        ended = self._parser.finished or self._halted
        return "; ".join(self.damage) + ("" if ended else f"; {where}")


def decode(
    data: bytes | bytearray | memoryview,
    device: str | torch.device | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_truncated: bool = False,
    backend: str | None = None,
    reduce: int = 1,
    on_tile: TileCallback | None = None,
) -> Image.Image:
    """Decode a complete .c2f stream into a PIL image (mode RGB, L, RGBA or LA) whose
    `info` has the stream's `exif` and `icc_profile` (see `image_info`).

    `reduce` 2, 4 or 8 decodes at that fraction of each side (rounded up), as JPEG's
    draft scales: 2 and 4 for about 40% of a full decode's time (the synthesis stops
    at 1/4 scale; on Kodak 46-51 dB from the full decode reduced), 8 the preview from
    the hyper segments alone (a few percent of it).

    With `allow_truncated=True`, a stream cut or damaged inside y decodes with the
    missing or damaged rows predicted (a `UserWarning` says so; see
    `StreamDecoder.tolerate_damage`); a stream cut or damaged before y cannot be
    decoded. Bytes after IEND are ignored. Bad input raises a `C2FError` subclass.
    `backend` ("torch", "numpy", "auto") is as for `StreamDecoder`; `on_tile` follows
    the synthesis tiles as in `encode` (the preview has none).
    """
    raw = _bytes_of(data, "decode()")
    check_reduce(reduce, REDUCE_FACTORS)
    dec = StreamDecoder(
        device=device, max_pixels=max_pixels, tolerate_damage=allow_truncated, backend=backend
    )
    try:
        dec.feed(raw)
    except ImageTooLargeError as exc:
        raise with_hint(exc, LIMIT_HINT) from None
    except CorruptStreamError as exc:
        raise with_hint(exc, TRUNCATED_HINT) from None
    if not dec.complete and not allow_truncated and not dec.damage:
        raise with_hint(TruncatedStreamError(dec.missing()), TRUNCATED_HINT)
    if reduce == PREVIEW_SCALE:  # the hyper segments suffice, but the stream must be whole
        return dec.preview()
    if not dec.complete and allow_truncated and dec.preview_ready:
        warnings.warn(f"c2f: {dec.missing()}; missing rows predicted", stacklevel=2)
        return dec.image(partial=True, reduce=reduce, on_tile=on_tile)
    return dec.image(reduce=reduce, on_tile=on_tile)


@dataclass(frozen=True)
class StreamInfo:
    header: Header
    segments: list[tuple[str, int, int]]  # (type, offset, payload length)
    complete: bool
    size: int
    notes: dict[int, str] = field(default_factory=dict)  # offset -> what the segment holds

    def as_dict(self) -> dict[str, Any]:
        h = self.header
        return {
            "version": h.version_text,
            "width": h.width,
            "height": h.height,
            "mode": h.mode,
            "quality": h.quality,
            "model_id": h.model_id.hex(),
            "latent_rows": h.latent_size[0],
            "complete": self.complete,
            "bytes": self.size,
            "segments": [{"type": t, "offset": o, "length": n} for t, o, n in self.segments],
        }

    def __str__(self) -> str:
        h = self.header
        lines = [
            f"bitstream {h.version_text}  {h.width}x{h.height} {h.mode}  "
            f"quality {h.quality}  model {model_name(h.model_id)}",
            f"{self.size} bytes, {self.size * 8 / (h.width * h.height):.4f} bpp"
            + ("" if self.complete else "  (INCOMPLETE)"),
            f"{'type':<6}{'offset':>10}{'length':>10}  note",
        ]
        for kind, offset, length in self.segments:
            note = self.notes.get(offset, "")
            lines.append(f"{kind:<6}{offset:>10}{length:>10}  {note}".rstrip())
        return "\n".join(lines)


def with_hint(exc: C2FError, hint: str) -> C2FError:
    """`exc` with what to do about it: for a size over the caller's limit (not the
    format's), a stream cut inside its rows or a damaged row band (decodable in part);
    others as they are."""
    text = str(exc)
    if isinstance(exc, ImageTooLargeError) and "exceeds the limit" in text:
        return ImageTooLargeError(f"{text}; {hint}")
    if isinstance(exc, TruncatedStreamError) and "latent rows" in text:
        return TruncatedStreamError(f"{text}; {hint}")
    if type(exc) is CorruptStreamError and "YBND segment" in text:
        return CorruptStreamError(f"{text}; {hint}")
    return exc


def model_name(model_id: bytes) -> str:
    """`c2f-v3 (18f68842...)` for an installed model (its weights file's name), else the
    id alone with "(not installed)"."""
    try:
        file = weights_index().get(model_id.hex())
    except C2FError:
        file = None
    if file is None:
        return f"{model_id.hex()} (not installed)"
    return f"{file.removesuffix('.npz')} ({model_id.hex()})"


def info(data: bytes | bytearray | memoryview) -> StreamInfo:
    """Header and segment table of a stream, without decoding any image data.

    A truncated stream is reported with `complete=False`; a corrupt one raises.
    """
    raw = _bytes_of(data, "info()")
    parser = StreamParser(max_pixels=None)
    segments = parser.feed(raw)
    if parser.header is None:
        raise TruncatedStreamError(f"stream ends inside the header ({len(data)} bytes)")
    notes = {}
    for s in segments:
        if s.kind == SEG_Y:
            row, count, _ = parse_band(s.payload)
            notes[s.offset] = f"latent rows {row}..{row + count - 1}"
        elif s.kind in (SEG_Z1, SEG_Z2):
            notes[s.offset] = "hyper layer " + ("z1 (1/64)" if s.kind == SEG_Z1 else "z2 (1/32)")
        elif s.kind == SEG_END:
            notes[s.offset] = "end"
        elif s.kind == SEG_ALPHA:
            notes[s.offset] = alpha_coding.describe(s.payload)
        elif s.kind in _METADATA_KEYS:
            notes[s.offset] = "Exif" if s.kind == SEG_EXIF else "ICC profile"
    return StreamInfo(
        parser.header,
        [(s.kind.decode("ascii"), s.offset, len(s.payload)) for s in segments],
        parser.finished,
        memoryview(data).nbytes,
        notes,
    )


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "C2FError",
    "StreamDecoder",
    "StreamInfo",
    "decode",
    "encode",
    "file_info",
    "image_info",
    "info",
]
