"""Which engine decodes: torch's (`torch_engine.TorchEngine`) or NumPy's (`numpy_engine`).

The default is torch where it is installed (it can use a GPU) and NumPy otherwise, so a
decode-only install (`pip install .` from a checkout, no torch) opens every stream. Callers pick
one with a `backend=` argument or `$C2F_BACKEND` (`torch`, `numpy` or `auto`), which
tests use to run both on the same streams. Both produce the same symbols and means bit
for bit; the pixels differ by float rounding only (spec 11).
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any, Protocol

from ..format.errors import InvalidArgumentError, TorchRequiredError

if TYPE_CHECKING:
    import contextlib

    import numpy as np

    from ..format.bitstream import Header
    from ..format.entropy import EntropyTables
    from .tiling import TileCallback, TileSink

BACKENDS = ("torch", "numpy")
# no c2f package is published yet: the hint names torch itself, which is all the
# [torch] extra adds (README.md, Install, has its CPU-only build)
INSTALL_TORCH = "pip install torch (its CPU-only build: see README.md, Install)"


class Engine(Protocol):
    """What `decoding.LatentDecoder` asks of a decoding engine; arrays are the engine's own
    (torch tensors or NumPy arrays), `[1, C, H, W]` integers for latents, in the narrowest
    type their spec ranges allow where an image holds many of them (a 100 MP image has
    50 million elements of y): h1 and h2 int16 (0..HIDDEN_MAX), the mean of y int32,
    its scale index uint8, its symbols int16 (`zeros_like`); the rest int64."""

    model_id: bytes
    tables: EntropyTables

    def latent_shapes(self, header: Header) -> dict[str, tuple[int, int, int, int]]: ...
    def decode_z1(self, header: Header, payload: bytes) -> Any: ...
    def hyper_from_z1(self, z1: Any) -> tuple[Any, Any, Any]: ...
    def decode_z2(self, payload: bytes, mu2: Any, idx2: Any) -> Any: ...
    def h2_from_z2(self, z2: Any) -> Any: ...
    def y_params(self, h2: Any) -> tuple[Any, Any]: ...
    def decode_band(self, coded: bytes, idx3_rows: Any) -> Any: ...
    def reconstruct(
        self,
        symbols_y: Any,
        mu3: Any,
        h2: Any,
        h1: Any,
        quality: int,
        height: int,
        width: int,
        reduce: int = 1,
        on_tile: TileCallback | None = None,
        out: TileSink | None = None,
    ) -> TileSink: ...
    def preview_pixels(self, h2: Any, h1: Any, height: int, width: int) -> np.ndarray: ...
    def inference(self) -> contextlib.AbstractContextManager[Any]: ...
    def zeros_like(self, a: Any) -> Any: ...
    def to_numpy(self, a: Any) -> np.ndarray: ...


def torch_available() -> bool:
    """Whether torch is installed (found, not imported: importing it takes a second)."""
    return importlib.util.find_spec("torch") is not None


def require_torch(what: str) -> None:
    """Raise TorchRequiredError naming `what` when torch is not installed."""
    if not torch_available():
        raise TorchRequiredError(f"{what} needs torch: {INSTALL_TORCH}")


def resolve(backend: str | None = None) -> str:
    """`backend`, else $C2F_BACKEND, else torch when installed, else numpy."""
    choice = backend if backend is not None else os.environ.get("C2F_BACKEND") or "auto"
    if not isinstance(choice, str) or choice not in (*BACKENDS, "auto"):
        raise InvalidArgumentError(
            f"backend must be one of {', '.join(BACKENDS)} or auto, not {choice!r}"
        )
    if choice == "auto":
        return "torch" if torch_available() else "numpy"
    if choice == "torch":
        require_torch("the torch backend")
    return choice


def check_device(backend: str, device: object) -> Any:
    """The device to decode on: torch's choice (`codec.pick_device`) for the torch
    backend; for numpy, only the CPU (argument or $C2F_DEVICE; a GPU needs torch)."""
    if backend == "torch":
        from .torch_engine import pick_device

        try:
            return pick_device(device)  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
    choice = device if device is not None else os.environ.get("C2F_DEVICE") or None
    if choice is not None and str(choice) != "cpu":
        raise InvalidArgumentError(
            f"device {str(choice)!r} is not supported by the NumPy backend, which runs on "
            f"the CPU: a GPU needs torch ({INSTALL_TORCH})"
        )
    return None


def engine(backend: str, device: Any, model_id: bytes | None) -> Engine:
    """The shared engine for `model_id` on `device` (as `check_device` returned it)."""
    if backend == "torch":
        from .torch_engine import get_torch_engine

        return get_torch_engine(device, model_id)
    from .numpy_engine import get_numpy_engine

    return get_numpy_engine(model_id)


__all__ = ["BACKENDS", "Engine", "check_device", "engine", "require_torch", "resolve"]
