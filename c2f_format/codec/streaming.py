"""`StreamDecoder`: a .c2f stream decoded as its bytes arrive, the preview first, then
the image, with damage tolerated where asked; what `decode`, Pillow's plugin (pushing
bytes from `ImageFile.Parser` or pulling them from a file) and imageio drive."""

from __future__ import annotations

import hashlib
import warnings
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..format import alpha as alpha_coding
from ..format.bitstream import (
    PYRAMID_MAJOR,
    SEG_ALPHA,
    SEG_YBND,
    Header,
    Segment,
    StreamParser,
)
from ..format.constants import PREVIEW_SCALE, REDUCE_FACTORS
from ..format.errors import (
    C2FError,
    CorruptStreamError,
    InvalidArgumentError,
    TruncatedStreamError,
)
from . import engines
from .decoding import LatentDecoder, check_reduce, latent_digest
from .images import METADATA_KEYS, ImageSink, image_info, to_image
from .pyramid_stream import PyramidStreamDecoder

if TYPE_CHECKING:
    import torch

    from .tiling import TileCallback

# 33.5 million pixels (6000x4000 fits); pass max_pixels=None to lift it. The float parts
# run in tiles and the integer ones in row bands, and the latents are held whole in
# their narrowest integer types: measured, a 10000x10000 `c2f decode` peaks at 1.35 GiB
# RSS, and a 12 MP Pillow load takes about 0.18 s a megapixel on 2 idle CPU cores
# (docs/speed/open.md).
DEFAULT_MAX_PIXELS = 1 << 25


