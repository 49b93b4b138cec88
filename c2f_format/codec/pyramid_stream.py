"""Version 2 streams: the wavelet model in c2f's container (header, metadata, alpha as
in version 1; then `LOWP`, the 1/64 low-pass, and one `LEVL` segment a level, coarsest
first, each one coded unit; then `IEND`). No torch anywhere: every step is the exact
integer arithmetic of `pyramid_coding`, so both backends decode through it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..format.bitstream import (
    SEG_ALPHA,
    SEG_END,
    SEG_LEVL,
    SEG_LOWP,
    Header,
    Segment,
    pack_level,
    pack_segment,
    parse_level,
    version_for,
)
from ..format.constants import PREVIEW_SCALE
from ..format.errors import InvalidArgumentError
from ..format.wavelet import LEVELS
from ..networks.pyramid_weights import PyramidModel
from .effort import DEFAULT_EFFORT
from .pyramid_coding import DEADZONE, PyramidDecoder, encode_pyramid

if TYPE_CHECKING:
    from .tiling import TileCallback, TileSink

PREVIEW_LEVEL = PREVIEW_SCALE.bit_length() - 1  # the preview is the low-pass at level 3
RDO_EFFORT = 3  # efforts from here on choose each integer by rate and distortion ...
# ... with lambda = 0.1 D**2 per bit: on the held-out crops (2026-12-07, the line at 25
# CPU-min) -27.7% BD-rate against WebP, against -26.8% with the dead zone alone
RDO_LAMBDA = 0.1


def encode_stream(
    rgb: np.ndarray,
    mode: str,
    quality: int,
    model: PyramidModel,
    ancillary: Sequence[tuple[bytes, bytes]] = (),
    alpha: bytes | None = None,
    effort: int = DEFAULT_EFFORT,
) -> bytes:
    """`rgb`: uint8 [H, W, 3]; `mode`: the header's colour mode; `ancillary`: (type,
    payload) segments; `alpha`: the ALPH payload, required for LA and RGBA; `effort`:
    below 3 the dead-zone quantiser, from 3 on each integer chosen against the
    decoder's own tables (rate-distortion optimised quantisation). Returns the whole
    stream."""
    height, width = rgb.shape[:2]
    header = Header(width, height, mode, quality, model.model_id, version_for(mode, True))
    if (alpha is not None) != header.has_alpha:
        raise ValueError(f"colour mode {mode} takes {'an' if header.has_alpha else 'no'} ALPH")
    u = model.step_code(quality)
    pixels = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    rdo = RDO_LAMBDA if effort >= RDO_EFFORT else 0.0
    units, _ = encode_pyramid(pixels, u, model.context, model.tables, DEADZONE, rdo)
    out = [header.pack()] + [pack_segment(kind, payload) for kind, payload in ancillary]
    if alpha is not None:
        out.append(pack_segment(SEG_ALPHA, alpha))
    out.append(pack_segment(SEG_LOWP, units[0]))
    for level, unit in zip(range(LEVELS, 0, -1), units[1:], strict=True):
        out.append(pack_level(level, unit))
    out.append(pack_segment(SEG_END, b""))
    return b"".join(out)


class PyramidStreamDecoder:
    """The segments of a version 2 stream -> pixels, level by level as they arrive: what
    `StreamDecoder` drives for these streams (the counterpart of `LatentDecoder`)."""

    def __init__(self, model: PyramidModel, header: Header, reduce: int = 1) -> None:
        """`reduce`: the largest scale divisor the image will be asked at; the levels
        finer than it are checked (CRC, order) but not decoded, so 1/2 costs about a
        third of a full decode and 1/4 a tenth (the coarse levels' share of the work
        is larger than their share of the pixels)."""
        self.header = header
        self.skip_to = reduce.bit_length() - 1  # levels 1..skip_to are not decoded
        self._skipped = 0
        self.levels = PyramidDecoder(
            model.context,
            model.tables,
            model.step_code(header.quality),
            header.height,
            header.width,
        )
        self._low = False

    def __repr__(self) -> str:
        h = self.header
        return f"<PyramidStreamDecoder {h.width}x{h.height}: {self.levels_received} levels>"

    @property
    def levels_received(self) -> int:
        """LEVL segments decoded so far (of LEVELS)."""
        return LEVELS - self.levels.level + self._skipped if self._low else 0

    @property
    def preview_ready(self) -> bool:
        """The levels down to 1/8 scale are decoded."""
        return self._low and self.levels.level <= PREVIEW_LEVEL

    @property
    def rows(self) -> int:
        """Rows of the image final so far, in units of y's latent rows (16 pixels): all
        of them once the last level is decoded (a level refines the whole image)."""
        done = self._low and self.levels.level - self._skipped == 0
        return self.header.latent_size[0] if done else 0

    def add(self, seg: Segment) -> None:
        if seg.kind == SEG_LOWP:
            self.levels.add_low(seg.payload)
            self._low = True
        elif seg.kind == SEG_LEVL:
            level, coded = parse_level(seg.payload)
            if level <= self.skip_to and level == self.levels.level - self._skipped:
                self._skipped += 1  # finer than asked for: not decoded
            else:
                self.levels.add_level(level, coded)

    def latents(self) -> dict[str, np.ndarray]:
        return {}

    def preview_pixels(self) -> np.ndarray:
        return self.levels.pixels(PREVIEW_SCALE)

    def pixels(
        self, reduce: int = 1, on_tile: TileCallback | None = None, out: TileSink | None = None
    ) -> Any:
        """uint8 [H, W, 3] at 1/`reduce` of each side (levels not received read as zero),
        written into `out` when given."""
        if reduce < 1 << self.skip_to:
            raise InvalidArgumentError(
                f"this decoder was made for 1/{1 << self.skip_to} scale and up; "
                f"1/{reduce} needs a StreamDecoder(reduce={reduce})"
            )
        rgb = self.levels.pixels(reduce)
        if on_tile is not None:
            on_tile(0, 1)
            on_tile(1, 1)
        if out is None:
            return rgb
        out[slice(0, rgb.shape[0]), slice(0, rgb.shape[1])] = rgb
        return out
