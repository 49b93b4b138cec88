"""The decoder's networks in NumPy: the float synthesis and preview of spec 8 and 9
(`Synthesis`), the integer layers of spec 6, the entropy tables, and `load_model`, which
reads and checks a weights file into a `NumpyModel` (the counterpart of
`weights.load_weights`). Torch-free; `codec.numpy_engine` decodes streams with it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..format import entropy
from ..format.constants import MEAN_MAX, SCALE_LEVELS
from ..format.errors import WeightsError
from ..format.weights_file import (
    INTEGER_LAYERS,
    check_integer_arrays,
    check_role_range,
    model_id_of,
    read_arrays,
)
from .numpy_layers import (
    FloatConv,
    IntLayer,
    InverseGDN,
    depth_to_space,
    phase_order,
    reduced_tail_weights,
    subpixel_deconv,
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
    # 2, 4 -> the last stages and a box filter, at 1/4 scale (folded on first use: 0.4 s)
    reduced: Callable[[int], FloatConv]
    # a model with linear paths (spec 8): the head's and each tail stage's, 1x1 to 4 cout
    paths: tuple[FloatConv, ...] | None = None

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
        edge_strip: int = 0,
    ) -> np.ndarray:
        """y_hat `[Hy, Wy, m]`, h2f, h1f -> float image `[16 Hy, 16 Wy, 3]`, or reduced by
        2 or 4 from the 1/4-scale features, as the torch decoder (`TorchEngine._finish_reduced`:
        the folded convolution, and the real stages over an `edge_strip` of 1/4-scale positions
        along the grid's outer `edges`)."""
        y_in = y_hat * inv
        u = self.head_gdn(depth_to_space(self.head(y_in), 2))
        if self.paths is not None:
            u = u + depth_to_space(self.paths[0](y_in), 2)
        f2 = np.maximum(depth_to_space(self.fuse_h2(h2), 2), 0)
        f1 = np.maximum(depth_to_space(self.fuse_h1(h1), 4), 0)
        u = u + self.fuse_mix(np.concatenate([u, f2, f1], axis=2))
        u = self._stages(u, 0, 1)
        if reduce == 1:
            return self._stages(u, 1, 3)
        x = depth_to_space(self.reduced(reduce)(u), 4 // reduce)
        for axis, at_end in edges:

            def near_edge(a: np.ndarray, n: int, axis: int = axis, at_end: bool = at_end) -> Any:
                part = slice(a.shape[axis] - n, None) if at_end else slice(0, n)
                return (slice(None), part) if axis else (part,)

            strip = np.ascontiguousarray(u[near_edge(u, edge_strip)])
            exact = _box(self._stages(strip, 1, 3), reduce)
            keep = exact.shape[axis] // 2
            x[near_edge(x, keep)] = exact[near_edge(exact, keep)]
        return x

    def _stages(self, u: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Tail stages `start` to `stop` - 1, each plus its linear path if any."""
        for i in range(start, stop):
            deconv, gdn = self.tail[i]
            out = depth_to_space(deconv(u), 2)
            if gdn is not None:
                out = gdn(out)
            if self.paths is not None:
                out = out + depth_to_space(self.paths[1 + i](u), 2)
            u = out
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


# the config keys this decoder knows (spec 5): a model with another needs another decoder
CONFIG_KEYS = {
    "n", "m", "c2", "c1", "h2", "h1", "p3", "p2", "fuse", "lambdas", "quality_levels",
    "gain_schedule", "linear_paths",
}  # fmt: skip


def _flag(config: dict[str, object], key: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise WeightsError(f"config {key} is {value!r}, not a boolean")
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

    def path(index: int, cin: int, cout: int) -> FloatConv:
        weight = _float_array(arrays, f"s_paths.{index}.mix.weight", (4 * cout, cin, 1, 1))
        return FloatConv.from_arrays(weight, np.zeros(4 * cout, np.float32), phase_order(cout, 2))

    def path_matrix(index: int, cin: int, cout: int) -> np.ndarray:
        return _float_array(arrays, f"s_paths.{index}.mix.weight", (4 * cout, cin, 1, 1))[
            :, :, 0, 0
        ]

    paths = (
        (path(0, m, n), path(1, n, n), path(2, n, n), path(3, n, 3))
        if cfg["linear_paths"]
        else None
    )
    tail_paths = (path_matrix(2, n, n), path_matrix(3, n, 3)) if cfg["linear_paths"] else None

    def reduced(factor: int) -> FloatConv:
        weight, bias = reduced_tail_weights(
            _float_array(arrays, "g_s_tail.2.weight", (n, n, 5, 5)),
            _float_array(arrays, "g_s_tail.2.bias", (n,)),
            np.abs(_float_array(arrays, "g_s_tail.3.beta", (n,))) + np.float32(1e-6),
            _float_array(arrays, "g_s_tail.4.weight", (n, 3, 5, 5)),
            _float_array(arrays, "g_s_tail.4.bias", (3,)),
            factor,
            tail_paths,
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
        reduced=functools.cache(reduced),
        paths=paths,
    )


def _read_config(
    arrays: dict[str, np.ndarray],
) -> tuple[dict[str, int], tuple[float, float], bool]:
    """The sizes, the quality range and whether the model has linear paths."""
    config = json.loads(arrays["config"].tobytes().decode())
    if not isinstance(config, dict):
        raise WeightsError("config is not a JSON object")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise WeightsError(f"config names what this decoder lacks: {unknown}")
    sizes = {k: _int(config, k) for k in ("n", "m", "c2", "c1", "h2", "h1", "fuse")}
    lambdas = config["lambdas"]
    if not isinstance(lambdas, list) or not lambdas:
        raise WeightsError("config lambdas is not a non-empty list")
    quality = config.get("quality_levels")
    top = float(len(lambdas) - 1)
    if quality is None:
        return sizes, (0.0, top), _flag(config, "linear_paths")
    q = (float(quality[0]), float(quality[1]))
    if len(quality) != 2 or not 0 <= q[0] < q[1] <= top:
        raise WeightsError(f"quality_levels {quality}")
    return sizes, q, _flag(config, "linear_paths")


def load_model(path: Path) -> NumpyModel:
    """Read and check a weights file (spec 5 and 6.3) into the NumPy decoder's form."""
    path = Path(path)
    arrays = read_arrays(path)
    try:
        sizes, q, linear_paths = _read_config(arrays)
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
        synthesis = _synthesis(arrays, {**sizes, "linear_paths": int(linear_paths)}, q)
    except WeightsError as exc:
        raise WeightsError(f"weights file {path}: {exc}") from None
    except KeyError as exc:
        raise WeightsError(f"weights file {path} lacks array {exc}") from None
    except (TypeError, ValueError, IndexError) as exc:
        raise WeightsError(f"weights file {path} is inconsistent: {exc}") from None
    return NumpyModel(
        sizes, layers, z1_mean, z1_scale, tables, synthesis, model_id_of(arrays), path
    )


__all__ = ["NumpyModel", "Synthesis", "load_model"]
