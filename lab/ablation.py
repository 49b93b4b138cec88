"""What the training recipe costs, measured: arms trained for the same CPU time.

    python lab/ablation.py run ARM --data runs/pack --val ../shared/data/val \
        --cpu-minutes 20 --threads 1 --out runs/ablation
    python lab/ablation.py table runs/ablation

Every arm sees the same crops (same seed, batch 4 x 192^2, Adam 3e-4, no decay) and is
scored on the same held-out centre crops with its latents rounded, at lambda = 0.013
(the variable-rate arms at the level whose lambda that is): bits per pixel, PSNR and
the RD cost J = bpp + lambda * 255^2 * MSE the training minimises. The budget is the
process's CPU time, so other work on the machine does not shift the comparison, and the
scoring pauses the clock. Variable-rate arms are scored at every trained level too,
which shows whether their levels spread out or collapse onto one trade-off.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from yardstick import ScaleHyperprior

from c2f_format.networks.model import C2FModel, ModelConfig
from c2f_format.train.data import CropSampler, load_images, validation_crops
from c2f_format.train.loop import Schedule, train_loop
from c2f_format.train.objective import evaluate
from c2f_format.train.state import Progress, make_optimizer, save_state

Model = C2FModel | ScaleHyperprior  # what the arms train

LAMBDA = 0.013
SEGMENT_MINUTES = 5.0


def _c2f(single: bool, schedule: str = "fixed") -> Callable[[], Model]:
    def build() -> Model:
        config = ModelConfig(gain_schedule=schedule)
        if single:
            config.lambdas = [LAMBDA]
        model = C2FModel(config)
        model.project_gains()
        return model

    return build


# arm -> (what it is, model builder, bf16 transforms, fake-quantised integer networks)
ARMS: dict[str, tuple[str, Callable[[], Model], bool, bool]] = {
    "c2f-variable-line": (
        "c2f, 6 lambdas, gains on a learned line (the recipe of c2f-v1)",
        _c2f(False, "line"),
        False,
        False,
    ),
    "c2f-variable-fixed": (
        "c2f, 6 lambdas, gains fixed at sqrt(lambda) per level",
        _c2f(False, "fixed"),
        False,
        False,
    ),
    "c2f-single": ("c2f, lambda 0.013 alone, float hyper networks", _c2f(True), False, False),
    "c2f-single-int": (
        "c2f, lambda 0.013, integer hyper networks fake-quantised throughout",
        _c2f(True),
        False,
        True,
    ),
    "c2f-single-bf16": (
        "c2f, lambda 0.013, bfloat16 transforms (rates in float32)",
        _c2f(True),
        True,
        False,
    ),
    "balle2018": (
        "Ballé 2018 scale hyperprior (128/192), lambda 0.013",
        ScaleHyperprior,
        False,
        False,
    ),
}


def eval_level(model: Model) -> float:
    lambdas = model.config.lambdas
    return float(min(range(len(lambdas)), key=lambda i: abs(lambdas[i] - LAMBDA)))


def run_arm(args: argparse.Namespace) -> dict[str, object]:
    what, build, bf16, int_nets = ARMS[args.arm]
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = build()
    model.mixed_precision = bf16
    if int_nets and isinstance(model, C2FModel):
        model.set_fake_quant(True)
    opt = make_optimizer(model, args.lr)
    images = [im for folder in args.data for im in load_images(folder)]
    sampler = CropSampler(images, args.crop, args.seed)
    crops = validation_crops(args.val, count=args.val_count)
    progress = Progress(seed=args.seed)
    schedule = Schedule(
        iters=10**9,
        lr=args.lr,
        decay_from=2.0,
        int_from=0.0 if int_nets else 2.0,
        batch=args.batch,
        log_every=100,
        ckpt_every=10**9,
        val_every=10**9,
        clock=time.process_time,
    )
    out = args.out / args.arm
    out.mkdir(parents=True, exist_ok=True)
    level = eval_level(model)
    curve = []
    trained = 0.0
    while trained < args.cpu_minutes * 60 - 1:
        segment = min(SEGMENT_MINUTES * 60, args.cpu_minutes * 60 - trained)
        start = time.process_time()
        schedule.deadline = start + segment
        train_loop(model, opt, sampler, schedule, progress, device, log=step_printer(args.arm))
        trained += time.process_time() - start
        point = evaluate(model, crops, level, device)
        point.update(cpu_minutes=trained / 60, steps=progress.step)
        curve.append(point)
        print(f"{args.arm}: {json.dumps(point)}", flush=True)
    levels = len(model.config.lambdas)
    by_level = [evaluate(model, crops, float(lv), device) for lv in range(levels)]
    result = {
        "arm": args.arm,
        "what": what,
        "cpu_minutes": trained / 60,
        "threads": args.threads,
        "steps": progress.step,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "curve": curve,
        "levels": by_level,
    }
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    if isinstance(model, C2FModel):
        save_state(out / "checkpoint.pt", model, opt, progress)
    return result


def step_printer(arm: str) -> Callable[[dict[str, float]], None]:
    def log(row: dict[str, float]) -> None:
        print(
            f"{arm} step {int(row['step'])} loss {row['loss']:.3f} bpp {row['bpp']:.3f} "
            f"psnr {row['psnr']:.2f} {row['steps_per_second']:.2f} it/s",
            flush=True,
        )

    return log


def table(folder: Path) -> str:
    """The results under `folder` as a Markdown table (one row per arm)."""
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    lines = [
        "| arm | steps | steps per CPU-s | bpp | PSNR (dB) | J | J after 5 / 10 / 15 ... "
        "CPU-min | levels 0..last (bpp / dB) |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        end = r["curve"][-1]
        costs = " / ".join(f"{p['cost']:.2f}" for p in r["curve"])
        spread = (
            ", ".join(f"{p['bpp']:.2f}/{p['psnr']:.1f}" for p in r["levels"])
            if len(r["levels"]) > 1
            else ""
        )
        lines.append(
            f"| {r['what']} | {r['steps']} | {r['steps'] / (r['cpu_minutes'] * 60):.2f} | "
            f"{end['bpp']:.3f} | {end['psnr']:.2f} | {end['cost']:.3f} | {costs} | {spread} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and score one arm")
    run.add_argument("arm", choices=sorted(ARMS))
    run.add_argument("--data", type=Path, nargs="+", required=True)
    run.add_argument("--val", type=Path, required=True)
    run.add_argument("--val-count", type=int, default=16)
    run.add_argument("--out", type=Path, default=Path("runs/ablation"))
    run.add_argument("--cpu-minutes", type=float, default=20.0)
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--batch", type=int, default=4)
    run.add_argument("--crop", type=int, default=192)
    run.add_argument("--lr", type=float, default=3e-4)
    run.add_argument("--seed", type=int, default=0)
    tab = sub.add_parser("table", help="print the results as Markdown")
    tab.add_argument("folder", type=Path)
    args = ap.parse_args(argv)
    if args.command == "table":
        print(table(args.folder))
        return 0
    run_arm(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
