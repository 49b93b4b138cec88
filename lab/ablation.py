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
which shows whether their levels spread out or collapse onto one trade-off. An arm
saves where it stands after every scoring (`ARM/resume.pt`), and the same `run` with a
larger `--cpu-minutes` goes on from there, so a long comparison can span sessions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from shallow import ShallowC2F
from yardstick import ScaleHyperprior

from c2f_format.networks.model import C2FModel, ModelConfig
from c2f_format.train.data import CropSampler, load_images, validation_crops
from c2f_format.train.loop import Schedule, train_loop
from c2f_format.train.objective import evaluate
from c2f_format.train.state import Progress, load_state, make_optimizer, save_state

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


def _shallow(kind: str) -> Callable[[], Model]:
    def build() -> Model:
        return ShallowC2F(ModelConfig(lambdas=[LAMBDA]), kind)

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
    "shallow-linear-bf16": (
        "c2f, lambda 0.013, bfloat16, linear synthesis (kernel 18, stride 16; lab/shallow.py)",
        _shallow("linear"),
        True,
        False,
    ),
    "shallow-two-layer-bf16": (
        "c2f, lambda 0.013, bfloat16, two-layer synthesis (lab/shallow.py)",
        _shallow("two-layer"),
        True,
        False,
    ),
    "balle2018-bf16": (
        "Ballé 2018 scale hyperprior (128/192), lambda 0.013, bfloat16 transforms",
        ScaleHyperprior,
        True,
        False,
    ),
}


