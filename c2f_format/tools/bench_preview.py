"""Time-to-preview benchmark through Pillow: full load vs draft, and the Parser.

    python -m c2f_format.tools.bench_preview ../shared/data/kodak -q 75 --runs 5

For each image: median seconds of `Image.open(...).load()` and of the same after
`draft("RGB", (w/s, h/s))` for s = 2, 4, 8 (one load of each per round, so the ratios
are fair on a noisy machine); each scale's PSNR against the box-reduced original and
against the full decode box-reduced; and, feeding an `ImageFile.Parser` 1 KiB at a
time, the share of the file after which the preview is drawn and its PSNR against the
original.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from ..codec.progress import progress
from ..format.bitstream import reduced_size
from ..format.constants import REDUCE_FACTORS
from .bench import psnr

# what `draft` serves: c2f's reduced decodes, which are also JPEG's scaled decodes
SCALES = REDUCE_FACTORS


def _load(data: bytes, scale: int) -> tuple[float, Image.Image]:
    t = time.perf_counter()
    with Image.open(io.BytesIO(data)) as im:
        if scale > 1:
            im.draft("RGB", reduced_size(im.width, im.height, scale))
        im.load()
        out = im.copy()
    return time.perf_counter() - t, out


def measure(path: Path, quality: int, runs: int) -> dict[str, float | str]:
    with Image.open(path) as src:
        rgb = src.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="C2F", quality=quality)
    data = buf.getvalue()
    times: dict[int, list[float]] = {s: [] for s in SCALES}
    images: dict[int, Image.Image] = {}
    for _ in range(runs):  # one load at each scale per round
        for scale in SCALES:
            seconds, images[scale] = _load(data, scale)
            times[scale].append(seconds)
    row: dict[str, float | str] = {"image": path.name, "bytes": len(data)}
    for scale in SCALES:
        # the reduced original (box filter, as JPEG's DCT scaling approximates), and
        # the full decode reduced the same way: what draft saves the work of
        box = np.asarray(rgb.reduce(scale))
        decoded_box = np.asarray(images[1].reduce(scale))
        key = "full" if scale == 1 else f"1/{scale}"
        row[f"{key}_s"] = statistics.median(times[scale])
        row[f"{key}_psnr"] = psnr(box, np.asarray(images[scale]))
        if scale > 1:
            row[f"{key}_ratio"] = statistics.median(
                d / f for d, f in zip(times[scale], times[1], strict=True)
            )
            row[f"{key}_psnr_vs_full_reduced"] = psnr(decoded_box, np.asarray(images[scale]))
    shown_at, shown = parser_preview(data)
    row["parser_preview_share"] = (shown_at or len(data)) / len(data)
    row["parser_preview_psnr"] = psnr(np.asarray(rgb), shown) if shown is not None else float("nan")
    return row


def parser_preview(data: bytes, chunk: int = 1024) -> tuple[int | None, np.ndarray | None]:
    """`data` fed to an `ImageFile.Parser` `chunk` bytes at a time: the bytes fed when
    `parser.image` first shows something (not blank), and that image; None, None if
    nothing shows before `close()`."""
    parser = ImageFile.Parser()
    shown_at, shown = None, None
    for start in range(0, len(data), chunk):
        parser.feed(data[start : start + chunk])
        if shown_at is None and parser.image is not None and np.asarray(parser.image).any():
            shown_at, shown = min(start + chunk, len(data)), np.asarray(parser.image.copy())
    parser.close()
    return shown_at, shown


def main(argv: list[str] | None = None) -> int:
    import c2f_format  # noqa: F401  (registers the Pillow plugin)

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("folder", type=Path)
    ap.add_argument("-q", "--quality", type=int, default=75)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path)
    args = ap.parse_args(argv)
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() == ".png")
    paths = paths[: args.limit] if args.limit else paths
    rows = [measure(p, args.quality, args.runs) for p in progress(paths, len(paths), "preview")]
    keys = [k for k in rows[0] if k != "image"]
    summary = {k: statistics.median(float(r[k]) for r in rows) for k in keys}
    for k, v in summary.items():
        print(f"{k:>22}: {v:.4g} (median over {len(rows)} images)")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "median": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
