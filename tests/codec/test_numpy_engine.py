"""The NumPy decoder (issue 13): exact integer networks, the float synthesis within the
spec's tolerance, every decoding path, and a decode-only install without torch.

Tests marked by `_torch()` compare with the torch decoder and are skipped where torch
is absent; the rest run in the torch-free CI job too.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from helpers import FUZZ, KODIM23, VECTORS, damaged_streams, replay, run_python
from PIL import Image, ImageFile

import c2f_format
from c2f_format.codec import engines
from c2f_format.codec.decoding import latent_digest
from c2f_format.codec.engines import INSTALL_TORCH
from c2f_format.codec.metrics import psnr
from c2f_format.codec.numpy_engine import get_numpy_engine
from c2f_format.format import bitstream as bs
from c2f_format.networks.numpy_layers import (
    FloatConv,
    IntLayer,
    depth_to_space,
    int_conv,
    phase_order,
    subpixel_deconv,
)
from c2f_format.tools.conformance import check_vector

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)

ENTRIES = json.loads((VECTORS / "vectors.json").read_text())["vectors"]
IDS = [e["stream"] for e in ENTRIES]
RGB_VECTOR = VECTORS / "kodim23-crop-q50.c2f"


def _torch() -> ModuleType:
    return pytest.importorskip("torch")


def _decoder(data: bytes, backend: str, tolerate: bool = False) -> c2f_format.StreamDecoder:
    dec = c2f_format.StreamDecoder(backend=backend, allow_truncated=tolerate)
    dec.feed(data)
    return dec


# ---- the arithmetic, against the spec's definitions -----------------------------------


def spec_int_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, m: np.ndarray, s: np.ndarray,
                  lo: int, hi: int) -> np.ndarray:  # fmt: skip
    """Spec 6.1 in Python integers, position by position ([cin, H, W] -> [cout, H, W])."""
    cout, _, k, _ = w.shape
    _, height, width = x.shape
    p = k // 2
    xp = np.pad(x.astype(object), ((0, 0), (p, p), (p, p)))
    out = np.empty((cout, height, width), dtype=np.int64)
    for o in range(cout):
        wo = w[o].astype(object)
        for r in range(height):
            for c in range(width):
                acc = int(b[o]) + int((wo * xp[:, r : r + k, c : c + k]).sum())
                out[o, r, c] = min(
                    hi, max(lo, (acc * int(m[o]) + (1 << int(s[o] - 1))) >> int(s[o]))
                )
    return out


@pytest.mark.parametrize("k", [1, 3])
def test_integer_convolution_is_spec_6_1_at_the_bounds(k: int) -> None:
    """Weights at +-2047, inputs up to 2**20 (hyper latents' bound), fan-in near 4096:
    float64 products stay exact and the requantisation floors negative values."""
    rng = np.random.default_rng(k)
    cin, cout = (400 if k == 3 else 3000), 5
    w = rng.integers(-2047, 2048, (cout, cin, k, k))
    w[0] = 2047  # the largest sums the bound allows
    x = rng.integers(-(1 << 20) + 1, 1 << 20, (cin, 4, 5))
    x[:, 0, 0] = (1 << 20) - 1
    b = rng.integers(-(1 << 40), (1 << 40) + 1, cout)
    m = rng.integers(1 << 14, 1 << 16, cout)
    s = rng.integers(1, 41, cout)
    layer = IntLayer.from_arrays(w, b, m, s, -(1 << 20), 1 << 20)
    got = int_conv(x.transpose(1, 2, 0), layer).transpose(2, 0, 1)
    assert np.array_equal(got, spec_int_conv(x, w, b, m, s, -(1 << 20), 1 << 20))
    assert (got < 0).any() and (got > 0).any()


def test_subpixel_deconvolution_is_the_transposed_convolution() -> None:
    """Spec 8's deconv (kernel 5, stride 2, padding 2, output padding 1), scattered by
    its definition, equals the 3x3 convolution + depth-to-space form."""
    rng = np.random.default_rng(5)
    cin, cout, height, width = 3, 4, 5, 6
    weight = rng.standard_normal((cin, cout, 5, 5)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((height, width, cin)).astype(np.float32)
    # out[o] gets x[i] * w[o - 2 i + 2] for every input position i (per axis)
    full = np.zeros((2 * height + 4, 2 * width + 4, cout))
    for i in range(height):
        for j in range(width):
            full[2 * i : 2 * i + 5, 2 * j : 2 * j + 5] += np.einsum(
                "c,cokl->klo", x[i, j].astype(np.float64), weight.astype(np.float64)
            )
    expected = full[2 : 2 * height + 2, 2 : 2 * width + 2] + bias
    got = depth_to_space(subpixel_deconv(weight, bias)(x), 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_depth_to_space_follows_pixel_shuffle_order() -> None:
    """Spec 6.2: channel 4c + 2a + b at (r, s) lands at (2r + a, 2s + b); weights
    reordered by `phase_order` give that from a channels-last array."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 100, (3, 2, 8))  # [H, W, 4C] in PyTorch's (c, a, b) order
    got = depth_to_space(x[:, :, phase_order(2, 2)], 2)
    for c in range(2):
        for a in range(2):
            for b in range(2):
                assert np.array_equal(got[a::2, b::2, c], x[:, :, 4 * c + 2 * a + b])
    conv = FloatConv.from_arrays(np.ones((4, 1, 1, 1), np.float32), np.arange(4.0), None)
    assert conv(np.zeros((1, 1, 1), np.float32)).ravel().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("array", "change", "problem"),
    [
        ("int/p3.body/weight", lambda a: a * 0 + 2048, "weight magnitude"),
        ("int/h_s2.mix/shift", lambda a: a + 40, "shift range"),
        ("int/p2.scale/range", lambda a: a * 0 + [0, 64], "exceeds"),
        ("float/g_s_tail.4.bias", lambda a: a[:2], "shape"),
    ],
)
def test_a_weights_file_out_of_bounds_is_refused(
    tmp_path: Path, array: str, change: Any, problem: str
) -> None:
    """Spec 5 and 6.3: both loaders refuse what could break exactness, with WeightsError."""
    from c2f_format.format.weights_file import read_arrays, weights_dir, weights_index
    from c2f_format.networks.numpy_model import load_model

    arrays = read_arrays(weights_dir() / next(iter(weights_index().values())))
    arrays[array] = change(arrays[array]).astype(arrays[array].dtype)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(c2f_format.WeightsError, match=problem):
        load_model(path)
    if engines.torch_available():
        from c2f_format.networks.weights import load_weights

        with pytest.raises(c2f_format.WeightsError, match=problem):
            load_weights(path)


