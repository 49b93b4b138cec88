"""Speed and memory benchmark: c2f beside CompressAI's bmshj2018 hyperprior, same run.

    python -m c2f_format.bench_speed IMAGE [--runs 5] [--big 6000x4000] [-o DIR]

Times, on the same image and in the same process, alternating one run of each
measurement per round so that a noisy machine slows all of them alike (medians):

- c2f: `encode`, `decode`, Pillow `Image.open().load()`, Pillow draft (1/8) load,
  and the preview from a `StreamDecoder` fed up to HYP2;
- CompressAI's `ScaleHyperprior(128, 192)` (bmshj2018 hyperprior at its low-rate
  size), random weights after `update()`: `compress` and `decompress`, on the image
  padded to a multiple of 64 as CompressAI requires. Only importable where CompressAI
  is installed (the benchmark's environment, not c2f's requirements); skipped
  otherwise.

On a CUDA machine the c2f measurements run on the GPU too (synchronised), plus a 4K
decode. `--big WxH` encodes and decodes an image of that size, resized from IMAGE, with
`c2f encode` and `c2f decode` in child processes, and records each one's peak resident
memory (`--big-from` picks another image to resize, a large photo being more honest).
Writes speed.json and speed.md into DIR.
"""

from __future__ import annotations

import argparse
import io
import json
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

import numpy as np
import torch
from PIL import Image

from . import __version__
from .api import StreamDecoder, decode, encode
from .bitstream import SEG_Z2, iter_segments
from .progress import progress

