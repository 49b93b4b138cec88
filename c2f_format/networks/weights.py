"""The weights file: plain arrays, never code.

A weights file is a NumPy `.npz` archive read with `allow_pickle=False`, so loading it
cannot execute anything. It holds

* `config`            the model sizes as UTF-8 JSON (uint8 array),
* `float/<name>`      float32 parameters of the float parts (analysis, synthesis, preview),
* `int/<layer>/<f>`   the integer networks (weight, bias, multiplier, shift, range),
* `int/z1/mean`, `int/z1/scale`  the factorized prior of z1 (mean in 1/16, scale index),
* `entropy/freqs`, `entropy/radii`  the integer frequency tables.

The model id written into every stream is the first 16 bytes of the SHA-256 of a
canonical serialisation of all arrays (sorted names, dtype, shape, little-endian
bytes), so it identifies the numbers, not the archive's zip metadata.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..format.constants import SCALE_LEVELS, TRANSFORM_KERNEL
from ..format.entropy import EntropyTables, build_tables
from ..format.errors import WeightsError
from ..format.weights_file import (
    INTEGER_LAYERS,
    check_integer_arrays,
    check_role_range,
    model_id_of,
    read_arrays,
)
from ..format.weights_file import (  # re-exported: the torch-free half of reading a weights file
    MAX_ABS_BIAS as MAX_ABS_BIAS,
)
from ..format.weights_file import MAX_FAN_IN as MAX_FAN_IN
from ..format.weights_file import MAX_SHIFT as MAX_SHIFT
from .layers import MEAN_MAX, MEAN_STEP, IntConv, IntegerConvParams
from .model import C2FModel, ModelConfig, scale_table


def _int_layers(model: C2FModel) -> dict[str, IntConv]:
    """The integer layers by name, in the spec's order (`weights_file.INTEGER_LAYERS`)."""
    layers = {}
    for name in INTEGER_LAYERS:
        mod = model.get_submodule(name)
        assert isinstance(mod, IntConv), name
        layers[name] = mod
    return layers


