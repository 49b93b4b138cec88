"""Training: resumable, CPU or CUDA, one model for every rate.

    python -m c2f_format.train --data ../shared/data/train --val ../shared/data/val \
        --run runs/main --iters 20000

Each image in a batch gets a random continuous level in [0, levels-1]; its lambda is
interpolated geometrically between the trained lambdas, so the gain interpolation that
`quality` relies on is trained directly. The last part of the run (`--int-from`)
fake-quantises the integer networks so the exported integer form loses nothing.
A checkpoint (model, optimiser, step, RNG) is written every `--ckpt-every` steps, and a
run started again with the same `--run` resumes from it, on whichever device is present.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .model import C2FModel, ModelConfig
from .progress import format_duration
from .weights import publish_weights, trainable_model

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


def load_images(folder: Path, max_side: int = 1024) -> list[np.ndarray]:
    """All images under `folder` as RGB uint8 arrays; large ones are halved until the
    longer side is at most `max_side` (downscaling removes noise and makes photos look
    more like the 512-768 px benchmark images)."""
    images = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        with Image.open(path) as src:
            rgb = src.convert("RGB")
        while max(rgb.size) > max_side:
            rgb = rgb.reduce(2)
        images.append(np.asarray(rgb))
    if not images:
        raise SystemExit(f"no images found under {folder}")
    return images


def pack_images(folders: list[Path], out: Path, quality: int = 95) -> int:
    """Write the training images, downscaled as `load_images` does, as JPEG (4:4:4) into
    `out`, so that the whole set travels with the code to a GPU machine (about a third
    of the PNG size; q95 errors sit near 45 dB, far above the rates trained). Returns
    the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for n, folder in enumerate(folders):
        for i, arr in enumerate(load_images(folder)):
            path = out / f"{n:02d}-{folder.name}-{i:04d}.jpg"
            Image.fromarray(arr).save(path, quality=quality, subsampling=0)
            total += path.stat().st_size
    return total


class CropSampler:
    def __init__(self, images: list[np.ndarray], crop: int, seed: int) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
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


GAIN_LR_SCALE = 10.0  # gains are few and multiplicative: they get a larger step


def make_optimizer(model: C2FModel, lr: float) -> torch.optim.Adam:
    gains = [model.gain, model.inv_gain]
    gain_ids = {id(p) for p in gains}
    rest = [p for p in model.parameters() if id(p) not in gain_ids]
    return torch.optim.Adam(
        [{"params": rest, "lr_scale": 1.0}, {"params": gains, "lr_scale": GAIN_LR_SCALE}],
        lr=lr,
    )


def lambdas_at(model: C2FModel, level: torch.Tensor) -> torch.Tensor:
    lam = torch.tensor(model.config.lambdas, dtype=torch.float32).log()
    lo = level.floor().long().clamp(max=len(lam) - 2)
    t = level - lo
    return torch.exp(lam[lo] * (1 - t) + lam[lo + 1] * t)


