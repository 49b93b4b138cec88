"""The NumPy decoder against the torch decoder on one image, same process, same CPU.

    python -m c2f_format.tools.bench_backends IMAGE [--repeats N]

Encodes IMAGE (the recorded numbers used the checkout's tests/data/kodim23.png, 768x512)
at quality 75, then times, one backend after the other (each after a warm-up call), a
full decode through Pillow (`Image.open().load()`), a 1/8 preview through Pillow's
`draft`, and the NumPy decoder's stages. Prints medians in milliseconds and the largest
pixel difference between the backends. Needs torch (for the encoder and the comparison).
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import c2f_format
from c2f_format.codec.numpy_engine import get_numpy_engine
from c2f_format.format import bitstream as bs
from c2f_format.format.constants import PREVIEW_SCALE


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm: model loaded, caches filled
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _pillow(data: bytes, backend: str, preview: bool) -> Image.Image:
    os.environ["C2F_BACKEND"] = backend
    with Image.open(io.BytesIO(data)) as im:
        if preview:
            # floor, not `reduced_size`'s ceil, as when docs/speed/numpy-decoder.md was
            # measured; both ask for the same 1/8 decode where the sides are multiples
            # of 8 (Kodak's), so the benchmark is left as it was
            im.draft("RGB", (im.width // PREVIEW_SCALE, im.height // PREVIEW_SCALE))
        im.load()
        return im.copy()


def stages(data: bytes, repeats: int) -> dict[str, float]:
    """Median milliseconds of each stage of the NumPy decoder on `data`."""
    dec = get_numpy_engine()
    parser = bs.StreamParser()
    segments = parser.feed(data)
    header = parser.header
    assert header is not None
    seg = {s.kind: s.payload for s in segments}
    bands = [bs.parse_band(s.payload) for s in segments if s.kind == bs.SEG_YBND]
    z1 = dec.decode_z1(header, seg[bs.SEG_HYP1])
    h1, mu2, idx2 = dec.hyper_from_z1(z1)
    z2 = dec.decode_z2(seg[bs.SEG_HYP2], mu2, idx2)
    h2 = dec.h2_from_z2(z2)
    mu3, idx3 = dec.y_params(h2)
    y = dec.zeros_like(mu3)
    for row, count, coded in bands:
        y[:, :, row : row + count] = dec.decode_band(coded, idx3[:, :, row : row + count])
    size = (header.height, header.width)
    preview = header.reduced_size(PREVIEW_SCALE)[::-1]  # (height, width)
    return {
        "entropy decoding (z1, z2, all y bands)": _median_ms(
            lambda: (
                dec.decode_z1(header, seg[bs.SEG_HYP1]),
                dec.decode_z2(seg[bs.SEG_HYP2], mu2, idx2),
                [dec.decode_band(c, idx3[:, :, r : r + n]) for r, n, c in bands],
            ),
            repeats,
        ),
        "integer networks (h_s1, p2, h_s2, p3)": _median_ms(
            lambda: (dec.hyper_from_z1(z1), dec.y_params(dec.h2_from_z2(z2))), repeats
        ),
        "preview network": _median_ms(lambda: dec.preview_pixels(h2, h1, *preview), repeats),
        "float synthesis": _median_ms(
            lambda: dec.reconstruct(y, mu3, h2, h1, header.quality, *size), repeats
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path, help="e.g. tests/data/kodim23.png in a checkout")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with Image.open(args.image) as im:
        data = c2f_format.encode(im.convert("RGB"), quality=75, device="cpu")
    rows: list[tuple[str, float, float]] = []
    for label, preview in (("full decode via Pillow", False), ("1/8 preview via Pillow", True)):
        times = [
            _median_ms(functools.partial(_pillow, data, b, preview), args.repeats)
            for b in ("torch", "numpy")
        ]
        rows.append((label, times[0], times[1]))
    diff = np.abs(
        np.asarray(_pillow(data, "torch", False), dtype=np.int16)
        - np.asarray(_pillow(data, "numpy", False), dtype=np.int16)
    )
    print(f"{'':28}{'torch':>10}{'numpy':>10}{'ratio':>8}")
    for label, t, n in rows:
        print(f"{label:28}{t:10.1f}{n:10.1f}{n / t:8.2f}")
    print(f"max pixel difference {int(diff.max())}, mean {float(diff.mean()):.4f}")
    for label, stage_ms in stages(data, args.repeats).items():
        print(f"numpy: {label:40}{stage_ms:8.1f} ms")


if __name__ == "__main__":
    main()
