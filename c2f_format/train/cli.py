"""Train a c2f model on your own images, then export it as a weights file c2f codes with.

    c2f-train --pack runs/pack --data ~/photos             # once: a compact JPEG training set
    c2f-train --data runs/pack --val held-out/ --run runs/mine --iters 20000
    c2f-train --run runs/mine --export-only --export mine.npz --val held-out/  # calibrated

One model serves every quality: each crop in a batch gets a random level between the
lowest and highest trained lambda (interpolated geometrically), which is what `quality`
selects at encode time. The last part of the run (`--int-from`) fake-quantises the
integer networks so the exported integer form loses nothing; `--export` calibrates the
quality scale on `--val`. The state (model, optimiser, step, compute spent) is saved
every `--ckpt-every` steps, and the same command again resumes it, on the CPU or a GPU,
so runs of any length add up. On a CPU, bfloat16 (`--bf16`) pays only where the CPU has
it natively; the float32 step of the default model is about 1 s at batch 4 x 192^2 on one
AVX2 core (docs/training.md: what a model costs to train).
"""

# The docstring above is `c2f-train --help`'s description.

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..codec.precision import cpu_has_bf16
from ..networks.model import C2FModel
from ..networks.weights import publish_weights, trainable_model
from .data import CropSampler, load_images, pack_images, validation_crops
from .growth import (
    RateWarmup,
    extended_lambdas,
    grow,
    reset_channels,
    retarget_lambdas,
    silent_channels,
)
from .loop import LOG_FILE, CsvLog, Schedule, train_loop
from .objective import validate
from .state import STATE_FILE, Progress, load_state, make_optimizer, new_model, save_state


def calibrate(model: C2FModel, val: Path | None) -> None:
    """Set the model's quality range from the real codec on every validation image."""
    if val is None:
        print("no --val folder: quality spans all trained levels", flush=True)
        return
    from .calibration import quality_range, rd_table

    table = rd_table(model, load_images(val))
    for row in table:
        print(
            f"level {row[0, 0]:5.2f}: {row[:, 1].mean():.3f} bpp {row[:, 2].mean():.2f} dB",
            flush=True,
        )
    falls = int(np.sum(np.diff(table[:, :, 1], axis=0) <= 0))
    print(f"steps up a level at which an image's rate does not rise: {falls}", flush=True)
    try:
        model.config.quality_levels = quality_range(table)
    except ValueError as exc:
        raise SystemExit(f"calibration on {val} failed: {exc}") from None
    print(f"quality 1..100 -> levels {model.config.quality_levels}", flush=True)