def rd_loss(model: C2FModel, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
    out = model(x, level)
    pixels = x.shape[2] * x.shape[3]
    mse = (out["x_hat"] - x).pow(2).mean(dim=(1, 2, 3))
    target = F.avg_pool2d(x, 8)
    mse_preview = (out["preview"] - target).pow(2).mean(dim=(1, 2, 3))
    bpp = (out["bits_y"] + out["bits_z"]) / pixels
    lam = lambdas_at(model, level).to(x.device) * 255.0**2
    loss = (bpp + lam * (mse + 0.1 * mse_preview)).mean()
    return {
        "loss": loss,
        "bpp": bpp.mean(),
        "psnr": (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean(),
        "psnr_preview": (10 * torch.log10(1.0 / mse_preview.clamp_min(1e-10))).mean(),
    }


@torch.no_grad()
def validate(model: C2FModel, images: list[torch.Tensor], device: torch.device) -> str:
    model.eval()
    parts = []
    for level in (0.0, (len(model.config.lambdas) - 1) / 2, len(model.config.lambdas) - 1.0):
        bpp, psnr = [], []
        for x in images:
            x = x.to(device)
            stats = rd_loss(model, x, torch.full((1,), level, device=device))
            bpp.append(stats["bpp"].item())
            psnr.append(stats["psnr"].item())
        parts.append(f"L{level:.1f}: {np.mean(bpp):.3f} bpp {np.mean(psnr):.2f} dB")
    model.train()
    return " | ".join(parts)


def calibrate(model: C2FModel, val: Path | None, count: int = 8) -> None:
    """Set the model's quality range from the real codec on validation images."""
    if val is None:
        print("no --val folder: quality spans all trained levels", flush=True)
        return
    from .calibration import monotone_range, rd_by_level

    rows = rd_by_level(model, load_images(val)[:count])
    for level, bpp, psnr in rows:
        print(f"level {level:5.2f}: {bpp:.3f} bpp {psnr:.2f} dB", flush=True)
    model.config.quality_levels = monotone_range(rows)
    print(f"quality 1..100 -> levels {model.config.quality_levels}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, nargs="+", help="folders of training images")
    ap.add_argument("--val", type=Path)
    ap.add_argument("--run", type=Path, default=Path("runs/main"))
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument(
        "--budget-minutes",
        type=float,
        default=0.0,
        help="stop after this much training time (all resumed runs together); the lr "
        "decay and integer phase then follow the time fraction when it runs ahead",
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument(
        "--decay-from", type=float, default=0.75, help="fraction of iters; lr x0.1 after"
    )
    ap.add_argument(
        "--int-from", type=float, default=0.9, help="fraction of iters; fake-quant after"
    )
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--val-every", type=int, default=2000)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--export", type=Path, help="write the shipped weights file here at the end")
    ap.add_argument(
        "--export-only",
        action="store_true",
        help="export the run's checkpoint to --export and stop (no training)",
    )
    ap.add_argument(
        "--init-from",
        type=Path,
        help="start a new run (no checkpoint in --run yet) from a shipped weights file, "
        "e.g. weights/c2f-v1.npz, instead of from scratch",
    )
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--pack",
        type=Path,
        help="write --data, downscaled, as JPEG q95 into this folder (a compact set for a "
        "GPU machine) and stop",
    )
    args = ap.parse_args(argv)
    if args.pack:
        if not args.data:
            ap.error("--pack needs --data")
        if args.pack.exists() and any(args.pack.iterdir()):
            ap.error(f"--pack folder {args.pack} is not empty")
        size = pack_images(args.data, args.pack)
        print(f"packed {len(list(args.pack.iterdir()))} images, {size / 2**20:.1f} MiB")
        return 0

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.run / "checkpoint.pt"

    if args.init_from and not ckpt_path.exists():
        model = trainable_model(args.init_from).to(device)
        model.project_gains()
        print(f"starting from {args.init_from}", flush=True)
    else:
        if args.init_from:
            print(f"{ckpt_path} exists: resuming it, --init-from ignored", flush=True)
        model = C2FModel(ModelConfig()).to(device)
    opt = make_optimizer(model, args.lr)
    step = 0
    trained_seconds = 0.0
    seed = args.seed
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model = C2FModel(ModelConfig(**ckpt["config"])).to(device)
        model.load_state_dict(ckpt["model"])
        opt = make_optimizer(model, args.lr)
        try:
            opt.load_state_dict(ckpt["optimizer"])
        except ValueError as exc:  # parameter groups changed since the checkpoint
            print(f"optimizer state not restored ({exc}); starting it afresh", flush=True)
        step = int(ckpt["step"])
        trained_seconds = float(ckpt.get("seconds", 0.0))
        seed = int(ckpt["seed"]) + step
        print(f"resumed {ckpt_path} at step {step}", flush=True)
    torch.manual_seed(seed)
    random.seed(seed)
    if args.export_only:
        if not args.export:
            ap.error("--export-only needs --export")
        model.set_fake_quant(True)
        calibrate(model.cpu(), args.val)
        model_id = publish_weights(model.cpu(), args.export)
        print(f"exported step {step} to {args.export} (model {model_id.hex()})")
        return 0

    if not args.data:
        ap.error("--data is required for training")
    train_images = [im for folder in args.data for im in load_images(folder)]
    sampler = CropSampler(train_images, args.crop, seed)
    val_images = []
    if args.val:
        for im in load_images(args.val)[:8]:
            h, w = (min(256, s) // 64 * 64 for s in im.shape[:2])
            t = torch.from_numpy(im[:h, :w].copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
            val_images.append(t)
    print(
        f"device {device}, {len(sampler.images)} training images, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters",
        flush=True,
    )

    log_path = args.run / "log.csv"
    new_log = not log_path.exists()
    log_file = log_path.open("a", newline="")
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "loss", "bpp", "psnr", "psnr_preview", "lr", "fake_quant", "seconds"])

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        seconds = trained_seconds + time.monotonic() - t_start
        torch.save(
            {
                "config": model.config.to_dict(),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "seed": args.seed,
                "seconds": seconds,
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)

    levels = len(model.config.lambdas)
    window: list[dict[str, float]] = []
    t_start = time.monotonic()
    steps_at_start = step
    budget = args.budget_minutes * 60.0
    while True:
        seconds = trained_seconds + time.monotonic() - t_start
        frac = max(step / args.iters, seconds / budget if budget else 0.0)
        if frac >= 1.0:
            break
        lr = args.lr * (0.1 if frac >= args.decay_from else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        model.set_fake_quant(frac >= args.int_from)
        x = sampler.batch(args.batch).to(device)
        level = torch.rand(args.batch, device=device) * (levels - 1)
        stats = rd_loss(model, x, level)
        opt.zero_grad(set_to_none=True)
        stats["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        model.project_gains()
        step += 1
        window.append({k: v.item() for k, v in stats.items()})
        if step % args.log_every == 0:
            mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            window.clear()
            elapsed = time.monotonic() - t_start
            rate = (step - steps_at_start) / max(elapsed, 1e-9)
            eta = (args.iters - step) / max(rate, 1e-9)
            if budget:
                eta = min(eta, budget - trained_seconds - elapsed)
            print(
                f"step {step}/{args.iters} loss {mean['loss']:.3f} bpp {mean['bpp']:.3f} "
                f"psnr {mean['psnr']:.2f} preview {mean['psnr_preview']:.2f} lr {lr:.1e} "
                f"{'int ' if model.fake_quant else ''}{rate:.2f} it/s eta {format_duration(eta)}",
                flush=True,
            )
            log.writerow(
                [
                    step,
                    mean["loss"],
                    mean["bpp"],
                    mean["psnr"],
                    mean["psnr_preview"],
                    lr,
                    int(model.fake_quant),
                    round(elapsed, 1),
                ]
            )
            log_file.flush()
        if step % args.ckpt_every == 0:
            save_checkpoint()
        if val_images and step % args.val_every == 0:
            print(f"validation step {step}: {validate(model, val_images, device)}", flush=True)
    save_checkpoint()
    if val_images:
        print(f"validation step {step}: {validate(model, val_images, device)}", flush=True)
    log_file.close()
    if args.export:
        model.set_fake_quant(True)
        calibrate(model.cpu(), args.val)
        model_id = publish_weights(model.cpu(), args.export)
        print(f"exported {args.export} (model {model_id.hex()})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
