"""The `c2f` command: encode, decode, info.

    c2f encode photo.png --quality 75            # -> photo.c2f
    c2f encode *.png -o out/ --quality 60        # several files, progress bar
    c2f decode photo.c2f -o photo.png
    c2f convert photos/ -o photos-c2f/           # folders, resumable, on Dask if asked
    c2f info photo.c2f [--json]
    c2f preview photo.c2f                        # preview / partial / final, side by side
    c2f bench ../shared/data/kodak -o bench/     # RD against JPEG, WebP, AVIF, JPEG 2000

Errors print one line, `c2f: error: FILE: PROBLEM`, and exit with status 1 (2 for bad
usage). No existing file is replaced without --force, and no input of the same run ever;
outputs are written whole or not at all.

torch is imported only once there is work to do: `c2f --help` and usage errors answer at
once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image  # imported by `import c2f_format` anyway, to register the format

from .. import __version__
from ..codec.api import DEFAULT_MAX_PIXELS, LIMIT_HINT, TRUNCATED_HINT
from ..codec.convert import FORCE_HINT
from ..codec.effort import DEFAULT_EFFORT, check_effort
from ..codec.safe_write import file_identity, make_folder
from ..format.errors import C2FError

if TYPE_CHECKING:
    from ..codec.files import FileJob

# the API's hints in an error, as the command line says them
CLI_HINTS = {
    FORCE_HINT: "--force replaces it",
    LIMIT_HINT: "--max-pixels none lifts the limit",
    TRUNCATED_HINT: "--allow-truncated decodes it from what arrived",
}

_DEVICE = re.compile(r"(cpu|cuda(:[0-9]+)?)\Z")
DEVICES = "cpu, cuda or cuda:N"


# ---- arguments ---------------------------------------------------------------------------


def _device(text: str) -> str:
    """A device c2f can run on, by its form; whether this machine has it is checked when
    there is work to do (that needs torch)."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"invalid device {text!r}: c2f runs on {DEVICES}")
    return text


def _effort(text: str) -> int:
    try:
        return check_effort(int(text))
    except (ValueError, C2FError):
        raise argparse.ArgumentTypeError(f"effort must be an integer 1..9, got {text!r}") from None


def _quality(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality must be 1..100, got {value}")
    return value


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _max_pixels(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    return _positive(text)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def check_device(device: str | None) -> None:
    """Fail with the devices that work here if `device` (or $C2F_DEVICE) is not one."""
    source = "--device"
    if device is None:
        device = os.environ.get("C2F_DEVICE") or None
        source = "$C2F_DEVICE"
    if device is None or device == "cpu":  # always there: no torch import to say so
        return
    count = 0
    from ..codec.engines import torch_available

    if torch_available():  # without torch (a decode-only install) only the CPU works
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    working = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(count)] if count else [])
    if device in working:
        return
    if not _DEVICE.match(device):
        problem = f"c2f runs on {DEVICES}"
    elif not count:
        problem = "CUDA is not available on this machine"
    else:
        problem = f"this machine has {count} CUDA device{'s' if count > 1 else ''}"
    raise C2FError(f"{source} {device!r}: {problem} (devices that work here: {', '.join(working)})")


# ---- outputs -----------------------------------------------------------------------------


def _outputs(inputs: list[Path], output: Path | None, suffix: str) -> list[Path]:
    if output is None:
        return [p.with_suffix(suffix) for p in inputs]
    if len(inputs) == 1 and not output.is_dir() and output.suffix:
        return [output]
    make_folder(output, " (several inputs need -o FOLDER)")
    return [output / p.with_suffix(suffix).name for p in inputs]


