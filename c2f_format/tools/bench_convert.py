"""Images per second converting a folder, by where the work runs: what the engine costs.

    python -m c2f_format.tools.bench_convert ../shared/data/kodak [--workers 2] [-o DIR]

Every way converts the same files at the same settings into a fresh folder, each in a
fresh process so that none inherits another's loaded model (start-up counted, as a user
meets it):

- `c2f encode FILE` once per file, as a shell loop runs it (a process per file);
- `c2f encode FILES -j 1`: one process, a plain loop;
- `convert(workers=N)` on a local process pool (`distributed` hidden);
- `convert(workers=N)` on a local Dask cluster of N workers;
- `convert(scheduler=ADDRESS)` on a cluster started apart, as a real one is: `dask
  scheduler` and `dask worker --nworkers N --nthreads 1` processes on this machine,
  started (and their workers' first import) before the clock.

All outputs are compared byte for byte with the first way's. Writes convert.json and
convert.md into DIR.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..codec.threads import available_cores
from .report import write_report

_CONVERT = """
import json, sys
if sys.argv[4] == "pool":
    sys.modules["distributed"] = None  # the local pool, as without the extra
from c2f_format.codec.convert import convert
where = sys.argv[4]
kwargs = {"scheduler": sys.argv[5]} if where == "scheduler" else {"workers": int(sys.argv[3])}
s = convert([sys.argv[1]], sys.argv[2], **kwargs)
print(json.dumps({"converted": s.converted, "failed": s.failed, "where": s.where}))
"""


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: {done.stderr.strip()[-400:]}")
    return seconds, done.stdout


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*.c2f"))}


def _c2f() -> str:
    return str(Path(sys.executable).with_name("c2f"))


class _Cluster:
    """`dask scheduler` and `dask worker` processes, as a cluster apart from the client."""

    def __init__(self, workers: int, folder: Path) -> None:
        dask = str(Path(sys.executable).with_name("dask"))
        self.file = folder / "scheduler.json"
        self.procs = [
            subprocess.Popen(
                [
                    dask,
                    "scheduler",
                    "--scheduler-file",
                    str(self.file),
                    "--port",
                    "0",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        end = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < end:
            time.sleep(0.1)
        self.procs.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    "--scheduler-file",
                    str(self.file),
                    "--nworkers",
                    str(workers),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        self.address = json.loads(self.file.read_text())["address"]
        from distributed import Client

        with Client(self.address) as client:  # the workers up, and c2f imported in them
            client.wait_for_workers(workers, timeout=120)
            client.run(lambda: __import__("c2f_format.codec.convert"))

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def measure(folder: Path, workers: int, work: Path) -> list[dict[str, Any]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    rows: list[dict[str, Any]] = []
    reference: dict[str, bytes] = {}

    def row(way: str, seconds: float, out: Path) -> None:
        made = _outputs(out)
        if not reference:
            reference.update(made)
        elif made != reference:
            raise RuntimeError(f"{way}: outputs differ from `c2f encode`'s")
        rows.append(
            {
                "way": way,
                "seconds": seconds,
                "images": len(made),
                "images_per_second": len(made) / seconds,
            }
        )
        print(f"{way}: {len(made)} images in {seconds:.1f} s", flush=True)

    out = work / "each"
    out.mkdir()
    start = time.perf_counter()
    for f in files:
        _timed([_c2f(), "encode", str(f), "-o", str(out / f.with_suffix(".c2f").name)])
    row("c2f encode FILE, a process per file", time.perf_counter() - start, out)

    out = work / "loop"
    out.mkdir()
    seconds, _ = _timed([_c2f(), "encode", *map(str, files), "-o", str(out), "-j", "1"])
    row("c2f encode FILES -j 1 (one process)", seconds, out)

    for where, label in (("pool", "local process pool"), ("local", "local Dask cluster")):
        out = work / where
        seconds, _ = _timed(
            [sys.executable, "-c", _CONVERT, str(folder), str(out), str(workers), where]
        )
        row(f"convert, {label} of {workers}", seconds, out)

    cluster = _Cluster(workers, work)
    try:
        out = work / "scheduler"
        seconds, _ = _timed(
            [
                sys.executable,
                "-c",
                _CONVERT,
                str(folder),
                str(out),
                str(workers),
                "scheduler",
                cluster.address,
            ]
        )
        row(f"convert --scheduler (dask scheduler + {workers} dask workers, started)", seconds, out)
    finally:
        cluster.close()
    return rows


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Converting {result['images']} images of {result['folder']} to .c2f (quality 75, "
        f"effort 3), {result['machine']}, c2f {result['c2f']}; each way in a fresh process, "
        "start-up included; outputs identical byte for byte.",
        "",
        "| way | seconds | images/s | against a process per file |",
        "|---|---:|---:|---:|",
    ]
    base = result["rows"][0]["seconds"]
    for r in result["rows"]:
        lines.append(
            f"| {r['way']} | {r['seconds']:.1f} | {r['images_per_second']:.2f} | "
            f"{base / r['seconds']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m c2f_format.tools.bench_convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("folder", type=Path, help="a folder of PNG or JPEG images")
    ap.add_argument("--workers", type=int, default=available_cores())
    ap.add_argument("-o", "--output", type=Path, default=Path("bench-convert"))
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="c2f-bench-convert-"))
    try:
        rows = measure(args.folder, args.workers, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "folder": args.folder.name,
        "images": rows[0]["images"],
        "workers": args.workers,
        "machine": f"{platform.machine()}, {available_cores()} CPUs",
        "c2f": __version__,
        "rows": rows,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_report(args.output, "convert", result, _markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
