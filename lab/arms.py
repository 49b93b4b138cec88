"""Arms of the training line, side by side for the same CPU time.

    python lab/arms.py run line-paths --minutes 90 --threads 1   # two at a time
    python lab/arms.py table lab/arms
    python lab/arms.py reference lab/training/checkpoint.pt --name line-STEP  # a level line
    python lab/arms.py plot lab/arms -o lab/figures/arms.png
    python lab/arms.py curves line pca-decay        # RD curves, BD-rate against the line

Every arm sees the same crops (seed 0, batch 4 x 192^2 unless an arm says otherwise)
and is scored every 5 CPU-minutes on the same held-out crops (centre crops of the first
8 CID22 validation images, latents rounded, float32) by the RD cost
J = bpp + lambda * 255^2 * MSE at levels 0, 3.5 and 7 of the eight trained lambdas.
The budget is the process's CPU time, so other work on the machine does not shift the
comparison, and scoring pauses the clock. An arm checkpoints after every segment and a
second `run` with the same arm resumes it, so an arm can span sessions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ablation import codec_points, step_printer  # lab/, beside this file
from shallow import DEEP_SYNTHESIS, SHALLOW_SYNTHESIS, ShallowC2F
from wavelet import WaveletC2F, scale_start, wavelet_config

from c2f_format.codec.precision import cpu_has_bf16
from c2f_format.networks.model import C2FModel, ModelConfig
from c2f_format.train.data import CropSampler, load_images, validation_crops
from c2f_format.train.growth import add_linear_paths
from c2f_format.train.loop import Schedule, train_loop
from c2f_format.train.objective import evaluate
from c2f_format.train.state import Progress, load_state, make_optimizer, save_state

LAB = Path(__file__).resolve().parent
REPO = LAB.parent
LINE_STATE = LAB / "training" / "checkpoint.pt"
LEVELS = (0.0, 3.5, 7.0)
SEGMENT_MINUTES = 5.0


@dataclass(frozen=True)
class Arm:
    what: str
    start: Callable[[float], tuple[C2FModel, torch.optim.Adam, Progress]]
    lr: float
    path_lr_scale: float = 1.0
    batch: int = 4
    crop: int = 192
    balance: float = 0.0  # the levels' weighting in the loss (objective.rd_loss)
    top_level: float | None = None  # crops drawn at levels bottom_level..top_level only
    bottom_level: float = 0.0
    parent: str | None = None  # the arm whose saved state this one continues
    encoder_only: bool = False  # train g_a, h_a and the gains only: the decoder stays as it is
    rounded_rates: bool = False  # rates of the rounded latents (C2FModel.rounded_rates)
    build: Callable[[ModelConfig], C2FModel] = C2FModel  # the network its states hold
    fresh: tuple[str, ...] = ()  # parameters put in place of trained ones (x path_lr_scale)
    fresh_only: bool = False  # train those alone: the rest stays as it is
    relative_gains: bool = False  # the gains stepped in log space (loop.relative_gain_step)


ENCODER = ("g_a.", "a_paths.", "h_a2.", "h_a1.")


def train_only(model: C2FModel, prefixes: tuple[str, ...]) -> int:
    """Leave only the parameters whose names start with one of `prefixes` trainable;
    returns how many numbers still train."""
    trainable = 0
    for name, param in model.named_parameters():
        keep = name.startswith(prefixes)
        param.requires_grad_(keep)
        trainable += param.numel() if keep else 0
    return trainable


def freeze_decoder(model: C2FModel) -> int:
    """Leave only the encoder's parameters trainable (the analysis, the hyper analyses,
    the gains), so that every stream the decoder reads stays decodable by the weights it
    has: the amortisation gap (what the encoder's search finds, docs/effort.md) is the
    encoder's to close. Returns the number of parameters left to train."""
    return train_only(model, (*ENCODER, "gain"))


SHIPPED = REPO / "weights" / "c2f-v3.npz"


def _shipped(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """The shipped model (its integer layers turned back into float weights that export
    to the same integers), a fresh optimiser."""
    from c2f_format.networks.weights import trainable_model

    model = trainable_model(SHIPPED)
    return model, make_optimizer(model, lr), Progress(seed=0, step=0)


def _line(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    model, opt, _ = load_state(LINE_STATE, torch.device("cpu"), lr)
    return model, opt, Progress(seed=0, step=0)


def _line_with_paths(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    from c2f_format.train.growth import carry_adam

    model, opt, _ = load_state(LINE_STATE, torch.device("cpu"), lr)
    grown = add_linear_paths(model)
    new_opt = make_optimizer(grown, lr, path_lr_scale=10.0)
    carry_adam(model, opt, grown, new_opt)
    return grown, new_opt, Progress(seed=0, step=0)


def _scratch_with_paths(lr: float, kernel: int = 5) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    line = torch.load(LINE_STATE, map_location="cpu", weights_only=True)["config"]
    config = ModelConfig(**{**line, "linear_paths": True, "quality_levels": None, "kernel": kernel})
    torch.manual_seed(0)
    model = C2FModel(config)
    model.project_gains()
    return model, make_optimizer(model, lr), Progress(seed=0)


def _scratch_from_pca(lr: float, kernel: int = 5) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    from pca_init import pca_start  # lab/, beside this file

    model, _, progress = _scratch_with_paths(lr, kernel)
    images = load_images(REPO / "runs" / "pack")
    print(f"linear start: {pca_start(model, images)}", flush=True)
    return model, make_optimizer(model, lr), progress


def _scratch_from_pca_3x3(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    return _scratch_from_pca(lr, kernel=3)


def _two_layer(config: ModelConfig) -> C2FModel:
    return ShallowC2F(config, "two-layer")


WIDE = 32  # hidden channels of the wide two-layer synthesis (about 11 kMAC a pixel)


def _two_layer_wide(config: ModelConfig) -> C2FModel:
    return ShallowC2F(config, "two-layer", WIDE)


SHALLOW_LR_SCALE = 3.0  # the new synthesis at the from-scratch arms' 3e-4 when the rest is at 1e-4


def _line_shallow(
    lr: float, build: Callable[[ModelConfig], C2FModel] = _two_layer
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """The line's analysis, hyper stack, gains and preview as they stand, with the
    two-layer synthesis (lab/shallow.py) in place of its own, from scratch."""
    ckpt = torch.load(LINE_STATE, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    model = build(ModelConfig(**ckpt["config"]))
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    assert all(k.startswith(SHALLOW_SYNTHESIS) for k in missing), missing
    assert all(k.startswith(DEEP_SYNTHESIS) for k in unexpected), unexpected
    return model, make_optimizer(model, lr, SHALLOW_LR_SCALE, SHALLOW_SYNTHESIS), Progress(seed=0)


LINEAR_FIT_BATCHES = 100  # 400 crops of 192^2: 57,600 latent positions a phase


def _line_shallow_ls(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """`_line_shallow` with the new synthesis' linear path solved for the line's analysis
    by least squares and its non-linear path silent (lab/linear_fit.py)."""
    from linear_fit import linear_start  # lab/, beside this file

    model, _, progress = _line_shallow(lr)
    assert isinstance(model, ShallowC2F)
    sampler = CropSampler(load_images(REPO / "runs" / "pack"), 192, seed=1)  # not the arms' crops
    print(f"linear start: {linear_start(model, sampler, LINEAR_FIT_BATCHES)}", flush=True)
    return model, make_optimizer(model, lr, 1.0, SHALLOW_SYNTHESIS), progress


def _line_shallow_wide(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    return _line_shallow(lr, _two_layer_wide)


def _shallow_arm(
    what: str,
    start: Callable[[float], tuple[C2FModel, torch.optim.Adam, Progress]],
    lr: float,
    build: Callable[[ModelConfig], C2FModel] = _two_layer,
    path_lr_scale: float = SHALLOW_LR_SCALE,
    **kw: Any,
) -> Arm:
    """An arm whose network has the two-layer synthesis in place of the line's, that
    synthesis in the optimiser's third group (the groups its states are saved with)."""
    return Arm(what, start, lr, path_lr_scale, build=build, fresh=SHALLOW_SYNTHESIS, **kw)


def _wavelet_build(config: ModelConfig) -> C2FModel:
    return WaveletC2F(config)


def _wavelet_abs_build(config: ModelConfig) -> C2FModel:
    return WaveletC2F(config, magnitudes=True)


def _wavelet(
    lr: float, build: Callable[[ModelConfig], C2FModel] = _wavelet_build
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """The fixed wavelet (lab/wavelet.py) under c2f's hyper stack from scratch, at the
    line's eight lambdas."""
    line = torch.load(LINE_STATE, map_location="cpu", weights_only=True)["config"]
    torch.manual_seed(0)
    model = build(wavelet_config(line["lambdas"]))
    model.project_gains()
    return model, make_optimizer(model, lr), Progress(seed=0)


P3_OUTPUTS = ("p3.scale.", "p3.mean.")


def _wavelet_scale_start(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    model, _, progress = _wavelet(lr, _wavelet_abs_build)
    assert isinstance(model, WaveletC2F)
    sampler = CropSampler(load_images(REPO / "runs" / "pack"), 192, seed=1)  # not the arms' crops
    batches = [sampler.batch(4) for _ in range(50)]
    print(f"scale start, spreads by band: {scale_start(model, batches, 3.5)}", flush=True)
    return model, make_optimizer(model, lr, 10.0, P3_OUTPUTS), progress


def _from_arm(name: str) -> Callable[[float], tuple[C2FModel, torch.optim.Adam, Progress]]:
    """Start where another arm's saved state stands (its optimiser included), the step
    count kept so the crops go on where that arm's stopped."""

    def start(lr: float) -> tuple[C2FModel, torch.optim.Adam, Progress]:
        parent = ARMS[name]
        state = LAB / "arms" / name / "state.pt"
        cpu = torch.device("cpu")
        return load_state(state, cpu, lr, parent.build, parent.path_lr_scale, parent.fresh)

    return start


ARMS: dict[str, Arm] = {
    "line": Arm("the line's state continued (control), lr 1e-5", _line, 1e-5),
    "line-log-gains": Arm(
        "the line's state at lr 1e-4 (ten times the line's) with the gains stepped in log "
        "space (loop.relative_gain_step)",
        _line,
        1e-4,
        relative_gains=True,
    ),
    "line-paths": Arm(
        "the line's state with linear paths added at zero, lr 1e-5 (paths x10)",
        _line_with_paths,
        1e-5,
        path_lr_scale=10.0,
    ),
    "line-b9c128": Arm(
        "the line's state continued at batch 9 x 128^2 (the same pixels a step; crops are "
        "multiples of 64, z1's grid), lr 1e-5",
        _line,
        1e-5,
        batch=9,
        crop=128,
    ),
    "v3-encoder": Arm(
        "c2f-v3, its encoder alone trained (decoder frozen), lr 1e-4, crops at the levels "
        "quality 1..100 use (0.5..8 of its ten)",
        _shipped,
        1e-4,
        encoder_only=True,
        bottom_level=0.5,
        top_level=8.0,
    ),
    "v3-encoder-rounded": Arm(
        "c2f-v3, its encoder alone trained against the rounded latents' rates (decoder "
        "frozen), lr 3e-5, crops at levels 0.5..8",
        _shipped,
        3e-5,
        encoder_only=True,
        rounded_rates=True,
        bottom_level=0.5,
        top_level=8.0,
    ),
    "line-shallow-decoder": _shallow_arm(
        "the line's state with the two-layer synthesis (lab/shallow.py) in place of its own, "
        "that synthesis alone trained from scratch at 3e-4, the rest frozen",
        _line_shallow,
        1e-4,
        fresh_only=True,
    ),
    "line-shallow": _shallow_arm(
        "line-shallow-decoder continued with everything training: lr 1e-4, the new "
        "synthesis at 3e-4",
        _from_arm("line-shallow-decoder"),
        1e-4,
        parent="line-shallow-decoder",
    ),
    "line-shallow-decay": _shallow_arm(
        "line-shallow after its 60 CPU-minutes, lr 3e-5 (the new synthesis at 9e-5): where "
        "it stands once the step's noise is taken out",
        _from_arm("line-shallow"),
        3e-5,
        parent="line-shallow",
    ),
    "line-shallow-decay-r13": _shallow_arm(
        "line-shallow after its 80 CPU-minutes, lr 3e-5 (the new synthesis at 9e-5): "
        "line-shallow-decay again, 20 minutes further on",
        _from_arm("line-shallow"),
        3e-5,
        parent="line-shallow",
    ),
    "line-shallow-log-gains": _shallow_arm(
        "line-shallow after its 80 CPU-minutes, lr 1e-4 (the new synthesis at 3e-4) with "
        "the gains stepped in log space: line-shallow's rate runaway, or not",
        _from_arm("line-shallow"),
        1e-4,
        parent="line-shallow",
        relative_gains=True,
    ),
    "line-shallow-log-gains-decay": _shallow_arm(
        "line-shallow-log-gains after its 25 CPU-minutes, lr 3e-5 (the new synthesis at "
        "9e-5), the gains in log space: where it stands with the step's noise out",
        _from_arm("line-shallow-log-gains"),
        3e-5,
        parent="line-shallow-log-gains",
        relative_gains=True,
    ),
    "line-shallow-log-gains-decay-60": _shallow_arm(
        "line-shallow-log-gains after its 60 CPU-minutes, lr 3e-5 (the new synthesis at "
        "9e-5), the gains in log space: what 35 more minutes at 1e-4 bought",
        _from_arm("line-shallow-log-gains"),
        3e-5,
        parent="line-shallow-log-gains",
        relative_gains=True,
    ),
    "line-shallow-wide": _shallow_arm(
        f"the line's state with a two-layer synthesis of {WIDE} hidden channels in place of "
        "its own, everything training from the start: lr 1e-4, the new synthesis at 3e-4",
        _line_shallow_wide,
        1e-4,
        build=_two_layer_wide,
    ),
    "line-shallow-ls": _shallow_arm(
        "the line's state with the two-layer synthesis in place of its own, its linear path "
        "solved by least squares and its non-linear path silent, everything training at 1e-4",
        _line_shallow_ls,
        1e-4,
        path_lr_scale=1.0,
    ),
    "wavelet": Arm(
        "c2f's hyper stack, gains and preview from scratch on a fixed CDF 9/7 wavelet "
        "(lab/wavelet.py: the analysis and synthesis learn nothing), lr 3e-4",
        _wavelet,
        3e-4,
        build=_wavelet_build,
    ),
    "wavelet-abs": Arm(
        "wavelet, its hyper analysis fed the magnitudes of the detail coefficients, lr 3e-4",
        lambda lr: _wavelet(lr, _wavelet_abs_build),
        3e-4,
        build=_wavelet_abs_build,
    ),
    "wavelet-abs-init": Arm(
        "wavelet-abs with P3's scale indices started at each channel's spread on training "
        "crops (wavelet.scale_start) and P3's outputs at 10x the lr, lr 3e-4",
        _wavelet_scale_start,
        3e-4,
        path_lr_scale=10.0,
        build=_wavelet_abs_build,
        fresh=P3_OUTPUTS,
    ),
    "pca-scratch": Arm(
        "the line's network with linear paths started at the training images' principal "
        "components and silent non-linear stages, from scratch, lr 1e-4",
        _scratch_from_pca,
        1e-4,
    ),
    "pca-balanced": Arm(
        "pca-scratch after its 90 CPU-minutes, each level's cost weighted by "
        "(lambda_mid / lambda)^0.5, lr 1e-4",
        _from_arm("pca-scratch"),
        1e-4,
        balance=0.5,
        parent="pca-scratch",
    ),
    "pca-decay": Arm(
        "pca-scratch after its 90 CPU-minutes, lr 3e-5",
        _from_arm("pca-scratch"),
        3e-5,
        parent="pca-scratch",
    ),
    "pca-decay-balanced": Arm(
        "pca-scratch after its 90 CPU-minutes, lr 3e-5, each level's cost weighted by "
        "(lambda_mid / lambda)^0.5",
        _from_arm("pca-scratch"),
        3e-5,
        balance=0.5,
        parent="pca-scratch",
    ),
    "pca-decay-fine": Arm(
        "pca-decay after its 95 CPU-minutes, lr 1e-5",
        _from_arm("pca-decay"),
        1e-5,
        parent="pca-decay",
    ),
    "pca-fine-low": Arm(
        "pca-decay-fine after its 35 CPU-minutes, lr 1e-5, crops at levels 0..5 only (where "
        "Kodak's curve lies)",
        _from_arm("pca-decay-fine"),
        1e-5,
        top_level=5.0,
        parent="pca-decay-fine",
    ),
    "pca-one-rate": Arm(
        "the linear start from scratch trained at one rate first (level 3.5 only, the "
        "middle of Kodak's curve), lr 1e-4",
        _scratch_from_pca,
        1e-4,
        top_level=3.5,
        bottom_level=3.5,
    ),
    "pca-one-rate-low": Arm(
        "pca-one-rate after its 60 CPU-minutes, the other levels by fine-tuning: crops at "
        "levels 0..5 (where Kodak's curve lies), lr 1e-4",
        _from_arm("pca-one-rate"),
        1e-4,
        top_level=5.0,
        parent="pca-one-rate",
    ),
    "pca-3x3": Arm(
        "the linear start from scratch with 3x3 kernels in g_a's and g_s's stride-2 stages "
        "(5x5 elsewhere in the arms), lr 1e-4",
        _scratch_from_pca_3x3,
        1e-4,
    ),
    "paths-scratch": Arm(
        "the line's network with linear paths, from scratch, lr 1e-4", _scratch_with_paths, 1e-4
    ),
}


def _score(model: C2FModel, crops: list[torch.Tensor]) -> dict[str, Any]:
    mixed = model.mixed_precision
    model.mixed_precision = False
    points = [evaluate(model, crops, level, torch.device("cpu")) for level in LEVELS]
    model.mixed_precision = mixed
    return {
        "levels": points,
        "cost": [p["cost"] for p in points],
        "bpp": [p["bpp"] for p in points],
        "psnr": [p["psnr"] for p in points],
    }


def run(args: argparse.Namespace) -> None:
    arm = ARMS[args.arm]
    torch.set_num_threads(args.threads)
    out = args.out / args.arm
    out.mkdir(parents=True, exist_ok=True)
    state, result_file = out / "state.pt", out / "result.json"
    crops = validation_crops(args.val)
    if state.exists():
        cpu = torch.device("cpu")
        model, opt, progress = load_state(
            state, cpu, arm.lr, arm.build, arm.path_lr_scale, arm.fresh
        )
        result: dict[str, Any] = json.loads(result_file.read_text())
        print(f"{args.arm}: resumed at step {progress.step}", flush=True)
    else:
        model, opt, progress = arm.start(arm.lr)
        result = {"arm": args.arm, "what": arm.what, "threads": args.threads, "curve": []}
        if arm.parent is not None:
            # the parent may train on: where it stood when this arm branched off
            parent = json.loads((args.out / arm.parent / "result.json").read_text())
            result["parent_minutes"] = parent["curve"][-1]["cpu_minutes"]
        first = {**_score(model, crops), "cpu_minutes": 0.0, "steps": progress.step}
        result["curve"].append(first)
        print(f"{args.arm}: start {json.dumps(first['cost'])}", flush=True)
    model.rounded_rates = arm.rounded_rates
    if arm.encoder_only:
        print(f"{args.arm}: {freeze_decoder(model)} parameters train", flush=True)
    if arm.fresh_only:
        print(f"{args.arm}: {train_only(model, arm.fresh)} parameters train", flush=True)
    # bfloat16 autocast only where the CPU multiplies it natively: emulated (AVX2 only)
    # a step took 9.3 s against 1.0 in float32
    model.mixed_precision = cpu_has_bf16()
    print(f"{args.arm}: {'bfloat16' if model.mixed_precision else 'float32'} steps", flush=True)
    model.train()
    # the same crops in every arm: the sampler's stream restarts from the seed and skips
    # what this arm has already drawn
    images = [im for folder in args.data for im in load_images(folder)]
    sampler = CropSampler(images, arm.crop, 0)
    for _ in range(progress.step):
        sampler.batch(arm.batch)
    torch.manual_seed(progress.step)
    trained = float(result["curve"][-1]["cpu_minutes"]) * 60
    schedule = Schedule(
        iters=10**9,
        lr=arm.lr,
        decay_from=2.0,
        int_from=2.0,
        batch=arm.batch,
        log_every=100,
        ckpt_every=10**9,
        val_every=10**9,
        clock=time.process_time,
        balance=arm.balance,
        top_level=arm.top_level,
        bottom_level=arm.bottom_level,
        relative_gains=arm.relative_gains,
    )
    log = step_printer(args.arm)
    while trained < args.minutes * 60 - 1:
        segment = min(SEGMENT_MINUTES * 60, args.minutes * 60 - trained)
        start = time.process_time()
        schedule.deadline = start + segment
        train_loop(model, opt, sampler, schedule, progress, torch.device("cpu"), log=log)
        trained += time.process_time() - start
        point: dict[str, Any] = {
            **_score(model, crops),
            "cpu_minutes": trained / 60,
            "steps": progress.step,
        }
        result["curve"].append(point)
        result["steps"] = progress.step
        result["cpu_minutes"] = trained / 60
        save_state(state, model, opt, progress)
        result_file.write_text(json.dumps(result, indent=1) + "\n")
        print(
            f"{args.arm}: {trained / 60:.1f} CPU-min step {progress.step} J "
            + " / ".join(f"{c:.4f}" for c in point["cost"])
            + " PSNR "
            + " / ".join(f"{p:.2f}" for p in point["psnr"]),
            flush=True,
        )


def reference(state: Path, name: str, val: Path, out: Path, label: str = "") -> dict[str, Any]:
    """A trained state scored once on the arms' crops, written as `out/name/result.json`:
    what the arms are measured against (the line's state as it stands), drawn by `plot`
    as a level line."""
    model, _, progress = load_state(state, torch.device("cpu"), 0.0)
    model.eval()
    point = {**_score(model, validation_crops(val)), "cpu_minutes": 0.0, "steps": progress.step}
    spent = f"step {progress.step}, {progress.cpu_seconds / 60:.0f} CPU-min"
    what = f"reference: {label or state.name} ({spent})"
    result = {"arm": name, "what": what, "reference": True, "curve": [point]}
    (out / name).mkdir(parents=True, exist_ok=True)
    (out / name / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _slope(curve: list[dict[str, Any]], window: float = 30.0) -> list[float]:
    """Relative change of J per 10 CPU-minutes over the arm's last `window` minutes
    (least squares), at each scored level."""
    end = curve[-1]["cpu_minutes"]
    pts = [p for p in curve if p["cpu_minutes"] >= end - window - 1e-6]
    if len(pts) < 2:
        return [float("nan")] * len(LEVELS)
    out = []
    t = torch.tensor([p["cpu_minutes"] for p in pts], dtype=torch.float64)
    for i in range(len(LEVELS)):
        j = torch.tensor([p["cost"][i] for p in pts], dtype=torch.float64)
        tc = t - t.mean()
        slope = float((tc * (j - j.mean())).sum() / (tc * tc).sum())
        out.append(10 * slope / float(j.mean()))
    return out


def _results(folder: Path, arms: list[str] | None) -> list[dict[str, Any]]:
    """The arms' results (all in `folder`, or those named, in that order)."""
    if arms:
        return [json.loads((folder / a / "result.json").read_text()) for a in arms]
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]


def _start_minutes(result: dict[str, Any], folder: Path) -> float:
    """Where an arm starts on a common clock: a continuation at its parent's end."""
    parent = ARMS[result["arm"]].parent if result["arm"] in ARMS else None
    if parent is None or not (folder / parent / "result.json").exists():
        return 0.0
    parent_result = json.loads((folder / parent / "result.json").read_text())
    branched = result.get("parent_minutes", parent_result["curve"][-1]["cpu_minutes"])
    return _start_minutes(parent_result, folder) + float(branched)


def table(folder: Path, arms: list[str] | None = None) -> str:
    rows = _results(folder, arms)
    lines = [
        "| arm | CPU-min | steps | J at levels 0 / 3.5 / 7: start | end | "
        "change of J per 10 CPU-min over the last 30 (%) | end: bpp / dB at 0 / 3.5 / 7 |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        first, last = r["curve"][0], r["curve"][-1]
        slope = _slope(r["curve"])
        lines.append(
            f"| {r['what']} | {last['cpu_minutes']:.0f} | {last['steps']} | "
            + " / ".join(f"{c:.3f}" for c in first["cost"])
            + " | "
            + " / ".join(f"{c:.3f}" for c in last["cost"])
            + " | "
            + (" / ".join(f"{100 * s:+.2f}" for s in slope) if len(r["curve"]) > 1 else "-")
            + " | "
            + ", ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(last["bpp"], last["psnr"], strict=True))
            + " |"
        )
    return "\n".join(lines)


def plot(folder: Path, out: Path, arms: list[str] | None = None, from_minutes: float = 0.0) -> None:
    """The arms' learning curves, J against CPU-minutes at each scored level (Pillow); an
    arm that continues another's state starts where that one ended. `from_minutes`
    leaves out what comes before (a start from scratch that would squash the rest)."""
    from PIL import Image, ImageDraw

    rows = _results(folder, arms)
    for r in rows:
        offset = _start_minutes(r, folder)
        moved = [{**p, "cpu_minutes": p["cpu_minutes"] + offset} for p in r["curve"]]
        if not r.get("reference"):  # a reference is a level, at no time in particular
            r["curve"] = [p for p in moved if p["cpu_minutes"] >= from_minutes]
    rows = [r for r in rows if r["curve"]]
    refs = [r for r in rows if r.get("reference")]  # level lines, not curves
    arms_rows = [r for r in rows if not r.get("reference")]
    colours = [
        (200, 30, 30),
        (30, 120, 200),
        (30, 160, 60),
        (200, 140, 0),
        (150, 60, 160),
        (0, 150, 150),
        (90, 90, 90),
    ]
    panel_w, h, m = 420, 360, 56
    im = Image.new("RGB", (panel_w * len(LEVELS), h + 20 * len(rows)), "white")
    d = ImageDraw.Draw(im)
    t_min = min(p["cpu_minutes"] for r in arms_rows for p in r["curve"])
    t_max = max(p["cpu_minutes"] for r in arms_rows for p in r["curve"])
    span = (t_max - t_min) or 1.0
    for i, level in enumerate(LEVELS):
        x0 = i * panel_w
        costs = [p["cost"][i] for r in rows for p in r["curve"]]
        lo, hi = min(costs), max(costs)
        pad = (hi - lo) * 0.05 or 0.01
        lo, hi = lo - pad, hi + pad

        def xy(t: float, j: float, x0: int = x0, lo: float = lo, hi: float = hi) -> tuple:
            return (
                x0 + m + (t - t_min) / span * (panel_w - m - 12),
                h - m - (j - lo) / (hi - lo) * (h - 2 * m),
            )

        d.rectangle([x0 + m, m, x0 + panel_w - 12, h - m], outline="black")
        d.text((x0 + m, 20), f"J at level {level:g} (held-out crops)", fill="black")
        d.text((x0 + m, h - m + 22), "CPU-minutes (one thread)", fill="black")
        for k in range(5):
            j = lo + (hi - lo) * k / 4
            _, y = xy(0, j)
            d.text((x0 + 4, y - 6), f"{j:.3f}", fill="black")
            t = t_min + span * k / 4
            x, _ = xy(t, lo)
            d.text((x - 8, h - m + 6), f"{t:.3g}", fill="black")
        for r, colour in zip(rows, colours, strict=False):
            line = [xy(p["cpu_minutes"], p["cost"][i]) for p in r["curve"]]
            if r in refs:
                line = [xy(t_min, r["curve"][0]["cost"][i]), xy(t_max, r["curve"][0]["cost"][i])]
            if len(line) > 1:
                d.line(line, fill=colour, width=1 if r in refs else 2)
    for k, (r, colour) in enumerate(zip(rows, colours, strict=False)):
        y = h + 20 * k
        d.line([m, y + 7, m + 30, y + 7], fill=colour, width=3)
        d.text((m + 38, y), f"{r['arm']}: {r['what']}", fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save(out)


LOG_LINE = re.compile(
    r"^(?P<arm>\S+) step (?P<step>\d+) loss (?P<loss>\S+) bpp (?P<bpp>\S+) "
    r"psnr (?P<psnr>\S+) (?P<rate>\S+) it/s$"
)


def adopt(arm: str, folder: Path, note: str) -> None:
    """Make an arm's state the line's: lab/training/checkpoint.pt, with the line's step and
    CPU-second counts carried on where the arm continued the line (the arms count from
    zero), a round recorded, and the arm's logged steps appended to lab/training/log.csv."""
    state = torch.load(folder / arm / "state.pt", map_location="cpu", weights_only=True)
    line = torch.load(LINE_STATE, map_location="cpu", weights_only=True)
    continued = ARMS[arm].start in (_line, _line_with_paths)
    offset_steps = int(line["step"]) if continued else 0
    offset_seconds = float(line["cpu_seconds"]) if continued else 0.0
    result = json.loads((folder / arm / "result.json").read_text())
    state["step"] = offset_steps + int(state["step"])
    state["cpu_seconds"] = offset_seconds + float(state["cpu_seconds"])
    state["gpu_seconds"] = float(line["gpu_seconds"]) if continued else 0.0
    state["rounds"] = [
        *(line["rounds"] if continued else []),
        {"arm": arm, "what": ARMS[arm].what, "steps": result["steps"], "note": note},
    ]
    torch.save(state, LINE_STATE.with_suffix(".tmp"))
    LINE_STATE.with_suffix(".tmp").replace(LINE_STATE)
    log = LINE_STATE.parent / "log.csv"
    lr = ARMS[arm].lr
    rows = []
    for text in (folder / f"{arm}.log").read_text().splitlines():
        match = LOG_LINE.match(text)
        if match and match["arm"] == arm:
            step = offset_steps + int(match["step"])
            rows.append(f"{step},{match['loss']},{match['bpp']},{match['psnr']},nan,{lr},0,nan")
    with log.open("a") as f:
        f.write("".join(row + "\n" for row in rows))
    print(f"{arm} -> {LINE_STATE} (step {state['step']}), {len(rows)} log rows", flush=True)


def rd_curves(
    names: list[str],
    folder: Path,
    val: Path,
    out: Path,
    threads: int = 2,
    count: int = 8,
    size: int = 256,
) -> dict[str, Any]:
    """Each state's rate-distortion curve on the held-out crops, levels 0, 1, ... (the
    line: `line` means lab/training/checkpoint.pt; a name ending in .pt, such a state
    file of the line's network; one ending in .npz, a weights file such as the shipped
    model; a peer of `c2f bench` by its name), and its BD-rate against the first:
    J at a level compares two models at one slope only, and the arms sit at other rates
    than the line for one lambda (pca-decay's level 3.5 is 1.13 bpp, the line's 0.73)."""
    from c2f_format.tools.bench import CODECS, bd_rate

    torch.set_num_threads(threads)
    crops = validation_crops(val, count, size)
    result: dict[str, Any] = {"crops": len(crops), "size": size, "curves": {}, "bd_rate": {}}
    for name in names:
        if name in CODECS and name != "c2f":  # a peer, on the same crops at its grid
            points = codec_points(name, crops)
            print(f"{name}: " + ", ".join(f"{q['bpp']:.3f}/{q['psnr']:.2f}" for q in points))
            result["curves"][name] = {"step": 0, "points": points}
            continue
        if name.endswith(".npz"):  # a weights file, such as the shipped model
            from c2f_format.networks.weights import trainable_model

            model, progress = trainable_model(Path(name)), Progress(seed=0)
        else:
            if name == "line":
                path = LINE_STATE
            elif name.endswith(".pt"):
                path = Path(name)
            else:
                path = folder / name / "state.pt"
            arm = ARMS.get(name, ARMS["line"])  # a state saved from a subclass needs its build
            model, _, progress = load_state(
                path, torch.device("cpu"), 1e-5, arm.build, arm.path_lr_scale, arm.fresh
            )
        model.mixed_precision = False
        levels = len(model.config.lambdas)
        points = [evaluate(model, crops, float(k), torch.device("cpu")) for k in range(levels)]
        result["curves"][name] = {"step": progress.step, "points": points}
        print(
            f"{name} (step {progress.step}): "
            + ", ".join(f"{q['bpp']:.3f}/{q['psnr']:.2f}" for q in points),
            flush=True,
        )
    first = names[0]
    ref = [(q["bpp"], q["psnr"]) for q in result["curves"][first]["points"]]
    for name in names[1:]:
        test = [(q["bpp"], q["psnr"]) for q in result["curves"][name]["points"]]
        result["bd_rate"][name] = bd_rate(ref, test)
        print(f"{name}: BD-rate {result['bd_rate'][name]:+.1f}% against {first}", flush=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    _plot_curves(result, out.with_suffix(".png"))
    return result


def _plot_curves(result: dict[str, Any], out: Path) -> None:
    """PSNR against bpp (log scale) of each state in `result` (Pillow)."""
    import math

    from PIL import Image, ImageDraw

    colours = [
        (90, 90, 90),
        (200, 30, 30),
        (30, 120, 200),
        (30, 160, 60),
        (200, 140, 0),
        (150, 60, 160),
    ]
    curves = {n: [(q["bpp"], q["psnr"]) for q in c["points"]] for n, c in result["curves"].items()}
    pts = [p for c in curves.values() for p in c]
    lo_r, hi_r = math.log(min(b for b, _ in pts)), math.log(max(b for b, _ in pts))
    lo_q, hi_q = min(q for _, q in pts) - 0.5, max(q for _, q in pts) + 0.5
    w, h, m = 720, 480, 60
    im = Image.new("RGB", (w, h + 20 * len(curves)), "white")
    d = ImageDraw.Draw(im)

    def xy(b: float, q: float) -> tuple[float, float]:
        return (
            m + (math.log(b) - lo_r) / (hi_r - lo_r) * (w - m - 20),
            h - m - (q - lo_q) / (hi_q - lo_q) * (h - 2 * m),
        )

    d.rectangle([m, m, w - 20, h - m], outline="black")
    title = result.get("title", f"held-out crops ({result['crops']})")
    d.text((m, 20), f"{title}: PSNR (dB) against bpp", fill="black")
    for k in range(5):
        b = math.exp(lo_r + (hi_r - lo_r) * k / 4)
        q = lo_q + (hi_q - lo_q) * k / 4
        d.text((xy(b, lo_q)[0] - 10, h - m + 6), f"{b:.2f}", fill="black")
        d.text((8, xy(b, q)[1] - 6), f"{q:.1f}", fill="black")
    for curve, colour in zip(curves.values(), colours, strict=False):
        line = [xy(b, q) for b, q in sorted(curve)]
        d.line(line, fill=colour, width=2)
        for x, y in line:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], outline=colour)
    for k, (name, colour) in enumerate(zip(curves, colours, strict=False)):
        y = h + 20 * k
        bd = result["bd_rate"].get(name)
        label = name + (f": BD-rate {bd:+.1f}% against {next(iter(curves))}" if bd else "")
        d.line([m, y + 7, m + 30, y + 7], fill=colour, width=3)
        d.text((m + 38, y), label, fill="black")
    im.save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and score one arm (resumes)")
    r.add_argument("arm", choices=sorted(ARMS))
    r.add_argument("--data", type=Path, nargs="+", default=[REPO / "runs" / "pack"])
    r.add_argument("--val", type=Path, default=REPO.parent / "shared" / "data" / "val")
    r.add_argument("--out", type=Path, default=LAB / "arms")
    r.add_argument("--minutes", type=float, default=90.0)
    r.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("table", help="the arms as a Markdown table")
    t.add_argument("folder", type=Path, nargs="?", default=LAB / "arms")
    t.add_argument("--arms", nargs="+", help="these arms, in this order (default: all)")
    a = sub.add_parser("adopt", help="make an arm's state the training line's")
    a.add_argument("arm", choices=sorted(ARMS))
    a.add_argument("--folder", type=Path, default=LAB / "arms")
    a.add_argument("--note", default="")
    c = sub.add_parser("curves", help="RD curves on the held-out crops, BD-rate vs the first")
    c.add_argument("arms", nargs="+", help="arm names, or `line` for the line's state")
    c.add_argument("--folder", type=Path, default=LAB / "arms")
    c.add_argument("--val", type=Path, default=REPO.parent / "shared" / "data" / "val")
    c.add_argument("-o", "--out", type=Path, default=LAB / "arms" / "curves.json")
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--count", type=int, default=8, help="the first COUNT images of --val")
    c.add_argument("--size", type=int, default=256, help="centre crops of at most SIZE^2")
    f = sub.add_parser("reference", help="score a trained state once, as a level line")
    f.add_argument("state", type=Path)
    f.add_argument("--name", required=True)
    f.add_argument("--val", type=Path, default=REPO.parent / "shared" / "data" / "val")
    f.add_argument("--out", type=Path, default=LAB / "arms")
    f.add_argument("--label", default="", help="what the state is (default: its file name)")
    p = sub.add_parser("plot", help="learning curves as a PNG")
    p.add_argument("folder", type=Path, nargs="?", default=LAB / "arms")
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--arms", nargs="+", help="these arms, in this order (default: all)")
    p.add_argument("--from-minutes", type=float, default=0.0, help="leave out what is before")
    args = ap.parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "table":
        print(table(args.folder, args.arms))
    elif args.command == "adopt":
        adopt(args.arm, args.folder, args.note)
    elif args.command == "reference":
        reference(args.state, args.name, args.val, args.out, args.label)
    elif args.command == "curves":
        rd_curves(args.arms, args.folder, args.val, args.out, args.threads, args.count, args.size)
    else:
        plot(args.folder, args.out, args.arms, args.from_minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
