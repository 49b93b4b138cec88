"""How the float synthesis is cut into tiles (spec 8 leaves it to the decoder): shared by
the torch and NumPy decoders, so both compute the same windows, and torch-free."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..format.bitstream import LATENT_FACTOR, reduced_size

TILE = 32  # latent units per tile side (512 pixels)
HALO = 4  # latent units of context around a tile (64 pixels; the transforms reach ~2)

# Told (tiles done, tiles in all) before the first tile and after each: how a caller
# follows the float transforms of one large image (the CLI's progress bar).
TileCallback = Callable[[int, int], None]
T = TypeVar("T")


class TileSink(Protocol):
    """Where the synthesis puts each finished tile, `sink[y0:y1, x0:x1] = uint8 [h, w, 3]`:
    a NumPy array, or the image itself (`api.ImageSink`), so that a large image is not
    held twice."""

    def __setitem__(self, key: tuple[slice, slice], value: Any) -> None: ...


def tiles(
    rows: int, cols: int, tile: int = TILE
) -> list[tuple[int, int, int, int, tuple[int, int, int, int]]]:
    """Tiles of a rows x cols latent grid: (r0, r1, c0, c1) and the haloed window
    (a0, a1, b0, b1) to compute it from. Window edges are even (`tile` is), so h1 (half
    the resolution) is cut on whole positions."""
    out = []
    for r0 in range(0, rows, tile):
        r1 = min(rows, r0 + tile)
        for c0 in range(0, cols, tile):
            c1 = min(cols, c0 + tile)
            window = (
                max(0, r0 - HALO),
                min(rows, r1 + HALO),
                max(0, c0 - HALO),
                min(cols, c1 + HALO),
            )
            out.append((r0, r1, c0, c1, window))
    return out


@dataclass(frozen=True)
class SynthesisTile:
    """One tile of the reconstruction: the latent window to synthesise, where the tile's
    pixels sit in that window's output (`top`, `left`), and where they go in the image
    (`y`, `x`, `height` x `width`)."""

    window: tuple[int, int, int, int]
    top: int
    left: int
    y: int
    x: int
    height: int
    width: int


def synthesis_tiles(
    rows: int, cols: int, height: int, width: int, reduce: int = 1, tile: int = TILE
) -> Iterator[SynthesisTile]:
    """The tiles that cover a height x width image from a rows x cols latent grid (tiles
    that would hold only padding are left out). With `reduce` (2 or 4) the positions
    and sizes are those of the image reduced by that factor, ceil(height / reduce) x
    ceil(width / reduce), and of a synthesis output at that scale."""
    f = LATENT_FACTOR // reduce
    width, height = reduced_size(width, height, reduce)
    for r0, r1, c0, c1, (a0, a1, b0, b1) in tiles(rows, cols, tile):
        tile_h = min(r1 * f, height) - r0 * f
        tile_w = min(c1 * f, width) - c0 * f
        if tile_h > 0 and tile_w > 0:
            yield SynthesisTile(
                (a0, a1, b0, b1), (r0 - a0) * f, (c0 - b0) * f, r0 * f, c0 * f, tile_h, tile_w
            )


def reporting(items: Sequence[T], on_tile: TileCallback | None) -> Iterator[T]:
    """`items`, telling `on_tile` (when given) how many are done as they are taken."""
    if on_tile is not None:
        on_tile(0, len(items))
    for done, item in enumerate(items, 1):
        yield item
        if on_tile is not None:
            on_tile(done, len(items))


# Reduced decoding (spec 9.1) folds the last two stages into one convolution, which takes
# the 1/2-scale map as unbounded; the real stages stop at its edge, so next to the
# latent grid's outer edges a strip of this many 1/4-scale positions is finished by the
# real stages instead, and the half of it nearest the edge kept.
EDGE_STRIP = 4


def grid_edges(window: tuple[int, int, int, int], rows: int, cols: int) -> list[tuple[int, bool]]:
    """The outer edges of a rows x cols latent grid that a tile's window touches, as
    (axis: 0 rows / 1 columns, at the end: bool)."""
    a0, a1, b0, b1 = window
    flags = ((0, False, a0 == 0), (0, True, a1 == rows), (1, False, b0 == 0), (1, True, b1 == cols))
    return [(axis, end) for axis, end, touches in flags if touches]


__all__ = [
    "EDGE_STRIP",
    "HALO",
    "TILE",
    "SynthesisTile",
    "TileCallback",
    "TileSink",
    "grid_edges",
    "reporting",
    "synthesis_tiles",
    "tiles",
]