def export(
    model: C2FModel, val: Path | None, path: Path, extend: tuple[int, int] = (0, 0)
) -> bytes:
    """Write the weights file: integer networks fake-quantised, levels extended by
    `extend` = (below, above) along the fixed gain schedule, quality range calibrated."""
    model.set_fake_quant(True)
    model.mixed_precision = False
    model.eval()
    model = model.cpu()
    if any(extend):
        model = retarget_lambdas(model, extended_lambdas(model.config.lambdas, *extend))
        print(f"levels extended to lambdas {model.config.lambdas}", flush=True)
    calibrate(model, val)
    return publish_weights(model, path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="c2f-train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--data", type=Path, nargs="+", help="folders of training images")
    ap.add_argument("--val", type=Path, help="held-out images for validation and calibration")
    ap.add_argument("--run", type=Path, default=Path("runs/main"), help="run folder (resumed)")
    ap.add_argument("--iters", type=int, default=20000, help="steps, all resumed runs together")
    ap.add_argument(
        "--budget-minutes",
        type=float,
        default=0.0,
        help="stop after this much training time (all resumed runs together); the lr "
        "decay and integer phase then follow the time fraction when it runs ahead",
    )
    ap.add_argument("--minutes", type=float, default=0.0, help="stop this invocation after")
    ap.add_argument("--steps", type=int, default=0, help="stop this invocation after (0: no)")
    ap.add_argument("--batch", type=int, default=4, help="crops per step")
    ap.add_argument("--crop", type=int, default=192, help="crop side in pixels")
    ap.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    ap.add_argument(
        "--decay-from", type=float, default=0.75, help="fraction of iters; lr x0.1 after"
    )
    ap.add_argument(
        "--int-from", type=float, default=0.9, help="fraction of iters; fake-quant after"
    )
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast for the transforms (on a CPU only where it multiplies "
        "bfloat16 natively, AVX-512 BF16 or AMX: emulated, a step is about 9x slower)",
    )
    ap.add_argument(
        "--gain-schedule",
        choices=["fixed", "line"],
        default="fixed",
        help="for a new model: gains follow sqrt(lambda) (fixed) or a learned line",
    )
    ap.add_argument(
        "--relative-gains",
        action="store_true",
        help="step the gains in log space (each by a factor), which keeps quiet channels "
        "from switching on at lr 1e-4 and above (train/loop.relative_gain_step)",
    )
    ap.add_argument("--ckpt-every", type=int, default=250, help="steps between checkpoints")
    ap.add_argument("--val-every", type=int, default=2000, help="steps between validations")
    ap.add_argument("--log-every", type=int, default=50, help="steps between log lines")
    ap.add_argument("--export", type=Path, help="write the shipped weights file here at the end")
    ap.add_argument(
        "--extend-levels",
        type=int,
        nargs=2,
        default=(0, 0),
        metavar=("BELOW", "ABOVE"),
        help="at export, add levels below and above the trained ones along the fixed gain "
        "schedule (untrained; calibration keeps what is monotone and useful)",
    )
    ap.add_argument(
        "--export-only",
        action="store_true",
        help="export the run's checkpoint to --export and stop (no training)",
    )
    ap.add_argument(
        "--init-from",
        type=Path,
        help="start a new run (no checkpoint in --run yet) from a shipped weights file "
        "(.npz) or a training state (.pt, as `--run` saves it), instead of from scratch",
    )
    ap.add_argument(
        "--latent-channels",
        type=int,
        help="grow the model's latent y to this many channels, keeping what it computes "
        "(see c2f_format.train.growth); a no-op once it has them",
    )
    ap.add_argument(
        "--lambdas",
        type=float,
        nargs="+",
        help="train at these rate-distortion trade-offs from now on (fixed gain schedule: "
        "every channel keeps its gain at each lambda); a no-op once it has them",
    )
    ap.add_argument(
        "--revive-silent",
        action="store_true",
        help="start again the channels of y that carry nothing at the highest level "
        "(standard deviation under half a step on the validation crops)",
    )
    ap.add_argument(
        "--rate-warmup",
        type=int,
        default=4000,
        help="steps over which new or revived channels come to pay their full rate",
    )
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--seed", type=int, default=0, help="seed of a new run")
    ap.add_argument(
        "--pack",
        type=Path,
        help="write --data, downscaled, as JPEG into this folder (the training set of "
        "CPU and GPU rounds) and stop",
    )
    return ap


