"""A decoder in NumPy alone, for viewers and servers that do not install torch.

`NumpyEngine` offers what `decoding.LatentDecoder` asks of a decoding engine (the same
methods as `codec.TorchEngine`'s decode side), on NumPy arrays: latents as `[1, C, H, W]`
int64 (views of channels-last storage, which the layers in `networks.numpy_layers` use), pixels as
uint8. The integer networks are exact (spec 6), so the symbols, means and scale indices
equal the torch decoder's bit for bit; the float synthesis follows spec 8 in float32
and differs from torch's by float rounding only.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from ..format import entropy
from ..format.bitstream import Header, reduced_size
from ..format.constants import HIDDEN_STEP, MEAN_STEP, STEPS_PER_MEAN
from ..format.weights_file import (
    check_model_id,
    installed_model,
)
from ..networks.numpy_layers import (
    depth_to_space,
    int_conv,
    to_uint8,
)
from ..networks.numpy_model import NumpyModel, load_model
from .tiling import (
    EDGE_STRIP,
    TileCallback,
    TileSink,
    grid_edges,
    reporting,
    synthesis_tiles,
)


def _hwc(x: np.ndarray) -> np.ndarray:
    """`[1, C, H, W]` -> `[H, W, C]` (a view)."""
    return x[0].transpose(1, 2, 0)


def _nchw(x: np.ndarray) -> np.ndarray:
    """`[H, W, C]` -> `[1, C, H, W]` (a view)."""
    return x.transpose(2, 0, 1)[None]


class NumpyEngine:
    """One loaded model; the decode side of `codec.TorchEngine` on NumPy arrays. Thread-safe:
    it holds no per-call state."""

    def __init__(self, model: NumpyModel) -> None:
        self.model = model
        self.tables = model.tables
        self.model_id = model.model_id

    # ---- exact path (spec 6) ------------------------------------------------------

    def _synth(self, prefix: str, z: np.ndarray) -> np.ndarray:
        h = depth_to_space(int_conv(_hwc(z), self.model.layers[f"{prefix}.expand"]), 2)
        return int_conv(h, self.model.layers[f"{prefix}.mix"])

    def _predict(self, prefix: str, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = int_conv(h, self.model.layers[f"{prefix}.body"])
        mean = int_conv(f, self.model.layers[f"{prefix}.mean"])
        return _nchw(mean), _nchw(int_conv(f, self.model.layers[f"{prefix}.scale"]))

    def latent_shapes(self, header: Header) -> dict[str, tuple[int, int, int, int]]:
        rows, cols = header.latent_size
        c = self.model.sizes
        return {
            "z1": (1, c["c1"], rows // 4, cols // 4),
            "z2": (1, c["c2"], rows // 2, cols // 2),
            "y": (1, c["m"], rows, cols),
        }

    def z1_params(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (1, self.model.z1_mean.size, rows, cols)
        mean = np.broadcast_to(self.model.z1_mean[None, :, None, None], shape)
        return mean, np.broadcast_to(self.model.z1_scale[None, :, None, None], shape)

    def hyper_from_z1(self, z1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z1 (units of 1/16) -> h1 `[1, h1, ...]`, mean and scale index of z2."""
        h1 = self._synth("h_s1", z1)
        mu2, idx2 = self._predict("p2", h1)
        return _nchw(h1), mu2, idx2

    def h2_from_z2(self, z2: np.ndarray) -> np.ndarray:
        return _nchw(self._synth("h_s2", z2))

    def y_params(self, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._predict("p3", _hwc(h2))

    def decode_z1(self, header: Header, payload: bytes) -> np.ndarray:
        shape = self.latent_shapes(header)["z1"]
        mean1, idx1 = self.z1_params(shape[2], shape[3])
        return self._decode(payload, idx1) * STEPS_PER_MEAN + mean1

    def decode_z2(self, payload: bytes, mu2: np.ndarray, idx2: np.ndarray) -> np.ndarray:
        return self._decode(payload, idx2) * STEPS_PER_MEAN + mu2

    def decode_band(self, coded: bytes, idx3_rows: np.ndarray) -> np.ndarray:
        return self._decode(coded, idx3_rows)

    def _decode(self, payload: bytes, idx: np.ndarray) -> np.ndarray:
        return entropy.decode(payload, np.ascontiguousarray(idx), self.tables)

    # ---- float path (spec 8, 9) ---------------------------------------------------

    def reconstruct(
        self,
        symbols_y: np.ndarray,
        mu3: np.ndarray,
        h2: np.ndarray,
        h1: np.ndarray,
        quality: int,
        height: int,
        width: int,
        reduce: int = 1,
        on_tile: TileCallback | None = None,
        out: TileSink | None = None,
    ) -> TileSink:
        """y residuals and means, hyper representations -> uint8 [height, width, 3], or
        reduced by 2 or 4 (each side rounded up), in `out` when given (tiling.TileSink),
        else a new array; tile by tile with a halo (memory bounded whatever the size;
        tiles join without seams); `on_tile` follows them."""
        syn = self.model.synthesis
        inv = syn.inverse_gain(quality)
        s, mu, h2c, h1c = _hwc(symbols_y), _hwc(mu3), _hwc(h2), _hwc(h1)
        rows, cols = s.shape[:2]
        out_width, out_height = reduced_size(width, height, reduce)
        if out is None:
            out = np.empty((out_height, out_width, 3), dtype=np.uint8)
        for t in reporting(list(synthesis_tiles(rows, cols, height, width, reduce)), on_tile):
            a0, a1, b0, b1 = t.window
            y_hat = s[a0:a1, b0:b1].astype(np.float32)
            y_hat += mu[a0:a1, b0:b1].astype(np.float32) * np.float32(MEAN_STEP)
            x = syn.reconstruct(
                y_hat,
                inv,
                _float(h2c[a0:a1, b0:b1]),
                _float(h1c[a0 // 2 : a1 // 2, b0 // 2 : b1 // 2]),
                reduce,
                grid_edges(t.window, rows, cols),
                EDGE_STRIP,
            )
            crop = x[t.top : t.top + t.height, t.left : t.left + t.width]
            out[t.y : t.y + t.height, t.x : t.x + t.width] = to_uint8(crop, t.height, t.width)
        return out

    def preview_pixels(self, h2: np.ndarray, h1: np.ndarray, height: int, width: int) -> np.ndarray:
        """The preview (spec 9) as uint8 [height, width, 3]."""
        x = self.model.synthesis.preview(_float(_hwc(h2)), _float(_hwc(h1)))
        return to_uint8(x, height, width)

    # ---- what else `decoding.LatentDecoder` asks of an engine ----------------------

    def inference(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def zeros_like(self, a: np.ndarray) -> np.ndarray:
        return np.zeros(a.shape, dtype=np.int16)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.array(a)


def _float(h: np.ndarray) -> np.ndarray:
    """Hidden integers (steps of 1/32) as float32, contiguous."""
    return np.ascontiguousarray(h, dtype=np.float32) * np.float32(HIDDEN_STEP)


_CACHE: dict[str, NumpyEngine] = {}
_CACHE_LOCK = threading.Lock()


def get_numpy_engine(model_id: bytes | None = None) -> NumpyEngine:
    """The shared NumPy decoder for `model_id` (default: the newest shipped model),
    loaded once per process; the file's hash is checked against its id."""
    key, path = installed_model(model_id)
    with _CACHE_LOCK:
        decoder = _CACHE.get(key)
        if decoder is None:
            model = load_model(path)
            check_model_id(key, model.model_id, model.path)
            decoder = NumpyEngine(model)
            _CACHE[key] = decoder
    return decoder


# the names of before the engines were named alike, kept working
NumpyDecoder = NumpyEngine
get_decoder = get_numpy_engine

__all__ = ["NumpyDecoder", "NumpyEngine", "get_decoder", "get_numpy_engine"]
