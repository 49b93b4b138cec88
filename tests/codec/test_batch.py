"""Batches: worker processes give the same results as one process, in order, and one
bad item does not stop the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import c2f_format
from c2f_format.codec.batch import decode_many, default_jobs, encode_many
from c2f_format.tools.cli import main


@pytest.mark.slow
def test_pool_keeps_order_and_matches_one_process(small_rgb: np.ndarray) -> None:
    """Worker processes return every item, in input order, decoded exactly as this
    process decodes it (encodes may differ in float rounding between thread counts,
    so the streams are compared through their headers and their decodes)."""
    images = [small_rgb, small_rgb[:40, :50].copy(), small_rgb[::-1].copy(), small_rgb[:7, :9]]
    pooled = encode_many(images, quality=60, jobs=2)
    streams = [s for s in pooled if isinstance(s, bytes)]
    assert len(streams) == len(pooled)
    decoded = decode_many(streams, jobs=2)
    for image, stream, out in zip(images, pooled, decoded, strict=True):
        assert isinstance(stream, bytes) and isinstance(out, Image.Image)
        assert c2f_format.info(stream).header.width == image.shape[1]
        assert out.size == (image.shape[1], image.shape[0])
        assert out.tobytes() == c2f_format.decode(stream).tobytes()


@pytest.mark.slow
def test_a_bad_item_is_reported_in_place(small_stream: bytes) -> None:
    results = decode_many([small_stream, b"not c2f", small_stream[:100]], jobs=2)
    assert isinstance(results[0], Image.Image)
    assert isinstance(results[1], c2f_format.NotC2FError)
    assert isinstance(results[2], c2f_format.TruncatedStreamError)
    assert isinstance(encode_many([np.zeros((2, 2, 5), np.uint8)], jobs=1)[0], c2f_format.C2FError)


def test_jobs_are_checked() -> None:
    with pytest.raises(c2f_format.InvalidArgumentError, match="jobs"):
        decode_many([b""], jobs=0)
    assert default_jobs("cpu") >= 1


@pytest.mark.slow
def test_cli_goes_on_after_a_bad_file(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [tmp_path / f"g{i}.png" for i in range(2)]
    for p in good:
        Image.fromarray(small_rgb).save(p)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    assert main(["encode", str(good[0]), str(bad), str(good[1]), "-o", str(out), "-j", "2"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["g0.c2f", "g1.c2f"]
    err = capsys.readouterr().err
    assert "bad.png: not an image" in err and "1 of 3 files failed" in err


def test_a_decompression_bomb_fails_alone(
    tmp_path: Path,
    small_rgb: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pillow's bomb check (or any error Pillow raises on one file) costs that file only."""
    good = tmp_path / "good.png"
    Image.fromarray(small_rgb).save(good)
    bomb = tmp_path / "bomb.png"
    Image.new("L", (400, 300)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # 120,000 > 2x: an error
    out = tmp_path / "out"
    assert main(["encode", str(bomb), str(good), "-o", str(out), "-j", "1"]) == 1
    assert [p.name for p in out.iterdir()] == ["good.c2f"]
    assert "bomb.png: Image size" in capsys.readouterr().err


def test_small_batches_run_in_this_process(
    small_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below POOL_MIN_PIXELS a pool would only add its start-up: none is made unless the
    caller asks for one (jobs=N), and the results are the same."""
    from c2f_format.codec import batch

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pool was started for a small batch")

    expected = [c2f_format.encode(small_rgb, quality=60)] * 3
    monkeypatch.setattr(batch, "_pooled", no_pool)
    assert encode_many([small_rgb] * 3, quality=60) == expected
    decoded = decode_many(expected)
    assert all(isinstance(im, Image.Image) for im in decoded)
    with pytest.raises(AssertionError, match="a pool was started"):
        encode_many([small_rgb] * 3, quality=60, jobs=2)
    assert batch._stream_pixels(b"not c2f") == 0
    assert batch._pixels_of(small_rgb) == small_rgb.shape[0] * small_rgb.shape[1]
