"""The training loop: the schedule (when to stop, the learning rate, when the integer
phase starts), the steps themselves, and the log they write."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codec.progress import format_duration
from ..networks.model import C2FModel
from .data import Sampler
from .objective import Trainable, rd_loss
from .state import Progress

LOG_FILE = "log.csv"
LOG_COLUMNS = ["step", "loss", "bpp", "psnr", "psnr_preview", "lr", "fake_quant", "seconds"]


@dataclass
class Schedule:
    """When to stop, the learning rate, and when the integer phase starts.

    `iters` and `budget_seconds` count all resumed runs together; `deadline` (a
    `clock()` reading) stops this invocation. The lr falls x0.1 from `decay_from` and the
    integer networks are fake-quantised from `int_from` (fractions of iters or budget,
    whichever runs ahead). `balance` weights the levels' costs (`objective.rd_loss`).
    Crops draw their levels uniformly from `bottom_level` to `top_level` (None: the
    highest trained): a cap for a model that need not serve the highest rates, or one
    level (bottom == top) for training one rate first and the others by fine-tuning."""

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
    balance: float = 0.0
    top_level: float | None = None
    bottom_level: float = 0.0
    # Adam steps on the gains in log space (`relative_gain_step`) instead of additive ones
    relative_gains: bool = False


def fraction(schedule: Schedule, progress: Progress) -> float:
    budget = progress.seconds / schedule.budget_seconds if schedule.budget_seconds else 0.0
    return max(progress.step / schedule.iters, budget)


def _channels_last(model: Trainable) -> None:
    """The convolution weights in channels-last memory, where oneDNN runs a CPU training
    step 1.15-1.2x faster on AVX-512 (the line's model, batch 4 x 192^2, one thread,
    bfloat16: 256 -> 212 ms; on an AVX2-only CPU in float32 it is even, 0.90 s either way);
    what Module.to(memory_format=) does, which torch's stubs do not type."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)


def _gain_parameters(model: Trainable) -> list[torch.nn.Parameter]:
    if not isinstance(model, C2FModel):
        return []
    return [p for p in (model.gain, model.inv_gain) if p.requires_grad]


def relative_gain_step(opt: torch.optim.Adam, gains: list[torch.nn.Parameter]) -> None:
    """`opt.step()` with the gains stepped in log space: Adam sees each gain's gradient
    with respect to its logarithm (grad * gain) and its additive step becomes a factor
    (gain * exp(step)).

    The gains span six orders of magnitude (1e-5 to 20 in the line), and Adam moves
    every parameter by about lr a step whatever its size: at lr 1e-4 (x10 for the gains)
    a gain of 0.002 changed by half in a step while one of 20 did not move, so quiet
    channels switched on and off at random. That is the rate runaway seen at lr 1e-4
    (issue 19): the shallow arm's gains moved by factors of up to 530 (and down to 0.01)
    within 900 steps.
    In log space every gain moves by the same fraction for the same push."""
    before = [p.detach().clone() for p in gains]
    for p in gains:
        if p.grad is not None:
            p.grad.mul_(p.detach())
    opt.step()
    with torch.no_grad():
        for p, old in zip(gains, before, strict=True):
            p.copy_(old * torch.exp((p - old).clamp(-1.0, 1.0)))


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
    _channels_last(model)
    gains = _gain_parameters(model) if schedule.relative_gains else []
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
        x = sampler.batch(schedule.batch).contiguous(memory_format=torch.channels_last)
        top = levels - 1 if schedule.top_level is None else min(schedule.top_level, levels - 1)
        bottom = min(schedule.bottom_level, top)
        level = bottom + torch.rand(schedule.batch, device=device) * (top - bottom)
        stats = rd_loss(model, x, level, schedule.balance)
        opt.zero_grad(set_to_none=True)
        stats["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        if gains:
            relative_gain_step(opt, gains)
        else:
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
