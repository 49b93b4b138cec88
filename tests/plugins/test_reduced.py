"""Decoding at 1/2 and 1/4 scale: the synthesis stops at 1/4 and inference.ReducedTail (or
its NumPy twin) finishes; sizes round up as Pillow's reduce, alpha is reduced exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import c2f_format
from c2f_format.codec.metrics import psnr
from c2f_format.format.errors import InvalidArgumentError, TruncatedStreamError

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


@pytest.fixture(scope="module")
def odd_rgba(kodim23: Image.Image) -> bytes:
    """An RGBA crop whose sides are not multiples of 4, with a real alpha plane."""
    crop = kodim23.crop((3, 5, 3 + 299, 5 + 141)).convert("RGBA")
    alpha = np.zeros((141, 299), dtype=np.uint8)
    alpha[20:120, 30:250] = 255
    alpha[60:80] = 128
    crop.putalpha(Image.fromarray(alpha))
    return c2f_format.encode(crop, quality=60, device="cpu")


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("reduce", [2, 4, 8])
def test_reduced_decode_is_the_full_decode_reduced(
    odd_rgba: bytes, backend: str, reduce: int
) -> None:
    full = c2f_format.decode(odd_rgba, backend=backend)
    small = c2f_format.decode(odd_rgba, reduce=reduce, backend=backend)
    want = full.reduce(reduce)
    assert small.mode == "RGBA" and small.size == want.size == (
        -(-299 // reduce),
        -(-141 // reduce),
    )
    a, b = np.asarray(small), np.asarray(want)
    assert np.array_equal(a[..., 3], b[..., 3])  # alpha: the mean of each block, exactly
    # colour, where the block is opaque (Pillow's reduce premultiplies by alpha): close to
    # the full decode reduced (the preview, from the hyper layers alone, less so)
    opaque = b[..., 3] == 255
    assert opaque.sum() > 100
    assert psnr(b[opaque][:, :3], a[opaque][:, :3]) >= (25.0 if reduce == 8 else 38.0)


def test_both_backends_reduce_alike(kodim23_stream_v1: bytes) -> None:
    for reduce in (2, 4):
        a = np.asarray(c2f_format.decode(kodim23_stream_v1, reduce=reduce, backend="torch"))
        b = np.asarray(c2f_format.decode(kodim23_stream_v1, reduce=reduce, backend="numpy"))
        assert np.abs(a.astype(int) - b).max() <= 2


def test_the_stream_decoder_reduces_partial_images(kodim23_stream_v1: bytes) -> None:
    dec = c2f_format.StreamDecoder()
    dec.feed(kodim23_stream_v1[: len(kodim23_stream_v1) * 2 // 3])
    assert dec.image(partial=True, reduce=4).size == (192, 128)
    with pytest.raises(TruncatedStreamError):
        dec.image(reduce=2)


@pytest.mark.parametrize("reduce", [0, 3, 16, -2, 2.0, "2"])
def test_other_factors_are_refused_by_name(small_stream_v1: bytes, reduce: object) -> None:
    with pytest.raises(InvalidArgumentError, match="reduce"):
        c2f_format.decode(small_stream_v1, reduce=reduce)  # type: ignore[arg-type]


def test_a_truncated_stream_is_refused_at_every_scale(kodim23_stream_v1: bytes) -> None:
    cut = kodim23_stream_v1[: len(kodim23_stream_v1) // 2]
    for reduce in (2, 4, 8):
        with pytest.raises(TruncatedStreamError):
            c2f_format.decode(cut, reduce=reduce)
        if reduce == 8:  # the preview needs none of the rows
            image = c2f_format.decode(cut, reduce=reduce, allow_truncated=True)
        else:
            with pytest.warns(UserWarning, match="missing rows predicted"):
                image = c2f_format.decode(cut, reduce=reduce, allow_truncated=True)
        assert image.width == -(-768 // reduce)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_the_outer_edges_are_right_where_the_image_fills_the_grid(
    kodim23: Image.Image, backend: str
) -> None:
    # 256 x 192: a multiple of 64 each way, so the latent grid's edges are the image's,
    # where the folded convolution alone would be wrong (its 1/2-scale map has no edge)
    data = c2f_format.encode(kodim23.crop((200, 100, 456, 292)), quality=75, device="cpu")
    full = c2f_format.decode(data, backend=backend)
    for reduce in (2, 4):
        small = np.asarray(c2f_format.decode(data, reduce=reduce, backend=backend), dtype=float)
        error = np.abs(small - np.asarray(full.reduce(reduce), dtype=float))
        for edge in (error[0], error[-1], error[:, 0], error[:, -1]):
            assert edge.mean() < 2.0


def test_numpy_integers_are_taken_and_bools_are_not(small_stream_v1: bytes) -> None:
    assert c2f_format.decode(small_stream_v1, reduce=np.int64(2)).size == (40, 48)
    with pytest.raises(InvalidArgumentError, match="reduce"):
        c2f_format.decode(small_stream_v1, reduce=True)


@pytest.mark.parametrize("factor", [0, -4, 2.0, (2, 0)])
def test_pillow_reduce_refuses_bad_factors_before_decoding(
    kodim23_stream_v1: bytes, factor: object
) -> None:
    import io

    with Image.open(io.BytesIO(kodim23_stream_v1)) as im, pytest.raises((ValueError, TypeError)):
        im.reduce(factor)


def test_tiles_join_without_seams_in_both_directions(kodim23: Image.Image) -> None:
    # 1100 x 600: three tiles across and two down (512 pixels each), sides not multiples
    # of 64; rows and columns at the tile borders are no worse than the rest
    data = c2f_format.encode(kodim23.resize((1100, 600)), quality=50, device="cpu")
    full = c2f_format.decode(data)
    for reduce in (2, 4):
        small = np.asarray(c2f_format.decode(data, reduce=reduce), dtype=float)
        error = np.abs(small - np.asarray(full.reduce(reduce), dtype=float))
        assert 10 * np.log10(255**2 / np.mean(error**2)) >= 40.0
        border = 512 // reduce
        for line in (error[border - 1 : border + 1], error[:, border - 1 : border + 1]):
            assert line.mean() < 2 * error.mean() + 0.5
