"""Speed and memory benchmark: c2f beside CompressAI's bmshj2018 hyperprior, same run.

    python -m c2f_format.tools.bench_speed IMAGE [--runs 5] [--big 6000x4000] [-o DIR]

Times, on the same image and in the same process, alternating one run of each
measurement per round so that a noisy machine slows all of them alike (medians):

- c2f: `encode`, `decode`, Pillow `Image.open().load()`, Pillow draft (1/8) load,
  and the preview from a `StreamDecoder` fed up to HYP2;
- CompressAI's `ScaleHyperprior(128, 192)` (bmshj2018 hyperprior at its low-rate
  size), random weights after `update()`: `compress` and `decompress`, on the image
  padded to a multiple of 64 as CompressAI requires. Only importable where CompressAI
  is installed (the benchmark's environment, not c2f's requirements); skipped
  otherwise. Random weights time the networks faithfully; the entropy coding of a
  random model's latents is not representative of a trained one's.
- peak resident memory of one encode + decode of IMAGE in a fresh process, for c2f,
  for CompressAI, and for Python with torch alone.

On a CUDA machine the c2f measurements run on the GPU too (synchronised), plus a 4K
decode. `--big WxH` encodes and decodes an image of that size, resized from IMAGE, with
`c2f encode` and `c2f decode` in child processes, and records each one's peak resident
memory (`--big-from` picks another image to resize, a large photo being more honest).
Writes speed.json and speed.md into DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..codec.api import StreamDecoder, decode, encode
from ..codec.progress import progress
from ..format.bitstream import hyper_end, iter_segments, reduced_size
from ..format.constants import PREVIEW_SCALE
from .report import write_report

# CompressAI's bmshj2018 hyperprior, the peer this benchmark and the lab's GPU round
# (lab/gpu_round.py) time, built the same way in this process (timing) and in a fresh
# one (memory): at its
# low-rate size, random weights, the image as a float tensor `x` padded to a multiple of
# 64 as CompressAI requires. Needs `np`, `torch` and `rgb` in scope.
COMPRESSAI_SETUP = """
from compressai.models import ScaleHyperprior
torch.manual_seed(0)
net = ScaleHyperprior(128, 192).eval()
net.update(force=True)
x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
h, w = x.shape[2:]
x = torch.nn.functional.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
"""

Timer = Callable[[], object]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _c2f_timers(rgb: Image.Image, device: str) -> tuple[dict[str, Timer], bytes]:
    data = encode(rgb, quality=75, device=device)
    preview_bytes = hyper_end(iter_segments(data))

    def pillow_load(draft: bool) -> Timer:
        def run() -> object:
            with Image.open(io.BytesIO(data)) as im:
                if draft:
                    im.draft("RGB", reduced_size(im.width, im.height, PREVIEW_SCALE))
                im.load()
                return im.size

        return run

    def preview() -> object:
        dec = StreamDecoder(device=device)
        dec.feed(data[:preview_bytes])
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
        from compressai.models import ScaleHyperprior  # noqa: F401
    except ImportError:
        return {}
    scope: dict[str, Any] = {"np": np, "torch": torch, "rgb": rgb}
    exec(COMPRESSAI_SETUP, scope)
    net, x = scope["net"], scope["x"]
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


# Runs a module or a snippet and writes its own peak resident memory (VmHWM, KiB) to a
# file at exit. The kernel's ru_maxrss of a child would not do: it starts from the
# parent's resident size at the fork, so a small child would read as big as its parent.
_PEAK_WRAPPER = """
import atexit, runpy, sys
def _report(path=sys.argv[1]):
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(path, "w") as out:
        out.write(kib)
atexit.register(_report)
kind, target = sys.argv[2], sys.argv[3]
sys.argv = [target, *sys.argv[4:]]
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    exec(compile(target, "<child>", "exec"), {"__name__": "__main__"})
"""


def peak_rss(kind: str, target: str, args: list[str]) -> tuple[float, float]:
    """(peak resident GiB, seconds) of a child running module `target` (kind "module")
    or the code `target` (kind "code") with `args`; the seconds include starting Python
    and loading the model. Linux only (/proc/self/status)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "peak"
        start = time.perf_counter()
        # cwd outside any checkout: `python -c` puts the working directory first on
        # sys.path, and a checkout's c2f_format/ (no plugins, no weights) would shadow
        # the installed package; paths in `args` are made absolute by the callers
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_WRAPPER, str(report), kind, target, *args], cwd=tmp
        )
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(f"{kind} {target[:40]!r} failed with status {proc.returncode}")
        return int(report.read_text()) / 2**20, seconds


# One encode and one decode of IMAGE in a fresh process, per codec: peak resident memory
# of the whole process (Python, torch, the model, the work), and of Python with torch
# alone for reference.
_CHILD_PRELUDE = """
import sys, numpy as np, torch
from PIL import Image
torch.set_num_threads({threads})
rgb = Image.open(sys.argv[1]).convert("RGB")
"""
_CHILD_WORK = {
    "python + torch only": "",
    "c2f encode + decode": """
import c2f_format
c2f_format.decode(c2f_format.encode(rgb, quality=75, device="cpu"), device="cpu")
""",
    "CompressAI hyperprior compress + decompress": COMPRESSAI_SETUP
    + """
with torch.inference_mode():
    packed = net.compress(x)
    net.decompress(packed["strings"], packed["shape"])
""",
}


