"""Round 17: the wavelet line's training step, pixels per CPU-second, by setting.

    python lab/context_step_speed.py --steps 30

The line's network (`TrainableContextModel`, from lab/training-context/state.pt) at its
batch (4 x 192^2), fake-quantised as the line trains now, one thread: float32 against
bfloat16 autocast, channels-last input, and `torch.compile`. The median step of
`--steps` after three warm-up steps.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from c2f_format.networks.context_model import TrainableContextModel
from c2f_format.train.context_trainer import TRAIN_STEPS, step_code, to_uint8
from c2f_format.train.data import CropSampler, load_images

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    state = torch.load(ROOT / "lab" / "training-context" / "state.pt", weights_only=False)
    sampler = CropSampler(load_images(ROOT / "runs" / "pack"), 192, seed=1)
    rng = np.random.default_rng(0)
    u_lo, u_hi = step_code(TRAIN_STEPS[0]), step_code(TRAIN_STEPS[1])
    batches = [(to_uint8(sampler.batch(4)), rng.integers(u_lo, u_hi + 1, size=4)) for _ in range(8)]

    def runner(bf16: bool, compiled: bool) -> Callable[[int], None]:
        model = TrainableContextModel()
        model.load_state_dict(state["model"])
        model.set_fake_quant(True)
        opt = torch.optim.Adam(model.parameters(), lr=1e-9)
        forward = torch.compile(model) if compiled else model

        def step(k: int) -> None:
            x, u = batches[k % len(batches)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                bits = forward(x, u)
            loss = torch.log(bits / (x.shape[2] * x.shape[3])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    settings = {"float32": (False, False), "bfloat16 autocast": (True, False)}
    if args.compile:
        settings |= {"float32, compiled": (False, True), "bfloat16, compiled": (True, True)}
    pixels = 4 * 192 * 192
    for name, (bf16, compiled) in settings.items():
        step = runner(bf16, compiled)
        for k in range(3):
            step(k)
        times = []
        for k in range(args.steps):
            t0 = time.process_time()
            step(k)
            times.append(time.process_time() - t0)
        med = float(np.median(times))
        print(f"{name}: {med * 1000:.0f} ms a step, {pixels / med / 1e3:.0f} k pixels per CPU-s")


if __name__ == "__main__":
    main()
