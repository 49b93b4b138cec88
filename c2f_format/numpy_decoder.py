"""A decoder in NumPy alone, for viewers and servers that do not install torch.

`NumpyDecoder` offers what `decoding.LatentDecoder` asks of a decoding engine (the same
methods as `codec.Codec`'s decode side), on NumPy arrays: latents as `[1, C, H, W]`
int64 (views of channels-last storage, which the layers in `numpy_ops` use), pixels as
uint8. The integer networks are exact (spec 6), so the symbols, means and scale indices
equal the torch decoder's bit for bit; the float synthesis follows spec 8 in float32
and differs from torch's by float rounding only.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import entropy
from .bitstream import Header
from .decoding import decode_stream
from .errors import WeightsError
from .numpy_ops import (
    FloatConv,
    IntLayer,
    InverseGDN,
    depth_to_space,
    int_conv,
    phase_order,
    reduced_tail_weights,
    subpixel_deconv,
    to_uint8,
)
from .spec_constants import HIDDEN_STEP, MEAN_MAX, MEAN_STEP, SCALE_LEVELS, STEPS_PER_MEAN
from .tiling import EDGE_STRIP, TileCallback, grid_edges, reporting, synthesis_tiles
from .weights_file import (
    INTEGER_LAYERS,
    check_integer_arrays,
    check_model_id,
    check_role_range,
    installed_model,
    model_id_of,
    read_arrays,
)


@dataclass(frozen=True)
class Synthesis:
    """The float networks of spec 8 and 9, prepared channels-last."""

    inv_gains: np.ndarray  # float32 [K, m], |inv_gain| + 1e-4
    quality_levels: tuple[float, float]
    head: FloatConv
    head_gdn: InverseGDN
    fuse_h2: FloatConv
    fuse_h1: FloatConv
    fuse_mix: FloatConv
    tail: tuple[tuple[FloatConv, InverseGDN | None], ...]
    preview_body: FloatConv
    preview_out: FloatConv
    reduced: dict[int, FloatConv]  # 2, 4: the last stages and a box filter, at 1/4 scale

    def inverse_gain(self, quality: int) -> np.ndarray:
        """g' at quality `quality` (spec 4 and 8), in float32 as the torch decoder."""
        levels = self.inv_gains.shape[0]
        lo_t, hi_t = self.quality_levels
        level = np.float32(lo_t + (float(quality) - 1.0) / 99.0 * (hi_t - lo_t))
        level = np.clip(level, np.float32(0), np.float32(levels - 1))
        if levels == 1:
            return self.inv_gains[0]
        lo = min(int(np.floor(level)), levels - 2)
        t = np.float32(level - np.float32(lo))
        g = self.inv_gains
        return (g[lo] ** (np.float32(1) - t) * g[lo + 1] ** t).astype(np.float32)

    def reconstruct(
        self,
        y_hat: np.ndarray,
        inv: np.ndarray,
        h2: np.ndarray,
        h1: np.ndarray,
        reduce: int = 1,
        edges: Sequence[tuple[int, bool]] = (),
    ) -> np.ndarray:
        """y_hat `[Hy, Wy, m]`, h2f, h1f -> float image `[16 Hy, 16 Wy, 3]`, or reduced by
        2 or 4 from the 1/4-scale features, as the torch decoder (`Codec._finish_reduced`:
        the folded convolution, and the real stages along the grid's outer `edges`)."""
        u = self.head_gdn(depth_to_space(self.head(y_hat * inv), 2))
        f2 = np.maximum(depth_to_space(self.fuse_h2(h2), 2), 0)
        f1 = np.maximum(depth_to_space(self.fuse_h1(h1), 4), 0)
        u = u + self.fuse_mix(np.concatenate([u, f2, f1], axis=2))
        u = self._stages(u, self.tail[:1])
        if reduce == 1:
            return self._stages(u, self.tail[1:])
        x = depth_to_space(self.reduced[reduce](u), 4 // reduce)
        for axis, at_end in edges:

            def near_edge(a: np.ndarray, n: int, axis: int = axis, at_end: bool = at_end) -> Any:
                part = slice(a.shape[axis] - n, None) if at_end else slice(0, n)
                return (slice(None), part) if axis else (part,)

            strip = np.ascontiguousarray(u[near_edge(u, EDGE_STRIP)])
            exact = _box(self._stages(strip, self.tail[1:]), reduce)
            keep = exact.shape[axis] // 2
            x[near_edge(x, keep)] = exact[near_edge(exact, keep)]
        return x

    @staticmethod
    def _stages(
        u: np.ndarray, stages: tuple[tuple[FloatConv, InverseGDN | None], ...]
    ) -> np.ndarray:
        for deconv, gdn in stages:
            u = depth_to_space(deconv(u), 2)
            if gdn is not None:
                u = gdn(u)
        return u

    def preview(self, h2: np.ndarray, h1: np.ndarray) -> np.ndarray:
        """Spec 9: h2f, h1f -> float image at 1/8 scale."""
        up = np.repeat(np.repeat(h1, 2, axis=0), 2, axis=1)
        f = np.maximum(self.preview_body(np.concatenate([h2, up], axis=2)), 0)
        out = depth_to_space(self.preview_out(f), 2)
        out += np.float32(0.5)
        return out


def _box(x: np.ndarray, factor: int) -> np.ndarray:
    """`[H, W, C]` -> the mean of each factor x factor block (H, W multiples of it)."""
    h, w, c = x.shape
    out = x.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))
    return out.astype(np.float32)


