"""The `c2f` command: encode, decode, info.

    c2f encode photo.png --quality 75            # -> photo.c2f
    c2f encode *.png -o out/ --quality 60        # several files, progress bar
    c2f decode photo.c2f -o photo.png
    c2f info photo.c2f [--json]
    c2f preview photo.c2f                        # preview / partial / final, side by side
    c2f bench ../shared/data/kodak -o bench/     # RD against JPEG, WebP, AVIF, JPEG 2000

Errors print one line and exit with status 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from . import __version__
from .api import info
from .batch import FileJob, decode_file, encode_file, run_batch
from .errors import C2FError


def _outputs(inputs: list[Path], output: Path | None, suffix: str) -> list[Path]:
    if output is None:
        return [p.with_suffix(suffix) for p in inputs]
    if len(inputs) == 1 and not output.is_dir() and output.suffix:
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    return [output / p.with_suffix(suffix).name for p in inputs]


def _run_files(kind: str, jobs: list[FileJob], workers: int | None, device: str | None) -> None:
    run = encode_file if kind == "encode" else decode_file
    errors = []
    for result in run_batch(run, jobs, workers, device, kind, show_progress=len(jobs) > 1):
        if isinstance(result, C2FError):
            if len(jobs) == 1:
                raise result
            errors.append(result)
            print(f"c2f: error: {result}", file=sys.stderr)
    if errors:
        raise _Failed(f"{len(errors)} of {len(jobs)} files failed")


class _Failed(C2FError):
    """Some files of a batch failed; each was reported already."""


def cmd_encode(args: argparse.Namespace) -> None:
    outputs = _outputs(args.inputs, args.output, ".c2f")
    jobs = [
        FileJob(s, d, args.quality, args.device) for s, d in zip(args.inputs, outputs, strict=True)
    ]
    _run_files("encode", jobs, args.jobs, args.device)


def cmd_decode(args: argparse.Namespace) -> None:
    suffix = "." + args.format.lower().lstrip(".")
    outputs = _outputs(args.inputs, args.output, suffix)
    jobs = [FileJob(s, d, device=args.device) for s, d in zip(args.inputs, outputs, strict=True)]
    _run_files("decode", jobs, args.jobs, args.device)


def cmd_info(args: argparse.Namespace) -> None:
    for src in args.inputs:
        try:
            result = info(src.read_bytes())
        except C2FError as exc:
            raise C2FError(f"{src}: {exc}") from None
        if args.json:
            print(json.dumps({"file": str(src), **result.as_dict()}, indent=2))
        else:
            if len(args.inputs) > 1:
                print(f"{src}:")
            print(result)


def cmd_preview(args: argparse.Namespace) -> None:
    from .progressive import progressive_stages, stage_strip

    data = args.input.read_bytes()
    try:
        stages = progressive_stages(data, device=args.device)
    except C2FError as exc:
        raise C2FError(f"{args.input}: {exc}") from None
    output = args.output or args.input.with_suffix(".stages.png")
    stage_strip(stages, len(data), args.width).save(output)
    for stage in stages:
        share = 100 * stage.bytes_used / len(data)
        print(f"{stage.label:>12}: {stage.bytes_used:>8} bytes ({share:5.1f}%)")
    print(f"wrote {output}")


JOBS_HELP = "worker processes for several files (default: one per core on the CPU)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="c2f", description="c2f learned image format")
    ap.add_argument("--version", action="version", version=f"c2f {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encode", help="compress images to .c2f")
    enc.add_argument("inputs", nargs="+", type=Path)
    enc.add_argument("-o", "--output", type=Path, help="output file, or folder for several")
    enc.add_argument("-q", "--quality", type=int, default=75, help="1..100 (default 75)")
    enc.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: $C2F_DEVICE or auto)")
    enc.add_argument("-j", "--jobs", type=int, help=JOBS_HELP)
    enc.set_defaults(run=cmd_encode)

    dec = sub.add_parser("decode", help="decompress .c2f files")
    dec.add_argument("inputs", nargs="+", type=Path)
    dec.add_argument("-o", "--output", type=Path, help="output file, or folder for several")
    dec.add_argument("--format", default="png", help="output format by extension (png)")
    dec.add_argument("--device")
    dec.add_argument("-j", "--jobs", type=int, help=JOBS_HELP)
    dec.set_defaults(run=cmd_decode)

    pre = sub.add_parser(
        "preview", help="render what a viewer shows while the file arrives (PNG strip)"
    )
    pre.add_argument("input", type=Path)
    pre.add_argument("-o", "--output", type=Path, help="default: IN.stages.png")
    pre.add_argument("--width", type=int, default=384, help="width of each stage")
    pre.add_argument("--device")
    pre.set_defaults(run=cmd_preview)

    sub.add_parser(
        "bench", help="rate-distortion benchmark against Pillow's codecs", add_help=False
    )

    inf = sub.add_parser("info", help="print header and segment table")
    inf.add_argument("inputs", nargs="+", type=Path)
    inf.add_argument("--json", action="store_true")
    inf.set_defaults(run=cmd_info)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark has its own options
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `c2f info x.c2f | head -1`: the reader left, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # as a program killed by SIGPIPE reports
    except (C2FError, OSError, ValueError, Image.DecompressionBombError) as exc:
        message = str(exc) if isinstance(exc, C2FError) else f"{type(exc).__name__}: {exc}"
        print(f"c2f: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