Timer = Callable[[], object]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _c2f_timers(rgb: Image.Image, device: str) -> tuple[dict[str, Timer], bytes]:
    data = encode(rgb, quality=75, device=device)
    hyper_end = next(s.offset + s.size for s in iter_segments(data) if s.kind == SEG_Z2)

    def pillow_load(draft: bool) -> Timer:
        def run() -> object:
            with Image.open(io.BytesIO(data)) as im:
                if draft:
                    im.draft("RGB", (-(-im.width // 8), -(-im.height // 8)))
                im.load()
                return im.size

        return run

    def preview() -> object:
        dec = StreamDecoder(device=device)
        dec.feed(data[:hyper_end])
        return dec.preview()

    timers: dict[str, Timer] = {
        "c2f encode": lambda: encode(rgb, quality=75, device=device),
        "c2f decode": lambda: decode(data, device=device),
        "c2f preview": preview,
    }
    if device == "cpu":  # Pillow decodes on $C2F_DEVICE, which main() sets
        timers["c2f Pillow load"] = pillow_load(False)
        timers["c2f Pillow draft"] = pillow_load(True)
    return timers, data


def _compressai_timers(rgb: Image.Image) -> dict[str, Timer]:
    try:
        from compressai.models import ScaleHyperprior
    except ImportError:
        return {}
    torch.manual_seed(0)
    net = ScaleHyperprior(128, 192).eval()
    net.update(force=True)
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = x.shape[2:]
    x = torch.nn.functional.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
    with torch.inference_mode():
        packed = net.compress(x)

    def compress() -> object:
        with torch.inference_mode():
            return net.compress(x)

    def decompress() -> object:
        with torch.inference_mode():
            return net.decompress(packed["strings"], packed["shape"])

    return {
        "CompressAI hyperprior compress": compress,
        "CompressAI hyperprior decompress": decompress,
    }


def time_rounds(timers: dict[str, Timer], runs: int, device: str) -> dict[str, float]:
    """Median seconds of each timer, one run of each per round (after a warm-up)."""
    for fn in timers.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in progress(range(runs), runs, f"timing on {device}"):
        for name, fn in timers.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(peak resident GiB, seconds) of a child process running `cmd` (Linux: ru_maxrss
    in KiB); the seconds include starting Python and loading the model."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return usage.ru_maxrss / 2**20, time.perf_counter() - start  # ru_maxrss is in KiB


def big_image(source: Image.Image, size: tuple[int, int], folder: Path) -> dict[str, Any]:
    src = folder / f"big-{size[0]}x{size[1]}.png"
    source.resize(size, Image.Resampling.LANCZOS).save(src, compress_level=1)
    out: dict[str, Any] = {"size": f"{size[0]}x{size[1]}"}
    c2f = [sys.executable, "-m", "c2f_format.cli"]
    cpu = ["--device", "cpu"]
    gib, secs = peak_rss([*c2f, "encode", *cpu, str(src), "-o", str(folder / "big.c2f")])
    out["encode"] = {"peak_rss_gib": round(gib, 3), "seconds": round(secs, 1)}
    gib, secs = peak_rss(
        [*c2f, "decode", *cpu, str(folder / "big.c2f"), "-o", str(folder / "b.png")]
    )
    out["decode"] = {"peak_rss_gib": round(gib, 3), "seconds": round(secs, 1)}
    out["bytes"] = (folder / "big.c2f").stat().st_size
    return out


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Speed, {result['image']} ({result['megapixels']:.2f} MP)",
        "",
        f"{result['machine']}; torch {result['torch']}, {result['threads']} threads; "
        f"c2f {result['c2f']}; medians of {result['runs']} alternating runs.",
        "",
        "| device | measurement | median s | s per MP |",
        "|---|---|---:|---:|",
    ]
    mp = result["megapixels"]
    for device, times in result["times"].items():
        for name, secs in times.items():
            lines.append(f"| {device} | {name} | {secs:.4f} | {secs / mp:.4f} |")
    lines.append("")
    for name, value in result["ratios"].items():
        lines.append(f"- {name}: **{value:.3f}**")
    if "big" in result:
        big = result["big"]
        lines += [
            "",
            f"{big['size']} image (resized from {big['from']}; {big['bytes']} bytes at "
            "quality 75), one child process each:",
            f"- `c2f encode --device cpu`: peak RSS {big['encode']['peak_rss_gib']:.2f} GiB, "
            f"{big['encode']['seconds']} s",
            "- `c2f decode --device cpu` (to PNG): peak RSS "
            f"{big['decode']['peak_rss_gib']:.2f} GiB, "
            f"{big['decode']['seconds']} s",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m c2f_format.bench_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("image", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big", help="WxH: also measure peak memory of c2f encode/decode")
    ap.add_argument("--big-from", type=Path, help="image to resize for --big (default: IMAGE)")
    ap.add_argument("-o", "--output", type=Path, default=Path("bench-speed"))
    args = ap.parse_args(argv)
    with Image.open(args.image) as im:
        rgb = im.convert("RGB")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict[str, Any] = {
        "image": args.image.name,
        "megapixels": rgb.width * rgb.height / 1e6,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"
        + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "c2f": __version__,
        "runs": args.runs,
        "times": {},
    }
    saved = os.environ.get("C2F_DEVICE")
    try:
        for device in devices:
            os.environ["C2F_DEVICE"] = device  # what Pillow's loads decode on
            timers, _ = _c2f_timers(rgb, device)
            if device == "cpu":
                timers.update(_compressai_timers(rgb))
            result["times"][device] = time_rounds(timers, args.runs, device)
    finally:
        if saved is None:
            os.environ.pop("C2F_DEVICE", None)
        else:
            os.environ["C2F_DEVICE"] = saved
    cpu = result["times"]["cpu"]
    ratios = {"Pillow draft / Pillow full load": cpu["c2f Pillow draft"] / cpu["c2f Pillow load"]}
    if "CompressAI hyperprior decompress" in cpu:
        peer = cpu["CompressAI hyperprior decompress"]
        ratios["c2f Pillow load / CompressAI decompress"] = cpu["c2f Pillow load"] / peer
        ratios["c2f decode / CompressAI decompress"] = cpu["c2f decode"] / peer
        ratios["c2f encode / CompressAI compress"] = (
            cpu["c2f encode"] / cpu["CompressAI hyperprior compress"]
        )
    else:
        print("CompressAI is not installed here: no peer measured", file=sys.stderr)
    if "cuda" in devices:
        uhd = rgb.resize((3840, 2160), Image.Resampling.LANCZOS)
        data = encode(uhd, quality=75, device="cuda")
        result["times"]["cuda 3840x2160"] = time_rounds(
            {"c2f decode": lambda: decode(data, device="cuda")}, args.runs, "cuda"
        )
    result["ratios"] = ratios
    if args.big:
        width, height = (int(v) for v in args.big.lower().split("x"))
        source = rgb
        if args.big_from:
            with Image.open(args.big_from) as im:
                source = im.convert("RGB")
        with tempfile.TemporaryDirectory() as tmp:
            result["big"] = big_image(source, (width, height), Path(tmp))
            result["big"]["from"] = (args.big_from or args.image).name
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "speed.json").write_text(json.dumps(result, indent=2))
    text = _markdown(result)
    (args.output / "speed.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