# ---- vectors: exact symbols, colour within spec 11 ------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_vectors_conform_with_the_numpy_backend(entry: dict[str, Any]) -> None:
    check_vector(VECTORS, entry, backend="numpy")


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_vectors_match_the_torch_backend(entry: dict[str, Any]) -> None:
    _torch()
    data = (VECTORS / str(entry["stream"])).read_bytes()
    ours, theirs = _decoder(data, "numpy"), _decoder(data, "torch")
    assert latent_digest(ours.latents()) == latent_digest(theirs.latents())
    assert latent_digest(ours.latents()) == entry["latents_sha256"]
    for make in (lambda d: d.image(), lambda d: d.preview()):
        a = np.asarray(make(ours), dtype=np.int16)
        b = np.asarray(make(theirs), dtype=np.int16)
        assert a.shape == b.shape and np.abs(a - b).max() <= 2


@pytest.fixture(scope="module")
def kodak_streams() -> list[bytes]:
    """Kodak crops at several sizes (tile edges, odd sizes) and qualities."""
    _torch()
    with Image.open(KODIM23) as im:
        rgb = np.asarray(im.convert("RGB"))
    crops = [(0, 0, 768, 512, 75), (37, 100, 37 + 577, 100 + 301, 20), (5, 9, 71, 42, 95)]
    return [
        c2f_format.encode(rgb[top:bottom, left:right], quality=q, device="cpu")
        for left, top, right, bottom, q in crops
    ]


def test_kodak_crops_match_the_torch_backend(kodak_streams: list[bytes]) -> None:
    for data in kodak_streams:
        ours, theirs = _decoder(data, "numpy"), _decoder(data, "torch")
        assert latent_digest(ours.latents()) == latent_digest(theirs.latents())
        a = np.asarray(ours.image(), dtype=np.float64)
        b = np.asarray(theirs.image(), dtype=np.float64)
        assert np.abs(a - b).max() <= 8 and psnr(a, b) >= 45


