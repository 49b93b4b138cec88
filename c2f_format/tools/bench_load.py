"""Decode time on a busy machine: idle, one core busy, every core busy; thread policies.

    python -m c2f_format.tools.bench_load IMAGE [--runs 5] [--busy 0 1 2] [-o DIR]

IMAGE is encoded once (quality 75); then, for each number of busy cores (other
processes spinning, one per core) and each thread policy, a fresh process times
`Image.open().load()` of the stream through Pillow (median of --runs after one warm-up).
Policies: `auto` (the default, threads.py: as many threads as idle cores), and fixed
counts 1 .. all cores (`$C2F_THREADS`, what torch's default of one thread per core
gives). The policies run in turn within each load, so all of them meet the same machine.
Writes load.json and load.md into DIR.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from .. import __version__
from ..codec.progress import progress
from ..codec.threads import available_cores
from .report import write_report

_CHILD = """
import io, statistics, sys, time
import c2f_format
from PIL import Image
data = open(sys.argv[1], "rb").read()
def load():
    start = time.perf_counter()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
    return time.perf_counter() - start
load()
print(statistics.median(load() for _ in range(int(sys.argv[2]))))
"""
_SPIN = "while True: pass"


def time_decode(stream: Path, policy: str, runs: int) -> float:
    """Median seconds of a Pillow load of `stream` in a fresh process under `policy`."""
    env = {**os.environ, "C2F_THREADS": policy, "C2F_DEVICE": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(stream.resolve()), str(runs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),  # not a checkout, whose c2f_format/ would shadow the install
    )
    if proc.returncode:
        raise RuntimeError(f"decode under C2F_THREADS={policy} failed: {proc.stderr[-400:]}")
    return float(proc.stdout.strip())


def measure(stream: Path, busy_levels: list[int], runs: int) -> dict[str, dict[str, float]]:
    """{busy cores: {policy: median seconds}}."""
    policies = ["auto"] + [str(n) for n in range(1, available_cores() + 1)]
    out: dict[str, dict[str, float]] = {}
    spinners: list[subprocess.Popen[bytes]] = []
    cells = [(busy, policy) for busy in sorted(busy_levels) for policy in policies]
    try:
        for busy, policy in progress(cells, len(cells), "decodes"):
            if len(spinners) < busy:
                while len(spinners) < busy:
                    spinners.append(subprocess.Popen([sys.executable, "-c", _SPIN]))
                time.sleep(1.0)  # let the spinners reach their cores
            out.setdefault(str(busy), {})[policy] = time_decode(stream, policy, runs)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    return out


def _markdown(result: dict[str, Any]) -> str:
    times = result["times"]
    policies = list(next(iter(times.values())))
    names = {p: f"{p} thread{'s' * (p != '1')}" for p in policies} | {"auto": "auto (default)"}
    lines = [
        f"# Decode under load, {result['image']} ({result['bytes']} bytes at quality 75)",
        "",
        f"{result['machine']}; torch {result['torch']}; c2f {result['c2f']}; Pillow load, "
        f"median of {result['runs']} in a fresh process per cell; seconds.",
        "",
        "| busy cores | " + " | ".join(names[p] for p in policies) + " |",
        "|---|" + "---:|" * len(policies),
    ]
    for busy, row in times.items():
        lines.append(f"| {busy} | " + " | ".join(f"{row[p]:.3f}" for p in policies) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m c2f_format.tools.bench_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("image", type=Path, help="image to encode and time the decode of")
    ap.add_argument("--runs", type=int, default=5, help="decodes per cell (median)")
    ap.add_argument(
        "--busy",
        type=int,
        nargs="+",
        help="numbers of cores to keep busy (default: 0, 1 and every core)",
    )
    ap.add_argument("-o", "--output", type=Path, default=Path("bench-load"))
    args = ap.parse_args(argv)
    import torch

    import c2f_format

    with Image.open(args.image) as im:
        data = c2f_format.encode(im.convert("RGB"), quality=75, device="cpu")
    args.output.mkdir(parents=True, exist_ok=True)
    stream = args.output / "image.c2f"
    stream.write_bytes(data)
    busy = args.busy if args.busy is not None else sorted({0, 1, available_cores()})
    result = {
        "image": args.image.name,
        "bytes": len(data),
        "machine": f"{platform.machine()}, {available_cores()} CPUs",
        "torch": torch.__version__,
        "c2f": __version__,
        "runs": args.runs,
        "times": measure(stream, busy, args.runs),
    }
    write_report(args.output, "load", result, _markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
