"""lab/wavelet_ctx.py: the pyramid inverts exactly, the discretised Laplacians are
distributions, the bin means stay inside their bins, and the context model is
decodable: no spread depends on a coefficient coded at or after it."""

from __future__ import annotations

import math

import pytest
import torch
from wavelet_ctx import (
    CHROMA,
    LEVELS,
    LUMA,
    PyramidContext,
    bin_mean,
    laplace_bits,
    laplace_bits_mean,
    pyramid,
    reconstruct,
    unpyramid,
)


def test_the_pyramid_inverts() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 192)
    ll, details = pyramid(x)
    assert ll.shape == (2, 3, 2, 3)
    assert [d.shape[2] for d in details] == [64, 32, 16, 8, 4, 2]
    assert torch.allclose(unpyramid(ll, details), x, atol=1e-5)


@pytest.mark.parametrize("spread", [0.04, 0.3, 1.0, 7.0, 60.0])
def test_the_laplacian_is_a_distribution(spread: float) -> None:
    q = torch.arange(-4000, 4001, dtype=torch.float64)
    total = torch.exp2(-laplace_bits(q, torch.full_like(q, spread))).sum()
    assert abs(float(total) - 1.0) < 1e-6
    shifted = torch.exp2(-laplace_bits_mean(q, torch.tensor(2.3), torch.tensor(spread))).sum()
    assert abs(float(shifted) - 1.0) < 1e-5  # each of the 8,001 bins floored at 1e-9


def test_bin_means_stay_in_their_bins_and_shrink_toward_zero() -> None:
    q = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0])
    for spread in (0.05, 0.5, 5.0, 500.0):
        for deadzone in (0.0, 0.15):
            r = bin_mean(q, torch.full_like(q, spread), deadzone)
            assert r[2] == 0
            lo, hi = q.abs() - 0.5 + deadzone, q.abs() + 0.5 + deadzone
            nz = q != 0
            assert bool(((r.abs() >= lo - 1e-6) & (r.abs() <= hi + 1e-6))[nz].all())
            assert bool((torch.sign(r[nz]) == torch.sign(q[nz])).all())
    # a wide spread is flat over a bin: its mean is the bin's middle
    wide = bin_mean(torch.tensor([2.0]), torch.tensor([1e4]))
    assert math.isclose(float(wide), 2.0, abs_tol=1e-3)


def _perturbed(
    model: PyramidContext,
    x: torch.Tensor,
    level: int,
    where: tuple[int, int],
    channels: list[int] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    ll, details = pyramid(x)
    step = torch.tensor([0.05])
    base = model.code(ll, details, step)[3]
    changed = [d.clone() for d in details]
    changed[level - 1][0, channels or list(range(9)), where[0], where[1]] += 3.0
    return base, model.code(ll, changed, step)[3]


def _lively(colour: bool) -> PyramidContext:
    torch.manual_seed(0)
    model = PyramidContext(colour=colour)
    with torch.no_grad():
        for p in model.parameters():  # an untrained model is constant: make it look
            p.add_(0.1 * torch.randn_like(p))
    return model


def _passes(colour: bool) -> list[tuple[list[int], bool]]:
    """A level's coding order: (channels, anchors or not) per pass."""
    if colour:
        return [(LUMA, True), (LUMA, False), (CHROMA, True), (CHROMA, False)]
    return [(list(range(9)), True), (list(range(9)), False)]


@torch.no_grad()
@pytest.mark.parametrize("colour", [False, True])
def test_no_spread_depends_on_what_is_coded_at_or_after_it(colour: bool) -> None:
    model = _lively(colour)
    x = torch.rand(1, 3, 128, 128)
    level, i = 3, 2  # 16 x 16 at this size; (5, 5) is an anchor, (5, 6) not
    anchors = (torch.arange(16).view(-1, 1) + torch.arange(16).view(1, -1)) % 2 == 0
    passes = _passes(colour)
    for k, (channels, anchor) in enumerate(passes):
        before, after = _perturbed(model, x, level, (5, 5) if anchor else (5, 6), channels)
        for coarser in range(i + 1, LEVELS):  # coded earlier: untouched
            assert torch.equal(before[coarser], after[coarser])
        for chs, anc in passes[: k + 1]:  # this pass and those before it: untouched
            where = anchors if anc else ~anchors
            assert torch.equal(before[i][0][chs][:, where], after[i][0][chs][:, where]), (k, chs)
        later = passes[k + 1 :]
        if later:  # the next pass sees it
            chs, anc = later[0]
            where = anchors if anc else ~anchors
            assert not torch.equal(before[i][0][chs][:, where], after[i][0][chs][:, where])
        assert not torch.equal(before[i - 1], after[i - 1]), "the finer level should see it"


def test_reconstruction_without_quantisation_loss_is_the_image() -> None:
    x = torch.rand(1, 3, 64, 64)
    ll, details = pyramid(x)
    step = torch.tensor([1e-4])
    _, q_ll, qs, spreads = PyramidContext().code(ll, details, step)
    assert torch.allclose(reconstruct(q_ll, qs, spreads, step), x, atol=1e-3)
