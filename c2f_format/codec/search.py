"""The encoder's search: `effort` 1..9 refines each image's latent y against the decoder.

The analysis transform predicts y in one pass, trained on average over many crops; for
one given image a better y usually exists. With the hyper latents fixed (so the means
and scale indices the decoder will derive are known exactly), the encoder looks for the
y whose rounded residuals cost the fewest bits plus lambda * 255^2 * MSE of what the
decoder's synthesis makes of them, lambda being the trade-off the model was trained for
at the stream's quality. It searches by stochastic Gumbel annealing (SGA: Yang, Bamler,
Mandt, NeurIPS 2020): each residual is rounded down or up at random, the nearer integer
the likelier, through a Gumbel-softmax relaxation whose temperature falls over the
iterations, so the search moves from a smooth problem to the discrete one it must
solve. Only the encoder changes: the stream is an ordinary v1 stream.

The work is cut into latent tiles with a halo, one after the other, so memory stays
bounded on large images; the distortion is measured on the image's own pixels only (the
padding to a multiple of 64 costs no distortion, so the search spends no bits on it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..format.bitstream import LATENT_FACTOR
from ..networks.model import gaussian_bits
from .tiling import synthesis_tiles

SEARCH_TILE = 64  # latent units per search tile side (1024 pixels), halo as the decoder's
TAU_MAX = 0.5  # the paper's initial temperature
# Adam's step on y (units of one quantisation step), larger for short searches
LR_LONG, LR_SHORT = 5e-3, 3e-2

# the synthesis of one latent window: (y_hat window, window) -> pixels of that window
Synthesis = Callable[[Tensor, tuple[int, int, int, int]], Tensor]


def temperature(step: int, iterations: int) -> float:
    """SGA's schedule, stretched to `iterations`: held at TAU_MAX for the first 35%, then
    falling exponentially to about 0.14 (the paper: 0.5 exp(-0.001 (t - 700)) over 2,000
    iterations)."""
    t0 = 0.35 * iterations
    return min(TAU_MAX, TAU_MAX * math.exp(-(2.0 / iterations) * (step - t0)))


def sga_round(v: Tensor, tau: float, generator: torch.Generator | None = None) -> Tensor:
    """A relaxed random rounding of `v`: floor(v) + w, w in (0, 1) drawn from a
    Gumbel-softmax over {down, up} whose logits favour the nearer integer."""
    down = torch.floor(v)
    eps = 1e-5
    r_down = (v - down).clamp(eps, 1 - eps)
    logits = torch.stack([-torch.atanh(r_down), -torch.atanh(1 - r_down)]) / tau
    uniform = torch.rand(logits.shape, generator=generator, device=v.device, dtype=v.dtype)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0)))
    w = torch.softmax((logits + gumbel) / tau, dim=0)
    return down + w[1]


def refine(
    y: Tensor,
    mean: Tensor,
    scale: Tensor,
    image: Tensor,
    synthesis: Synthesis,
    lam: float,
    iterations: int,
    seed: int = 0,
) -> Tensor:
    """The refined y (same shape as `y`, [1, m, rows, cols]) for `image` ([1, 3, h, w]
    in [0, 1], unpadded: the latent grid covers it, padded to 16 x rows by 16 x cols).

    `mean` is y's predicted mean and `scale` its standard deviation, both fixed: the
    residual y - mean is what the encoder rounds and codes. The result's residuals are
    the ones to round (they sit near integers once the temperature is low).
    """
    if iterations <= 0:
        return y
    height, width = image.shape[2], image.shape[3]
    rows, cols = y.shape[2], y.shape[3]
    pixels = float(height * width)
    # a generator of its own: the same stream for the same image whatever else runs
    generator = torch.Generator(device=y.device)
    generator.manual_seed(seed)
    v_all = (y - mean).detach().clone()
    lr = LR_LONG if iterations >= 1000 else LR_SHORT
    for t in synthesis_tiles(rows, cols, height, width, tile=SEARCH_TILE):
        a0, a1, b0, b1 = t.window
        # the tile's own latent units inside its window (the rest is context)
        inner = torch.zeros((1, 1, a1 - a0, b1 - b0), dtype=torch.bool, device=y.device)
        top, left = t.y // LATENT_FACTOR, t.x // LATENT_FACTOR
        bottom, right = min(rows, top + SEARCH_TILE), min(cols, left + SEARCH_TILE)
        inner[:, :, top - a0 : bottom - a0, left - b0 : right - b0] = True
        mu = mean[:, :, a0:a1, b0:b1]
        sigma = scale[:, :, a0:a1, b0:b1]
        target = image[:, :, t.y : t.y + t.height, t.x : t.x + t.width]
        v = v_all[:, :, a0:a1, b0:b1].clone().requires_grad_(True)
        context = torch.round(v_all[:, :, a0:a1, b0:b1])
        opt = torch.optim.Adam([v], lr=lr)
        for step in range(iterations):
            tau = temperature(step, iterations)
            v_hat = torch.where(inner, sga_round(v, tau, generator), context)
            bits = gaussian_bits(v_hat * inner, torch.zeros_like(v_hat), sigma)
            x = synthesis(v_hat + mu, t.window)
            crop = x[:, :, t.top : t.top + t.height, t.left : t.left + t.width]
            mse_sum = (crop.float() - target).pow(2).sum() / 3.0
            loss = (bits.sum() + lam * 255.0**2 * mse_sum) / pixels
            opt.zero_grad(set_to_none=True)
            loss.backward()
            assert v.grad is not None
            v.grad.mul_(inner)
            opt.step()
        with torch.no_grad():
            window = v_all[:, :, a0:a1, b0:b1]
            window.copy_(torch.where(inner, v.detach(), window))
    return v_all + mean
