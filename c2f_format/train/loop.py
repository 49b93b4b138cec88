"""Training: resumable, CPU or CUDA, one model for every rate.

    c2f-train --data runs/pack --val ../shared/data/val --run runs/main --iters 20000

Each image in a batch gets a random continuous level in [0, levels-1]; its lambda is
interpolated geometrically between the trained lambdas, so the gain interpolation that
`quality` relies on is trained directly. The last part of the run (`--int-from`)
fake-quantises the integer networks so the exported integer form loses nothing.
The training state (model, Adam's second moments, step, compute spent on each kind of
machine) is written every `--ckpt-every` steps, and a run started again with the same
`--run` resumes from it on whichever device is present, so CPU hours and GPU rounds
(`c2f-train --gpu-round`, see `gpu_round`) add up to one model.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..codec.metrics import psnr_from_mse
from ..codec.progress import format_duration
from ..format.constants import PREVIEW_SCALE
from ..networks.model import C2FModel, ModelConfig
from ..networks.weights import publish_weights, trainable_model
from .growth import (
    RateWarmup,
    extended_lambdas,
    grow,
    reset_channels,
    retarget_lambdas,
    silent_channels,
)
from .yardstick import ScaleHyperprior

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}
PACK_QUALITY = 90  # JPEG 4:4:4: errors near 40 dB, above every trained rate
PACK_MAX_SIDE = 576  # keeps all 508 training photos within what travels to a GPU
STATE_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"
LOG_COLUMNS = ["step", "loss", "bpp", "psnr", "psnr_preview", "lr", "fake_quant", "seconds"]


# ---- data -------------------------------------------------------------------------


def image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(folder: Path, max_side: int = 1024) -> list[np.ndarray]:
    """All images under `folder` as RGB uint8 arrays; large ones are halved until the
    longer side is at most `max_side` (downscaling removes noise and makes photos look
    more like the 512-768 px benchmark images)."""
    images = []
    for path in image_paths(folder):
        with Image.open(path) as src:
            rgb = src.convert("RGB")
        while max(rgb.size) > max_side:
            rgb = rgb.reduce(2)
        images.append(np.asarray(rgb))
    if not images:
        raise SystemExit(f"no images found under {folder}")
    return images


def fit_within(rgb: Image.Image, max_side: int) -> Image.Image:
    """Downscale (box-halving, then Lanczos for the rest) so the longer side <= max_side."""
    while max(rgb.size) >= 2 * max_side:
        rgb = rgb.reduce(2)
    if max(rgb.size) > max_side:
        ratio = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * ratio)), max(1, round(rgb.height * ratio)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return rgb


def pack_images(
    folders: list[Path], out: Path, quality: int = PACK_QUALITY, max_side: int = PACK_MAX_SIDE
) -> int:
    """Write the training images, downscaled to at most `max_side`, as JPEG 4:4:4 into
    `out`: the one training set of CPU and GPU rounds alike, small enough to travel with
    the code to a GPU machine. Returns the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for n, folder in enumerate(folders):
        for i, path in enumerate(image_paths(folder)):
            with Image.open(path) as src:
                rgb = fit_within(src.convert("RGB"), max_side)
            target = out / f"{n:02d}-{folder.name}-{i:04d}.jpg"
            rgb.save(target, quality=quality, subsampling=0)
            total += target.stat().st_size
    return total


class Sampler(Protocol):
    def batch(self, size: int) -> torch.Tensor: ...


