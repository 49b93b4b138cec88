"""A network with linear paths whose start is the best linear transform: hierarchical
principal components of the training images, and only the non-linear stages to learn.

The line's transforms stay near a linear ceiling (lab/training.md, round 2: 16x16 block
PCA gives 30.6 dB with 128 components, 33.2 with 192). A from-scratch network with
linear paths beside its stride-2 stages (layers.LinearDown/Up) can start *at* that
ceiling instead of climbing to it: each analysis path is set to the principal
components of its own input (space-to-depth of the stage before, over training crops),
each synthesis path to the transpose of its analysis twin, the non-linear stages start
at zero output, and each channel's gain so that at the middle level the quantiser step
gives about `TARGET_DB` on a flat spectrum. Then the non-linear stages learn only what
the linear transform cannot do, which is what AuxT (Li et al., ICLR 2025) aims at with
Haar wavelets; here the linear part is the data's own.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from c2f_format.networks.layers import LinearDown, LinearUp, space_to_depth
from c2f_format.networks.model import C2FModel

TARGET_DB = 30.0  # PSNR the middle level's quantiser step aims at, at the start
BLOCKS = 60_000  # 16x16 training blocks the components are estimated from


def training_blocks(images: list[np.ndarray], count: int = BLOCKS, seed: int = 0) -> Tensor:
    """`count` random 16x16 blocks of the images, [count, 3, 16, 16] in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, 16, 16, 3), dtype=np.uint8)
    for i in range(count):
        im = images[rng.integers(len(images))]
        top = rng.integers(im.shape[0] - 15)
        left = rng.integers(im.shape[1] - 15)
        out[i] = im[top : top + 16, left : left + 16]
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def components(x: Tensor, count: int) -> Tensor:
    """The `count` leading eigenvectors of E[v v^T] over the channel vectors of x
    ([N, C, h, w]) as rows [count, C]; where count > C, the rest are zero rows. The
    second moment (not the covariance) keeps the mean in the leading component."""
    v = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double()
    moment = v.T @ v / v.shape[0]
    values, vectors = torch.linalg.eigh(moment)
    order = torch.argsort(values, descending=True)
    basis = vectors[:, order].T.float()
    if count <= basis.shape[0]:
        return basis[:count]
    return torch.cat([basis, torch.zeros(count - basis.shape[0], basis.shape[1])])


@torch.no_grad()
def pca_start(model: C2FModel, images: list[np.ndarray]) -> dict[str, float]:
    """Set `model`'s linear paths and gains as the module docstring says; returns the
    PSNR of the linear transform alone (unquantised) on the blocks it was fitted on."""
    if not model.config.linear_paths:
        raise ValueError("the model has no linear paths")
    x = training_blocks(images)
    a_paths = cast(list[LinearDown], list(model.a_paths))
    s_paths = cast(list[LinearUp], list(model.s_paths))
    h = x
    for path in a_paths:
        s = space_to_depth(h)
        weight = components(s, path.mix.weight.shape[0])
        path.mix.weight.copy_(weight.view(*weight.shape, 1, 1))
        h = path(h)
    for a_path, s_path in zip(reversed(a_paths), s_paths, strict=True):
        w = a_path.mix.weight[:, :, 0, 0]  # [cout, 4 cin]
        s_path.mix.weight.copy_(w.T.reshape(*w.T.shape, 1, 1))
    # the non-linear stages start silent: their last convolution at zero
    stages = [model.g_a[0], model.g_a[2], model.g_a[4], model.g_a[6]]
    stages += [model.g_s_head[0], model.g_s_tail[0], model.g_s_tail[2], model.g_s_tail[4]]
    stages.append(model.fuse_mix)  # the hyper features join through it: silent too
    for conv in cast(list[nn.Conv2d], stages):
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()
    y = h
    recon = y
    for up in s_paths:
        recon = up(recon)
    mse = float((recon - x).pow(2).mean())
    # a uniform quantiser of step d costs d^2 / 12 per coefficient, and the transform is
    # orthonormal: d = sqrt(12 * mse) for the target at the middle level
    step = math.sqrt(12 * 10 ** (-TARGET_DB / 10))
    levels = model.gain.shape[0]
    lam = torch.tensor(model.config.lambdas).log()
    shape = (0.5 * (lam - lam.mean())).view(-1, 1)
    middle = float(shape[levels // 2 - 1 : levels // 2 + 1].mean())
    base = math.log(1.0 / step) - middle
    model.gain.copy_(torch.exp(base + shape).expand_as(model.gain) - 1e-4)
    model.inv_gain.copy_(torch.exp(-base - shape).expand_as(model.inv_gain) - 1e-4)
    return {"linear_psnr": 10 * math.log10(1.0 / max(mse, 1e-12)), "step": step}
