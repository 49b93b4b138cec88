"""One GPU round: the CUDA checks, then training from the committed state, in one command.

A lent GPU comes for about 15 minutes, one command of at most 10, with 64 MiB of
files travelling to it and 8 files of 16 MiB coming back. A round therefore

1. runs every CUDA check there is (tests/tools/test_cuda.py, a stream encoded on the GPU
   decoded on the CPU and back to identical symbols, GPU encode/decode times for a
   768x512 and a 3840x2160 image), while the clock for training is already running;
2. resumes `lab/training/checkpoint.pt` on CUDA with the packed training set resident on
   the GPU (crops cut there, no data loader), bfloat16 for the float transforms, TF32
   for their matrix products, rates and likelihoods in float32;
3. stops itself in time to write `state.pt`, `log.csv`, `round.json` and `checks.log`
   to the output folder, which `accept` then merges back into `lab/training/`.

    python lab/gpu_round.py --prepare               # here: pack + wheels, travel size
    sh lab/training/gpu-round.sh                        # there (see lab/training.md)
    python lab/gpu_round.py --accept FOLDER         # here: take what came back
    python lab/gpu_round.py --dry-run               # the same path on the CPU, a few steps
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from c2f_format.train.data import DeviceCrops, load_images, pack_images
from c2f_format.train.loop import LOG_FILE, CsvLog, Schedule, train_loop
from c2f_format.train.state import STATE_FILE, load_state, new_model, save_state

# Paths inside the source checkout a round works on (`--repo`, default: the current
# folder): the round needs the committed state and the tests, not just the package.
TRAINING = Path("lab/training")
PACK = Path("runs/pack")
WHEELS = Path("runs/wheels")
SHARED_TRAIN = Path("../shared/data/train")
TRAVEL_LIMIT = 64 * 2**20
CARRIED_BUDGET = 38 * 2**20  # runs/pack (34.6 MiB for the 508 photos) and runs/wheels
RETURN_FILE_LIMIT = 16 * 2**20
SAVE_MARGIN_S = 40.0  # time kept back at the end to write the state and exit
# What the GPU image lacks (torch, numpy, Pillow, imageio and pytest are there: see the
# device library's KINDS.md): constriction for the codec; CompressAI for the GPU peer.
WHEEL_SPECS = ["constriction>=0.4,<0.6", "compressai==1.2.8", "pytorch-msssim"]


# ---- here, before a round -----------------------------------------------------------------


def travel_size(root: Path, extra: list[Path]) -> int:
    """Bytes that travel with a device call: the files git tracks or would track in the
    checkout `root`, plus the carried (ignored) folders in `extra` (relative to it)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [root / os.fsdecode(name) for name in listed if name]
    total = sum(f.stat().st_size for f in files if f.is_file())
    for folder in extra:
        if (root / folder).exists():
            total += sum(p.stat().st_size for p in (root / folder).rglob("*") if p.is_file())
    return total


def prepare(root: Path) -> int:
    """Pack the training set and fetch the wheels the GPU image lacks; say what travels."""
    if not (root / PACK).exists():
        folders = sorted(p for p in (root / SHARED_TRAIN).iterdir() if p.is_dir())
        size = pack_images(folders, root / PACK)
        print(f"packed {len(folders)} folders into {PACK}: {size / 2**20:.1f} MiB")
    (root / WHEELS).mkdir(parents=True, exist_ok=True)
    for version in ("3.11", "3.12", "3.13"):
        for spec in WHEEL_SPECS:
            got = subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                 "--only-binary=:all:", "--python-version", version, "--implementation", "cp",
                 "--platform", "manylinux_2_34_x86_64", "--platform", "manylinux_2_28_x86_64",
                 "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                 "-d", str(root / WHEELS), spec],
                check=False,
            )  # fmt: skip
            if got.returncode and spec == WHEEL_SPECS[0]:
                print(f"no {spec} wheel for Python {version}", file=sys.stderr)
    size = travel_size(root, [PACK, WHEELS])
    limit = TRAVEL_LIMIT / 2**20
    print(f"travels: {size / 2**20:.1f} MiB of {limit:.0f} (carry runs/pack, runs/wheels)")
    return 0 if size <= TRAVEL_LIMIT else 1