class CropSampler:
    """Random crops with horizontal flips, cut on the CPU from uint8 arrays."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise SystemExit(f"no training image is at least {crop}x{crop}")
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i in range(size):
            im = self.images[self.rng.integers(len(self.images))]
            top = self.rng.integers(im.shape[0] - self.crop + 1)
            left = self.rng.integers(im.shape[1] - self.crop + 1)
            patch = im[top : top + self.crop, left : left + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


class DeviceCrops:
    """The same crops, cut where the images live: every image sits on the device as
    uint8 (the whole pack is about 0.5 GB there), so a step moves no pixels over PCIe
    and needs no data loader."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int, device: torch.device):
        kept = [im for im in images if min(im.shape[:2]) >= crop]
        if not kept:
            raise SystemExit(f"no training image is at least {crop}x{crop}")
        self.images = [torch.from_numpy(np.array(im)).permute(2, 0, 1).to(device) for im in kept]
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        patches = []
        for _ in range(size):
            im = self.images[self.rng.integers(len(self.images))]
            top = int(self.rng.integers(im.shape[1] - self.crop + 1))
            left = int(self.rng.integers(im.shape[2] - self.crop + 1))
            patch = im[:, top : top + self.crop, left : left + self.crop]
            patches.append(patch.flip(2) if self.rng.random() < 0.5 else patch)
        return torch.stack(patches).float() / 255.0


