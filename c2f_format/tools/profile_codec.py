"""Where an encode and a decode spend their time, stage by stage.

    python -m c2f_format.tools.profile_codec PHOTO [--size 4000x3000] [--threads 2]
        [--quality 75] [--runs 3] [-o docs/speed] [--stem profile-12mp]

PHOTO is resized to --size (Lanczos) and encoded at --quality; then the torch engine
encodes and decodes it --runs times (after one warm-up) with every stage timed: the
entropy coding of each latent, the integer hyper networks, the analysis, and each layer
of the float synthesis (hooks on the engine's own modules, so the stages add up to the
whole). The median run is reported, with the share of synthesis work that the tiles'
halos compute twice (the windows' area over the image's), the precision the synthesis
ran in (precision.py), the thread count, and this process's peak resident memory.
Writes STEM.json and STEM.md into the output folder.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..codec import torch_engine
from ..codec.decoding import LatentDecoder
from ..codec.precision import synthesis_bf16
from ..codec.tiling import synthesis_tiles
from ..format.bitstream import StreamParser
from .report import write_report

DECODE_STAGES = ("decode_z1", "hyper_from_z1", "decode_z2", "h2_from_z2", "y_params")


class StageClock:
    """Seconds spent in named callables, summed while `recording`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return timed

    @contextmanager
    def recording(self) -> Iterator[dict[str, float]]:
        self.seconds.clear()
        out: dict[str, float] = {}
        yield out
        out.update(self.seconds)


def instrument(codec: torch_engine.TorchEngine, clock: StageClock) -> None:
    """Time `codec`'s pipeline steps, the encoder's entropy coding (in this process) and
    each module of its float transforms."""
    entropy = torch_engine.entropy
    entropy.encode = clock.wrap("entropy encode", entropy.encode)
    for name in (*DECODE_STAGES, "decode_band", "reconstruct", "_analyse"):
        setattr(codec, name, clock.wrap(name.lstrip("_"), getattr(codec, name)))
    net = codec.net
    modules: dict[str, torch.nn.Module] = {
        "synthesis.head": net.g_s_head,
        "synthesis.fuse": net.fuse_mix,
    }
    for i, layer in enumerate(net.g_s_tail):
        modules[f"synthesis.tail{i} {type(layer).__name__}"] = layer
    if net.config.linear_paths:
        for i, path in enumerate(net.s_paths):
            modules[f"synthesis.path{i}"] = path
    for i, layer in enumerate(net.g_a):
        modules[f"analysis.{i} {type(layer).__name__}"] = layer
    for name in ("h_a2", "h_a1"):
        modules[f"hyper analysis.{name}"] = getattr(net, name)
    for name, module in modules.items():
        module.forward = clock.wrap(name, module.forward)


def halo_overhead(rows: int, cols: int, height: int, width: int) -> float:
    """Latent positions the synthesis computes over those the image covers."""
    computed = sum(
        (t.window[1] - t.window[0]) * (t.window[3] - t.window[2])
        for t in synthesis_tiles(rows, cols, height, width)
    )
    return computed / (rows * cols)


def _decode(codec: torch_engine.TorchEngine, data: bytes) -> np.ndarray:
    parser = StreamParser(max_pixels=None)
    segments = parser.feed(data)
    assert parser.header is not None
    decoder = LatentDecoder(codec, parser.header)
    for segment in segments:
        decoder.add(segment)
    return decoder.pixels()


def profile(photo: Path, size: tuple[int, int], quality: int, runs: int) -> dict[str, Any]:
    image = Image.open(photo).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    rgb = np.asarray(image)
    codec = torch_engine.get_torch_engine(torch.device("cpu"))
    clock = StageClock()
    instrument(codec, clock)
    encodes: list[dict[str, float]] = []
    decodes: list[dict[str, float]] = []
    data = b""
    for run in range(runs + 1):
        with clock.recording() as stages:
            start = time.perf_counter()
            data = codec.encode(rgb, "RGB", quality)
            stages["total"] = time.perf_counter() - start
        if run:
            encodes.append(stages)
        with clock.recording() as stages:
            start = time.perf_counter()
            _decode(codec, data)
            stages["total"] = time.perf_counter() - start
        if run:
            decodes.append(stages)
    parser = StreamParser(max_pixels=None)
    parser.feed(data)
    assert parser.header is not None
    rows, cols = parser.header.latent_size
    return {
        "photo": photo.name,
        "size": list(size),
        "quality": quality,
        "bytes": len(data),
        "runs": runs,
        "threads": torch.get_num_threads(),
        "precision": "bfloat16" if synthesis_bf16("cpu") else "float32",
        "halo_overhead": halo_overhead(rows, cols, size[1], size[0]),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "c2f": __version__,
        "encode": _median(encodes),
        "decode": _median(decodes),
    }


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each stage's time in the run whose total is the median, in the order they ran."""
    return sorted(rows, key=lambda r: r["total"])[len(rows) // 2]


def markdown(result: dict[str, Any], note: str = "") -> str:
    w, h = result["size"]
    mp = w * h / 1e6
    lines = [
        f"# Profile: {w}x{h} ({mp:.1f} MP) from {result['photo']}, quality {result['quality']}",
        "",
        f"{result['machine']}; torch {result['torch']}, {result['threads']} threads; "
        f"c2f {result['c2f']}; synthesis in {result['precision']}; the median of "
        f"{result['runs']} runs. {result['bytes']:,} bytes. Peak RSS of the process "
        f"{result['peak_rss_mib']:.0f} MiB. The tiles' halos make the synthesis compute "
        f"{result['halo_overhead']:.2f}x the image's latent positions.",
    ]
    if note:
        lines += ["", note]
    for side in ("decode", "encode"):
        stages = result[side]
        total = stages["total"]
        lines += ["", f"| {side} stage | s | share |", "|---|---:|---:|"]
        for name, seconds in stages.items():
            if name != "total":
                lines.append(f"| {name} | {seconds:.3f} | {seconds / total:.0%} |")
        lines.append(f"| **total** | **{total:.3f}** | {total / mp:.3f} s/MP |")
    lines += [
        "",
        "Stages nest: `reconstruct` holds the `synthesis.*` layers, `analyse` the "
        "analysis; `decode_band` is the entropy decoding of y, `y_params` the integer "
        "network that predicts it.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photo", type=Path)
    ap.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT to resize to")
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--note", default="", help="a line for the report (what ran beside)")
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/speed"))
    ap.add_argument("--stem", default="profile-12mp")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ.setdefault("C2F_THREADS", str(args.threads))
    width, height = (int(v) for v in args.size.lower().split("x"))
    result = profile(args.photo, (width, height), args.quality, args.runs)
    result["note"] = args.note
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(args.out, args.stem, result, markdown(result, args.note))


if __name__ == "__main__":
    main()

__all__ = ["StageClock", "halo_overhead", "instrument", "markdown", "profile"]
