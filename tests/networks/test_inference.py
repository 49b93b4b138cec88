"""The inference rewrite computes the same float functions as the trained network."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from c2f_format.networks.inference import FrozenGDN, ReducedTail, SubpixelDeconv, for_inference
from c2f_format.networks.layers import GDN, LinearUp, deconv
from c2f_format.networks.model import C2FModel, ModelConfig


@settings(max_examples=25, deadline=None)
@given(
    cin=st.integers(1, 6),
    cout=st.integers(1, 6),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_subpixel_equals_transposed_convolution(
    cin: int, cout: int, h: int, w: int, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    layer = deconv(cin, cout)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
        assert layer.bias is not None
        layer.bias.copy_(torch.randn(cout, generator=gen))
    x = torch.randn(2, cin, h, w, generator=gen)
    expected = layer(x)
    got = SubpixelDeconv(layer)(x)
    assert got.shape == expected.shape == (2, cout, 2 * h, 2 * w)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_other_transposed_convolutions_are_refused() -> None:
    with pytest.raises(ValueError, match="only 5x5"):
        SubpixelDeconv(torch.nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1))
    with pytest.raises(ValueError, match="only 5x5"):
        SubpixelDeconv(torch.nn.ConvTranspose2d(4, 4, (5, 3), 2, 2, output_padding=1))


def test_no_bias_and_float64() -> None:
    layer = torch.nn.ConvTranspose2d(3, 2, 5, 2, 2, output_padding=1, bias=False).double()
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(SubpixelDeconv(layer)(x), layer(x))


def test_frozen_gdn_matches() -> None:
    gdn = GDN(5, inverse=True)
    with torch.no_grad():
        gdn.gamma.normal_()
        gdn.beta.normal_()
    x = torch.randn(1, 5, 7, 7)
    torch.testing.assert_close(FrozenGDN(gdn)(x), gdn(x))


def test_rewritten_network_matches_the_trained_one() -> None:
    torch.manual_seed(0)
    net = C2FModel(ModelConfig()).eval()
    fast = for_inference(net)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())  # untouched
    cfg = net.config
    y = torch.randn(1, cfg.m, 4, 6)
    h2 = torch.rand(1, cfg.h2, 4, 6)
    h1 = torch.rand(1, cfg.h1, 2, 3)
    inv = torch.ones(cfg.m)
    with torch.inference_mode():
        expected = net.synthesis(y, inv, h2, h1)
        got = fast.synthesis(y.contiguous(memory_format=torch.channels_last), inv, h2, h1)
        x = torch.rand(1, 3, 64, 96)
        torch.testing.assert_close(fast.g_a(x), net.g_a(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def _tail_with_linear_igdn(n: int, seed: int) -> torch.nn.Sequential:
    """A synthesis tail whose second IGDN has gamma = 0, so it is exactly x * beta."""
    torch.manual_seed(seed)
    gdn = GDN(n, inverse=True)
    with torch.no_grad():
        gdn.gamma.zero_()
        gdn.beta.copy_(torch.rand(n) + 0.5)
    return torch.nn.Sequential(deconv(n, n), GDN(n, inverse=True), deconv(n, n), gdn, deconv(n, 3))


@pytest.mark.parametrize("reduce", [2, 4])
def test_reduced_tail_is_the_tail_then_a_box_filter_when_igdn_is_linear(reduce: int) -> None:
    # with gamma = 0 the IGDN is exactly x * beta, so the composite must match the
    # tail followed by a box filter, away from the edges (where the true tail sees the
    # first convolution's bias cut off by the map's border)
    n = 6
    tail = _tail_with_linear_igdn(n, seed=reduce)
    x = torch.randn(1, n, 12, 14)
    with torch.no_grad():
        want = torch.nn.functional.avg_pool2d(tail[2:](x), reduce)
        got = ReducedTail(tail, reduce)(x)
    assert got.shape == want.shape
    edge = 3 * (4 // reduce)
    inner = (slice(None), slice(None), slice(edge, -edge), slice(edge, -edge))
    torch.testing.assert_close(got[inner], want[inner], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("reduce", [2, 4])
def test_reduced_tail_folds_the_linear_paths_in(reduce: int) -> None:
    n = 6
    tail = _tail_with_linear_igdn(n, seed=10 + reduce)
    gdn = tail[3]
    mid, last = LinearUp(n, n), LinearUp(n, 3)
    for path in (mid, last):
        torch.nn.init.normal_(path.mix.weight, std=0.3)
    x = torch.randn(1, n, 12, 14)
    with torch.no_grad():
        v = gdn(tail[2](x)) + mid(x)
        want = torch.nn.functional.avg_pool2d(tail[4](v) + last(v), reduce)
        got = ReducedTail(tail, reduce, (mid.mix.weight, last.mix.weight))(x)
        without = ReducedTail(tail, reduce)(x)
    edge = 3 * (4 // reduce)
    inner = (slice(None), slice(None), slice(edge, -edge), slice(edge, -edge))
    torch.testing.assert_close(got[inner], want[inner], atol=1e-5, rtol=1e-5)
    assert float((without - got).abs().max()) > 0.01  # the paths count


def test_integer_outputs_take_the_narrowest_type() -> None:
    import numpy as np

    from c2f_format.networks.numpy_layers import narrowest_int

    assert narrowest_int(0, 63) == np.uint8  # scale indices
    assert narrowest_int(0, 1024) == np.int16  # hidden values
    assert narrowest_int(-32768, 32768) == np.int32  # means, one past int16
    assert narrowest_int(-1, 255) == np.int16
    assert narrowest_int(0, 2**40) == np.int64