def export_arrays(model: C2FModel) -> dict[str, np.ndarray]:
    """Everything the shipped model needs, as plain arrays."""
    config = model.config.to_dict()
    kernel = config.pop("kernel")  # not a key of spec 5's config: v1 decoders build 5x5
    if kernel != TRANSFORM_KERNEL:
        raise ValueError(
            f"a model with {kernel}x{kernel} kernels in g_a and g_s cannot be exported: "
            "bitstream v1's model section and the NumPy decoder have 5x5 only"
        )
    arrays: dict[str, np.ndarray] = {
        "config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    }
    int_layers = _int_layers(model)
    int_param_names = {f"{n}.{p}" for n in int_layers for p in ("weight", "bias")}
    for name, param in model.named_parameters():
        if name in int_param_names or name.startswith("z1_"):
            continue
        arrays[f"float/{name}"] = param.detach().cpu().float().numpy()
    for name, layer in int_layers.items():
        p = layer.export()
        arrays[f"int/{name}/weight"] = p.weight.numpy().astype(np.int32)
        arrays[f"int/{name}/bias"] = p.bias.numpy().astype(np.int64)
        arrays[f"int/{name}/multiplier"] = p.multiplier.numpy().astype(np.int32)
        arrays[f"int/{name}/shift"] = p.shift.numpy().astype(np.int32)
        arrays[f"int/{name}/range"] = np.array([p.out_min, p.out_max], dtype=np.int32)
    with torch.no_grad():
        mean = torch.round(model.z1_mean.double() / MEAN_STEP).clamp(-MEAN_MAX, MEAN_MAX)
        scale = torch.round(model.z1_scale.double()).clamp(0, SCALE_LEVELS - 1)
    arrays["int/z1/mean"] = mean.numpy().astype(np.int32)
    arrays["int/z1/scale"] = scale.numpy().astype(np.int32)
    freqs, radii = build_tables(scale_table().numpy())
    arrays["entropy/freqs"] = freqs
    arrays["entropy/radii"] = radii
    return arrays


def save_weights(model: C2FModel, path: Path) -> bytes:
    """Write the weights file atomically; returns its model id."""
    arrays = export_arrays(model)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return model_id_of(arrays)


def publish_weights(model: C2FModel, path: Path) -> bytes:
    """Save the weights and list them first (newest) in `index.json` beside them."""
    model_id = save_weights(model, path)
    index_path = Path(path).parent / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        index = {"models": []}
    models = [m for m in index["models"] if m["file"] != Path(path).name]
    models.insert(0, {"file": Path(path).name, "model_id": model_id.hex()})
    index_path.write_text(json.dumps({"models": models}, indent=2) + "\n")
    return model_id


def check_integer_layer(name: str, p: IntegerConvParams) -> None:
    """Reject integer layers whose numbers could overflow the exact arithmetic."""
    check_integer_arrays(
        name,
        p.weight.cpu().numpy(),
        p.bias.cpu().numpy(),
        p.multiplier.cpu().numpy(),
        p.shift.cpu().numpy(),
        p.out_min,
        p.out_max,
    )
    check_role_range(name, p.out_min, p.out_max)


@dataclass
class LoadedModel:
    """A model ready for coding: float parts in `net`, exact parts as integers."""

    net: C2FModel
    layers: dict[str, IntegerConvParams]
    z1_mean: torch.Tensor  # int64 [c1], units of MEAN_STEP
    z1_scale: torch.Tensor  # int64 [c1], scale indices
    tables: EntropyTables
    model_id: bytes
    path: Path


def _read_config(arrays: dict[str, np.ndarray], path: Path) -> ModelConfig:
    """The model sizes from the file's `config` array, its quality range checked."""
    raw = json.loads(arrays["config"].tobytes().decode())
    known = {f.name for f in fields(ModelConfig)}
    if not isinstance(raw, dict) or set(raw) - known:
        unknown = sorted(set(raw) - known) if isinstance(raw, dict) else raw
        raise WeightsError(f"weights file {path}: config names what this decoder lacks: {unknown}")
    config = ModelConfig(**raw)
    if config.quality_levels is not None:
        lo, hi = config.quality_levels
        if not 0 <= lo < hi <= len(config.lambdas) - 1:
            raise WeightsError(f"weights file {path}: quality_levels {config.quality_levels}")
    return config


def _read_integer_layers(
    arrays: dict[str, np.ndarray], net: C2FModel
) -> dict[str, IntegerConvParams]:
    """The integer layers of `net` read from the file, each checked against overflow."""
    layers: dict[str, IntegerConvParams] = {}
    for name in _int_layers(net):
        rng = arrays[f"int/{name}/range"]
        layers[name] = IntegerConvParams(
            weight=torch.from_numpy(arrays[f"int/{name}/weight"].astype(np.int64)),
            bias=torch.from_numpy(arrays[f"int/{name}/bias"].astype(np.int64)),
            multiplier=torch.from_numpy(arrays[f"int/{name}/multiplier"].astype(np.int64)),
            shift=torch.from_numpy(arrays[f"int/{name}/shift"].astype(np.int64)),
            out_min=int(rng[0]),
            out_max=int(rng[1]),
        )
        check_integer_layer(name, layers[name])
    return layers


def _float_state(
    arrays: dict[str, np.ndarray],
    net: C2FModel,
    layers: dict[str, IntegerConvParams],
    path: Path,
) -> dict[str, torch.Tensor]:
    """A state dict for `net`: the float parameters from the file, shapes checked; the
    integer layers' and z1's parameters keep their initial values (they are held apart)."""
    state = {}
    int_param_names = {f"{n}.{p}" for n in layers for p in ("weight", "bias")}
    for name, param in net.named_parameters():
        if name in int_param_names or name.startswith("z1_"):
            state[name] = param.detach()
            continue
        value = torch.from_numpy(arrays[f"float/{name}"])
        if value.shape != param.shape:
            raise WeightsError(f"weights file {path}: {name} has shape {tuple(value.shape)}")
        state[name] = value
    return state


def _z1_and_tables(
    arrays: dict[str, np.ndarray], config: ModelConfig, path: Path
) -> tuple[torch.Tensor, torch.Tensor, EntropyTables]:
    """z1's prior (means, scale indices) and the entropy tables, checked to be in range."""
    tables = EntropyTables(arrays["entropy/freqs"], arrays["entropy/radii"])
    z1_mean = torch.from_numpy(arrays["int/z1/mean"].astype(np.int64))
    z1_scale = torch.from_numpy(arrays["int/z1/scale"].astype(np.int64))
    if tables.levels != SCALE_LEVELS:
        raise WeightsError(f"weights file {path} has {tables.levels} tables, not {SCALE_LEVELS}")
    if z1_mean.shape != (config.c1,) or int(z1_mean.abs().max()) > MEAN_MAX:
        raise WeightsError(f"weights file {path}: z1 means out of range")
    if z1_scale.shape != (config.c1,) or not (
        0 <= int(z1_scale.min()) <= int(z1_scale.max()) < SCALE_LEVELS
    ):
        raise WeightsError(f"weights file {path}: z1 scale indices out of range")
    return z1_mean, z1_scale, tables


def load_weights(path: Path) -> LoadedModel:
    path = Path(path)
    arrays = read_arrays(path)
    try:
        config = _read_config(arrays, path)
        net = C2FModel(config)
        layers = _read_integer_layers(arrays, net)
        net.load_state_dict(_float_state(arrays, net, layers, path))
        z1_mean, z1_scale, tables = _z1_and_tables(arrays, config, path)
    except KeyError as exc:
        raise WeightsError(f"weights file {path} lacks array {exc}") from None
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"weights file {path} is inconsistent: {exc}") from None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return LoadedModel(net, layers, z1_mean, z1_scale, tables, model_id_of(arrays), path)


def trainable_model(path: Path) -> C2FModel:
    """A float model that continues training from a shipped weights file.

    The integer layers are turned back into float weights (w = w_int * s with the
    per-channel step s recovered from the multiplier and shift, s * in_step / out_step =
    multiplier / 2**shift), so that exporting again without training reproduces the
    same integers. Lets training resume from the weights in the repository when the
    run's checkpoint is not at hand.
    """
    loaded = load_weights(path)
    net = C2FModel(loaded.net.config)
    state = {k: v.clone() for k, v in loaded.net.state_dict().items()}
    for name, mod in _int_layers(net).items():
        p = loaded.layers[name]
        ratio = p.multiplier.double() / torch.pow(2.0, p.shift.double())
        step = ratio * mod.out_step / mod.in_step
        state[f"{name}.weight"] = (p.weight.double() * step.view(-1, 1, 1, 1)).float()
        state[f"{name}.bias"] = (p.bias.double() * step * mod.in_step).float()
    state["z1_mean"] = loaded.z1_mean.float() * MEAN_STEP
    state["z1_scale"] = loaded.z1_scale.float()
    net.load_state_dict(state)
    return net