def bytes_of(data: object, what: str) -> bytes:
    """`data` as bytes, or InvalidArgumentError naming `what` took the wrong thing."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"{what} takes bytes, not {type(data).__name__}")
    try:
        return bytes(data)
    except (ValueError, TypeError, BufferError) as exc:  # a released or odd memoryview
        raise InvalidArgumentError(f"{what}: unreadable buffer ({exc})") from None


def check_max_pixels(max_pixels: object) -> int | None:
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise InvalidArgumentError(f"max_pixels must be an integer or None, not {max_pixels!r}")
    if max_pixels < 1:
        raise InvalidArgumentError(f"max_pixels must be positive, got {max_pixels}")
    return int(max_pixels)


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

    With `allow_truncated=True`, damage after the hyper segments does not fail the
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
        allow_truncated: bool = False,
        backend: str | None = None,
        *,
        reduce: int = 1,
        tolerate_damage: bool | None = None,
    ) -> None:
        """`reduce` (1, 2, 4 or 8) is the smallest scale `image` will be asked for: a
        version 2 stream's levels finer than it are checked but not decoded (1/2 then
        takes about a third of a full decode's time, 1/4 a tenth). `tolerate_damage` is
        `allow_truncated`'s old name (as `decode` and the CLI call it), kept working with
        a DeprecationWarning."""
        if tolerate_damage is not None:
            warnings.warn(
                "StreamDecoder(tolerate_damage=) is now allow_truncated=",
                DeprecationWarning,
                stacklevel=2,
            )
            allow_truncated = allow_truncated or tolerate_damage
        self.device = device
        self.max_pixels = check_max_pixels(max_pixels)
        self.allow_truncated = allow_truncated
        self.backend = backend
        self.reduce = check_reduce(reduce, REDUCE_FACTORS)
        # exif and icc_profile as stored (Exif without the prefix that `info` adds)
        self.metadata: dict[str, bytes] = {}
        self.damage: list[str] = []
        self._parser = StreamParser(
            max_pixels=self.max_pixels, skip_damaged_bands=self.allow_truncated
        )
        self._latent: LatentDecoder | PyramidStreamDecoder | None = None  # from the header on
        self._alpha: np.ndarray | None = None
        self._error: C2FError | None = None
        self._halted = False  # tolerated damage made the rest of the stream unreadable
        self._backend = engines.resolve(self.backend)
        self._dev = engines.check_device(self._backend, self.device)

    @property
    def tolerate_damage(self) -> bool:
        """`allow_truncated`'s old name."""
        return self.allow_truncated

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
        under `allow_truncated`, rows of skipped bands are counted but predicted."""
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
        chunk = bytes_of(data, "feed()")
        self._raise_if_failed()
        if self._halted:
            return []
        try:
            done, seen = len(self._parser.segments), len(self._parser.damaged)
            failure = None
            try:
                self._parser.feed(chunk)
            except CorruptStreamError as exc:
                if not self.allow_truncated:
                    raise
                failure = exc  # the segments completed before it still count
            segments = self._parser.segments[done:]
            if self._latent is None and self.header is not None:
                self._latent = _latent_decoder(self._backend, self._dev, self.header, self.reduce)
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
        bad YBND data skipped under `allow_truncated` (its rows stay predicted)."""
        header, latent = self.header, self._latent
        assert header is not None and latent is not None
        if seg.kind in METADATA_KEYS:
            self.metadata[METADATA_KEYS[seg.kind]] = seg.payload
        elif seg.kind == SEG_ALPHA:
            self._alpha = alpha_coding.decode_plane(seg.payload, header.width, header.height)
        else:
            try:
                latent.add(seg)
            except CorruptStreamError as exc:
                if not self.allow_truncated or seg.kind != SEG_YBND:
                    raise
                self.damage.append(f"YBND segment at offset {seg.offset}: {exc}")

    def latents(self) -> dict[str, np.ndarray]:
        """The decoded integers so far (see `decoding.LatentDecoder.latents`)."""
        return {} if self._latent is None else self._latent.latents()

    def exact_digest(self) -> str:
        """SHA-256 of what every conforming decoder of the whole stream gives bit for
        bit: version 2's pixels (spec v2 section 10); version 1's decoded integers, its
        pixels being allowed to differ within the spec's tolerance. What the conformance
        vectors and the cross-device checks compare."""
        header = self.header
        if header is not None and header.version[0] >= PYRAMID_MAJOR:
            return hashlib.sha256(np.asarray(self.image()).tobytes()).hexdigest()
        return latent_digest(self.latents())

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
        return self._with_info(to_image(rgb, self._latent.header.mode, alpha))

    def image(
        self, partial: bool = False, reduce: int = 1, *, on_tile: TileCallback | None = None
    ) -> Image.Image:
        """The decoded image; see the class docstring for `partial`. `reduce` 2 or 4
        gives it at that fraction of each side (rounded up): for version 1 the synthesis
        stops at 1/4 scale (about 40% of the work, docs/speed/reduced.md); for version 2
        it is the low-pass at that scale (the work is in decoding the levels, which
        `StreamDecoder(reduce=)` limits). `on_tile` follows the synthesis tiles as in
        `encode`."""
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

    def filled(self, damaged: bool = False) -> str:
        """What a partial decode puts where the stream is missing (or `damaged`), in
        words."""
        if isinstance(self._latent, PyramidStreamDecoder):
            return f"{'damaged' if damaged else 'missing'} levels left out"
        return f"{'damaged' if damaged else 'missing'} rows predicted"

    def missing(self) -> str:
        """What is still missing, in words (for messages about truncation)."""
        if self.header is None:
            return f"stream ends inside the header ({self.bytes_received} bytes)"
        inside = self._parser.incomplete()
        inside = f": {inside}" if inside else ""
        if isinstance(self._latent, PyramidStreamDecoder):
            got = self._latent.levels_received
            where = f"stream ends after {got} of 6 levels ({self.bytes_received} bytes){inside}"
            if not self.damage:
                return where
            ended = self._parser.finished or self._halted
            decoded = f"{got} of 6 levels decoded"
            return "; ".join([*self.damage, decoded if ended else where])
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


def _latent_decoder(
    backend: str, device: object, header: Header, reduce: int = 1
) -> LatentDecoder | PyramidStreamDecoder:
    """The decoder of the stream's model: version 2 streams decode by the wavelet model's
    exact integer arithmetic on every backend; version 1 streams on the engine."""
    if header.version[0] == PYRAMID_MAJOR:
        from ..networks.pyramid_weights import load_pyramid

        return PyramidStreamDecoder(load_pyramid(header.model_id), header, reduce)
    return LatentDecoder(engines.engine(backend, device, header.model_id), header)


__all__ = ["DEFAULT_MAX_PIXELS", "StreamDecoder", "bytes_of", "check_max_pixels"]
