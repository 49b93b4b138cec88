"""What a viewer shows while a .c2f file arrives: preview, partial, final (version 2:
the image after each level from the preview on)."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from ..codec.api import StreamDecoder
from ..format.bitstream import SEG_LEVL, SEG_YBND, Segment, hyper_end, iter_segments
from ..format.constants import PREVIEW_SCALE


@dataclass(frozen=True)
class Stage:
    label: str
    bytes_used: int
    image: Image.Image  # full size


def progressive_stages(data: bytes, device: str | None = None) -> list[Stage]:
    """Decode `data` as if it arrived byte by byte; keep the image at three moments:
    the hyper segments complete (preview), half of y's bands, and the end. A version 2
    stream: after each level from the preview's on (1/8, 1/4, 1/2), the finer levels
    taken as zero, and the end."""
    segments = list(iter_segments(data))
    levels = [s for s in segments if s.kind == SEG_LEVL]
    if levels:
        return _level_stages(data, levels[2:], device)  # from LEVL 4, the preview
    z2_end = hyper_end(segments)
    band_ends = [s.offset + s.size for s in segments if s.kind == SEG_YBND]
    half = band_ends[(len(band_ends) - 1) // 2] if len(band_ends) > 1 else None
    dec = StreamDecoder(device=device)
    dec.feed(data[:z2_end])
    header = dec.header
    assert header is not None
    size = (header.width, header.height)
    stages = [Stage("preview", z2_end, dec.preview().resize(size, Image.Resampling.BILINEAR))]
    if half is not None:
        dec.feed(data[z2_end:half])
        stages.append(Stage(f"{dec.rows_received * 16} rows", half, dec.image(partial=True)))
    dec.feed(data[dec.bytes_received :])
    stages.append(Stage("final", len(data), dec.image()))
    return stages


def _level_stages(data: bytes, levels: list[Segment], device: str | None) -> list[Stage]:
    """The image after each of `levels` (LEVL segments) but the last, then the end."""
    dec = StreamDecoder(device=device)
    stages = []
    for seg in levels[:-1]:
        end = seg.offset + seg.size
        dec.feed(data[dec.bytes_received : end])
        scale = 1 << (seg.payload[0] - 1)
        label = "preview" if scale == PREVIEW_SCALE else f"1/{scale}"
        stages.append(Stage(label, end, dec.image(partial=True)))
    dec.feed(data[dec.bytes_received :])
    stages.append(Stage("final", len(data), dec.image()))
    return stages


def stage_strip(stages: list[Stage], total: int, width: int = 384) -> Image.Image:
    """The stages side by side, each labelled with the share of the file it needed."""
    first = stages[0].image
    height = round(first.height * width / first.width)
    strip = Image.new("RGB", (len(stages) * (width + 8) + 8, height + 36), "white")
    draw = ImageDraw.Draw(strip)
    for i, stage in enumerate(stages):
        x = 8 + i * (width + 8)
        strip.paste(stage.image.convert("RGB").resize((width, height)), (x, 28))
        share = 100.0 * stage.bytes_used / total
        draw.text((x, 8), f"{stage.label}: {stage.bytes_used} B ({share:.1f}%)", fill="black")
    return strip
