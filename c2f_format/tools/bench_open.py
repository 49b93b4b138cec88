"""Opening photos as people do: through Pillow, thumbnails, and `c2f decode` from cold.

    python -m c2f_format.tools.bench_open PHOTO [--kodak IMAGE] [--runs 3]
        [--big 10000x10000] [-o docs/speed]

PHOTO is resized to 4000x3000 (12 MP, Lanczos) and IMAGE (a 768x512 Kodak image) taken
as it is; both are encoded at quality 75. Then, medians of --runs after a warm-up:

- in this process, through Pillow, `Image.open().load()` of each (they alternate, so
  all meet the same machine) and `thumbnail((s, s))` of the photo for s = 128, 256, 512
  and 1024 (draft at 1/8, 1/4, 1/2 and none);
- `c2f decode IMAGE.c2f -o IMAGE.png` in a fresh process (start-up included, as a user
  at a shell sees it), and `c2f info` for the cost of starting Python and c2f alone;
- with --big, the peak resident memory and time of `c2f decode` of a photo resized to
  that size, in its own process.

Writes open.json and open.md into the output folder.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .. import __version__, encode
from .bench_speed import peak_rss
from .report import write_report

PHOTO_SIZE = (4000, 3000)
THUMBNAILS = (128, 256, 512, 1024)  # thumbnail((s, s)) asks draft for 2s: 1/8, 1/4, 1/2, 1


def _pillow_load(data: bytes) -> Callable[[], object]:
    def run() -> object:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.size

    return run


def _thumbnail(data: bytes, side: int) -> Callable[[], object]:
    def run() -> object:
        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail((side, side))
            return im.size

    return run


def _fresh(args: list[str], cwd: Path) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(
            [sys.executable, "-m", "c2f_format.tools.cli", *args],
            cwd=cwd,  # not a checkout, whose c2f_format/ would shadow the install
            check=True,
            capture_output=True,
        )

    return run


def medians(timers: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds of each timer over `runs` rounds, after one warm-up round; the
    timers alternate within each round."""
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for round_ in range(runs + 1):
        for name, fn in timers.items():
            start = time.perf_counter()
            fn()
            if round_:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def run(photo: Path, kodak: Path, runs: int, big: tuple[int, int] | None) -> dict[str, Any]:
    with Image.open(photo) as im:
        source = im.convert("RGB")
    with Image.open(kodak) as im:
        small = im.convert("RGB")
    large_data = encode(source.resize(PHOTO_SIZE, Image.Resampling.LANCZOS), quality=75)
    small_data = encode(small, quality=75)
    result: dict[str, Any] = {
        "photo": photo.name,
        "kodak": kodak.name,
        "runs": runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "c2f": __version__,
        "sizes": {"photo": list(PHOTO_SIZE), "kodak": list(small.size)},
        "bytes": {"photo": len(large_data), "kodak": len(small_data)},
    }
    result["pillow"] = medians(
        {
            "photo load": _pillow_load(large_data),
            "kodak load": _pillow_load(small_data),
            **{f"photo thumbnail {side}": _thumbnail(large_data, side) for side in THUMBNAILS},
        },
        runs,
    )
    per_mp = {
        name: result["pillow"][f"{name} load"] / (w * h / 1e6)
        for name, (w, h) in result["sizes"].items()
    }
    result["per_megapixel"] = per_mp
    result["photo_over_kodak_per_pixel"] = per_mp["photo"] / per_mp["kodak"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "k.c2f").write_bytes(small_data)
        result["fresh"] = medians(
            {
                "c2f decode (768x512 to PNG)": _fresh(
                    ["decode", "k.c2f", "-o", "k.png", "--force"], folder
                ),
                "c2f info": _fresh(["info", "k.c2f"], folder),
            },
            runs,
        )
        if big is not None:
            path = folder / "big.c2f"
            path.write_bytes(encode(source.resize(big, Image.Resampling.LANCZOS), quality=75))
            out = folder / "big.png"
            gib, seconds = peak_rss(
                "module",
                "c2f_format.tools.cli",
                ["decode", str(path), "-o", str(out), "--max-pixels", "none"],
            )
            result["big"] = {"size": list(big), "peak_rss_gib": gib, "seconds": seconds}
    return result


def markdown(result: dict[str, Any], note: str) -> str:
    p, f = result["pillow"], result["fresh"]
    (pw, ph), (kw, kh) = result["sizes"]["photo"], result["sizes"]["kodak"]
    lines = [
        f"# Opening photos: {pw}x{ph} from {result['photo']}, and {result['kodak']}",
        "",
        f"{result['machine']}; torch {result['torch']}; c2f {result['c2f']}; medians of "
        f"{result['runs']} after a warm-up; quality 75 ({result['bytes']['photo']:,} and "
        f"{result['bytes']['kodak']:,} bytes).",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        "| what | median s | s per MP |",
        "|---|---:|---:|",
        f"| Pillow `load()`, {pw}x{ph} | {p['photo load']:.3f} | "
        f"{result['per_megapixel']['photo']:.3f} |",
        f"| Pillow `load()`, {kw}x{kh} | {p['kodak load']:.3f} | "
        f"{result['per_megapixel']['kodak']:.3f} |",
    ]
    for side in THUMBNAILS:
        seconds = p[f"photo thumbnail {side}"]
        lines.append(f"| Pillow `thumbnail(({side}, {side}))`, {pw}x{ph} | {seconds:.3f} | |")
    for name, seconds in f.items():
        lines.append(f"| fresh process: `{name}` | {seconds:.3f} | |")
    lines += [
        "",
        f"Per pixel the {pw}x{ph} load takes {result['photo_over_kodak_per_pixel']:.2f}x "
        f"the {kw}x{kh} one's time.",
    ]
    if "big" in result:
        b = result["big"]
        w, h = b["size"]
        lines.append(
            f"`c2f decode` of a {w}x{h} photo: peak resident memory "
            f"{b['peak_rss_gib']:.2f} GiB, {b['seconds']:.1f} s."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photo", type=Path)
    ap.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak/kodim23.png"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big", default=None, help="WIDTHxHEIGHT for the memory measurement")
    ap.add_argument("--note", default="", help="a line for the report (what ran beside)")
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/speed"))
    args = ap.parse_args(argv)
    big = tuple(int(v) for v in args.big.lower().split("x")) if args.big else None
    result = run(args.photo.resolve(), args.kodak.resolve(), args.runs, big)  # type: ignore[arg-type]
    result["note"] = args.note
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(args.out, "open", result, markdown(result, args.note))


if __name__ == "__main__":
    main()