def accept(folder: Path, training: Path) -> int:
    """Merge a round's output into lab/training/: the state replaces the committed one (it
    continued from it), the log rows are appended, and the round's summary is printed
    for the ledger in lab/training.md."""
    summary = json.loads((folder / "round.json").read_text())
    new_state = folder / "state.pt"
    _, _, progress = load_state(new_state, torch.device("cpu"), 1e-4)  # it loads
    current = training / STATE_FILE
    if current.exists():
        _, _, before = load_state(current, torch.device("cpu"), 1e-4)
        if progress.step <= before.step:
            print(f"{new_state} (step {progress.step}) is not ahead of {current}", file=sys.stderr)
            return 1
    training.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(new_state, current)
    with (folder / LOG_FILE).open() as src:
        rows = list(csv.reader(src))[1:]
    with (training / LOG_FILE).open("a", newline="") as dst:
        csv.writer(dst).writerows(rows)
    print(json.dumps(summary, indent=1))
    return 0


# ---- there, during a round -------------------------------------------------------------------


def _device_checks(root: Path, out: Path, device: torch.device, small: bool) -> dict[str, Any]:
    """tests/tools/test_cuda.py, the cross-device stream check and GPU timings."""
    import c2f_format

    result: dict[str, Any] = {}
    # pytest runs outside the checkout (its rootdir found from the test's path), so that
    # it imports the installed package rather than the checkout's c2f_format/ folder
    with (out / "checks.log").open("w") as log:
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
             str(root / "tests" / "tools" / "test_cuda.py")],
            cwd=out, stdout=log, stderr=subprocess.STDOUT, timeout=240, check=False,
        )  # fmt: skip
    result["test_cuda_exit"] = tests.returncode
    from PIL import Image

    with Image.open(root / "tests" / "data" / "kodim23.png") as im:
        kodim = im.convert("RGB")
    if small:
        kodim = kodim.crop((300, 200, 396, 280))

    def latents(data: bytes, dev: torch.device) -> str:
        """What must agree across devices (`StreamDecoder.exact_digest`)."""
        dec = c2f_format.StreamDecoder(device=dev)
        dec.feed(data)
        return dec.exact_digest()

    cpu = torch.device("cpu")
    cross = {}
    for enc in (cpu, device):
        data = c2f_format.encode(kodim, quality=75, device=enc)
        cross[f"encoded_on_{enc.type}"] = {
            "bytes": len(data),
            "same_symbols_on_cpu_and_device": latents(data, cpu) == latents(data, device),
        }
    result["cross_device"] = cross
    sizes = [(f"{kodim.width}x{kodim.height}", kodim)]
    if not small:
        sizes.append(("3840x2160", kodim.resize((3840, 2160), Image.Resampling.LANCZOS)))
    timings = {}
    for name, image in sizes:
        data = c2f_format.encode(image, quality=75, device=device)
        timings[name] = _median_times(
            partial(c2f_format.encode, image, quality=75, device=device),
            partial(c2f_format.decode, data, device=device),
            device,
        )
    result["timings"] = timings
    result["compressai"] = _compressai_timings(device, sizes)
    return result


def _median_times(
    encode: Callable[[], Any], decode: Callable[[], Any], device: torch.device, runs: int = 3
) -> dict[str, float]:
    """Median seconds of `runs` encodes and decodes, after one warm-up of each."""
    encode(), decode()
    enc_t: list[float] = []
    dec_t: list[float] = []
    for _ in range(runs):
        for fn, times in ((encode, enc_t), (decode, dec_t)):
            t = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t)
    return {"encode_s": float(np.median(enc_t)), "decode_s": float(np.median(dec_t))}


