"""Reading a weights file without torch: the archive, its model id, its exactness bounds,
and the index of installed models (spec section 5).

Both decoders (torch's in `networks/weights.py`, NumPy's in `codec/numpy_engine.py`) load through
these functions, so a file one of them rejects the other rejects with the same error.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from .constants import (
    HIDDEN_MAX,
    MAX_SHIFT,
    MEAN_MAX,
    MODEL_ID_BYTES,
    MULT_BITS,
    SCALE_LEVELS,
    WEIGHT_MAX,
)
from .errors import UnknownModelError, WeightsError

# The integer layers in the order the spec lists them (section 5).
INTEGER_LAYERS = (
    "h_s1.expand",
    "h_s1.mix",
    "p2.body",
    "p2.mean",
    "p2.scale",
    "h_s2.expand",
    "h_s2.mix",
    "p3.body",
    "p3.mean",
    "p3.scale",
)
# Bounds a weights file must respect so that the integer path is exact (spec 6.3): with
# them every accumulator stays below 2**53 and every requantisation product below 2**63.
MAX_ABS_BIAS = 1 << 40
MAX_FAN_IN = 1 << 12


def model_id_of(arrays: dict[str, np.ndarray]) -> bytes:
    """The first 16 bytes of the SHA-256 of the arrays' canonical serialisation."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        digest.update(name.encode() + b"\0" + a.dtype.str.encode() + b"\0")
        digest.update(np.asarray(a.shape, dtype="<i8").tobytes())
        digest.update(a.tobytes())
    return digest.digest()[:MODEL_ID_BYTES]


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive, read with `allow_pickle=False` (no code can run)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"weights file {path} is not a valid archive: {exc}") from None


def check_integer_arrays(
    name: str,
    weight: np.ndarray,
    bias: np.ndarray,
    multiplier: np.ndarray,
    shift: np.ndarray,
    out_min: int,
    out_max: int,
) -> None:
    """Reject integer layers whose numbers could overflow the exact arithmetic (6.3)."""
    if weight.ndim != 4:
        raise WeightsError(f"integer layer {name}: weight has shape {weight.shape}")
    cout, cin, k, k2 = weight.shape
    problems = []
    if k != k2 or k not in (1, 3):
        problems.append(f"kernel {k}x{k2}")
    if cin * k * k > MAX_FAN_IN:
        problems.append(f"fan-in {cin * k * k}")
    if weight.size and int(np.abs(weight.astype(np.int64)).max()) > WEIGHT_MAX:
        problems.append("weight magnitude")
    if tuple(s.shape for s in (bias, multiplier, shift)) != ((cout,),) * 3:
        problems.append("per-channel array lengths")
    elif cout:
        if int(np.abs(bias.astype(np.int64)).max()) > MAX_ABS_BIAS:
            problems.append("bias magnitude")
        if int(multiplier.min()) < 1 or int(multiplier.max()) >= 1 << MULT_BITS:
            problems.append("multiplier range")
        if int(shift.min()) < 1 or int(shift.max()) > MAX_SHIFT:
            problems.append("shift range")
    if not (-(1 << 20) <= out_min <= out_max <= 1 << 20):
        problems.append("output range")
    if problems:
        raise WeightsError(
            f"integer layer {name} violates the exactness bounds: {', '.join(problems)}"
        )


def check_role_range(name: str, out_min: int, out_max: int) -> None:
    """Output ranges by role (spec 6.2): hidden [0, 1024], mean within +-32768 (units of
    1/16), scale index within [0, 63]; the overflow bound relies on them."""
    role = name.rsplit(".", 1)[-1]
    lo, hi = {"mean": (-MEAN_MAX, MEAN_MAX), "scale": (0, SCALE_LEVELS - 1)}.get(
        role, (0, HIDDEN_MAX)
    )
    if not (lo <= out_min <= out_max <= hi):
        raise WeightsError(
            f"integer layer {name}: output range [{out_min}, {out_max}] exceeds [{lo}, {hi}]"
        )


def weights_dir() -> Path:
    """The folder of weights: $C2F_WEIGHTS_DIR (another set, e.g. a training run's),
    else the installed package data (`weights/` installs as `c2f_format._weights`)."""
    override = os.environ.get("C2F_WEIGHTS_DIR")
    if override:
        return Path(override)
    return Path(str(resources.files("c2f_format._weights")))


def weights_index() -> dict[str, str]:
    """Model id (hex) -> weights file name, newest model first."""
    folder = weights_dir()
    try:
        index = json.loads((folder / "index.json").read_text())
        models = {str(entry["model_id"]): str(entry["file"]) for entry in index["models"]}
    except FileNotFoundError:
        raise WeightsError(f"no weights index in {folder}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"weights index in {folder} is malformed: {exc!r}") from None
    if not models:
        raise WeightsError(f"weights index in {folder} lists no models")
    return models


def installed_model(model_id: bytes | None) -> tuple[str, Path]:
    """The id (hex) and weights file of `model_id` (default: the newest shipped model),
    or UnknownModelError naming the models that are installed."""
    index = weights_index()
    key = model_id.hex() if model_id is not None else next(iter(index))
    if key not in index:
        raise UnknownModelError(
            f"stream was made with model {key}, which is not installed "
            f"(installed: {', '.join(index) or 'none'})"
        )
    return key, weights_dir() / index[key]


def check_model_id(key: str, loaded_id: bytes, path: Path) -> None:
    """Refuse a weights file whose arrays hash to another id than the index gives it."""
    if loaded_id.hex() != key:
        raise WeightsError(
            f"weights file {path} hashes to {loaded_id.hex()}, but the index says {key}"
        )


__all__ = [
    "INTEGER_LAYERS",
    "check_integer_arrays",
    "check_model_id",
    "check_role_range",
    "installed_model",
    "model_id_of",
    "read_arrays",
    "weights_dir",
    "weights_index",
]
