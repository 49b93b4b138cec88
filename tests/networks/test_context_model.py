"""The wavelet model's context model: training form, exact form, and coding with them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies

from c2f_format.codec.pyramid_coding import decode_pyramid, encode_pyramid
from c2f_format.format.entropy import EntropyTables
from c2f_format.format.errors import CorruptStreamError
from c2f_format.networks.context_model import TrainableContextModel
from c2f_format.train.context_trainer import laplace_tables, step_code


def _image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 70 * np.sin(x / 7.0 + y / 11.0) + 50 * ((x // 16 + y // 16) % 2)
    img = base[None] + rng.normal(0, 6, (3, h, w)) + np.array([0, 15, -25])[:, None, None]
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained() -> TrainableContextModel:
    """A model after a few steps on synthetic images, so its networks are not zero."""
    torch.manual_seed(0)
    model = TrainableContextModel()
    batch = np.stack([_image(i, 64, 64) for i in range(4)])
    model.init_from_data(batch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for i in range(6):
        bits = model(batch, np.array([250, 300, 350, 400]) + i)
        opt.zero_grad()
        torch.log(bits).mean().backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def tables() -> EntropyTables:
    return laplace_tables()


@pytest.mark.parametrize("size", [(64, 64), (70, 129), (1, 1)])
def test_the_decoder_rebuilds_what_the_encoder_promised(
    trained: TrainableContextModel, tables: EntropyTables, size: tuple[int, int]
) -> None:
    exact = trained.export()
    img = _image(7, *size)
    for u in (200, 330, 460):
        units, promised = encode_pyramid(img, u, exact, tables)
        assert len(units) == 7
        out = decode_pyramid(units, *size, u, exact, tables)
        assert out.shape == (3, *size) and np.array_equal(out, promised)


def test_rate_and_quality_follow_the_step(
    trained: TrainableContextModel, tables: EntropyTables
) -> None:
    exact = trained.export()
    img = _image(3, 128, 128)
    sizes, errors = [], []
    for st in (0.02, 0.08, 0.3):
        units, out = encode_pyramid(img, step_code(st), exact, tables)
        sizes.append(sum(len(u) for u in units))
        errors.append(float(((out.astype(float) - img) ** 2).mean()))
    assert sizes[0] > sizes[1] > sizes[2] and errors[0] < errors[1] < errors[2]
    assert 10 * math.log10(255**2 / errors[0]) > 38


def test_the_training_bits_are_the_coded_bits(
    trained: TrainableContextModel, tables: EntropyTables
) -> None:
    """The float form's code length (fake-quantised, so it uses the tables' spreads) is
    what real coded units spend, within the tables' rounding and the units' ends."""
    img = _image(5, 128, 192)
    trained.set_fake_quant(True)
    try:
        with torch.no_grad():
            ideal = float(trained(img[None], np.array([300]))[0])
    finally:
        trained.set_fake_quant(False)
    units, _ = encode_pyramid(img, 300, trained.export(), tables)
    coded = 8 * sum(len(u) for u in units)
    assert abs(coded - ideal) / ideal < 0.03, (coded, ideal)


def test_a_damaged_level_is_a_clear_error(
    trained: TrainableContextModel, tables: EntropyTables
) -> None:
    exact = trained.export()
    img = _image(9, 64, 64)
    units, _ = encode_pyramid(img, 300, exact, tables)
    for bad in (units[3][:-4], units[3][:-1], b"\x00\x00\x00\x00"):
        damaged = [*units[:3], bad, *units[4:]]
        with pytest.raises(CorruptStreamError):
            decode_pyramid(damaged, 64, 64, 300, exact, tables)


def test_rate_distortion_quantisation(
    trained: TrainableContextModel, tables: EntropyTables
) -> None:
    """Choosing each integer by squared error + lambda * bits against the decoder's tables
    decodes exactly and costs less by that measure than the dead zone."""
    exact = trained.export()
    img = _image(11, 128, 128)
    u = 330
    step = 2 ** (u / 32)
    costs = []
    for rdo in (0.0, 0.1):
        units, promised = encode_pyramid(img, u, exact, tables, rdo=rdo)
        assert np.array_equal(decode_pyramid(units, 128, 128, u, exact, tables), promised)
        sse = float(((promised.astype(float) - img) ** 2).sum())
        bits = 8 * sum(len(x) for x in units)
        # squared error in coefficient units (2**6 a level), as the encoder weighs it
        costs.append(sse * 64**2 + 0.1 * step**2 * bits)
    assert costs[1] < costs[0]


@pytest.mark.parametrize("in_float", [True, False])
def test_the_checkerboard_evaluation_is_int_conv(
    trained: TrainableContextModel, in_float: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each network evaluated on one half of the checkerboard, from its input split by
    how it varies (the parent's channels at the parent's resolution, the constants and
    the anchor mask folded into weights), gives there exactly what spec 6.1's integer
    convolutions give on the whole assembled input, borders included; with the
    requantisation in float64 (the shipped models) and in int64 (layers whose products
    could pass 2**52)."""
    from c2f_format.networks import numpy_context_model

    if not in_float:
        monkeypatch.setattr(numpy_context_model, "_scale", lambda layer: None)
    from c2f_format.networks.numpy_context_model import (
        ANCHORS,
        CARRY,
        LEVELS,
        NETWORKS,
        ONE,
        REST,
        Features,
        LevelInput,
        _evaluate,
        anchors,
    )
    from c2f_format.networks.numpy_layers import int_conv

    exact = trained.export()
    rng = np.random.default_rng(2)
    extras = {"luma_anchor": 0, "luma_rest": 3, "chroma_anchor": 3, "chroma_rest": 9, "carry": 9}
    for h, w, with_parent in ((6, 10, True), (2, 4, True), (7, 5, False), (1, 1, False)):
        anchor = anchors(h, w)
        for net, (cin, _) in NETWORKS.items():
            mask = cin > 3 + 9 + CARRY + 1 + LEVELS + extras[net]
            constants = np.zeros(1 + LEVELS)
            constants[0], constants[rng.integers(1, LEVELS + 1)] = rng.integers(-128, 191), ONE
            f = Features(
                low=rng.integers(-1024, 1025, size=(h, w, 3)),
                coarse=rng.integers(-300, 1025, size=(h // 2, w // 2, 9 + CARRY))
                if with_parent
                else None,
                constants=constants,
                extras=rng.integers(-300, 1025, size=(h, w, extras[net])) if extras[net] else None,
                mask=mask,
            )
            parts = [f.low]
            coarse = (
                np.zeros((h, w, 25)) if f.coarse is None else f.coarse.repeat(2, 0).repeat(2, 1)
            )
            parts.append(coarse)
            parts.append(np.broadcast_to(constants, (h, w, len(constants))))
            if f.extras is not None:
                parts.append(f.extras)
            if mask:
                parts.append((anchor * ONE)[..., None])
            ref = np.concatenate(parts, axis=2).astype(np.int64)
            assert ref.shape[2] == cin
            for layer in ("a", "b", "c"):
                ref = int_conv(ref, exact.layers[f"{net}.{layer}"])
            for parities, where in ((ANCHORS, anchor), (REST, ~anchor)):
                out = _evaluate(exact, net, f, parities)
                assert np.array_equal(out[where], ref[where].astype(np.int64))
                assert not out[~where].any()
                # with the level's shared products made once and kept, as code_level does
                shared = LevelInput(exact, f.low, f.coarse, f.constants)
                shared.prepare([net], parities)
                assert in_float or not shared.kept
                kept = _evaluate(exact, net, f, parities, shared)
                assert np.array_equal(kept, out)


def test_float_requantisation_only_where_exact(trained: TrainableContextModel) -> None:
    """The float64 requantisation (the scale in the weights) is taken for the trained
    layers and refused for a layer whose bias and multiplier (within spec 6.3's
    limits) could take a product past 2**52."""
    from dataclasses import replace

    from c2f_format.networks.numpy_context_model import _scale

    exact = trained.export()
    assert all(_scale(layer) is not None for layer in exact.layers.values())
    layer = exact.layers["carry.a"]
    big = replace(layer, bias=layer.bias + (1 << 40), multiplier=layer.multiplier * 0 + 65535)
    assert _scale(big) is None


def test_exact_products_in_float32_only_within_its_bounds() -> None:
    """Wide products run as one float32 product, or as two float32 halves, only where the
    bounds say every partial sum stays below 2**24; otherwise float64. Every way gives
    the exact integer sums."""
    from c2f_format.networks.numpy_context_model import ExactProduct, sum_bound

    rng = np.random.default_rng(5)
    w = rng.integers(-2047, 2048, size=(200, 32)).astype(np.float64)

    def check(product: ExactProduct, x: np.ndarray) -> None:
        want = (x @ w.astype(np.int64)).astype(np.float64)
        assert np.array_equal(product(x.astype(np.float32)), want)
        assert np.array_equal(product(x.astype(np.float64)), want)

    small = rng.integers(-64, 65, size=(500, 200))
    single = ExactProduct(w, 64.0)
    assert single.single is not None and single.split is None
    check(single, small)
    x = rng.integers(-1024, 1025, size=(500, 200))
    halves = ExactProduct(w, 1024.0)  # 2**26 for the whole, under 2**24 for each half
    assert halves.single is None and halves.split is not None
    check(halves, x)
    wide = ExactProduct(w, float(1 << 20))  # inputs up to 2**20: float32 could round
    assert wide.single is None and wide.split is None
    x = rng.integers(-(1 << 20), 1 << 20, size=(500, 200))
    assert np.array_equal(wide(x.astype(np.float64)), (x @ w.astype(np.int64)).astype(np.float64))
    # each row's own range, signs apart: non-negative inputs bound the partial sums by
    # the positive or the negative weights alone, never by both
    plus = np.where(w > 0, w, 0.0)
    highest = np.full(200, 1024.0)
    assert sum_bound(plus, np.zeros(200), highest) == (highest @ plus).max()
    assert sum_bound(w, np.zeros(200), highest) < (highest @ np.abs(w)).max()
    positive = rng.integers(0, 1025, size=(500, 200))
    ranged = ExactProduct(w, (positive.min(axis=0), positive.max(axis=0)))
    check(ranged, positive)


@settings(max_examples=30, deadline=None)
@given(strategies.integers(0, 2**32 - 1), strategies.integers(1, 12))
def test_a_sum_bound_bounds_every_partial_sum(seed: int, bits: int) -> None:
    """`sum_bound` is at least every partial sum's magnitude, in any order of the terms."""
    from c2f_format.networks.numpy_context_model import sum_bound

    rng = np.random.default_rng(seed)
    w = rng.integers(-2047, 2048, size=(40, 3)).astype(np.float64)
    lowest = -rng.integers(0, 1 << bits, size=40).astype(np.float64)
    highest = rng.integers(0, 1 << bits, size=40).astype(np.float64)
    x = rng.uniform(lowest, highest).round()
    terms = x[:, None] * w
    for order in (rng.permutation(40) for _ in range(5)):
        assert np.abs(np.cumsum(terms[order], axis=0)).max() <= sum_bound(w, lowest, highest)
