"""The training state: the optimiser, where a model's training stands (`Progress`), and
the compact file that carries both across resumed runs and GPU rounds."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..networks.model import C2FModel, ModelConfig
from .growth import RateWarmup

STATE_FILE = "checkpoint.pt"
GAIN_LR_SCALE = 10.0  # gains are few and multiplicative: they get a larger step


def make_optimizer(
    model: nn.Module, lr: float, path_lr_scale: float = 1.0, fresh: tuple[str, ...] = ()
) -> torch.optim.Adam:
    """Adam in up to three groups, always in this order (the state file relies on it):
    the weights, the gains (at GAIN_LR_SCALE x lr), and the parts added to a trained
    network that start with no Adam history (`path_lr_scale`): the linear paths, and the
    parameters named by the prefixes in `fresh` (a module put in place of another)."""
    named = list(model.named_parameters())
    gains = [p for name, p in named if name in ("gain", "inv_gain")]
    paths = [p for name, p in named if name.startswith(("a_paths.", "s_paths.", *fresh))]
    special = {id(p) for p in gains + paths}
    rest = [p for _, p in named if id(p) not in special]
    groups: list[dict[str, Any]] = [{"params": rest, "lr_scale": 1.0}]
    if gains:
        groups.append({"params": gains, "lr_scale": GAIN_LR_SCALE})
    if paths:
        groups.append({"params": paths, "lr_scale": path_lr_scale})
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
    path: Path,
    device: torch.device,
    lr: float,
    build: Callable[[ModelConfig], C2FModel] = C2FModel,
    path_lr_scale: float = 1.0,
    fresh: tuple[str, ...] = (),
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """Rebuild model, optimiser and progress from `save_state`'s file (or from the full
    checkpoints written before it, which carried the whole Adam state). A state saved
    from a subclass of C2FModel (a training arm's) needs its `build`, and the optimiser's
    groups as they were saved (`make_optimizer`'s `path_lr_scale` and `fresh`)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build(ModelConfig(**ckpt["config"])).to(device)
    model.load_state_dict(ckpt["model"])
    opt = make_optimizer(model, lr, path_lr_scale, fresh)
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


def new_model(
    gain_schedule: str, device: torch.device, lr: float, seed: int = 0
) -> tuple[C2FModel, torch.optim.Adam, Progress]:
    """A model trained from scratch, with its optimiser and an empty progress record."""
    model = C2FModel(ModelConfig(gain_schedule=gain_schedule)).to(device)
    model.project_gains()
    return model, make_optimizer(model, lr), Progress(seed=seed)