def start_model(
    args: argparse.Namespace, device: torch.device
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    ckpt_path = args.run / STATE_FILE
    if ckpt_path.exists():
        if args.init_from:
            print(f"{ckpt_path} exists: resuming it, --init-from ignored", flush=True)
        model, opt, progress = load_state(ckpt_path, device, args.lr)
        print(f"resumed {ckpt_path} at step {progress.step}", flush=True)
    elif args.init_from and args.init_from.suffix == ".pt":
        model, opt, progress = load_state(args.init_from, device, args.lr)
        print(f"starting from {args.init_from} (step {progress.step})", flush=True)
    elif args.init_from:
        model = trainable_model(args.init_from).to(device)
        # a new line of training: its gain schedule is this run's, its quality range is
        # calibrated again at export
        model.config.gain_schedule = args.gain_schedule
        model.config.quality_levels = None
        model.project_gains()
        opt, progress = make_optimizer(model, args.lr), Progress(seed=args.seed)
        print(f"starting from {args.init_from}", flush=True)
    else:
        model, opt, progress = new_model(args.gain_schedule, device, args.lr, args.seed)
    return model, opt, progress


def _pack(args: argparse.Namespace, ap: argparse.ArgumentParser) -> int:
    """--pack: write --data, downscaled, as JPEG into an empty folder, and train nothing."""
    if not args.data:
        ap.error("--pack needs --data")
    if args.pack.exists() and any(args.pack.iterdir()):
        ap.error(f"--pack folder {args.pack} is not empty")
    size = pack_images(args.data, args.pack)
    print(f"packed {len(list(args.pack.iterdir()))} images, {size / 2**20:.1f} MiB")
    return 0


def _grown_model(
    args: argparse.Namespace, device: torch.device, ap: argparse.ArgumentParser
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """The model to train: started or resumed, grown to the asked sizes, with a rate
    warm-up for the channels that are new or revived."""
    model, opt, progress = start_model(args, device)
    old_m = model.config.m
    model, opt, changes = grow(
        model, opt, lambda m: make_optimizer(m, args.lr), args.latent_channels, args.lambdas
    )
    for change in changes:
        print(f"grown: {change}", flush=True)
    fresh = list(range(old_m, model.config.m))
    if args.revive_silent and progress.warmup is not None:
        print("a rate warm-up is under way: --revive-silent ignored", flush=True)
    elif args.revive_silent:
        if not args.val:
            ap.error("--revive-silent needs --val")
        silent = [c for c in silent_channels(model, validation_crops(args.val)) if c < old_m]
        reset_channels(model, silent, seed=progress.step)
        print(f"revived {len(silent)} silent channels of y: {silent}", flush=True)
        fresh = silent + fresh
    if fresh:
        progress.warmup = RateWarmup(fresh, progress.step, args.rate_warmup)
    return model, opt, progress


def _reseed(progress: Progress) -> int:
    """Seed torch and random from the run's seed and the step reached, so that a resumed
    run does not repeat the random draws it made before; returns that seed."""
    seed = progress.seed + progress.step
    torch.manual_seed(seed)
    random.seed(seed)
    return seed


def _export_only(
    args: argparse.Namespace, model: C2FModel, progress: Progress, ap: argparse.ArgumentParser
) -> int:
    """--export-only: write the weights file of the model as it stands, without training."""
    if not args.export:
        ap.error("--export-only needs --export")
    model_id = export(model, args.val, args.export, tuple(args.extend_levels))
    print(f"exported step {progress.step} to {args.export} (model {model_id.hex()})")
    return 0


def _schedule(args: argparse.Namespace) -> Schedule:
    """The training schedule the command line asks for (the deadline starts now)."""
    return Schedule(
        iters=args.iters,
        budget_seconds=args.budget_minutes * 60.0,
        lr=args.lr,
        decay_from=args.decay_from,
        int_from=args.int_from,
        batch=args.batch,
        deadline=time.monotonic() + args.minutes * 60.0 if args.minutes else float("inf"),
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        val_every=args.val_every,
        relative_gains=args.relative_gains,
    )


def _train(
    args: argparse.Namespace,
    model: C2FModel,
    opt: torch.optim.Adam,
    progress: Progress,
    device: torch.device,
    seed: int,
) -> None:
    """Train on crops of --data, logging, checkpointing and validating on the way, then
    save the state, validate once more and export if asked."""
    ckpt_path = args.run / STATE_FILE
    model.mixed_precision = args.bf16
    if args.bf16 and device.type == "cpu" and not cpu_has_bf16():
        print("--bf16: this CPU has no native bfloat16; training in float32", flush=True)
        model.mixed_precision = False
    sampler = CropSampler(
        [im for folder in args.data for im in load_images(folder)], args.crop, seed
    )
    crops = validation_crops(args.val) if args.val else []
    print(
        f"device {device}, {len(sampler.images)} training images, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters",
        flush=True,
    )
    schedule = _schedule(args)
    log = CsvLog(args.run / LOG_FILE, schedule)

    def val() -> None:
        if crops:
            print(f"validation step {progress.step}: {validate(model, crops, device)}")

    train_loop(
        model,
        opt,
        sampler,
        schedule,
        progress,
        device,
        log=log,
        checkpoint=lambda: save_state(ckpt_path, model, opt, progress),
        val=val,
        max_steps=args.steps,
    )
    save_state(ckpt_path, model, opt, progress)
    log.close()
    val()
    if args.export:
        model_id = export(model, args.val, args.export, tuple(args.extend_levels))
        print(f"exported {args.export} (model {model_id.hex()})", flush=True)


def _check_extend(args: argparse.Namespace, model: C2FModel, ap: argparse.ArgumentParser) -> None:
    """--extend-levels is checked before any training, not at the export after it."""
    below, above = args.extend_levels
    if not (below or above):
        return
    try:
        extended_lambdas(model.config.lambdas, below, above)
    except ValueError as exc:
        ap.error(f"--extend-levels: {exc}")
    if args.val is None:
        ap.error("--extend-levels needs --val: calibration keeps what is monotone and useful")
    if model.config.gain_schedule != "fixed":
        ap.error("--extend-levels needs a model with the fixed gain schedule")


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.pack:
        return _pack(args, ap)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    model, opt, progress = _grown_model(args, device, ap)
    _check_extend(args, model, ap)
    seed = _reseed(progress)
    if args.export_only:
        return _export_only(args, model, progress, ap)
    if not args.data:
        ap.error("--data is required for training")
    _train(args, model, opt, progress, device, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