def test_a_multi_tile_image_joins_without_seams(kodak_streams: list[bytes]) -> None:
    """768x512 is two tiles wide: the tile edge is no worse than the rest."""
    ours = np.asarray(_decoder(kodak_streams[0], "numpy").image(), dtype=np.int16)
    theirs = np.asarray(_decoder(kodak_streams[0], "torch").image(), dtype=np.int16)
    edge = np.abs(ours[:, 500:524] - theirs[:, 500:524]).max()
    assert edge <= 2 and np.abs(ours - theirs).max() <= 2


# ---- every decoding path with the NumPy backend ---------------------------------------


@pytest.fixture
def numpy_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2F_BACKEND", "numpy")


def test_pillow_load_draft_and_parser(numpy_backend: None) -> None:
    data = RGB_VECTOR.read_bytes()
    full = np.asarray(c2f_format.decode(data))
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert np.array_equal(np.asarray(im), full)
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (im.width // 8, im.height // 8))
        im.load()
        assert im.size == (32, 24)
        assert np.array_equal(np.asarray(im), np.asarray(_decoder(data, "numpy").preview()))
    parser = ImageFile.Parser()
    for pos in range(0, len(data), 300):
        parser.feed(data[pos : pos + 300])
    assert np.array_equal(np.asarray(parser.close()), full)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal but for the synthesis' reach across a band edge (a step or two)."""
    return float(np.abs(a.astype(np.int16) - b).mean()) < 0.5


def test_partial_and_damaged_streams(numpy_backend: None) -> None:
    data = RGB_VECTOR.read_bytes()
    segments = bs.StreamParser().feed(data)
    bands = [s for s in segments if s.kind == bs.SEG_YBND]
    cut = data[: bands[1].offset]  # the first band only
    dec = _decoder(cut, "numpy")
    with pytest.raises(c2f_format.TruncatedStreamError):
        dec.image()
    partial = np.asarray(dec.image(partial=True))
    full = np.asarray(c2f_format.decode(data))
    assert _close(partial[:32], full[:32]) and not _close(partial[96:], full[96:])
    bad = bytearray(data)
    bad[bands[0].offset + 20] ^= 0x10
    with pytest.raises(c2f_format.CorruptStreamError):
        c2f_format.decode(bytes(bad))
    with pytest.warns(UserWarning, match="predicted"):
        repaired = np.asarray(c2f_format.decode(bytes(bad), allow_truncated=True))
    assert _close(repaired[96:], full[96:]) and not _close(repaired[:32], full[:32])


def test_alpha_and_metadata_come_through(numpy_backend: None) -> None:
    entry = next(e for e in ENTRIES if "rgba" in e["stream"])
    image = c2f_format.decode((VECTORS / entry["stream"]).read_bytes())
    with Image.open(VECTORS / entry["reference"]) as ref:
        ref.load()
        assert image.mode == "RGBA" and image.info["exif"] == ref.info["exif"]
        assert np.array_equal(np.asarray(image)[..., 3], np.asarray(ref)[..., 3])


def test_fuzz_corpus_keeps_the_contract(numpy_backend: None) -> None:
    """The fuzzer's kept inputs through every path (tests/fuzz/replay.py)."""
    fuzz = FUZZ
    paths = [p for d in ("corpus", "crashes") for p in (fuzz / d).iterdir() if p.is_file()]
    for path in paths[:: max(1, len(paths) // 60)]:
        replay.check(path.read_bytes())


def _outcome(data: bytes, backend: str) -> str:
    """What decoding gives: the image's bytes digest or the exception's type."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = c2f_format.decode(data, backend=backend, allow_truncated=True)
        return f"image {image.mode} {image.size}"
    except c2f_format.C2FError as exc:
        return type(exc).__name__


def test_hostile_streams_have_the_same_outcomes_on_both_backends(
    kodak_streams: list[bytes],
) -> None:
    """tests/plugins/test_hostile.py's damaged streams: the same image or the same error type."""
    other = RGB_VECTOR.read_bytes()
    outcomes = set()
    for kind, data in damaged_streams(kodak_streams[2], other, 150, seed=13):
        theirs = _outcome(data, "torch")
        outcomes.add(theirs)
        assert _outcome(data, "numpy") == theirs, kind
    assert len(outcomes) >= 3  # images and several kinds of error


def test_fuzz_corpus_has_the_same_outcomes_on_both_backends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kept fuzz inputs: the same result through the API and through Pillow's load,
    draft and Parser paths (each path's outcome: an image or the exception's type)."""
    _torch()
    fuzz = FUZZ
    paths = [p for d in ("corpus", "crashes") for p in (fuzz / d).iterdir() if p.is_file()]
    for path in paths[:: max(1, len(paths) // 40)]:
        data = path.read_bytes()
        seen = []
        for backend in ("torch", "numpy"):
            monkeypatch.setenv("C2F_BACKEND", backend)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seen.append((_outcome(data, backend), replay.through_pillow(data)))
        assert seen[0] == seen[1], path.name


# ---- backend choice and a torch-free install ------------------------------------------


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2F_BACKEND", "numpy")
    assert engines.resolve() == "numpy" and engines.resolve("auto") in engines.BACKENDS
    monkeypatch.setenv("C2F_BACKEND", "tensorflow")
    with pytest.raises(c2f_format.InvalidArgumentError, match="backend"):
        c2f_format.decode(RGB_VECTOR.read_bytes())
    with pytest.raises(c2f_format.InvalidArgumentError, match="NumPy backend"):
        c2f_format.decode(RGB_VECTOR.read_bytes(), backend="numpy", device="cuda")
    assert get_numpy_engine() is get_numpy_engine()


BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"  # import torch now fails


def _without_torch(code: str) -> str:
    result = run_python(BLOCK_TORCH + code)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_decoding_without_torch() -> None:
    out = _without_torch(
        "import c2f_format, io\n"
        "from PIL import Image\n"
        f"data = open({str(RGB_VECTOR)!r}, 'rb').read()\n"
        "print(c2f_format.info(data).header.width)\n"
        "print(c2f_format.decode(data).size)\n"
        "im = Image.open(io.BytesIO(data)); im.draft('RGB', (32, 24)); im.load()\n"
        "print(im.size)\n"
        "try:\n"
        "    c2f_format.encode(Image.new('RGB', (8, 8)))\n"
        "except c2f_format.TorchRequiredError as exc:\n"
        "    print(exc)\n"
        "try:\n"
        "    Image.new('RGB', (8, 8)).save(io.BytesIO(), format='C2F')\n"
        "except OSError as exc:\n"  # Pillow's word for an encoder it lacks
        "    print(exc)\n"
    )
    assert out.splitlines() == [
        "256",
        "(256, 192)",
        "(32, 24)",
        f"encoding needs torch: {INSTALL_TORCH}",
        f"encoder c2f not available: encoding needs torch: {INSTALL_TORCH}",
    ]


def test_c2f_info_does_not_import_torch() -> None:
    out = _without_torch(
        "import sys\nfrom c2f_format.tools.cli import main\n"
        f"code = main(['info', {str(RGB_VECTOR)!r}])\n"
        "print('torch imported' if sys.modules.get('torch') else 'no torch', code)\n"
    )
    assert out.splitlines()[-1] == "no torch 0" and "256x192" in out


def test_the_command_line_decodes_without_torch(tmp_path: Path) -> None:
    """`c2f decode` works on a decode-only install; `c2f encode` and `c2f bench` fail
    with an error line (not a traceback) that says what to install."""
    png, c2f = tmp_path / "out.png", tmp_path / "again.c2f"
    out = _without_torch(
        "import sys\nfrom c2f_format.tools.cli import main\n"
        f"print(main(['decode', {str(RGB_VECTOR)!r}, '-o', {str(png)!r}]))\n"
        f"print(main(['encode', {str(png)!r}, '-o', {str(c2f)!r}]))\n"
        "print(main(['bench']))\n"
    )
    assert out.splitlines() == ["0", "1", "1"] and not c2f.exists()
    with Image.open(png) as im:
        assert im.size == (256, 192)
