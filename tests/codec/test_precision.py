"""The float synthesis's precision: the choice, its errors, and what it changes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from c2f_format import decode, encode
from c2f_format.codec import precision
from c2f_format.format.errors import InvalidArgumentError


def test_auto_is_bfloat16_only_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(precision.ENV, raising=False)
    assert precision.requested() == "auto"
    assert precision.synthesis_bf16("cpu") is precision.cpu_has_bf16()
    assert precision.synthesis_bf16("cuda") is False


@pytest.mark.parametrize(
    ("value", "bf16"), [("float32", False), ("bfloat16", True), (" BFloat16 ", True)]
)
def test_the_environment_chooses(monkeypatch: pytest.MonkeyPatch, value: str, bf16: bool) -> None:
    monkeypatch.setenv(precision.ENV, value)
    assert precision.synthesis_bf16("cpu") is bf16
    assert precision.synthesis_bf16("cuda") is bf16


@pytest.mark.parametrize("value", ["fp16", "half", "1"])
def test_a_bad_choice_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(precision.ENV, value)
    with pytest.raises(InvalidArgumentError, match=r"\$C2F_PRECISION.*float32, bfloat16"):
        precision.synthesis_bf16("cpu")
    with pytest.raises(InvalidArgumentError, match="precision='fp16'"):
        with precision.using("fp16"):
            pass


def test_using_overrides_the_environment_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(precision.ENV, "bfloat16")
    with precision.using("float32"):
        assert precision.requested() == "float32"
        with precision.using("bfloat16"):
            assert precision.synthesis_bf16("cpu")
        assert not precision.synthesis_bf16("cpu")
    assert precision.requested() == "bfloat16"


def test_bfloat16_stays_close_to_float32(kodim23: Image.Image) -> None:
    """The measured bound (docs/speed/precision.md: at most 2 steps on every Kodak image
    and vector) with room to spare under spec 11's 8, at full size and reduced."""
    data = encode(kodim23.crop((200, 100, 456, 292)), quality=60)
    for reduce in (1, 2, 4):
        with precision.using("float32"):
            ref = np.asarray(decode(data, "cpu", backend="torch", reduce=reduce), dtype=np.int16)
        with precision.using("bfloat16"):
            got = np.asarray(decode(data, "cpu", backend="torch", reduce=reduce), dtype=np.int16)
        diff = np.abs(ref - got)
        assert diff.max() <= 4, reduce
        assert diff.mean() < 0.6, reduce


def _stream() -> bytes:
    from helpers import VECTORS

    return (VECTORS / "kodim23-crop-q50.c2f").read_bytes()


def _pixels(choice: str) -> np.ndarray:
    with precision.using(choice):
        return np.asarray(decode(_stream()))


def test_the_two_precisions_differ_on_the_vector() -> None:
    """What the tests below tell apart (else they could not fail)."""
    assert not np.array_equal(_pixels("float32"), _pixels("bfloat16"))


def test_an_image_opened_under_using_loads_in_that_precision() -> None:
    """Pillow decodes at load(), often after the block the image was opened in."""
    import io

    with precision.using("bfloat16"):
        im = Image.open(io.BytesIO(_stream()))
    assert np.array_equal(np.asarray(im), _pixels("bfloat16"))
    with precision.using("float32"):
        im = Image.open(io.BytesIO(_stream()))
    with precision.using("bfloat16"):  # what is in force at load() does not matter
        loaded = np.asarray(im)
    assert np.array_equal(loaded, _pixels("float32"))


@pytest.mark.slow
def test_decode_many_workers_decode_in_the_callers_precision() -> None:
    """precision.using is this process's: the pool's workers are told it."""
    from c2f_format import decode_many

    with precision.using("bfloat16"):
        images = decode_many([_stream()] * 2, jobs=2)
    for im in images:
        assert isinstance(im, Image.Image)
        assert np.array_equal(np.asarray(im), _pixels("bfloat16"))