def peak_memory(image: Path, with_peer: bool) -> dict[str, float]:
    """Peak RSS (MiB) of each child in `_CHILD_WORK` on `image`."""
    out = {}
    for name, work in _CHILD_WORK.items():
        if "CompressAI" in name and not with_peer:
            continue
        code = _CHILD_PRELUDE.format(threads=torch.get_num_threads()) + work
        gib, _ = peak_rss("code", code, [str(image.resolve())])
        out[name] = round(gib * 1024, 1)
    return out


def big_image(source: Image.Image, size: tuple[int, int], folder: Path) -> dict[str, Any]:
    folder = folder.resolve()  # the child runs elsewhere (peak_rss)
    src = folder / f"big-{size[0]}x{size[1]}.png"
    source.resize(size, Image.Resampling.LANCZOS).save(src, compress_level=1)
    out: dict[str, Any] = {"size": f"{size[0]}x{size[1]}"}
    cli, cpu = "c2f_format.tools.cli", ["--device", "cpu"]
    gib, secs = peak_rss("module", cli, ["encode", *cpu, str(src), "-o", str(folder / "big.c2f")])
    out["encode"] = {"peak_rss_gib": round(gib, 3), "seconds": round(secs, 1)}
    gib, secs = peak_rss(
        "module", cli, ["decode", *cpu, str(folder / "big.c2f"), "-o", str(folder / "b.png")]
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
    if result.get("peak_memory"):
        lines += ["", f"Peak resident memory, {result['image']}, one fresh process each:"]
        for name, mib in result["peak_memory"].items():
            lines.append(f"- {name}: {mib:.0f} MiB")
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


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m c2f_format.tools.bench_speed`."""
    ap = argparse.ArgumentParser(
        prog="python -m c2f_format.tools.bench_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("image", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big", help="WxH: also measure peak memory of c2f encode/decode")
    ap.add_argument("--big-from", type=Path, help="image to resize for --big (default: IMAGE)")
    ap.add_argument("-o", "--output", type=Path, default=Path("bench-speed"))
    return ap


def _machine(devices: list[str]) -> str:
    """The machine in words: architecture, CPU count and the GPU if one is used."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs" + (
        f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""
    )


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the block, then restore it (or its absence)."""
    saved = os.environ.get(name)
    try:
        os.environ[name] = value
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _time_devices(rgb: Image.Image, devices: list[str], runs: int) -> dict[str, dict[str, float]]:
    """c2f's timings on each device, and CompressAI's on the CPU when it is installed."""
    times: dict[str, dict[str, float]] = {}
    for device in devices:
        with _env("C2F_DEVICE", device):  # what Pillow's loads decode on
            timers, _ = _c2f_timers(rgb, device)
            if device == "cpu":
                timers.update(_compressai_timers(rgb))
            times[device] = time_rounds(timers, runs, device)
    return times


def _ratios(cpu: dict[str, float]) -> dict[str, float]:
    """Speed ratios on the CPU: Pillow's draft against a full load, c2f against CompressAI."""
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
    return ratios


def _time_uhd(rgb: Image.Image, runs: int) -> dict[str, float]:
    """c2f's decode time on the GPU for the image resized to 3840x2160."""
    uhd = rgb.resize((3840, 2160), Image.Resampling.LANCZOS)
    data = encode(uhd, quality=75, device="cuda")
    return time_rounds({"c2f decode": lambda: decode(data, device="cuda")}, runs, "cuda")


def _big(args: argparse.Namespace, rgb: Image.Image) -> dict[str, Any]:
    """--big: peak memory of c2f encode and decode on a WxH image resized from --big-from."""
    width, height = (int(v) for v in args.big.lower().split("x"))
    source = rgb
    if args.big_from:
        with Image.open(args.big_from) as im:
            source = im.convert("RGB")
    with tempfile.TemporaryDirectory() as tmp:
        big = big_image(source, (width, height), Path(tmp))
        big["from"] = (args.big_from or args.image).name
    return big


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with Image.open(args.image) as im:
        rgb = im.convert("RGB")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict[str, Any] = {
        "image": args.image.name,
        "megapixels": rgb.width * rgb.height / 1e6,
        "machine": _machine(devices),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "c2f": __version__,
        "runs": args.runs,
        "times": _time_devices(rgb, devices, args.runs),
    }
    cpu = result["times"]["cpu"]
    ratios = _ratios(cpu)
    if "cuda" in devices:
        result["times"]["cuda 3840x2160"] = _time_uhd(rgb, args.runs)
    result["ratios"] = ratios
    result["peak_memory"] = peak_memory(
        args.image, with_peer="CompressAI hyperprior decompress" in cpu
    )
    if args.big:
        result["big"] = _big(args, rgb)
    args.output.mkdir(parents=True, exist_ok=True)
    write_report(args.output, "speed", result, _markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