def _compressai_timings(device: torch.device, sizes: list[tuple[str, Any]]) -> Any:
    """CompressAI's bmshj2018 hyperprior (128/192, random weights: timing only, built as
    `bench_speed` builds it) on the same device, where its wheel travelled along."""
    from c2f_format.tools.bench_speed import COMPRESSAI_SETUP

    out = {}
    try:
        for name, image in sizes:
            scope: dict[str, Any] = {"np": np, "torch": torch, "rgb": image}
            exec(COMPRESSAI_SETUP, scope)
            net, x = scope["net"].to(device), scope["x"].to(device)
            with torch.inference_mode():
                packed = net.compress(x)
                out[name] = _median_times(
                    partial(net.compress, x),
                    partial(net.decompress, packed["strings"], packed["shape"]),
                    device,
                )
    except Exception as exc:  # an optional peer: its failure must not stop the round
        return {**out, "error": f"{type(exc).__name__}: {exc}"}
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_round(args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = started + args.minutes * 60.0 - SAVE_MARGIN_S
    device = torch.device("cpu" if args.dry_run else "cuda")
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: use --dry-run for the CPU rehearsal", file=sys.stderr)
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dry_run": args.dry_run,
    }
    print(f"round on {summary['device']}, torch {torch.__version__}", flush=True)
    if not args.no_checks:
        summary["checks"] = _device_checks(args.repo, out, device, small=args.dry_run)
        print(f"checks: {json.dumps(summary['checks'])}", flush=True)
    summary["check_seconds"] = time.monotonic() - started

    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    model, opt, progress = _start(args.state, device, args.lr)
    model.mixed_precision = not args.no_bf16
    images = [im for folder in args.data for im in load_images(folder)]
    seed = progress.seed + progress.step
    torch.manual_seed(seed)
    sampler = DeviceCrops(images, args.crop, seed, device)
    schedule = Schedule(
        iters=10**12,
        lr=args.lr,
        decay_from=2.0,
        int_from=2.0,
        batch=args.batch,
        deadline=deadline,
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        val_every=10**12,
    )
    steps_before, seconds_before = progress.step, progress.seconds
    log = CsvLog(out / LOG_FILE, schedule)
    state_path = out / "state.pt"
    first_step = time.monotonic()
    train_loop(
        model, opt, sampler, schedule, progress, device, log=log,
        checkpoint=lambda: save_state(state_path, model, opt, progress),
        max_steps=args.steps,
    )  # fmt: skip
    seconds = time.monotonic() - first_step
    steps = progress.step - steps_before
    summary["round"] = {
        "steps": steps,
        "from_step": steps_before,
        "to_step": progress.step,
        "steps_per_second": steps / max(seconds, 1e-9),
        "train_seconds": seconds,
        "batch": args.batch,
        "crop": args.crop,
        "lr": args.lr,
        "bf16": model.mixed_precision,
        "images": len(sampler.images),
    }
    progress.rounds.append(
        {"kind": device.type, "device": summary["device"], "date": summary["date"],
         "steps": steps, "seconds": progress.seconds - seconds_before}
    )  # fmt: skip
    save_state(state_path, model, opt, progress)
    log.close()
    summary["state_bytes"] = state_path.stat().st_size
    summary["total_seconds"] = time.monotonic() - started
    (out / "round.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"trained {steps} steps in {seconds:.0f} s ({summary['round']['steps_per_second']:.2f} "
        f"steps/s), state {summary['state_bytes'] / 2**20:.1f} MiB -> {out}",
        flush=True,
    )
    if summary["state_bytes"] > RETURN_FILE_LIMIT:
        print("state.pt is over the 16 MiB a returned file may have", file=sys.stderr)
        return 1
    return 0


def _start(path: Path, device: torch.device, lr: float) -> Any:
    if path.exists():
        model, opt, progress = load_state(path, device, lr)
        print(f"resuming {path} at step {progress.step}", flush=True)
        return model, opt, progress
    print(f"{path} not found: a new model", flush=True)
    return new_model("fixed", device, lr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python lab/gpu_round.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--prepare", action="store_true", help="pack data, fetch wheels, size")
    ap.add_argument("--accept", type=Path, help="merge a returned round folder into lab/training/")
    ap.add_argument("--dry-run", action="store_true", help="the same path on the CPU")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu-round")))
    ap.add_argument(
        "--repo", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout"
    )
    ap.add_argument("--state", type=Path, help="default: REPO/lab/training/checkpoint.pt")
    ap.add_argument("--data", type=Path, nargs="+", help="default: REPO/runs/pack")
    ap.add_argument("--minutes", type=float, default=8.5, help="the whole command's time")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--no-bf16", action="store_true", help="float32 transforms")
    ap.add_argument("--no-checks", action="store_true", help="skip the CUDA checks")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--ckpt-every", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: time)")
    args = ap.parse_args(argv)
    args.repo = args.repo.resolve()
    args.state = args.state or args.repo / TRAINING / STATE_FILE
    if args.prepare:
        return prepare(args.repo)
    if args.accept:
        return accept(args.accept, args.repo / TRAINING)
    if not args.data:
        args.data = [args.repo / PACK]
        if args.dry_run and not args.data[0].exists():
            args.data = [args.repo / "tests" / "data"]  # no pack here (CI): the sample image
    if not args.dry_run and not args.state.exists():
        print(
            f"{args.state} not found. The c2f network's line ended with round 14 and its "
            "state left the tree; restore it (lab/training.md, 'The main line') to give a "
            "GPU round to that network. The wavelet line (lab/training-context) has no GPU "
            "round yet.",
            file=sys.stderr,
        )
        return 2
    if args.dry_run:
        args.steps = args.steps or 3
        args.log_every = 1
        args.batch, args.crop = min(args.batch, 2), min(args.crop, 64)
        size = travel_size(args.repo, [PACK, WHEELS])
        print(f"travel size now: {size / 2**20:.1f} MiB", flush=True)
    return run_round(args)


if __name__ == "__main__":
    sys.exit(main())