def validation_crops(folder: Path, count: int = 8, size: int = 256) -> list[torch.Tensor]:
    """Centre crops of the first `count` images of a held-out folder, as [1,3,h,w]."""
    crops = []
    for im in load_images(folder)[:count]:
        h, w = (min(size, s) // 64 * 64 for s in im.shape[:2])
        top, left = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
        patch = im[top : top + h, left : left + w].copy()
        crops.append(torch.from_numpy(patch).permute(2, 0, 1).float().unsqueeze(0) / 255)
    return crops


# ---- the objective ----------------------------------------------------------------


Trainable = C2FModel | ScaleHyperprior  # what the loop trains: c2f, or the yardstick


def lambdas_at(lambdas: list[float], level: torch.Tensor) -> torch.Tensor:
    """lambda at continuous levels, geometric between the trained ones."""
    lam = torch.tensor(lambdas, dtype=torch.float32, device=level.device).log()
    if len(lam) == 1:
        return lam.exp().expand_as(level)
    lo = level.floor().long().clamp(0, len(lam) - 2)
    t = level - lo
    return torch.exp(lam[lo] * (1 - t) + lam[lo + 1] * t)


def rd_loss(model: Trainable, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
    """bpp + lambda * 255^2 * MSE (CompressAI's convention), per image, averaged; the
    preview head, where the model has one, learns at a tenth of that weight."""
    out = model(x, level)
    pixels = x.shape[2] * x.shape[3]
    mse = (out["x_hat"] - x).pow(2).mean(dim=(1, 2, 3))
    bpp = (out["bits_y"] + out["bits_z"]) / pixels
    lam = lambdas_at(model.config.lambdas, level) * 255.0**2
    distortion = mse
    stats = {"bpp": bpp.mean(), "psnr": (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()}
    if "preview" in out:
        mse_preview = (out["preview"] - F.avg_pool2d(x, PREVIEW_SCALE)).pow(2).mean(dim=(1, 2, 3))
        distortion = mse + 0.1 * mse_preview
        stats["psnr_preview"] = (10 * torch.log10(1.0 / mse_preview.clamp_min(1e-10))).mean()
    else:
        stats["psnr_preview"] = torch.zeros(())
    stats["loss"] = (bpp + lam * distortion).mean()
    return stats


@torch.no_grad()
def evaluate(
    model: Trainable, crops: list[torch.Tensor], level: float, device: torch.device
) -> dict[str, float]:
    """Mean bpp, PSNR and RD cost J = bpp + lambda*255^2*MSE on held-out crops, with the
    latents rounded as the codec rounds them (eval mode)."""
    was_training = model.training
    model.eval()
    bpp, mse = [], []
    for x in crops:
        x = x.to(device)
        out = model(x, torch.full((1,), level, device=device))
        bpp.append(float((out["bits_y"] + out["bits_z"]).sum()) / (x.shape[2] * x.shape[3]))
        mse.append(float((out["x_hat"].clamp(0, 1) - x).pow(2).mean()))
    model.train(was_training)
    lam = float(lambdas_at(model.config.lambdas, torch.tensor([level]))[0])
    b, m = float(np.mean(bpp)), float(np.mean(mse))
    psnr = float(np.mean([psnr_from_mse(max(e, 1e-10), peak=1.0) for e in mse]))
    return {"level": level, "lambda": lam, "bpp": b, "psnr": psnr, "cost": b + lam * 255**2 * m}


def validate(model: Trainable, crops: list[torch.Tensor], device: torch.device) -> str:
    levels = len(model.config.lambdas)
    parts = []
    for level in sorted({0.0, (levels - 1) / 2, levels - 1.0}):
        r = evaluate(model, crops, level, device)
        parts.append(f"L{level:.1f}: {r['bpp']:.3f} bpp {r['psnr']:.2f} dB")
    return " | ".join(parts)


# ---- optimiser and state ------------------------------------------------------------

GAIN_LR_SCALE = 10.0  # gains are few and multiplicative: they get a larger step


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Adam:
    gains = [p for name, p in model.named_parameters() if name in ("gain", "inv_gain")]
    gain_ids = {id(p) for p in gains}
    rest = [p for p in model.parameters() if id(p) not in gain_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "lr_scale": 1.0}]
    if gains:
        groups.append({"params": gains, "lr_scale": GAIN_LR_SCALE})
    return torch.optim.Adam(groups, lr=lr)


@dataclass
class Progress:
    """Where a model's training stands: steps and the compute spent, by machine kind."""

    step: int = 0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    seed: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)
    warmup: RateWarmup | None = None  # channels entering the rate term (growth.py)

    @property
    def seconds(self) -> float:
        return self.cpu_seconds + self.gpu_seconds

    def add_time(self, seconds: float, device: torch.device) -> None:
        if device.type == "cuda":
            self.gpu_seconds += seconds
        else:
            self.cpu_seconds += seconds


# Adam's second moments as codes of log2 at half-octave steps: the update divides by their
# square root, so a code is within 2**0.25 of the value and the step within 9%.
_SQ_STEPS_PER_OCTAVE = 2.0
_SQ_LOG2_MIN = -100.0  # code 1 (2**-100); code 0 is an exact zero; code 255 is 2**27


def pack_second_moment(sq: torch.Tensor) -> torch.Tensor:
    """Adam's `exp_avg_sq` (non-negative) as uint8 codes of its logarithm."""
    sq = sq.detach().float().cpu()
    code = torch.round((torch.log2(sq.clamp_min(2.0**-149)) - _SQ_LOG2_MIN) * _SQ_STEPS_PER_OCTAVE)
    code = (code + 1).clamp(1, 255)
    return torch.where(sq > 0, code, torch.zeros_like(code)).to(torch.uint8)


def unpack_second_moment(packed: torch.Tensor) -> torch.Tensor:
    """`pack_second_moment`'s inverse (and the bfloat16 states written before it)."""
    if packed.dtype != torch.uint8:
        return packed.float()
    code = packed.float()
    value = torch.exp2((code - 1) / _SQ_STEPS_PER_OCTAVE + _SQ_LOG2_MIN)
    return torch.where(code > 0, value, torch.zeros_like(value))


def save_state(path: Path, model: C2FModel, opt: torch.optim.Adam, progress: Progress) -> None:
    """The compact training state: float32 parameters, Adam's step and second moments as
    8-bit logarithms (`pack_second_moment`; the first moments restart at zero: Adam
    rebuilds them in a few dozen steps), so a 3 M-parameter model's state is about
    15 MB, can be committed, and travels to a GPU and back as one file under 16 MiB."""
    adam = []
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            sq = st.get("exp_avg_sq")
            adam.append(
                None
                if sq is None
                else {"step": float(st["step"]), "exp_avg_sq": pack_second_moment(sq)}
            )
    state = {
        "config": model.config.to_dict(),
        "model": {k: v.detach().float().cpu() for k, v in model.state_dict().items()},
        "adam": adam,
        "step": progress.step,
        "cpu_seconds": progress.cpu_seconds,
        "gpu_seconds": progress.gpu_seconds,
        "seed": progress.seed,
        "rounds": progress.rounds,
        "warmup": progress.warmup.to_dict() if progress.warmup else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(
    path: Path, device: torch.device, lr: float
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """Rebuild model, optimiser and progress from `save_state`'s file (or from the full
    checkpoints written before it, which carried the whole Adam state)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = C2FModel(ModelConfig(**ckpt["config"])).to(device)
    model.load_state_dict(ckpt["model"])
    opt = make_optimizer(model, lr)
    params = [p for group in opt.param_groups for p in group["params"]]
    if "adam" in ckpt and len(ckpt["adam"]) == len(params):
        for p, st in zip(params, ckpt["adam"], strict=True):
            if st is not None:
                opt.state[p] = {
                    "step": torch.tensor(st["step"]),
                    "exp_avg": torch.zeros_like(p),
                    "exp_avg_sq": unpack_second_moment(st["exp_avg_sq"]).to(device, p.dtype),
                }
    elif "optimizer" in ckpt:
        try:
            opt.load_state_dict(ckpt["optimizer"])
        except ValueError as exc:  # parameter groups changed since the checkpoint
            print(f"optimizer state not restored ({exc}); starting it afresh", flush=True)
    progress = Progress(
        step=int(ckpt["step"]),
        cpu_seconds=float(ckpt.get("cpu_seconds", ckpt.get("seconds", 0.0))),
        gpu_seconds=float(ckpt.get("gpu_seconds", 0.0)),
        seed=int(ckpt.get("seed", 0)),
        rounds=list(ckpt.get("rounds", [])),
        warmup=RateWarmup(**ckpt["warmup"]) if ckpt.get("warmup") else None,
    )
    return model, opt, progress


# ---- the loop -------------------------------------------------------------------------


@dataclass
class Schedule:
    """When to stop, the learning rate, and when the integer phase starts.

    `iters` and `budget_seconds` count all resumed runs together; `deadline` (a
    `clock()` reading) stops this invocation. The lr falls x0.1 from `decay_from` and the
    integer networks are fake-quantised from `int_from` (fractions of iters or budget,
    whichever runs ahead)."""

    iters: int = 20000
    budget_seconds: float = 0.0
    lr: float = 3e-4
    decay_from: float = 0.75
    int_from: float = 0.9
    batch: int = 4
    deadline: float = float("inf")
    log_every: int = 50
    ckpt_every: int = 250
    val_every: int = 2000
    clock: Callable[[], float] = time.monotonic


def fraction(schedule: Schedule, progress: Progress) -> float:
    budget = progress.seconds / schedule.budget_seconds if schedule.budget_seconds else 0.0
    return max(progress.step / schedule.iters, budget)


def train_loop(
    model: Trainable,
    opt: torch.optim.Adam,
    sampler: Sampler,
    schedule: Schedule,
    progress: Progress,
    device: torch.device,
    *,
    log: Callable[[dict[str, float]], None] = lambda row: None,
    checkpoint: Callable[[], None] = lambda: None,
    val: Callable[[], None] = lambda: None,
    max_steps: int = 0,
) -> None:
    """Train until the schedule ends, the deadline passes or `max_steps` (if set) are
    done; the time spent is added to `progress` on the fly (so a checkpoint written from
    `checkpoint` is current)."""
    levels = len(model.config.lambdas)
    stop_step = progress.step + max_steps if max_steps else None
    window: list[dict[str, float]] = []
    last = schedule.clock()
    window_start, window_steps = last, 0
    while fraction(schedule, progress) < 1.0 and schedule.clock() < schedule.deadline:
        if stop_step is not None and progress.step >= stop_step:
            break
        frac = fraction(schedule, progress)
        lr = schedule.lr * (0.1 if frac >= schedule.decay_from else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        if isinstance(model, C2FModel):
            model.set_fake_quant(frac >= schedule.int_from)
            if progress.warmup is not None:
                model.rate_weight_y = progress.warmup.weight(progress.step, model.config.m, device)
                if model.rate_weight_y is None:
                    progress.warmup = None
        x = sampler.batch(schedule.batch)
        level = torch.rand(schedule.batch, device=device) * (levels - 1)
        stats = rd_loss(model, x, level)
        opt.zero_grad(set_to_none=True)
        stats["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if isinstance(model, C2FModel):
            model.project_gains()
        progress.step += 1
        window.append({k: float(v.detach()) for k, v in stats.items()})
        window_steps += 1
        now = schedule.clock()
        progress.add_time(now - last, device)
        last = now
        if progress.step % schedule.log_every == 0:
            row = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            row.update(
                step=progress.step,
                lr=lr,
                fake_quant=float(getattr(model, "fake_quant", False)),
                seconds=progress.seconds,
                steps_per_second=window_steps / max(now - window_start, 1e-9),
            )
            window.clear()
            window_start, window_steps = now, 0
            log(row)
        if progress.step % schedule.ckpt_every == 0:
            checkpoint()
        if progress.step % schedule.val_every == 0:
            val()


class CsvLog:
    """RUN/log.csv, appended across resumed runs, plus a line on the terminal."""

    def __init__(self, path: Path, schedule: Schedule) -> None:
        new = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", newline="")
        self.writer = csv.writer(self.file)
        self.schedule = schedule
        if new:
            self.writer.writerow(LOG_COLUMNS)

    def __call__(self, row: dict[str, float]) -> None:
        self.writer.writerow(
            [
                int(row["step"]),
                *(round(row[k], 6) for k in LOG_COLUMNS[1:-2]),
                int(row["fake_quant"]),
                round(row["seconds"], 1),
            ]
        )
        self.file.flush()
        left = min(
            (self.schedule.iters - row["step"]) / max(row["steps_per_second"], 1e-9),
            self.schedule.deadline - self.schedule.clock(),
        )
        print(
            f"step {int(row['step'])}/{self.schedule.iters} loss {row['loss']:.3f} "
            f"bpp {row['bpp']:.3f} psnr {row['psnr']:.2f} preview {row['psnr_preview']:.2f} "
            f"lr {row['lr']:.1e} {'int ' if row['fake_quant'] else ''}"
            f"{row['steps_per_second']:.2f} it/s left {format_duration(left)}",
            flush=True,
        )

    def close(self) -> None:
        self.file.close()


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
    model.config.quality_levels = quality_range(table)
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


# ---- command line ----------------------------------------------------------------------


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
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the transforms")
    ap.add_argument(
        "--gain-schedule",
        choices=["fixed", "line"],
        default="fixed",
        help="for a new model: gains follow sqrt(lambda) (fixed) or a learned line",
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
        "(.npz) or a training state (.pt, e.g. training/state.pt), instead of from scratch",
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
    ap.add_argument(
        "--gpu-round",
        action="store_true",
        help="one whole GPU round (CUDA checks, then training): see c2f_format.train.gpu_round",
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


def new_model(
    gain_schedule: str, device: torch.device, lr: float, seed: int = 0
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """A model trained from scratch, with its optimiser and an empty progress record."""
    model = C2FModel(ModelConfig(gain_schedule=gain_schedule)).to(device)
    model.project_gains()
    return model, make_optimizer(model, lr), Progress(seed=seed)


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


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args, rest = ap.parse_known_args(argv)
    if args.gpu_round:
        from .gpu_round import main as gpu_round_main

        return gpu_round_main(rest)
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.pack:
        return _pack(args, ap)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    model, opt, progress = _grown_model(args, device, ap)
    seed = _reseed(progress)
    if args.export_only:
        return _export_only(args, model, progress, ap)
    if not args.data:
        ap.error("--data is required for training")
    _train(args, model, opt, progress, device, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
