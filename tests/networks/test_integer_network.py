"""The exact path: integer layers give the same bits under any layout or thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c2f_format.codec.torch_engine import TorchEngine, get_torch_engine, pick_device
from c2f_format.networks.layers import (
    HIDDEN_MAX,
    HIDDEN_STEP,
    IntConv,
    IntegerConvParams,
    exact_conv,
)

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


@pytest.fixture(scope="module")
def codec() -> TorchEngine:
    return get_torch_engine(pick_device("cpu"))


def reference_conv(x: np.ndarray, layer: object) -> np.ndarray:
    """Plain int64 convolution + requantisation, written independently of torch."""
    w = layer.weight.numpy()  # type: ignore[attr-defined]
    cout, _, k, _ = w.shape
    n, _, h, wd = x.shape
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    acc = np.zeros((n, cout, h, wd), dtype=np.int64)
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, :, dy : dy + h, dx : dx + wd]
            acc += np.einsum("oc,nchw->nohw", w[:, :, dy, dx].astype(np.int64), patch)
    acc += layer.bias.numpy().reshape(1, -1, 1, 1)  # type: ignore[attr-defined]
    mult = layer.multiplier.numpy().reshape(1, -1, 1, 1)  # type: ignore[attr-defined]
    shift = layer.shift.numpy().reshape(1, -1, 1, 1)  # type: ignore[attr-defined]
    out = (acc * mult + (np.int64(1) << (shift - 1))) >> shift
    return np.clip(out, layer.out_min, layer.out_max)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["h_s2.expand", "h_s2.mix", "p3.body", "p3.mean", "p3.scale"])
def test_exact_conv_equals_integer_reference(codec: TorchEngine, name: str) -> None:
    layer = codec.layers[name]
    rng = np.random.default_rng(0)
    cin = layer.weight.shape[1]
    hi = 20000 if name.endswith("expand") else HIDDEN_MAX
    x = rng.integers(-hi if hi > HIDDEN_MAX else 0, hi + 1, size=(2, cin, 9, 7))
    got = exact_conv(torch.from_numpy(x), layer).numpy()
    assert np.array_equal(got, reference_conv(x, layer))


def test_worst_case_accumulator_is_exact() -> None:
    """A layer at every bound of spec 6.3 (|w| = 2047, fan-in 4096, |x| just under 2^20,
    |b| = 2^40, M = 2^16 - 1, S = 40) against arbitrary-precision Python integers."""
    cout, cin, k = 2, 4096 // 9, 3  # fan-in 4095
    rng = np.random.default_rng(5)
    signs = rng.choice([-1, 1], size=(1, cin, 1, 1))
    w = (np.concatenate([signs, -signs]) * 2047 * np.ones((1, 1, k, k))).astype(np.int64)
    layer = IntegerConvParams(
        weight=torch.from_numpy(w),
        bias=torch.tensor([1 << 40, -(1 << 40)]),
        multiplier=torch.tensor([(1 << 16) - 1, (1 << 16) - 1]),
        shift=torch.tensor([40, 40]),
        out_min=-(1 << 20),
        out_max=1 << 20,
    )
    big = (1 << 20) - 1
    x = (signs * big * np.ones((1, 1, 3, 3))).astype(np.int64)
    got = exact_conv(torch.from_numpy(x), layer).numpy()
    for o in range(cout):
        acc = int(layer.bias[o]) + sum(
            int(w[o, i, dy, dx]) * int(x[0, i, 1 + dy - 1, 1 + dx - 1])
            for i in range(cin)
            for dy in range(k)
            for dx in range(k)
        )
        want = (acc * ((1 << 16) - 1) + (1 << 39)) >> 40
        assert abs(acc) > 1 << 42  # really near the bound
        assert got[0, o, 1, 1] == max(-(1 << 20), min(1 << 20, want))


def random_z2(codec: TorchEngine, rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c2 = codec.net.config.c2
    return torch.randint(-400, 400, (1, c2, rows, cols), generator=g)


def test_batch_and_tiling_layouts_agree(codec: TorchEngine) -> None:
    a, b = random_z2(codec, 6, 10, 1), random_z2(codec, 6, 10, 2)
    _, mu_a, idx_a = codec.hyper_from_z2(a)
    _, mu_ab, idx_ab = codec.hyper_from_z2(torch.cat([a, b]))
    assert torch.equal(mu_ab[:1], mu_a) and torch.equal(idx_ab[:1], idx_a)
    # tiles of z2 with a halo of 2 (the receptive field of h_s2 + P3 at 1/16 is
    # within 2 rows of z2) give the same rows as the whole
    _, mu_top, idx_top = codec.hyper_from_z2(a[:, :, :5])
    assert torch.equal(mu_top[:, :, :6], mu_a[:, :, :6])
    assert torch.equal(idx_top[:, :, :6], idx_a[:, :, :6])


def test_thread_count_does_not_change_entropy_parameters(codec: TorchEngine) -> None:
    z2 = random_z2(codec, 8, 12, 3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.hyper_from_z2(z2)
        torch.set_num_threads(2)
        two = codec.hyper_from_z2(z2)
    finally:
        torch.set_num_threads(before)
    for t1, t2 in zip(one, two, strict=True):
        assert torch.equal(t1, t2)


def test_fake_quant_training_matches_integer_export() -> None:
    """What training simulates is what the exported integer layer computes."""
    torch.manual_seed(0)
    layer = IntConv(8, 6, 3, HIDDEN_STEP, HIDDEN_STEP, 0, HIDDEN_MAX)
    with torch.no_grad():
        layer.bias.uniform_(-2, 2)
    layer.fake_quant = True
    x_int = torch.randint(0, HIDDEN_MAX + 1, (1, 8, 6, 6))
    simulated = layer(x_int.double().float() * HIDDEN_STEP) / HIDDEN_STEP
    exact = exact_conv(x_int, layer.export())
    # the multiplier's 16-bit rounding may move a value across a rounding boundary
    assert (simulated.round().long() - exact).abs().max() <= 1
    assert (simulated.round().long() == exact).float().mean() > 0.98


def test_row_bands_do_not_change_results(
    codec: TorchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """exact_conv splits large inputs into row bands; any band height gives the same bits."""
    import c2f_format.networks.layers as layers

    z2 = random_z2(codec, 14, 9, 4)
    whole = codec.hyper_from_z2(z2)
    monkeypatch.setattr(layers, "BAND_ELEMENTS", 3000)  # a few rows per band
    banded = codec.hyper_from_z2(z2)
    for a, b in zip(whole, banded, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("row_max", [0.0, 1e-9, 1e-6])
def test_an_unused_output_exports_within_the_shift_bound(row_max: float) -> None:
    """A channel whose weights are (nearly) zero, as a newly grown one is, still exports
    to a layer that spec 6.3's load-time check accepts, and computes what it trained."""
    from c2f_format.format.constants import MAX_SHIFT, MEAN_MAX, MEAN_STEP

    torch.manual_seed(0)
    layer = IntConv(8, 4, 1, HIDDEN_STEP, MEAN_STEP, -MEAN_MAX, MEAN_MAX)
    with torch.no_grad():
        layer.weight[2].fill_(row_max)
        layer.bias[2] = 0.5
    params = layer.export()
    assert 1 <= int(params.shift.min()) and int(params.shift.max()) <= MAX_SHIFT
    x_int = torch.randint(0, HIDDEN_MAX + 1, (1, 8, 5, 5))
    layer.fake_quant = True
    simulated = (layer(x_int.float() * HIDDEN_STEP) / MEAN_STEP).round().long()
    exact = exact_conv(x_int, params)
    assert torch.equal(exact[0, 2], torch.full((5, 5), 8))  # 0.5 on a 1/16 grid
    assert (simulated - exact).abs().max() <= 1