def eval_level(model: Model) -> float:
    """The continuous level whose lambda is LAMBDA (geometric between trained levels, as
    `lambdas_at`), clamped to the trained range: where every arm is scored."""
    lam = [math.log(v) for v in model.config.lambdas]
    target = math.log(LAMBDA)
    for i in range(len(lam) - 1):
        if lam[i] <= target <= lam[i + 1]:
            return i + (target - lam[i]) / (lam[i + 1] - lam[i])
    return 0.0 if target < lam[0] else float(len(lam) - 1)


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
    out = args.out / args.arm
    out.mkdir(parents=True, exist_ok=True)
    curve: list[dict[str, float]] = []
    trained = 0.0
    resume = out / "resume.pt"
    if resume.exists():  # an arm can span sessions: go on where it stopped
        saved = torch.load(resume, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        progress.step, progress.cpu_seconds = saved["step"], saved["cpu_seconds"]
        curve, trained = saved["curve"], saved["trained"]
        sampler.rng.bit_generator.state = saved["crops"]  # the crops an unbroken run sees
        torch.set_rng_state(saved["torch_rng"])
        print(f"{args.arm}: resumed at {trained / 60:.1f} CPU-min, step {progress.step}")
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
    level = eval_level(model)
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
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": progress.step,
            "cpu_seconds": progress.cpu_seconds,
            "curve": curve,
            "trained": trained,
            "crops": sampler.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(state, resume.with_suffix(".tmp"))
        resume.with_suffix(".tmp").replace(resume)
        write_result(args, what, model, curve, [point])  # an arm stopped early still shows
    if not curve:
        raise SystemExit(f"{args.arm}: nothing to train in {args.cpu_minutes} CPU-minutes")
    levels = len(model.config.lambdas)
    by_level = [evaluate(model, crops, float(lv), device) for lv in range(levels)]
    result = write_result(args, what, model, curve, by_level)
    if isinstance(model, C2FModel):
        save_state(out / "checkpoint.pt", model, opt, progress)
    return result


def write_result(
    args: argparse.Namespace,
    what: str,
    model: Model,
    curve: list[dict[str, float]],
    levels: list[dict[str, float]],
) -> dict[str, object]:
    """`ARM/result.json`: the curve so far, and the score at every trained level once
    the arm has finished (until then, its last point)."""
    result = {
        "arm": args.arm,
        "what": what,
        "cpu_minutes": curve[-1]["cpu_minutes"],
        "threads": args.threads,
        "steps": curve[-1]["steps"],
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "curve": curve,
        "levels": levels,
    }
    (args.out / args.arm / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def step_printer(arm: str) -> Callable[[dict[str, float]], None]:
    def log(row: dict[str, float]) -> None:
        print(
            f"{arm} step {int(row['step'])} loss {row['loss']:.3f} bpp {row['bpp']:.3f} "
            f"psnr {row['psnr']:.2f} {row['steps_per_second']:.2f} it/s",
            flush=True,
        )

    return log


def score(args: argparse.Namespace) -> dict[str, object]:
    """A trained state (such as the line's checkpoint) scored as the arms are, on the same
    crops at LAMBDA: a reference for their curves, written as a one-point result."""
    torch.set_num_threads(args.threads)
    model, _, progress = load_state(args.state, torch.device("cpu"), 0.0)
    crops = validation_crops(args.val, count=args.val_count)
    point = evaluate(model, crops, eval_level(model), torch.device("cpu"))
    point.update(cpu_minutes=progress.cpu_seconds / 60, steps=progress.step)
    result = {
        "arm": args.name,
        "what": args.what,
        "cpu_minutes": point["cpu_minutes"],
        "threads": args.threads,
        "steps": progress.step,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "curve": [point],
        "levels": [point],
        "reference": True,
    }
    out = args.out / args.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def codec_points(
    name: str, crops: list[torch.Tensor], grid: list[int] | None = None
) -> list[dict[str, float]]:
    """`c2f bench`'s codec `name` on the crops at each grid value (its own grid unless
    given): mean bpp (the whole file), mean PSNR and mean MSE (peak 1), by rising bpp."""
    import numpy as np
    from PIL import Image

    from c2f_format.codec.metrics import psnr_from_mse
    from c2f_format.tools.bench import CODECS

    codec, own = CODECS[name]
    points = []
    for q in grid or own:
        bpp, mse = [], []
        for crop in crops:
            pixels = (crop[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            data, decoded, _, _ = codec(Image.fromarray(pixels), q)
            bpp.append(len(data) * 8 / (pixels.shape[0] * pixels.shape[1]))
            mse.append(float(((np.asarray(decoded, float) - pixels) ** 2).mean()) / 255**2)
        psnr = float(np.mean([psnr_from_mse(max(e, 1e-10), peak=1.0) for e in mse]))
        points.append(
            {"quality": q, "bpp": float(np.mean(bpp)), "psnr": psnr, "mse": float(np.mean(mse))}
        )
    return sorted(points, key=lambda p: p["bpp"])


def webp_reference(args: argparse.Namespace) -> dict[str, object]:
    """WebP (method 6) on the same crops at every quality 5, 10, ... 100, and its lowest
    J at LAMBDA: the bar on the arms' own scale (J at one slope, not a BD-rate), written
    as a reference result beside the arms'."""
    crops = validation_crops(args.val, count=args.val_count)
    points = [
        {
            **{k: p[k] for k in ("quality", "bpp", "psnr")},
            "cost": p["bpp"] + LAMBDA * 255**2 * p["mse"],
        }
        for p in codec_points("webp", crops, list(range(5, 101, 5)))
    ]
    best = min(points, key=lambda p: p["cost"])
    result = {
        "arm": "webp",
        "what": f"WebP at its best quality for lambda 0.013 ({best['quality']})",
        "cpu_minutes": 0.0,
        "threads": 1,
        "steps": 0,
        "curve": [{**best, "cpu_minutes": 0.0, "steps": 0}],
        "levels": points,
        "reference": True,
    }
    out = args.out / "webp"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def plot(folder: Path, out: Path) -> None:
    """J and PSNR against CPU-minutes for the arms under `folder` (Pillow); a scored
    reference state (`score`) is a dashed level line, its CPU-minutes in the legend."""
    from PIL import Image, ImageDraw

    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    arms = [r for r in rows if not r.get("reference")]
    refs = [r for r in rows if r.get("reference")]
    colours = [(200, 30, 30), (30, 120, 200), (30, 160, 60), (200, 140, 0), (150, 60, 160)]
    panel_w, h, m = 460, 380, 60
    legend = 20 * (len(arms) + len(refs))
    im = Image.new("RGB", (2 * panel_w, h + legend + 10), "white")
    d = ImageDraw.Draw(im)
    t_max = max(p["cpu_minutes"] for r in arms for p in r["curve"])
    for i, (key, label) in enumerate((("cost", "J at lambda 0.013"), ("psnr", "PSNR (dB)"))):
        x0 = i * panel_w
        values = [p[key] for r in rows for p in r["curve"]]
        lo, hi = min(values), max(values)
        if key == "cost":  # the first minutes from scratch would squash the rest
            hi = min(hi, 2.5 * lo)
        pad = (hi - lo) * 0.05 or 0.01
        lo, hi = lo - pad, hi + pad

        def xy(t: float, v: float, x0: int = x0, lo: float = lo, hi: float = hi) -> tuple:
            v = min(max(v, lo), hi)
            return (
                x0 + m + t / t_max * (panel_w - m - 12),
                h - m - (v - lo) / (hi - lo) * (h - 2 * m),
            )

        d.rectangle([x0 + m, m, x0 + panel_w - 12, h - m], outline="black")
        d.text((x0 + m, 20), f"{label}, held-out crops", fill="black")
        d.text((x0 + m, h - m + 22), "CPU-minutes (one thread)", fill="black")
        for k in range(5):
            v = lo + (hi - lo) * k / 4
            d.text((x0 + 4, xy(0, v)[1] - 6), f"{v:.2f}", fill="black")
            d.text((xy(t_max * k / 4, lo)[0] - 8, h - m + 6), f"{t_max * k / 4:.0f}", fill="black")
        for r, colour in zip(arms, colours, strict=False):
            line = [xy(p["cpu_minutes"], p[key]) for p in r["curve"]]
            if len(line) > 1:
                d.line(line, fill=colour, width=2)
        for r in refs:
            y = xy(0, r["curve"][0][key])[1]
            for x in range(int(x0 + m), int(x0 + panel_w - 12), 12):
                d.line([x, y, x + 6, y], fill=(60, 60, 60), width=2)
    for k, r in enumerate(arms + refs):
        y = h + 20 * k
        colour = colours[k] if k < len(arms) else (60, 60, 60)
        d.line([m, y + 7, m + 30, y + 7], fill=colour, width=3)
        trained = r in refs and r["steps"]
        extra = f" ({r['cpu_minutes']:.0f} CPU-min, {r['steps']} steps)" if trained else ""
        d.text((m + 38, y), f"{r['what']}{extra}", fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save(out)


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
            if len(r["levels"]) > 1 and not r.get("reference")
            else ""
        )
        rate = f"{r['steps'] / (r['cpu_minutes'] * 60):.2f}" if r["cpu_minutes"] else ""
        lines.append(
            f"| {r['what']} | {r['steps']} | {rate} | "
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
    sc = sub.add_parser("score", help="score a trained state as the arms are (a reference)")
    sc.add_argument("state", type=Path)
    sc.add_argument("--name", required=True)
    sc.add_argument("--what", required=True)
    sc.add_argument("--val", type=Path, required=True)
    sc.add_argument("--val-count", type=int, default=16)
    sc.add_argument("--out", type=Path, default=Path("runs/ablation"))
    sc.add_argument("--threads", type=int, default=1)
    wp = sub.add_parser("webp", help="WebP on the same crops: the bar, as a reference")
    wp.add_argument("--val", type=Path, required=True)
    wp.add_argument("--val-count", type=int, default=16)
    wp.add_argument("--out", type=Path, default=Path("runs/ablation"))
    pl = sub.add_parser("plot", help="draw the learning curves")
    pl.add_argument("folder", type=Path)
    pl.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.command == "table":
        print(table(args.folder))
        return 0
    if args.command == "score":
        print(json.dumps(score(args)["curve"]))
        return 0
    if args.command == "webp":
        print(json.dumps(webp_reference(args)["curve"]))
        return 0
    if args.command == "plot":
        plot(args.folder, args.out)
        return 0
    run_arm(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
