"""A two-layer synthesis started at the best linear decoder of a trained analysis.

Put in place of the line's synthesis, the two-layer one (lab/shallow.py) starts from
nothing and spends its first hours learning what a linear map could be solved for: 15
CPU-minutes of training it alone reached 27.6 dB at level 3.5 where the line's own
decoder gives 30.2. Here its linear path is solved for instead, by least squares over
training crops at every level, and its non-linear path starts silent (zero weights, so
nothing the linear start does is lost; after AuxT's disentangling, Li et al., ICLR 2025).

The linear path is `up2(res1(v) + hyper_up(h2))`. With `up2` set to depth-to-space
(kernel 6, stride 2: only the taps that put each of its 12 channels on one pixel of a
2 x 2 block), each output pixel is a linear function of the y and h2 positions the
kernel-12 stride-8 maps reach, 1 or 2 of them per axis depending on the pixel's phase
in its 8 x 8 block of the half-resolution grid. Every phase is its own least-squares
problem; they share only the bias, set to the phases' mean intercept.
"""

from __future__ import annotations

import torch
from shallow import ShallowC2F
from torch import Tensor

from c2f_format.train.data import CropSampler

STRIDE = 8  # res1 / hyper_up: 1/16 -> 1/2
PAD = 2  # their padding: output o = STRIDE * i - PAD + k
RIDGE = 1e-4  # relative to the mean diagonal of the normal equations


def neighbours(phase: int) -> list[tuple[int, int]]:
    """(offset of the latent position, kernel tap) for the half-resolution rows of one
    phase: row 8q + phase reads latent rows q + offset through tap k = phase + 2 - 8 offset."""
    out = []
    for d in (-1, 0, 1):
        k = phase + PAD - STRIDE * d
        if 0 <= k < 12:
            out.append((d, k))
    return out


def _capture(model: ShallowC2F, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
    """(y_hat * inv_gain, h2) as the synthesis receives them, latents rounded."""
    seen: dict[str, Tensor] = {}

    def grab(y_hat: Tensor, inv_gain: Tensor, h2: Tensor, *_: object, **__: object) -> Tensor:
        seen["v"] = y_hat * inv_gain.view(-1, model.config.m, 1, 1)
        seen["h2"] = h2
        return torch.zeros_like(x)

    real = model.synthesis
    model.synthesis = grab  # type: ignore[method-assign]
    try:
        model(x, level)
    finally:
        model.synthesis = real  # type: ignore[method-assign]
    return seen["v"].float(), seen["h2"].float()


def _features(v: Tensor, h2: Tensor, ry: int, rx: int) -> Tensor:
    """Rows (every latent position of every crop) x features (the latents each pixel of
    phase (ry, rx) reads, then 1) for one phase."""
    vp = torch.nn.functional.pad(torch.cat([v, h2], 1), (1, 1, 1, 1))
    h, w = v.shape[-2:]
    parts = [
        vp[:, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        for dy, _ in neighbours(ry)
        for dx, _ in neighbours(rx)
    ]
    f = torch.cat(parts, 1).permute(0, 2, 3, 1).reshape(-1, len(parts) * vp.shape[1])
    return torch.cat([f, torch.ones(f.shape[0], 1)], 1)


def _targets(x: Tensor, ry: int, rx: int) -> Tensor:
    """The 12 values (3 colours x the 2 x 2 pixels) at half-resolution phase (ry, rx),
    channel c * 4 + 2 ay + ax as `up2` is set to read them."""
    n, _, hh, ww = x.shape
    blocks = x.reshape(n, 3, hh // 2, 2, ww // 2, 2).permute(0, 1, 3, 5, 2, 4)
    half = blocks.reshape(n, 12, hh // 2, ww // 2)[:, :, ry::STRIDE, rx::STRIDE]
    return half.permute(0, 2, 3, 1).reshape(-1, 12)


@torch.no_grad()
def linear_start(model: ShallowC2F, sampler: CropSampler, batches: int, batch: int = 4) -> str:
    """Solve the two-layer synthesis' linear path for the model's analysis (levels drawn
    uniformly over the trained range, as training draws them) and silence its
    non-linear path. Returns a one-line report."""
    if model.kind != "two-layer":
        raise ValueError("the linear start is for the two-layer synthesis")
    was_training = model.training
    model.eval()
    top = len(model.config.lambdas) - 1
    gram: dict[tuple[int, int], Tensor] = {}
    cross: dict[tuple[int, int], Tensor] = {}
    for _ in range(batches):
        x = sampler.batch(batch)
        v, h2 = _capture(model, x, torch.rand(batch) * top)
        for ry in range(STRIDE):
            for rx in range(STRIDE):
                f, t = _features(v, h2, ry, rx), _targets(x, ry, rx)
                key = (ry, rx)
                gram[key] = gram.get(key, 0) + (f.T @ f).double()
                cross[key] = cross.get(key, 0) + (f.T @ t).double()
    m, c2 = model.config.m, model.config.h2
    res = torch.zeros_like(model.res1.weight)  # [m, hidden, 12, 12]: 12 channels used
    hyp = torch.zeros_like(model.hyper_up.weight)  # [h2, hidden, 12, 12]
    intercepts = []
    for (ry, rx), a in gram.items():
        ridge = RIDGE * a.diagonal().mean()
        sol = torch.linalg.solve(a + ridge * torch.eye(a.shape[0], dtype=a.dtype), cross[(ry, rx)])
        sol = sol.float()
        intercepts.append(sol[-1])
        at = 0
        for _, ky in neighbours(ry):
            for _, kx in neighbours(rx):
                res[:, :12, ky, kx] = sol[at : at + m]
                hyp[:, :12, ky, kx] = sol[at + m : at + m + c2]
                at += m + c2
    model.res1.weight.copy_(res)
    model.hyper_up.weight.copy_(hyp)
    assert model.res1.bias is not None and model.hyper_up.bias is not None
    model.res1.bias.zero_()
    model.res1.bias[:12] = torch.stack(intercepts).mean(0)
    model.hyper_up.bias.zero_()
    d2s = torch.zeros_like(model.up2.weight)  # [hidden, 3, 6, 6]
    for c in range(3):
        for ay in range(2):
            for ax in range(2):
                d2s[c * 4 + ay * 2 + ax, c, ay + PAD, ax + PAD] = 1.0
    model.up2.weight.copy_(d2s)
    assert model.up2.bias is not None
    model.up2.bias.zero_()
    model.up1.weight.zero_()
    assert model.up1.bias is not None
    model.up1.bias.zero_()
    model.train(was_training)
    rows = batches * batch * (sampler.crop // 16) ** 2
    return f"least squares over {rows} latent positions a phase, {len(gram)} phases"