@dataclass(frozen=True)
class NumpyModel:
    """A weights file read without torch and checked as `weights.load_weights` checks it."""

    sizes: dict[str, int]  # n, m, c2, c1, h2, h1, fuse from the config
    layers: dict[str, IntLayer]
    z1_mean: np.ndarray  # int64 [c1], units of 1/16
    z1_scale: np.ndarray  # int64 [c1]
    tables: entropy.EntropyTables
    synthesis: Synthesis
    model_id: bytes
    path: Path


def _int(config: dict[str, object], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WeightsError(f"config {key} is {value!r}, not a positive integer")
    return value


def _float_array(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = arrays[f"float/{name}"]
    if value.shape != shape:
        raise WeightsError(f"{name} has shape {tuple(value.shape)}, not {shape}")
    return value.astype(np.float32)


def _synthesis(
    arrays: dict[str, np.ndarray], cfg: dict[str, int], q: tuple[float, float]
) -> Synthesis:
    n, m, fuse = cfg["n"], cfg["m"], cfg["fuse"]
    levels = arrays["float/inv_gain"].shape[0]

    def deconv(name: str, cin: int, cout: int) -> FloatConv:
        return subpixel_deconv(
            _float_array(arrays, f"{name}.weight", (cin, cout, 5, 5)),
            _float_array(arrays, f"{name}.bias", (cout,)),
        )

    def gdn(name: str) -> InverseGDN:
        return InverseGDN.from_arrays(
            _float_array(arrays, f"{name}.beta", (n,)),
            _float_array(arrays, f"{name}.gamma", (n, n, 1, 1)),
        )

    def conv(name: str, cin: int, cout: int, k: int, factor: int = 1) -> FloatConv:
        order = phase_order(cout // (factor * factor), factor) if factor > 1 else None
        return FloatConv.from_arrays(
            _float_array(arrays, f"{name}.weight", (cout, cin, k, k)),
            _float_array(arrays, f"{name}.bias", (cout,)),
            order,
        )

    def reduced(factor: int) -> FloatConv:
        weight, bias = reduced_tail_weights(
            _float_array(arrays, "g_s_tail.2.weight", (n, n, 5, 5)),
            _float_array(arrays, "g_s_tail.2.bias", (n,)),
            np.abs(_float_array(arrays, "g_s_tail.3.beta", (n,))) + np.float32(1e-6),
            _float_array(arrays, "g_s_tail.4.weight", (n, 3, 5, 5)),
            _float_array(arrays, "g_s_tail.4.bias", (3,)),
            factor,
        )
        u = 4 // factor
        return FloatConv.from_arrays(weight.reshape(3 * u * u, n, 5, 5), np.tile(bias, u * u))

    inv = np.abs(_float_array(arrays, "inv_gain", (levels, m))) + np.float32(1e-4)
    return Synthesis(
        inv_gains=inv.astype(np.float32),
        quality_levels=q,
        head=deconv("g_s_head.0", m, n),
        head_gdn=gdn("g_s_head.1"),
        fuse_h2=conv("fuse_h2", cfg["h2"], 4 * fuse, 1, 2),
        fuse_h1=conv("fuse_h1", cfg["h1"], 16 * fuse, 1, 4),
        fuse_mix=conv("fuse_mix", n + 2 * fuse, n, 3),
        tail=(
            (deconv("g_s_tail.0", n, n), gdn("g_s_tail.1")),
            (deconv("g_s_tail.2", n, n), gdn("g_s_tail.3")),
            (deconv("g_s_tail.4", n, 3), None),
        ),
        preview_body=conv("preview_body", cfg["h2"] + cfg["h1"], 64, 3),
        preview_out=conv("preview_out", 64, 12, 1, 2),
        reduced={r: reduced(r) for r in (2, 4)},
    )


def load_model(path: Path) -> NumpyModel:
    """Read and check a weights file (spec 5 and 6.3) into the NumPy decoder's form."""
    path = Path(path)
    arrays = read_arrays(path)
    try:
        config = json.loads(arrays["config"].tobytes().decode())
        if not isinstance(config, dict):
            raise WeightsError("config is not a JSON object")
        sizes = {k: _int(config, k) for k in ("n", "m", "c2", "c1", "h2", "h1", "fuse")}
        lambdas = config["lambdas"]
        if not isinstance(lambdas, list) or not lambdas:
            raise WeightsError("config lambdas is not a non-empty list")
        quality = config.get("quality_levels")
        top = float(len(lambdas) - 1)
        if quality is None:
            q = (0.0, top)
        else:
            q = (float(quality[0]), float(quality[1]))
            if len(quality) != 2 or not 0 <= q[0] < q[1] <= top:
                raise WeightsError(f"quality_levels {quality}")
        layers = {}
        for name in INTEGER_LAYERS:
            weight = arrays[f"int/{name}/weight"]
            bias, mult, shift = (arrays[f"int/{name}/{f}"] for f in ("bias", "multiplier", "shift"))
            lo, hi = (int(v) for v in arrays[f"int/{name}/range"])
            check_integer_arrays(name, weight, bias, mult, shift, lo, hi)
            check_role_range(name, lo, hi)
            # expand layers feed a depth-to-space: order their channels for it
            order = phase_order(weight.shape[0] // 4, 2) if name.endswith("expand") else None
            layers[name] = IntLayer.from_arrays(weight, bias, mult, shift, lo, hi, order)
        tables = entropy.EntropyTables(arrays["entropy/freqs"], arrays["entropy/radii"])
        if tables.levels != SCALE_LEVELS:
            raise WeightsError(f"{tables.levels} tables, not {SCALE_LEVELS}")
        z1_mean = arrays["int/z1/mean"].astype(np.int64)
        z1_scale = arrays["int/z1/scale"].astype(np.int64)
        if z1_mean.shape != (sizes["c1"],) or int(np.abs(z1_mean).max()) > MEAN_MAX:
            raise WeightsError("z1 means out of range")
        if z1_scale.shape != (sizes["c1"],) or not (
            0 <= int(z1_scale.min()) <= int(z1_scale.max()) < SCALE_LEVELS
        ):
            raise WeightsError("z1 scale indices out of range")
        synthesis = _synthesis(arrays, sizes, q)
    except WeightsError as exc:
        raise WeightsError(f"weights file {path}: {exc}") from None
    except KeyError as exc:
        raise WeightsError(f"weights file {path} lacks array {exc}") from None
    except (TypeError, ValueError, IndexError) as exc:
        raise WeightsError(f"weights file {path} is inconsistent: {exc}") from None
    return NumpyModel(
        sizes, layers, z1_mean, z1_scale, tables, synthesis, model_id_of(arrays), path
    )


def _hwc(x: np.ndarray) -> np.ndarray:
    """`[1, C, H, W]` -> `[H, W, C]` (a view)."""
    return x[0].transpose(1, 2, 0)


def _nchw(x: np.ndarray) -> np.ndarray:
    """`[H, W, C]` -> `[1, C, H, W]` (a view)."""
    return x.transpose(2, 0, 1)[None]


class NumpyDecoder:
    """One loaded model; the decode side of `codec.Codec` on NumPy arrays. Thread-safe:
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
    ) -> np.ndarray:
        """y residuals and means, hyper representations -> uint8 [height, width, 3] (or
        reduced by 2 or 4, each side rounded up), tile by tile with a halo (memory
        bounded whatever the size; tiles join without seams); `on_tile` follows them."""
        syn = self.model.synthesis
        inv = syn.inverse_gain(quality)
        s, mu, h2c, h1c = _hwc(symbols_y), _hwc(mu3), _hwc(h2), _hwc(h1)
        rows, cols = s.shape[:2]
        out = np.empty((-(-height // reduce), -(-width // reduce), 3), dtype=np.uint8)
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
            )
            crop = x[t.top : t.top + t.height, t.left : t.left + t.width]
            out[t.y : t.y + t.height, t.x : t.x + t.width] = to_uint8(crop, t.height, t.width)
        return out

    def preview_pixels(self, h2: np.ndarray, h1: np.ndarray, height: int, width: int) -> np.ndarray:
        """The preview (spec 9) as uint8 [height, width, 3]."""
        x = self.model.synthesis.preview(_float(_hwc(h2)), _float(_hwc(h1)))
        return to_uint8(x, height, width)

    def decode(
        self, data: bytes, reduce: int = 1, on_tile: TileCallback | None = None
    ) -> np.ndarray:
        """The colour of a whole stream made with this model, uint8 [H, W, 3], as
        `codec.Codec.decode` gives it (see `decoding.decode_stream`)."""
        return decode_stream(self, data, reduce, on_tile)

    # ---- what else `decoding.LatentDecoder` asks of an engine ----------------------

    def inference(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def zeros_like(self, a: np.ndarray) -> np.ndarray:
        return np.zeros(a.shape, dtype=np.int64)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.array(a)


def _float(h: np.ndarray) -> np.ndarray:
    """Hidden integers (steps of 1/32) as float32, contiguous."""
    return np.ascontiguousarray(h, dtype=np.float32) * np.float32(HIDDEN_STEP)


_CACHE: dict[str, NumpyDecoder] = {}
_CACHE_LOCK = threading.Lock()


def get_decoder(model_id: bytes | None = None) -> NumpyDecoder:
    """The shared NumPy decoder for `model_id` (default: the newest shipped model),
    loaded once per process; the file's hash is checked against its id."""
    key, path = installed_model(model_id)
    with _CACHE_LOCK:
        decoder = _CACHE.get(key)
        if decoder is None:
            model = load_model(path)
            check_model_id(key, model.model_id, model.path)
            decoder = NumpyDecoder(model)
            _CACHE[key] = decoder
    return decoder


__all__ = ["NumpyDecoder", "NumpyModel", "get_decoder", "load_model"]
