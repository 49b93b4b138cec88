"""The public Python API: `encode`, `decode`, `info` (the streaming decoder is
`streaming.StreamDecoder`, the images' conversions `images`; both re-exported here)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..format import alpha as alpha_coding
from ..format.bitstream import (
    SEG_ALPHA,
    SEG_END,
    SEG_EXIF,
    SEG_HYP1,
    SEG_HYP2,
    SEG_LEVL,
    SEG_LOWP,
    SEG_YBND,
    Header,
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
)
from ..format.weights_file import weights_index
from . import engines
from .decoding import check_reduce
from .effort import DEFAULT_EFFORT, check_effort
from .images import (
    EXIF_PREFIX,
    FROM_IMAGE,
    METADATA_KEYS,
    FromImage,
    ImageLike,
    ImageSink,
    file_info,
    image_info,
    image_planes,
    metadata_segments,
)
from .options import LOSSLESS_HINT
from .streaming import DEFAULT_MAX_PIXELS, StreamDecoder, bytes_of

if TYPE_CHECKING:
    import torch

    from .tiling import TileCallback

# what each error adds on how to go on, in the API's terms (the CLI and the Pillow
# plugin say it in theirs)
LIMIT_HINT = "max_pixels=None lifts the limit"
TRUNCATED_HINT = "allow_truncated=True decodes it from what arrived"


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
    exif: bytes | Image.Exif | FromImage | None = FROM_IMAGE,
    icc_profile: bytes | FromImage | None = FROM_IMAGE,
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
    kind of stream either way and decodes on any device. (The shipped wavelet model
    encodes with NumPy integer arithmetic on the CPU whatever the device; a device that
    does not exist is still an error.)

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
    minutes for a 768x512 image on two cores). With a wavelet model (version 2 streams),
    efforts 1 and 2 quantise with a dead zone and 3 and up choose every integer by rate
    and distortion against the decoder's tables (1.6% smaller on Kodak); 4 to 9 do the
    same (docs/effort.md says what searching further gave). Every
    effort writes an ordinary stream
    that every decoder reads.

    c2f is lossy: `lossless=True` raises InvalidArgumentError saying what to use instead.
    """
    if lossless:
        raise InvalidArgumentError(f"c2f is a lossy format: {LOSSLESS_HINT}")
    q = _check_quality(quality)
    level = check_effort(effort)
    ancillary = metadata_segments(image, exif, icc_profile)
    rgb, mode, alpha = image_planes(image)
    from ..networks.pyramid_weights import newest_pyramid

    wavelet = newest_pyramid()
    if wavelet is not None:  # the wavelet model: exact integers, NumPy on the CPU
        if device is not None:  # checked as for decoding, though nothing runs on it
            engines.check_device("torch" if engines.torch_available() else "numpy", device)
        from .pyramid_stream import encode_stream

        alpha_payload = None if alpha is None else alpha_coding.encode_plane(alpha)
        return encode_stream(rgb, mode, q, wavelet, ancillary, alpha_payload, level)
    engines.require_torch("encoding")  # the analysis transform is torch's alone
    from .torch_engine import get_torch_engine

    dev = engines.check_device("torch", device)
    alpha_payload = None if alpha is None else alpha_coding.encode_plane(alpha)
    return get_torch_engine(dev).encode(rgb, mode, q, ancillary, alpha_payload, on_tile, level)


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
    draft scales. Version 2 streams decode only the levels the scale needs (1/2 in
    about a third of a full decode's time, 1/4 a tenth, 8 the preview a twentieth);
    version 1 streams stop the synthesis at 1/4 scale for 2 and 4 (about 40%) and
    render 8 from the hyper segments alone.

    With `allow_truncated=True`, a stream cut or damaged past its preview decodes from
    what arrived (a `UserWarning` says so; see `StreamDecoder(allow_truncated=True)`):
    version 2 without the levels lost, version 1 with the rows lost predicted; a
    stream cut or damaged before its preview cannot be decoded. Bytes after IEND are
    ignored. Bad input raises a `C2FError` subclass.
    `backend` ("torch", "numpy", "auto") is as for `StreamDecoder`; `on_tile` follows
    the synthesis tiles as in `encode` (the preview has none).
    """
    raw = bytes_of(data, "decode()")
    check_reduce(reduce, REDUCE_FACTORS)
    dec = StreamDecoder(
        device=device,
        max_pixels=max_pixels,
        allow_truncated=allow_truncated,
        backend=backend,
        reduce=reduce,
    )
    try:
        dec.feed(raw)
    except ImageTooLargeError as exc:
        raise with_hint(exc, LIMIT_HINT) from None
    except CorruptStreamError as exc:
        if not allow_truncated and type(exc) is CorruptStreamError and _past_preview(raw, dec):
            raise CorruptStreamError(f"{exc}; {TRUNCATED_HINT}") from None
        raise with_hint(exc, TRUNCATED_HINT) from None
    if not dec.complete and not allow_truncated and not dec.damage:
        raise with_hint(TruncatedStreamError(dec.missing()), TRUNCATED_HINT)
    if reduce == PREVIEW_SCALE:  # the hyper segments suffice, but the stream must be whole
        return dec.preview()
    if not dec.complete and allow_truncated and dec.preview_ready:
        warnings.warn(f"c2f: {dec.missing()}; {dec.filled()}", stacklevel=2)
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


def _past_preview(raw: bytes, failed: StreamDecoder) -> bool:
    """Whether a version 2 stream that `failed` on is damaged only past its preview, so
    that `allow_truncated=True` decodes it: a tolerant decode of the levels down to the
    preview (a twentieth of the work) tells."""
    if failed.header is None or failed.header.version[0] < 2:
        return False  # version 1: `with_hint` reads the message
    probe = StreamDecoder(max_pixels=failed.max_pixels, allow_truncated=True, reduce=PREVIEW_SCALE)
    try:
        probe.feed(raw)
    except C2FError:
        return False
    return probe.preview_ready


_LEVELS = re.compile(r"after [3-6] of 6 levels")  # a version 2 stream past its preview


def with_hint(exc: C2FError, hint: str) -> C2FError:
    """`exc` with what to do about it: for a size over the caller's limit (not the
    format's), a stream cut inside its rows or a damaged row band (decodable in part);
    others as they are."""
    text = str(exc)
    if isinstance(exc, ImageTooLargeError) and "exceeds the limit" in text:
        return ImageTooLargeError(f"{text}; {hint}")
    if isinstance(exc, TruncatedStreamError) and ("latent rows" in text or _LEVELS.search(text)):
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
    raw = bytes_of(data, "info()")
    parser = StreamParser(max_pixels=None)
    segments = parser.feed(raw)
    if parser.header is None:
        raise TruncatedStreamError(f"stream ends inside the header ({len(data)} bytes)")
    notes = {}
    for s in segments:
        if s.kind == SEG_YBND:
            row, count, _ = parse_band(s.payload)
            notes[s.offset] = f"latent rows {row}..{row + count - 1}"
        elif s.kind in (SEG_HYP1, SEG_HYP2):
            notes[s.offset] = "hyper layer " + ("z1 (1/64)" if s.kind == SEG_HYP1 else "z2 (1/32)")
        elif s.kind == SEG_LOWP:
            notes[s.offset] = "low-pass (1/64)"
        elif s.kind == SEG_LEVL and s.payload:
            level = s.payload[0]
            scale = f"1/{1 << (level - 1)}" if level > 1 else "full size"
            preview = ", the preview" if level == PREVIEW_SCALE.bit_length() else ""
            notes[s.offset] = f"level {level}: the image at {scale}{preview}"
        elif s.kind == SEG_END:
            notes[s.offset] = "end"
        elif s.kind == SEG_ALPHA:
            notes[s.offset] = alpha_coding.describe(s.payload)
        elif s.kind in METADATA_KEYS:
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
    "EXIF_PREFIX",
    "FROM_IMAGE",
    "LIMIT_HINT",
    "TRUNCATED_HINT",
    "C2FError",
    "ImageLike",
    "ImageSink",
    "StreamDecoder",
    "StreamInfo",
    "decode",
    "encode",
    "file_info",
    "image_info",
    "info",
    "model_name",
    "with_hint",
]
