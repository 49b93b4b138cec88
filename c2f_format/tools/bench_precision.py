"""What bfloat16 synthesis changes: pixels and PSNR against float32, and the time.

    python -m c2f_format.tools.bench_precision [--kodak DIR] [--qualities 25 50 75 95]
        [--vectors spec/vectors] [-o docs/speed]

Every conformance vector, and every Kodak image encoded at each quality, is decoded by
the torch engine in float32 and in bfloat16 (precision.py), at full size and at 1/2 and
1/4 (`reduce`). Reported: the largest pixel difference between the two, the share of
pixels that differ by more than one step, the PSNR of each against the original (Kodak)
or against the vector's float32 reference and its tolerance (spec 11), and the decode
times. Writes precision.json and precision.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..codec import precision
from ..codec.api import StreamDecoder, encode
from ..codec.metrics import psnr_from_mse
from ..codec.progress import progress
from .report import write_report

PRECISIONS = ("float32", "bfloat16")
REDUCE = (1, 2, 4)


def _decode(data: bytes, choice: str, reduce: int) -> tuple[np.ndarray, float]:
    dec = StreamDecoder(device="cpu", backend="torch")
    dec.feed(data)
    with precision.using(choice):
        start = time.perf_counter()
        image = dec.image(reduce=reduce)
        seconds = time.perf_counter() - start
    return np.asarray(image.convert("RGB"), dtype=np.int16), seconds


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_from_mse(float(np.mean((a.astype(np.float64) - b) ** 2)))


def compare(data: bytes, original: np.ndarray | None) -> dict[str, Any]:
    """float32 against bfloat16 for one stream at each reduce factor; `original` (the
    full-size source, or the reference) gives the PSNR at full size."""
    out: dict[str, Any] = {}
    for reduce in REDUCE:
        pixels, seconds = {}, {}
        for choice in PRECISIONS:
            pixels[choice], seconds[choice] = _decode(data, choice, reduce)
        diff = np.abs(pixels["float32"] - pixels["bfloat16"])
        row: dict[str, Any] = {
            "max_diff": int(diff.max()),
            "over_one": float(np.mean(diff > 1)),
            "seconds": seconds,
        }
        if reduce == 1 and original is not None:
            row["psnr"] = {c: _psnr(pixels[c], original) for c in PRECISIONS}
        out[str(reduce)] = row
    return out


def run(kodak: Path, qualities: list[int], vectors: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "c2f": __version__,
        "threads": torch.get_num_threads(),
        "cpu_has_bf16": precision.cpu_has_bf16(),
        "vectors": {},
        "kodak": {},
    }
    entries = json.loads((vectors / "vectors.json").read_text())["vectors"]
    for entry in entries:
        with Image.open(vectors / entry["reference"]) as ref:
            reference = np.asarray(ref.convert("RGB"), dtype=np.int16)
        data = (vectors / entry["stream"]).read_bytes()
        row = compare(data, reference)
        row["tolerance"] = {"min_psnr": entry["min_psnr"], "max_abs_diff": entry["max_abs_diff"]}
        result["vectors"][entry["stream"]] = row
    images = sorted(kodak.glob("*.png"))
    for path in progress(images, len(images), "kodak"):
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        original = np.asarray(rgb, dtype=np.int16)
        result["kodak"][path.name] = {
            str(q): compare(encode(rgb, quality=q), original) for q in qualities
        }
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Worst cases and medians over the Kodak decodes."""
    rows = [row for image in result["kodak"].values() for row in image.values()]
    full = [r["1"] for r in rows]
    delta = [f["psnr"]["bfloat16"] - f["psnr"]["float32"] for f in full]
    speed = [f["seconds"]["float32"] / f["seconds"]["bfloat16"] for f in full]
    return {
        "decodes": len(full),
        "max_diff": {r: max(row[r]["max_diff"] for row in rows) for r in map(str, REDUCE)},
        "over_one": max(f["over_one"] for f in full),
        "psnr_change_median": float(np.median(delta)),
        "psnr_change_worst": float(min(delta)),
        "speedup_median": float(np.median(speed)),
    }


def markdown(result: dict[str, Any], note: str) -> str:
    s = result["summary"]
    lines = [
        "# bfloat16 synthesis against float32",
        "",
        f"{result['machine']} (bfloat16 dot products: {result['cpu_has_bf16']}); torch "
        f"{result['torch']}, {result['threads']} threads; c2f {result['c2f']}. The torch "
        "engine decodes each stream in both precisions; the integers are the same "
        "(exact path), only the float synthesis differs.",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        "## Conformance vectors (spec/vectors)",
        "",
        "| vector | max diff f32/bf16 (1, 1/2, 1/4) | PSNR vs reference f32 / bf16 | tolerance |",
        "|---|---|---|---|",
    ]
    for name, row in result["vectors"].items():
        diffs = ", ".join(str(row[str(r)]["max_diff"]) for r in REDUCE)
        p = row["1"]["psnr"]
        tol = row["tolerance"]
        lines.append(
            f"| {name} | {diffs} | {p['float32']:.1f} / {p['bfloat16']:.1f} dB | "
            f"{tol['min_psnr']:.0f} dB, {tol['max_abs_diff']} steps |"
        )
    lines += [
        "",
        f"## Kodak, {len(result['kodak'])} images at qualities {', '.join(result['qualities'])}",
        "",
        f"- {s['decodes']} full-size decodes; largest difference between float32 and "
        f"bfloat16: {s['max_diff']['1']} steps at full size, {s['max_diff']['2']} at 1/2, "
        f"{s['max_diff']['4']} at 1/4 (spec 11 allows 8); at most "
        f"{s['over_one']:.2%} of an image's pixels differ by more than one step.",
        f"- PSNR against the original, bfloat16 minus float32: median "
        f"{s['psnr_change_median']:+.3f} dB, worst {s['psnr_change_worst']:+.3f} dB.",
        f"- Full-size decode time, float32 / bfloat16: median {s['speedup_median']:.2f}x.",
        "",
        "| image | quality | max diff | PSNR f32 | PSNR bf16 | s f32 | s bf16 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_quality in result["kodak"].items():
        for q, row in by_quality.items():
            f = row["1"]
            lines.append(
                f"| {name} | {q} | {f['max_diff']} | {f['psnr']['float32']:.2f} | "
                f"{f['psnr']['bfloat16']:.2f} | {f['seconds']['float32']:.3f} | "
                f"{f['seconds']['bfloat16']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak"))
    ap.add_argument("--qualities", type=int, nargs="+", default=[25, 50, 75, 95])
    ap.add_argument("--vectors", type=Path, default=Path("spec/vectors"))
    ap.add_argument("--note", default="", help="a line for the report (what ran beside)")
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/speed"))
    args = ap.parse_args(argv)
    result = run(args.kodak, args.qualities, args.vectors)
    result["qualities"] = [str(q) for q in args.qualities]
    result["summary"] = summary(result)
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(args.out, "precision", result, markdown(result, args.note))


if __name__ == "__main__":
    main()
