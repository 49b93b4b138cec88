"""The wavelet model's weights file: its arrays, their checks, loading without torch.

The same archive as every c2f model (spec 5: a NumPy `.npz`, the model id the SHA-256 of
its arrays), with `config`'s `kind` "wavelet" and these arrays:

| name | dtype | meaning |
|---|---|---|
| `config` | uint8 | UTF-8 JSON: `kind`, `quality_codes` (the step codes of quality 1 and 100) |
| `int/<network>.<layer>/...` | int32, int64 | the context networks' integer layers |
| `context/base` | int32 `[6, 9]` | each level's and channel's log spread, 1/32 log2 |
| `context/ll_mean` | int32 `[3]` | the 1/64 low-pass's mean per colour, coefficient units |
| `context/ll_log_spread` | int32 `[3]` | its spread, as `base` |
| `entropy/freqs`, `entropy/radii` | int32 | the 64 Laplacian tables (spec 7.1's form) |
| `entropy/offsets` | int32 `[64]` | each table's reconstruction offset, 1/256 step |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..format.entropy import EntropyTables
from ..format.errors import WeightsError
from ..format.quantiser import STEP_CODE_MAX, STEP_CODE_MIN, TABLES
from ..format.wavelet import LEVELS
from ..format.weights_file import (
    check_integer_arrays,
    check_model_id,
    installed_model,
    model_id_of,
    read_arrays,
)
from .numpy_context_model import (
    HIDDEN,
    LAYERS,
    LOG_SPREAD_MAX,
    NETWORKS,
    ContextModel,
    IntegerLayerArrays,
)
from .numpy_layers import IntLayer

KIND = "wavelet"
CONFIG_KEYS = {"kind", "quality_codes"}


def is_pyramid_config(arrays: dict[str, np.ndarray]) -> bool:
    """Whether a weights file's arrays are a wavelet model's."""
    try:
        config = json.loads(bytes(arrays["config"]).decode("utf-8"))
    except (KeyError, ValueError):
        return False
    return isinstance(config, dict) and config.get("kind") == KIND


@dataclass(frozen=True)
class PyramidModel:
    """Everything the wavelet model's encoder and decoder need."""

    model_id: bytes
    context: ContextModel
    tables: EntropyTables
    quality_codes: tuple[int, int]  # step codes of quality 1 and 100

    def step_code(self, quality: int) -> int:
        """The step code of `quality` 1..100: log-linear between the calibrated ends, so
        a higher quality is never a larger step."""
        lo, hi = self.quality_codes
        return lo + ((hi - lo) * (quality - 1) * 2 + 99) // 198


