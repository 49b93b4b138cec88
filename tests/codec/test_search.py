"""The encoder's search (`effort`): valid streams for every decoder, a lower RD cost than
plain rounding, and clear errors for bad values everywhere `effort` is taken."""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import c2f_format
from c2f_format.codec import precision, search
from c2f_format.codec.effort import DEFAULT_EFFORT, ITERATIONS, check_effort
from c2f_format.codec.torch_engine import get_torch_engine
from c2f_format.format.bitstream import StreamParser
from c2f_format.format.errors import InvalidArgumentError
from c2f_format.networks.model import lambdas_at
from c2f_format.tools.cli import main as cli_main

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


def _cost(rgb: np.ndarray, data: bytes) -> float:
    """bpp + lambda * 255^2 * MSE of a stream, lambda at its quality's level."""
    decoded = np.asarray(c2f_format.decode(data), dtype=np.float64)
    mse = float(np.mean((decoded - rgb) ** 2)) / 255.0**2
    parser = StreamParser()
    parser.feed(data)
    assert parser.header is not None
    config = get_torch_engine(torch.device("cpu")).net.config
    level = config.level_of_quality(parser.header.quality)
    lam = float(lambdas_at(config.lambdas, torch.tensor([level]))[0])
    return 8 * len(data) / (rgb.shape[0] * rgb.shape[1]) + lam * 255.0**2 * mse


@pytest.fixture(scope="module")
def searched(small_rgb: np.ndarray) -> bytes:
    return c2f_format.encode(small_rgb, quality=60, effort=5)


def test_search_lowers_the_rd_cost(
    small_rgb: np.ndarray, small_stream_v1: bytes, searched: bytes
) -> None:
    assert searched != small_stream_v1
    assert _cost(small_rgb, searched) < _cost(small_rgb, small_stream_v1)


def test_searched_stream_is_an_ordinary_stream(searched: bytes) -> None:
    with precision.using("float32"):  # NumPy's precision
        by_torch = np.asarray(c2f_format.decode(searched, backend="torch"), dtype=np.int16)
    by_numpy = np.asarray(c2f_format.decode(searched, backend="numpy"), dtype=np.int16)
    assert by_torch.shape == by_numpy.shape
    assert int(np.abs(by_torch - by_numpy).max()) <= 1


def test_search_is_deterministic(small_rgb: np.ndarray, searched: bytes) -> None:
    state = torch.random.get_rng_state()
    assert c2f_format.encode(small_rgb, quality=60, effort=5) == searched
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's stream kept


def test_low_efforts_write_the_plain_stream(small_rgb: np.ndarray, small_stream_v1: bytes) -> None:
    assert all(ITERATIONS[e] == 0 for e in range(1, DEFAULT_EFFORT + 1))
    assert c2f_format.encode(small_rgb, quality=60, effort=1) == small_stream_v1


def test_search_covers_several_tiles(
    monkeypatch: pytest.MonkeyPatch, small_rgb: np.ndarray
) -> None:
    """Tiles smaller than the image: every tile refined, the image whole and valid."""
    monkeypatch.setattr(search, "SEARCH_TILE", 2)
    monkeypatch.setitem(ITERATIONS, 4, 10)
    plain = c2f_format.encode(small_rgb, quality=60)
    tiled = c2f_format.encode(small_rgb, quality=60, effort=4)
    assert _cost(small_rgb, tiled) < _cost(small_rgb, plain)


@pytest.mark.parametrize("bad", [0, 10, -1, 5.0, "5", True, None])
def test_bad_effort_is_a_clear_error(small_rgb: np.ndarray, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="effort must be"):
        c2f_format.encode(small_rgb, effort=bad)  # type: ignore[arg-type]


def test_effort_accepts_numpy_integers() -> None:
    assert check_effort(np.int64(7)) == 7


def test_pillow_and_imageio_take_effort(small_rgb: np.ndarray, searched: bytes) -> None:
    buf = io.BytesIO()
    Image.fromarray(small_rgb).save(buf, format="C2F", quality=60, effort=5)
    assert buf.getvalue() == searched
    assert iio.imwrite("<bytes>", small_rgb, extension=".c2f", quality=60, effort=5) == searched
    with pytest.raises(ValueError, match=r"effort must be 1\.\.9"):
        Image.fromarray(small_rgb).save(io.BytesIO(), format="C2F", effort=12)


def test_cli_effort(
    tmp_path: Path, small_rgb: np.ndarray, searched: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src)
    assert cli_main(["encode", str(src), "-q", "60", "--effort", "5"]) == 0
    assert (tmp_path / "a.c2f").read_bytes() == searched
    with pytest.raises(SystemExit):
        cli_main(["encode", str(src), "--effort", "0"])
    assert "effort must be an integer 1..9" in capsys.readouterr().err


def test_temperature_falls_from_its_maximum() -> None:
    taus = [search.temperature(t, 100) for t in range(100)]
    assert taus[0] == search.TAU_MAX
    assert all(b <= a for a, b in itertools.pairwise(taus))
    assert taus[-1] < 0.2


@settings(max_examples=50, deadline=None)
@given(st.floats(-50, 50, allow_nan=False), st.floats(0.01, 0.5))
def test_sga_round_lies_between_the_neighbouring_integers(v: float, tau: float) -> None:
    x = torch.tensor([v], dtype=torch.float32)
    r = float(search.sga_round(x, tau)[0])
    assert math.floor(v) - 1e-4 <= r <= math.floor(v) + 1 + 1e-4


def test_sga_round_is_rounding_when_cold() -> None:
    torch.manual_seed(0)
    v = torch.tensor([0.1, 0.9, -2.2, 3.7])
    assert torch.allclose(search.sga_round(v, 1e-3), torch.round(v), atol=1e-3)


def test_the_search_multiplies_in_bfloat16_only_where_it_is_native(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Emulated bfloat16 (an AVX2 CPU) made effort 4 twelve times slower (410 against
    34 s for kodim05, one thread): the search's synthesis follows the CPU, or the env."""
    import torch

    from c2f_format.codec import torch_engine
    from c2f_format.codec.precision import cpu_has_bf16

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("C2F_SEARCH_BF16", raising=False)
    assert torch_engine.search_bf16(cpu) == cpu_has_bf16()
    assert torch_engine.search_bf16(gpu)
    monkeypatch.setenv("C2F_SEARCH_BF16", "0")
    assert not torch_engine.search_bf16(gpu)
    monkeypatch.setenv("C2F_SEARCH_BF16", "1")
    assert torch_engine.search_bf16(cpu)
