"""Training the wavelet model's context model: `python -m c2f_format.train.context_trainer`.

Maximum likelihood of the quantised wavelet coefficients of random crops at random step
codes (log-uniform steps), the loss the mean of log bits per image so that every rate
counts alike; Adam. Nothing upstream of the context model learns, so one CPU-minute buys
hundreds of steps. The run folder holds `state.pt` (model, optimiser, steps, CPU
seconds, random state), `log.csv` and `curve.json` (held-out scorings: bits of real
coded units and PSNR of the decoder's exact output); the same command resumes.
`--fake-quant-from` switches the integer layers to fake quantisation after that many
CPU-minutes, so the exported integer form codes as the float form trained.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..codec.metrics import bd_rate
from ..codec.pyramid_coding import encode_pyramid
from ..format.entropy import TOTAL, EntropyTables
from ..format.quantiser import table_spreads
from ..networks.context_model import TrainableContextModel
from ..networks.pyramid_weights import pyramid_arrays, save_pyramid
from .data import CropSampler, load_images, validation_crops

STEP_UNIT = 255 * 64  # coefficient units of a step of 1.0 in pixels in [0, 1]
TRAIN_STEPS = (0.015, 0.6)  # the steps trained, pixels in [0, 1]
QUALITY_STEPS = (0.6, 0.035)  # quality 1 and 100: about 0.13 and 2.3 bpp on Kodak
SCORE_STEPS = [0.03, 0.045, 0.07, 0.1, 0.15, 0.22, 0.33, 0.5, 0.75]
TAIL = 10.0  # a table covers +-10 spreads (the tail beyond: e**-10) and escapes the rest


def step_code(step: float) -> int:
    """The step code nearest a step given for pixels in [0, 1]."""
    return round(32 * math.log2(step * STEP_UNIT))


def laplace_tables() -> EntropyTables:
    """The 64 integer tables: the discretised zero-mean Laplacian at each table's spread
    (`quantiser.table_spreads`) over -R..R, R = ceil(TAIL * spread), and an escape entry,
    as c2f's entropy coder takes them (frequencies >= 1 summing to 2**24)."""
    rows = []
    for b in table_spreads():
        r = max(1, math.ceil(TAIL * b))
        v = np.arange(-r, r + 1, dtype=np.float64)

        probs = np.append(
            _laplace_cdf(v + 0.5, b) - _laplace_cdf(v - 0.5, b), math.exp(-(r + 0.5) / b)
        )
        freq = 1 + np.floor(probs / probs.sum() * (TOTAL - probs.size)).astype(np.int64)
        freq[r] += TOTAL - int(freq.sum())
        rows.append(freq)
    packed = np.zeros((len(rows), max(f.size for f in rows)), dtype=np.int32)
    for i, f in enumerate(rows):
        packed[i, : f.size] = f
    return EntropyTables(packed, np.array([(f.size - 2) // 2 for f in rows], dtype=np.int32))


def _laplace_cdf(t: np.ndarray, b: float) -> np.ndarray:
    return np.where(t >= 0, 1 - 0.5 * np.exp(-np.abs(t) / b), 0.5 * np.exp(-np.abs(t) / b))


def export_weights(model: TrainableContextModel, path: Path, codes: tuple[int, int]) -> bytes:
    """Write `model`'s weights file and list it, newest first, in `index.json` beside it
    (the folder is then a weights set for $C2F_WEIGHTS_DIR); returns the model id."""
    arrays = pyramid_arrays(model.integer_layers(), model.export(), laplace_tables(), codes)
    model_id = save_pyramid(arrays, path)
    index_path = path.parent / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"models": []}
    models = [m for m in index["models"] if m["file"] != path.name]
    index["models"] = [{"file": path.name, "model_id": model_id.hex()}, *models]
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {path} (model {model_id.hex()}), quality codes {codes}")
    return model_id


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Crops in [0, 1] -> uint8 [B, 3, H, W], cut to multiples of 64."""
    h, w = x.shape[-2] // 64 * 64, x.shape[-1] // 64 * 64
    return np.ascontiguousarray((x[..., :h, :w] * 255).round().clamp(0, 255).byte().numpy())


def score(model: TrainableContextModel, crops: list[np.ndarray]) -> list[dict[str, float]]:
    """Mean bpp of real coded units and mean PSNR of the decoder's output on `crops`, at
    each of SCORE_STEPS, with the exported integer model."""
    exact, tables = model.export(), laplace_tables()
    points = []
    for st in SCORE_STEPS:
        bpp, psnr = [], []
        for x in crops:
            units, out = encode_pyramid(x, step_code(st), exact, tables)
            bpp.append(8 * sum(len(u) for u in units) / (x.shape[1] * x.shape[2]))
            mse = float(((out.astype(np.float64) - x) ** 2).mean())
            psnr.append(10 * math.log10(255**2 / max(mse, 1e-10)))
        points.append({"step": st, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(psnr))})
    return sorted(points, key=lambda p: p["bpp"])


def bd_against(points: list[dict[str, float]], peers: Path | None) -> dict[str, float]:
    if peers is None or not peers.exists():
        return {}
    mine = [(p["bpp"], p["psnr"]) for p in points]
    out = {}
    for name, curve in json.loads(peers.read_text())["curves"].items():
        raw = curve["points"] if isinstance(curve, dict) else curve
        theirs = [(p["bpp"], p["psnr"]) if isinstance(p, dict) else (p[0], p[1]) for p in raw]
        out[name] = round(bd_rate(theirs, mine), 1)  # negative: c2f needs fewer bits
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="runs/pack", help="packed training images")
    p.add_argument("--val", default="../shared/data/val", help="held-out images")
    p.add_argument("--run", required=True, help="run folder (resumed if it holds a state)")
    p.add_argument("--minutes", type=float, required=True, help="CPU-minutes in all")
    p.add_argument("--score-minutes", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--bf16", action="store_true", help="the networks in bfloat16 autocast")
    p.add_argument("--fake-quant-from", type=float, default=math.inf, help="CPU-minutes")
    p.add_argument("--peers", default="", help="JSON of peers' curves on the same crops")
    p.add_argument("--export", default="", help="write the run's weights file here and stop")
    p.add_argument(
        "--quality-steps",
        type=float,
        nargs=2,
        default=QUALITY_STEPS,
        help="the steps (pixels in [0, 1]) of quality 1 and 100",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    model = TrainableContextModel()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    state_path, curve_path, log_path = run / "state.pt", run / "curve.json", run / "log.csv"
    steps, cpu = 0, 0.0
    rng = np.random.default_rng(0)
    curve: list[dict[str, Any]] = []
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        steps, cpu = st["steps"], st["cpu"]
        rng.bit_generator.state = st["rng"]
        curve = json.loads(curve_path.read_text()) if curve_path.exists() else []
        for g in opt.param_groups:
            g["lr"] = args.lr
    if args.export:
        codes = (step_code(args.quality_steps[0]), step_code(args.quality_steps[1]))
        export_weights(model, Path(args.export), codes)
        return 0
    sampler = CropSampler(load_images(Path(args.data)), args.crop, seed=steps + 1)
    crops = [to_uint8(c)[0] for c in validation_crops(Path(args.val), 8, 256)]
    peers = Path(args.peers) if args.peers else None
    if steps == 0:
        model.init_from_data(to_uint8(sampler.batch(16)))
    u_lo, u_hi = step_code(TRAIN_STEPS[0]), step_code(TRAIN_STEPS[1])

    def save() -> None:
        torch.save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "steps": steps,
                "cpu": cpu,
                "rng": rng.bit_generator.state,
            },
            state_path,
        )

    def scoring() -> None:
        pts = score(model, crops)
        bd = bd_against(pts, peers)
        curve.append({"cpu_minutes": round(cpu / 60, 2), "steps": steps, "points": pts, "bd": bd})
        curve_path.write_text(json.dumps(curve, indent=1) + "\n")
        summary = ", ".join(f"{q['bpp']:.3f}/{q['psnr']:.2f}" for q in pts)
        print(f"scored at {cpu / 60:.1f} CPU-min, step {steps}: {summary} {bd}", flush=True)

    if not curve:
        scoring()
    new_log = not log_path.exists()
    with log_path.open("a", newline="") as f:
        log = csv.writer(f)
        if new_log:
            log.writerow(["step", "cpu_minutes", "bpp", "lr", "fake_quant"])
        t0, base_cpu = time.process_time(), cpu
        next_score = cpu + args.score_minutes * 60
        recent: list[float] = []
        while cpu < args.minutes * 60:
            fake = cpu / 60 >= args.fake_quant_from
            model.set_fake_quant(fake)
            x = to_uint8(sampler.batch(args.batch))
            u = rng.integers(u_lo, u_hi + 1, size=args.batch)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                bits = model(x, u)
            bpp = bits / (x.shape[2] * x.shape[3])
            loss = torch.log(bpp).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            cpu = base_cpu + time.process_time() - t0
            recent = [*recent, float(bpp.detach().mean())][-100:]
            if steps % 100 == 0:
                log.writerow(
                    [
                        steps,
                        round(cpu / 60, 3),
                        round(sum(recent) / len(recent), 4),
                        args.lr,
                        int(fake),
                    ]
                )
                f.flush()
                print(
                    f"step {steps} cpu {cpu / 60:.1f} min bpp {sum(recent) / len(recent):.3f}",
                    flush=True,
                )
                save()
            if cpu >= next_score or cpu >= args.minutes * 60:
                save()
                scoring()
                next_score = cpu + args.score_minutes * 60
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