def _refusals(jobs: list[FileJob]) -> dict[int, str]:
    """Jobs that must not run, by index, with why: their output is an input of this run
    (--force or not), or the output of another job too (which one would win is an
    accident of order, so neither is written)."""
    inputs = {file_identity(job.src): job.src for job in jobs}
    by_output: dict[tuple[object, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        by_output.setdefault(file_identity(job.dst), []).append(i)
    refused = {}
    for i, job in enumerate(jobs):
        key = file_identity(job.dst)
        if key in inputs:
            refused[i] = f"{job.dst}: is an input of this run; not overwritten, even with --force"
        elif len(by_output[key]) > 1:
            others = ", ".join(str(jobs[k].src) for k in by_output[key] if k != i)
            refused[i] = f"{job.src}: its output {job.dst} is also the output of {others}"
    return refused


# ---- commands ----------------------------------------------------------------------------


def _run_files(
    kind: str,
    jobs: list[FileJob],
    workers: int | None,
    device: str | None,
    backend: str | None = None,
) -> None:
    """Run the jobs that may run; report every failure on its own line; fail at the end
    if any did, after the others are done."""
    from ..codec.batch import run_batch
    from ..codec.files import FileResult, decode_file, encode_file, job_pixels

    refused = _refusals(jobs)
    if len(jobs) == 1 and refused:
        raise C2FError(refused[0])
    for message in refused.values():
        print(f"c2f: error: {message}", file=sys.stderr)
    todo = [job for i, job in enumerate(jobs) if i not in refused]
    failures = len(refused)
    if todo:
        check_device(device)
    run = encode_file if kind == "encode" else decode_file
    pixels = job_pixels([job.src for job in todo], kind)
    results = run_batch(run, todo, workers, device, kind, len(todo) > 1, backend, pixels)
    for result in results:
        if isinstance(result, C2FError):
            result = _cli_worded(result)
            if len(jobs) == 1:
                raise result
            failures += 1
            print(f"c2f: error: {result}", file=sys.stderr)
        elif isinstance(result, FileResult):
            for warning in result.warnings:
                print(f"c2f: warning: {warning}", file=sys.stderr)
    if failures:
        raise C2FError(f"{failures} of {len(jobs)} files failed")


def _cli_worded(exc: C2FError) -> C2FError:
    """The error with the API's hints (a keyword to pass) said as the options to give."""
    message = str(exc)
    for api_hint, cli_hint in CLI_HINTS.items():
        message = message.replace(api_hint, cli_hint)
    return exc if message == str(exc) else C2FError(message)


def _jobs(
    args: argparse.Namespace,
    outputs: list[Path],
    quality: int = 75,
    allow_truncated: bool = False,
    effort: int = DEFAULT_EFFORT,
    backend: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> list[FileJob]:
    from ..codec.files import FileJob

    # one big image can take a minute: a bar, where someone is watching
    bar = len(args.inputs) == 1 and sys.stderr.isatty()
    return [
        FileJob(
            src,
            dst,
            quality,
            args.device,
            args.force,
            allow_truncated,
            bar,
            effort,
            backend,
            max_pixels,
        )
        for src, dst in zip(args.inputs, outputs, strict=True)
    ]


def cmd_encode(args: argparse.Namespace) -> None:
    outputs = _outputs(args.inputs, args.output, ".c2f")
    jobs = _jobs(args, outputs, quality=args.quality, effort=args.effort)
    _run_files("encode", jobs, args.jobs, args.device)


def cmd_decode(args: argparse.Namespace) -> None:
    from ..codec.files import output_format, quick_backend

    suffix = "." + args.format.lower().lstrip(".")
    outputs = _outputs(args.inputs, args.output, suffix)
    for path in {p.suffix.lower(): p for p in outputs}.values():  # before any work
        output_format(path)
    backend = quick_backend(args.inputs, args.device)
    jobs = _jobs(
        args,
        outputs,
        allow_truncated=args.allow_truncated,
        backend=backend,
        max_pixels=args.max_pixels,
    )
    _run_files("decode", jobs, args.jobs, args.device, backend)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise C2FError(f"{path}: {exc.strerror or exc}") from None


def cmd_convert(args: argparse.Namespace) -> None:
    from ..codec.convert import convert

    check_device(args.device)
    summary = convert(
        args.sources,
        args.output,
        to=args.to,
        quality=args.quality,
        effort=args.effort,
        scheduler=args.scheduler,
        workers=args.workers,
        device=args.device,
        force=args.force,
        show_progress=sys.stderr.isatty(),
    )
    for warning in summary.warnings:
        print(f"c2f: warning: {warning}", file=sys.stderr)
    for src, reason in summary.failed:
        print(f"c2f: error: {src}: {_cli_worded(C2FError(reason))}", file=sys.stderr)
    print(summary)
    if summary.failed:
        total = summary.converted + summary.up_to_date + len(summary.failed)
        raise C2FError(f"{len(summary.failed)} of {total} files failed")


def cmd_info(args: argparse.Namespace) -> None:
    from ..codec.api import info

    failures = 0
    for src in args.inputs:
        try:
            data = _read(src)
            try:
                result = info(data)
            except C2FError as exc:
                raise C2FError(f"{src}: {exc}") from None
        except C2FError as exc:
            if len(args.inputs) == 1:
                raise
            print(f"c2f: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            print(json.dumps({"file": str(src), **result.as_dict()}, indent=2))
        else:
            if len(args.inputs) > 1:
                print(f"{src}:")
            print(result)
    if failures:
        raise C2FError(f"{failures} of {len(args.inputs)} files failed")


def cmd_preview(args: argparse.Namespace) -> None:
    from ..codec.files import output_format
    from ..codec.safe_write import check_writable, write_file
    from .progressive import progressive_stages, stage_strip

    output = args.output or args.input.with_suffix(".stages.png")
    data = _read(args.input)
    fmt = output_format(output)
    if file_identity(output) == file_identity(args.input):
        raise C2FError(f"{output}: is the input; not overwritten, even with --force")
    check_writable(output, args.force)
    check_device(args.device)
    try:
        stages = progressive_stages(data, device=args.device)
    except C2FError as exc:
        raise C2FError(f"{args.input}: {exc}") from None
    strip = stage_strip(stages, len(data), args.width)
    try:
        write_file(output, lambda fp: strip.save(fp, format=fmt), overwrite=args.force)
    except (ValueError, KeyError) as exc:
        raise C2FError(f"{output}: cannot write: {exc}") from None
    for stage in stages:
        share = 100 * stage.bytes_used / len(data)
        print(f"{stage.label:>12}: {stage.bytes_used:>8} bytes ({share:5.1f}%)")
    print(f"wrote {output}")


# ---- the parser --------------------------------------------------------------------------

JOBS_HELP = "worker processes for several files (default: one per core on the CPU)"
DEVICE_HELP = f"{DEVICES} (default: $C2F_DEVICE, else CUDA when present, else cpu)"
FORCE_HELP = "replace output files that exist (never an input of the same run)"
THREADS_HELP = "CPU threads for each image (default: $C2F_THREADS, else one per idle core)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="c2f", description="c2f learned image format")
    ap.add_argument(
        "--version",
        action="version",
        version=f"c2f {__version__} (the package; `c2f info` gives each file's bitstream version)",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enc = sub.add_parser("encode", help="compress images to .c2f")
    enc.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE", help="images to compress")
    enc.add_argument(
        "-o", "--output", type=Path, help="output file, or folder for several (default: IN.c2f)"
    )
    enc.add_argument("-q", "--quality", type=_quality, default=75, help="1..100 (default 75)")
    enc.add_argument(
        "-e",
        "--effort",
        type=_effort,
        default=DEFAULT_EFFORT,
        help=f"1..9 (default {DEFAULT_EFFORT}): from 4 up the encoder searches for a smaller "
        "file at the same quality, slower the higher (9: minutes per photo)",
    )
    enc.add_argument("-f", "--force", action="store_true", help=FORCE_HELP)
    enc.add_argument("--device", type=_device, help=DEVICE_HELP)
    enc.add_argument("-j", "--jobs", type=_positive, help=JOBS_HELP)
    enc.add_argument("--threads", type=_positive, help=THREADS_HELP)
    enc.set_defaults(run=cmd_encode)

    dec = sub.add_parser("decode", help="decompress .c2f files")
    dec.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help=".c2f files to decode")
    dec.add_argument(
        "-o", "--output", type=Path, help="output file, or folder for several (default: IN.png)"
    )
    dec.add_argument(
        "--format", default="png", help="output format by extension without -o FILE (png)"
    )
    dec.add_argument("-f", "--force", action="store_true", help=FORCE_HELP)
    dec.add_argument(
        "--allow-truncated",
        action="store_true",
        help="decode a stream cut short or damaged inside its image rows: the rows lost "
        "are predicted from the hyper layers, with a warning (cut earlier: still an error)",
    )
    dec.add_argument(
        "--max-pixels",
        type=_max_pixels,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images of more pixels, padded (default {DEFAULT_MAX_PIXELS:,}: a "
        "header that claims more is refused before memory is taken; 'none' for no limit)",
    )
    dec.add_argument("--device", type=_device, help=DEVICE_HELP)
    dec.add_argument("-j", "--jobs", type=_positive, help=JOBS_HELP)
    dec.add_argument("--threads", type=_positive, help=THREADS_HELP)
    dec.set_defaults(run=cmd_decode)

    pre = sub.add_parser(
        "preview", help="render what a viewer shows while the file arrives (PNG strip)"
    )
    pre.add_argument("input", type=Path, metavar="FILE", help=".c2f file")
    pre.add_argument("-o", "--output", type=Path, help="image to write (default: IN.stages.png)")
    pre.add_argument("--width", type=_positive, default=384, help="width of each stage (384)")
    pre.add_argument("-f", "--force", action="store_true", help="replace the output if it exists")
    pre.add_argument("--device", type=_device, help=DEVICE_HELP)
    pre.add_argument("--threads", type=_positive, help=THREADS_HELP)
    pre.set_defaults(run=cmd_preview)

    con = sub.add_parser(
        "convert",
        help="convert folders of images to .c2f (or back to PNG), resumable, on Dask if asked",
        description="Walk the sources (files and folders) and write each image's .c2f under "
        "DST at its path relative to the folder given. A manifest in DST (c2f-manifest.jsonl) "
        "makes a rerun convert only what is missing or changed; outputs are written whole or "
        "not at all; a file that fails is reported and the rest goes on (exit status 1). "
        "With --scheduler the work runs on that Dask cluster, whose workers must see SRC and "
        "DST at the same paths.",
    )
    con.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="files and folders")
    con.add_argument("-o", "--output", type=Path, required=True, metavar="DST", help="folder")
    con.add_argument(
        "--to",
        choices=("c2f", "png"),
        default="c2f",
        help="c2f (default): every image Pillow reads; png: the .c2f files decoded",
    )
    con.add_argument("-q", "--quality", type=_quality, default=75, help="1..100 (default 75)")
    con.add_argument(
        "-e", "--effort", type=_effort, default=DEFAULT_EFFORT, help=f"1..9 ({DEFAULT_EFFORT})"
    )
    where = con.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786"
    )
    where.add_argument(
        "-j",
        "--workers",
        type=_positive,
        help="processes of a local cluster (default: one per core; small jobs run in this one)",
    )
    con.add_argument(
        "-f", "--force", action="store_true", help="replace files in DST this run did not write"
    )
    con.add_argument("--device", type=_device, help=DEVICE_HELP)
    con.set_defaults(run=cmd_convert)

    sub.add_parser(
        "bench", help="rate-distortion benchmark against Pillow's codecs", add_help=False
    )

    inf = sub.add_parser("info", help="print header and segment table")
    inf.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help=".c2f files")
    inf.add_argument("--json", action="store_true", help="print JSON, one object per file")
    inf.set_defaults(run=cmd_info)
    return ap


def _describe(exc: BaseException) -> str:
    """One line, no exception class names: `FILE: strerror` for the OS's errors."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark has its own options
        from ..codec.engines import INSTALL_TORCH, torch_available

        if not torch_available():  # it encodes: a decode-only install cannot run it
            print(f"c2f: error: c2f bench needs torch: {INSTALL_TORCH}", file=sys.stderr)
            return 1
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):  # read by threads.py, here and in batch workers
        os.environ["C2F_THREADS"] = str(args.threads)
    try:
        args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `c2f info x.c2f | head -1`: the reader left, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # as a program killed by SIGPIPE reports
    except (C2FError, OSError, ValueError, MemoryError, Image.DecompressionBombError) as exc:
        message = "out of memory" if isinstance(exc, MemoryError) else _describe(exc)
        print(f"c2f: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
