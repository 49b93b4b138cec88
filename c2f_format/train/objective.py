"""The objective: the rate-distortion loss at continuous levels (lambda interpolated
geometrically between the trained ones, so `quality`'s gain interpolation is trained
directly), and its measure on held-out crops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..codec.metrics import psnr_from_mse
from ..format.constants import PREVIEW_SCALE
from ..networks.model import lambdas_at


class _Config(Protocol):
    @property
    def lambdas(self) -> list[float]: ...


class Trainable(Protocol):
    """What the loop trains: `C2FModel`, or another model written to be trained beside it
    on the same objective (lab/yardstick.py: Ballé 2018's hyperprior), which returns the
    same dict: `x_hat`, `bits_y`, `bits_z` (and optionally `preview`) per image."""

    training: bool

    @property
    def config(self) -> _Config: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # (x, level) -> dict

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


def rd_loss(
    model: Trainable, x: torch.Tensor, level: torch.Tensor, balance: float = 0.0
) -> dict[str, torch.Tensor]:
    """bpp + lambda * 255^2 * MSE (CompressAI's convention), per image, averaged; the
    preview head, where the model has one, learns at a tenth of that weight.

    With `balance` p > 0 each image's cost is weighted by (lambda_mid / lambda)^p, lambda_mid
    the trained range's geometric middle: J grows about as sqrt(lambda) across the levels
    (tenfold over the line's eight), so unweighted the highest levels steer the shared
    weights and the low ones drift; p = 0.5 gives every level about the same pull. The
    optimum at each level is unchanged, only the levels' share of the gradient."""
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
    cost = bpp + lam * distortion
    if balance:
        lambdas = model.config.lambdas
        middle = (min(lambdas) * max(lambdas)) ** 0.5
        cost = cost * (middle * 255.0**2 / lam) ** balance
    stats["loss"] = cost.mean()
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