def pyramid_arrays(
    layers: dict[str, IntegerLayerArrays],
    context: ContextModel,
    tables: EntropyTables,
    quality_codes: tuple[int, int],
) -> dict[str, np.ndarray]:
    """The arrays of a weights file; `layers` maps "<network>.<layer>" to the integer
    form (weight, bias, multiplier, shift, out_min, out_max)."""
    config = {"kind": KIND, "quality_codes": [int(quality_codes[0]), int(quality_codes[1])]}
    arrays = {"config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8).copy()}
    for name, (w, b, m, s, lo, hi) in layers.items():
        arrays[f"int/{name}/weight"] = w.astype(np.int32)
        arrays[f"int/{name}/bias"] = b.astype(np.int64)
        arrays[f"int/{name}/multiplier"] = m.astype(np.int32)
        arrays[f"int/{name}/shift"] = s.astype(np.int32)
        arrays[f"int/{name}/range"] = np.array([lo, hi], dtype=np.int32)
    arrays["context/base"] = context.base.astype(np.int32)
    arrays["context/ll_mean"] = context.ll_mean.astype(np.int32)
    arrays["context/ll_log_spread"] = context.ll_log_spread.astype(np.int32)
    arrays["entropy/freqs"] = tables.freqs.astype(np.int32)
    arrays["entropy/radii"] = tables.radii.astype(np.int32)
    arrays["entropy/offsets"] = context.offsets.astype(np.int32)
    return arrays


def save_pyramid(arrays: dict[str, np.ndarray], path: Path) -> bytes:
    """Write the weights file; returns its model id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    return model_id_of(arrays)


def _shape(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in arrays:
        raise WeightsError(f"wavelet model has no array {name}")
    a = arrays[name]
    if a.shape != shape or a.dtype.kind not in "iu":
        raise WeightsError(f"wavelet model's {name} is {a.dtype}{list(a.shape)}, not int{shape}")
    return a.astype(np.int64)


def pyramid_from_arrays(arrays: dict[str, np.ndarray]) -> PyramidModel:
    """Check and prepare a wavelet model's arrays (WeightsError names what is wrong)."""
    config = json.loads(bytes(arrays["config"]).decode("utf-8"))
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise WeightsError(f"wavelet model config has unknown keys {sorted(unknown)}")
    codes = config.get("quality_codes")
    if (
        not isinstance(codes, list)
        or len(codes) != 2
        or not all(isinstance(c, int) and STEP_CODE_MIN <= c <= STEP_CODE_MAX for c in codes)
        or codes[0] < codes[1]
    ):
        raise WeightsError(f"wavelet model's quality_codes {codes!r} are not two step codes")
    layers = {}
    for net, (cin, cout) in NETWORKS.items():
        head = net != "carry"
        shapes = {"a": (HIDDEN, cin, 3), "b": (HIDDEN, HIDDEN, 1), "c": (cout, HIDDEN, 1)}
        for layer in LAYERS:
            name = f"{net}.{layer}"
            n, c, k = shapes[layer]
            w = _shape(arrays, f"int/{name}/weight", (n, c, k, k))
            b = _shape(arrays, f"int/{name}/bias", (n,))
            m = _shape(arrays, f"int/{name}/multiplier", (n,))
            s = _shape(arrays, f"int/{name}/shift", (n,))
            lo, hi = (int(v) for v in _shape(arrays, f"int/{name}/range", (2,)))
            check_integer_arrays(name, w, b, m, s, lo, hi)
            limit = (-LOG_SPREAD_MAX, LOG_SPREAD_MAX) if head and layer == "c" else (0, 1024)
            if (lo, hi) != limit:
                raise WeightsError(
                    f"integer layer {name}: output range [{lo}, {hi}] is not {limit}"
                )
            layers[name] = IntLayer.from_arrays(w, b, m, s, lo, hi)
    base = _shape(arrays, "context/base", (LEVELS, 9))
    ll_mean = _shape(arrays, "context/ll_mean", (3,))
    ll_spread = _shape(arrays, "context/ll_log_spread", (3,))
    offsets = _shape(arrays, "entropy/offsets", (TABLES,))
    for name, a, bound in (
        ("context/base", base, 1 << 16),
        ("context/ll_mean", ll_mean, 1 << 24),
        ("context/ll_log_spread", ll_spread, 1 << 16),
        ("entropy/offsets", offsets, 1 << 8),
    ):
        if np.abs(a).max() > bound:
            raise WeightsError(f"wavelet model's {name} exceeds {bound} in magnitude")
    freqs, radii = arrays.get("entropy/freqs"), arrays.get("entropy/radii")
    if freqs is None or radii is None or freqs.ndim != 2 or radii.shape != (TABLES,):
        raise WeightsError(f"wavelet model needs {TABLES} entropy tables")
    if radii.min() < 1 or 2 * int(radii.max()) + 2 > freqs.shape[1]:
        raise WeightsError("wavelet model's entropy radii do not fit its tables")
    try:
        tables = EntropyTables(freqs.astype(np.int64), radii.astype(np.int64))
    except ValueError as exc:
        raise WeightsError(f"wavelet model: {exc}") from None
    context = ContextModel(layers, base, ll_mean, ll_spread, offsets)
    return PyramidModel(model_id_of(arrays), context, tables, (codes[0], codes[1]))


@lru_cache(maxsize=4)
def load_pyramid(model_id: bytes | None = None) -> PyramidModel:
    """The installed wavelet model `model_id` (default: the newest shipped model)."""
    key, path = installed_model(model_id)
    arrays = read_arrays(path)
    if not is_pyramid_config(arrays):
        raise WeightsError(f"weights file {path} is not a wavelet model")
    model = pyramid_from_arrays(arrays)
    check_model_id(key, model.model_id, path)
    return model


def newest_pyramid() -> PyramidModel | None:
    """The newest installed model (what encoding uses) if it is a wavelet model, else
    None (a version 1 model, encoded by the torch engine)."""
    key, path = installed_model(None)
    try:
        stat = path.stat()
    except OSError:
        raise WeightsError(f"weights file not found: {path}") from None
    if not _is_pyramid_file(path, stat.st_mtime_ns, stat.st_size):
        return None
    return load_pyramid(bytes.fromhex(key))


@lru_cache(maxsize=8)
def _is_pyramid_file(path: Path, mtime_ns: int, size: int) -> bool:
    """Whether the file's config says "wavelet" (cached by path, time and size)."""
    with np.load(path, allow_pickle=False) as archive:
        return "config" in archive.files and is_pyramid_config({"config": archive["config"]})


def load_pyramid_file(path: Path) -> PyramidModel:
    """A wavelet model from a weights file anywhere (for training and tests)."""
    return pyramid_from_arrays(read_arrays(path))
