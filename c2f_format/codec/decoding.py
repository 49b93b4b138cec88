"""The decoding pipeline, the mirror of `torch_engine.TorchEngine.encode`: segments -> latents ->
pixels.

`LatentDecoder` takes the HYP1, HYP2 and YBND segments of one stream as they arrive and
runs them through an engine (`engines.Engine`: torch's `torch_engine.TorchEngine` or NumPy's
`numpy_engine.NumpyEngine`), so the same steps serve the streaming `api.StreamDecoder`
and a whole-stream `decode_stream` (calibration's, for a model that is not installed).
The engines never call back into it. The container, alpha and
metadata are not its business: `api` reads those, as it writes them on the encode side.
Torch-free at module level, like every decode-only module.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..format.bitstream import (
    SEG_HYP1,
    SEG_HYP2,
    SEG_YBND,
    Header,
    Segment,
    StreamParser,
    parse_band,
)
from ..format.constants import PREVIEW_SCALE, REDUCE_FACTORS
from ..format.errors import InvalidArgumentError, TruncatedStreamError, UnknownModelError

if TYPE_CHECKING:
    from .engines import Engine
    from .tiling import TileCallback, TileSink

DIGEST_ORDER = ("z1", "z2", "mu3", "idx3", "y")  # spec: z1q, z2q, mu3, idx3, s3


def check_reduce(reduce: object, allowed: tuple[int, ...] = REDUCE_FACTORS) -> int:
    """`reduce` as an int when it is one of `allowed` (bools are not factors)."""
    if isinstance(reduce, numbers.Integral) and not isinstance(reduce, bool):
        if int(reduce) in allowed:
            return int(reduce)
    names = ", ".join(map(str, allowed))
    raise InvalidArgumentError(f"reduce must be one of {names}, not {reduce!r}")


def latent_digest(latents: dict[str, np.ndarray]) -> str:
    """SHA-256 of the decoded integers (`LatentDecoder.latents`) in spec order, as the
    conformance vectors record it."""
    h = hashlib.sha256()
    for key in DIGEST_ORDER:
        h.update(np.ascontiguousarray(latents[key], dtype="<i8").tobytes())
    return h.hexdigest()


class LatentDecoder:
    """Segments HYP1, HYP2, YBND of one stream -> latents -> pixels, on an Engine.

    Feed it the stream's segments in order (`add`); other kinds are ignored. The arrays
    are the engine's own (torch tensors or NumPy arrays). Not thread-safe: one stream.
    """

    def __init__(self, engine: Engine, header: Header) -> None:
        self.engine = engine
        self.header = header
        self._h1: Any = None
        self._h2: Any = None
        self._mu2: Any = None
        self._idx2: Any = None
        self._mu3: Any = None
        self._idx3: Any = None
        self._y: Any = None
        self._rows = 0
        self._latents: dict[str, Any] = {}

    def __repr__(self) -> str:
        h = self.header
        return f"<LatentDecoder {h.width}x{h.height}: {self._rows}/{h.latent_size[0]} rows>"

    @property
    def preview_ready(self) -> bool:
        """Both hyper segments are decoded: the preview (and every later step) can run."""
        return self._h2 is not None

    @property
    def rows(self) -> int:
        """Latent rows of y covered by the bands added so far, including a band whose
        data turned out bad (its rows stay predicted)."""
        return self._rows

    def add(self, seg: Segment) -> None:
        """Decode one segment. A YBND sets `rows` first, then raises
        `CorruptStreamError` if its coded data is bad: the caller decides whether that
        is fatal (its rows are left at their predicted means)."""
        engine, header = self.engine, self.header
        if seg.kind == SEG_HYP1:
            with engine.inference():
                z1 = engine.decode_z1(header, seg.payload)
                self._h1, self._mu2, self._idx2 = engine.hyper_from_z1(z1)
            self._latents["z1"] = z1
        elif seg.kind == SEG_HYP2:
            assert self._mu2 is not None and self._idx2 is not None
            with engine.inference():
                z2 = engine.decode_z2(seg.payload, self._mu2, self._idx2)
                self._h2 = engine.h2_from_z2(z2)
            self._latents["z2"] = z2
        elif seg.kind == SEG_YBND:
            _, idx3 = self._y_params()
            row, count, coded = parse_band(seg.payload)
            self._rows = row + count
            with engine.inference():
                sym = engine.decode_band(coded, idx3[:, :, row : row + count])
            self._y_symbols()[:, :, row : row + count] = sym

    def _y_params(self) -> tuple[Any, Any]:
        """Means and scale indices of y, computed when first needed (the preview isn't)."""
        if self._mu3 is None or self._idx3 is None:
            h2, _ = self._hyper()
            with self.engine.inference():
                self._mu3, self._idx3 = self.engine.y_params(h2)
            self._latents.update(mu3=self._mu3, idx3=self._idx3, y=self._y_symbols())
        return self._mu3, self._idx3

    def _y_symbols(self) -> Any:
        if self._y is None:
            assert self._mu3 is not None
            self._y = self.engine.zeros_like(self._mu3)
        return self._y

    def _hyper(self) -> tuple[Any, Any]:
        """(h2, h1), which everything after the hyper segments starts from."""
        if self._h2 is None or self._h1 is None:
            raise TruncatedStreamError("decoding needs the HYP1 and HYP2 segments first")
        return self._h2, self._h1

    def latents(self) -> dict[str, np.ndarray]:
        """The decoded integers so far, for conformance checks and debugging.

        `z1`, `z2`: hyper latents in units of 1/16; `mu3`: means of y in units of 1/16;
        `idx3`: scale indices of y; `y`: residual symbols of y (rows not yet received
        are 0). All int64, shape [1, C, H, W].
        """
        return {k: self.engine.to_numpy(v).astype(np.int64) for k, v in self._latents.items()}

    def preview_pixels(self) -> np.ndarray:
        """The preview from the hyper layers: uint8 [ceil(h/8), ceil(w/8), 3]."""
        h2, h1 = self._hyper()
        width, height = self.header.reduced_size(PREVIEW_SCALE)
        with self.engine.inference():
            return self.engine.preview_pixels(h2, h1, height, width)

    @overload
    def pixels(self, reduce: int = 1, on_tile: TileCallback | None = None) -> np.ndarray: ...
    @overload
    def pixels(self, reduce: int, on_tile: TileCallback | None, out: TileSink) -> TileSink: ...

    def pixels(
        self, reduce: int = 1, on_tile: TileCallback | None = None, out: TileSink | None = None
    ) -> TileSink:
        """The colour as uint8 [H, W, 3] (grey RGB for L and LA), or reduced by 2 or 4
        (each side rounded up); rows not received are their predicted means. Written
        tile by tile into `out` when given (tiling.TileSink), else into a new array.
        `on_tile` follows the synthesis tiles (tiling.py)."""
        h2, h1 = self._hyper()
        mu3, _ = self._y_params()
        header = self.header
        with self.engine.inference():
            return self.engine.reconstruct(
                self._y_symbols(),
                mu3,
                h2,
                h1,
                header.quality,
                header.height,
                header.width,
                reduce,
                on_tile,
                out,
            )


def decode_stream(
    engine: Engine, data: bytes, reduce: int = 1, on_tile: TileCallback | None = None
) -> np.ndarray:
    """The colour of a whole stream made with `engine`'s model, as `LatentDecoder.pixels`
    gives it (`reduce` 8: the preview). No size limit and no damage tolerance: for
    streams this process trusts, such as calibration's own. Alpha and metadata are
    left to `api.decode`."""
    reduce = check_reduce(reduce)
    parser = StreamParser(max_pixels=None)
    segments = parser.feed(data)
    if parser.header is None or not parser.finished:
        raise TruncatedStreamError(f"stream ends before IEND ({len(data)} bytes)")
    if parser.header.model_id != engine.model_id:
        raise UnknownModelError(
            f"stream made with model {parser.header.model_id.hex()}, "
            f"not this engine's {engine.model_id.hex()}"
        )
    decoder = LatentDecoder(engine, parser.header)
    for seg in segments:
        decoder.add(seg)
    if reduce == PREVIEW_SCALE:
        return decoder.preview_pixels()
    return decoder.pixels(reduce, on_tile)


__all__ = ["DIGEST_ORDER", "LatentDecoder", "check_reduce", "decode_stream", "latent_digest"]
