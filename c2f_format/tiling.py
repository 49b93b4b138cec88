"""How the float synthesis is cut into tiles (spec 8 leaves it to the decoder): shared by
the torch and NumPy decoders, so both compute the same windows, and torch-free."""

from __future__ import annotations

TILE = 32  # latent units per tile side (512 pixels)
HALO = 4  # latent units of context around a tile (64 pixels; the transforms reach ~2)


def tiles(rows: int, cols: int) -> list[tuple[int, int, int, int, tuple[int, int, int, int]]]:
    """Tiles of a rows x cols latent grid: (r0, r1, c0, c1) and the haloed window
    (a0, a1, b0, b1) to compute it from. Window edges are even, so h1 (half the
    resolution) is cut on whole positions."""
    out = []
    for r0 in range(0, rows, TILE):
        r1 = min(rows, r0 + TILE)
        for c0 in range(0, cols, TILE):
            c1 = min(cols, c0 + TILE)
            window = (
                max(0, r0 - HALO),
                min(rows, r1 + HALO),
                max(0, c0 - HALO),
                min(cols, c1 + HALO),
            )
            out.append((r0, r1, c0, c1, window))
    return out


__all__ = ["HALO", "TILE", "tiles"]
