"""Encode time of one 768x512 image at each effort (medians of `--runs`), for
docs/effort.md: python lab/effort_times.py ../shared/data/kodak/kodim05.png 3 4 5 6"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image

import c2f_format


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("image")
    ap.add_argument("efforts", type=int, nargs="+")
    ap.add_argument("--quality", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    c2f_format.encode(rgb[:64, :64], quality=args.quality)  # model loaded before timing
    for effort in args.efforts:
        times = []
        for _ in range(args.runs if effort < 7 else 1):
            start = time.perf_counter()
            data = c2f_format.encode(rgb, quality=args.quality, effort=effort)
            times.append(time.perf_counter() - start)
        bpp = 8 * len(data) / (rgb.shape[0] * rgb.shape[1])
        print(
            f"effort {effort}: {statistics.median(times):.2f} s ({len(times)} runs), {bpp:.4f} bpp"
        )


if __name__ == "__main__":
    main()
