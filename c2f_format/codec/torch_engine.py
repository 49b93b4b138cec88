"""The codec engine: images to symbols to bytes and back, with the shipped model.

The exact path (`TorchEngine.hyper_from_z1`, `h2_from_z2`, `y_params`) runs only integer layers,
so the encoder and every decoder derive the same means and table indices from the same
symbols. The float path (analysis, synthesis, preview) only shapes pixels.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..format import entropy
from ..format.bitstream import (
    LATENT_FACTOR,
    SEG_ALPHA,
    SEG_END,
    SEG_HYP1,
    SEG_HYP2,
    Header,
    pack_band,
    pack_segment,
    reduced_size,
    version_for,
)
from ..format.constants import STEPS_PER_MEAN
from ..format.weights_file import check_model_id, installed_model
from ..networks.inference import ReducedTail, for_inference
from ..networks.layers import HIDDEN_STEP, MEAN_STEP, depth_to_space, exact_conv
from ..networks.model import lambdas_at, scale_table
from ..networks.weights import LoadedModel, load_weights
from .effort import DEFAULT_EFFORT, ITERATIONS
from .precision import cpu_has_bf16, synthesis_bf16
from .search import refine
from .threads import cpu_threads
from .tiling import (
    EDGE_STRIP,
    TileCallback,
    TileSink,
    grid_edges,
    reporting,
    synthesis_tiles,
)
from .tiling import HALO as HALO  # re-exported
from .tiling import TILE as TILE
from .tiling import tiles as _tiles

BAND_ROWS = 4  # latent rows per YBND segment written by this encoder (64 pixel rows)
SYMBOL_LIMIT = entropy.ESCAPE_LIMIT


def search_bf16(device: torch.device) -> bool:
    """Whether the search (effort 4 and up) runs its own synthesis in bfloat16: where that
    is native, a GPU or a CPU with AVX-512 BF16 or AMX; emulated (an AVX2 CPU) it is
    slower than float32. $C2F_SEARCH_BF16=1 or 0 decides instead. Either way the stream's
    residuals are rounded once, from float32."""
    choice = os.environ.get("C2F_SEARCH_BF16", "auto").strip().lower()
    if choice in ("0", "1"):
        return choice == "1"
    return device.type != "cpu" or cpu_has_bf16()


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, else $C2F_DEVICE, else CUDA when present, else CPU."""
    choice = device if device is not None else os.environ.get("C2F_DEVICE") or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid device {choice!r}: {exc}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {choice!r} is not supported: c2f runs on 'cpu' or 'cuda'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {choice!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {choice!r}: only {torch.cuda.device_count()} CUDA devices")
        if dev.index is None:  # one cache entry per GPU, however it was named
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


class TorchEngine:
    """One loaded model on one device. Thread-safe: it holds no per-call state."""

    def __init__(self, loaded: LoadedModel, device: torch.device) -> None:
        self.loaded = loaded
        self.device = device
        self.net = for_inference(loaded.net).to(device)
        self._reduced: dict[int, ReducedTail] = {}  # made on first use: 0.4 s each
        self.layers = {name: p.to(device) for name, p in loaded.layers.items()}
        self.tables = loaded.tables
        self.model_id = loaded.model_id
        self.scales = scale_table().to(device, torch.float32)  # scale index -> sigma

    # ---- exact path ---------------------------------------------------------------

    def _synth(self, prefix: str, z: torch.Tensor) -> torch.Tensor:
        h = depth_to_space(exact_conv(z, self.layers[f"{prefix}.expand"]))
        return exact_conv(h, self.layers[f"{prefix}.mix"])

    def _predict(self, prefix: str, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = exact_conv(h, self.layers[f"{prefix}.body"])
        return exact_conv(f, self.layers[f"{prefix}.mean"]), exact_conv(
            f, self.layers[f"{prefix}.scale"]
        )

    def z1_params(self, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        mean = self.loaded.z1_mean.to(self.device).view(shape).expand(1, -1, rows, cols)
        idx = self.loaded.z1_scale.to(self.device).view(shape).expand(1, -1, rows, cols)
        return mean, idx

    def hyper_from_z1(self, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z1 (units of MEAN_STEP) -> h1, mean and scale index of z2."""
        h1 = self._synth("h_s1", z1)
        mu2, idx2 = self._predict("p2", h1)
        return h1, mu2, idx2

    def h2_from_z2(self, z2: torch.Tensor) -> torch.Tensor:
        """z2 (units of MEAN_STEP) -> h2: all the preview needs."""
        return self._synth("h_s2", z2)

    def y_params(self, h2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h2 -> mean (units of MEAN_STEP) and scale index of every element of y."""
        return self._predict("p3", h2)

    def hyper_from_z2(self, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z2 (units of MEAN_STEP) -> h2, mean and scale index of y."""
        h2 = self.h2_from_z2(z2)
        return (h2, *self.y_params(h2))

    # ---- float path ---------------------------------------------------------------

    def _float(self, h: torch.Tensor) -> torch.Tensor:
        return _channels_last(h.to(torch.float32) * HIDDEN_STEP)

    def reconstruct(
        self,
        symbols_y: torch.Tensor,
        mu3: torch.Tensor,
        h2: torch.Tensor,
        h1: torch.Tensor,
        quality: int,
        height: int,
        width: int,
        reduce: int = 1,
        on_tile: TileCallback | None = None,
        out: TileSink | None = None,
    ) -> TileSink:
        """y residuals and means, hyper representations -> uint8 [height, width, 3], or
        reduced by 2 or 4 (each side rounded up): the synthesis then stops at 1/4 scale
        and `inference.ReducedTail` finishes it; in `out` when given (tiling.TileSink),
        else a new array. `on_tile` follows the tiles (tiling.py).

        The float synthesis runs tile by tile in the latent domain (TILE x TILE latent
        units, each with HALO units of context on every side, cropped away after), so
        memory stays bounded whatever the image size, and tiles join without seams. Its
        products are bfloat16 or float32 as `precision.synthesis_bf16` says.
        """
        bf16 = synthesis_bf16(self.device.type)
        _, inv = self.net.gains(self.net.config.level_of_quality(quality))
        inv = inv.to(self.device)
        rows, cols = mu3.shape[2], mu3.shape[3]
        finish = self.reduced_tail(reduce) if reduce > 1 else None
        out_width, out_height = reduced_size(width, height, reduce)
        if out is None:
            out = np.empty((out_height, out_width, 3), dtype=np.uint8)
        for t in reporting(list(synthesis_tiles(rows, cols, height, width, reduce)), on_tile):
            a0, a1, b0, b1 = t.window
            y_hat = (
                symbols_y[:, :, a0:a1, b0:b1].to(torch.float32)
                + mu3[:, :, a0:a1, b0:b1].to(torch.float32) * MEAN_STEP
            )
            x = self.net.synthesis(
                _channels_last(y_hat),
                inv,
                self._float(h2[:, :, a0:a1, b0:b1]),
                self._float(h1[:, :, a0 // 2 : a1 // 2, b0 // 2 : b1 // 2]),
                stages=5 if finish is None else 2,
                bf16=bf16,
            )
            if finish is not None:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                    x = self._finish_reduced(x, finish, reduce, grid_edges(t.window, rows, cols))
            crop = x[:, :, t.top : t.top + t.height, t.left : t.left + t.width]
            out[t.y : t.y + t.height, t.x : t.x + t.width] = to_uint8(crop, t.height, t.width)
        return out

    def reduced_tail(self, reduce: int) -> ReducedTail:
        """The folded last stages for `reduce` 2 or 4, made when a reduced decode first
        asks (folding them costs about 0.4 s, a full decode of a small image)."""
        tail = self._reduced.get(reduce)
        if tail is None:
            net = self.loaded.net
            tail = ReducedTail(net.g_s_tail, reduce, net.tail_path_weights()).to(self.device)
            self._reduced[reduce] = tail  # two threads may both make it: either will do
        return tail

    def _finish_reduced(
        self,
        features: torch.Tensor,
        finish: ReducedTail,
        reduce: int,
        edges: list[tuple[int, bool]],
    ) -> torch.Tensor:
        """1/4-scale features -> the image reduced by `reduce`: the folded convolution,
        and the real last stages in a strip along each outer edge of the grid."""
        x = finish(features).float()
        for axis, at_end in edges:
            dim, n = 2 + axis, EDGE_STRIP
            start = features.shape[dim] - n if at_end else 0
            strip = features.narrow(dim, start, n)
            exact = F.avg_pool2d(self.net.tail_stages(strip, 1, 3).float(), reduce)
            keep = exact.shape[dim] // 2
            src = exact.shape[dim] - keep if at_end else 0
            x.narrow(dim, x.shape[dim] - keep if at_end else 0, keep).copy_(
                exact.narrow(dim, src, keep)
            )
        return x

    def render_preview(self, h2: torch.Tensor, h1: torch.Tensor) -> torch.Tensor:
        return self.net.preview(self._float(h2), self._float(h1))

    # ---- what `decoding.LatentDecoder` asks of an engine (see engines.py) ------------

    def preview_pixels(
        self, h2: torch.Tensor, h1: torch.Tensor, height: int, width: int
    ) -> np.ndarray:
        """The preview as uint8 [height, width, 3]."""
        return to_uint8(self.render_preview(h2, h1), height, width)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """No autograd, and as many CPU threads as the machine has idle cores (threads.py)."""
        with torch.inference_mode(), cpu_threads(self.device):
            yield

    def zeros_like(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(t.shape, dtype=torch.int16, device=t.device)

    def to_numpy(self, t: torch.Tensor) -> np.ndarray:
        return _np(t)

    # ---- whole images -------------------------------------------------------------

    def encode(
        self,
        rgb: np.ndarray,
        mode: str,
        quality: int,
        ancillary: Sequence[tuple[bytes, bytes]] = (),
        alpha: bytes | None = None,
        on_tile: TileCallback | None = None,
        effort: int = DEFAULT_EFFORT,
    ) -> bytes:
        """`rgb`: uint8 [H, W, 3]; `mode`: the header's colour mode (L and LA are coded
        from grey RGB); `ancillary`: (type, payload) segments such as ICC and Exif;
        `alpha`: the ALPH payload, required for LA and RGBA; `on_tile` follows the
        analysis tiles (tiling.py); `effort` 1..9 how hard the encoder searches for
        a better y (search.py). Returns the whole stream."""
        with self.inference():
            return self._encode(rgb, mode, quality, ancillary, alpha, on_tile, effort)

    def _encode(
        self,
        rgb: np.ndarray,
        mode: str,
        quality: int,
        ancillary: Sequence[tuple[bytes, bytes]],
        alpha: bytes | None,
        on_tile: TileCallback | None,
        effort: int = DEFAULT_EFFORT,
    ) -> bytes:
        height, width = rgb.shape[:2]
        header = Header(width, height, mode, quality, self.model_id, version_for(mode))
        if (alpha is not None) != header.has_alpha:
            raise ValueError(f"colour mode {mode} takes {'an' if header.has_alpha else 'no'} ALPH")
        ph, pw = header.padded_size
        # kept as uint8 (3 bytes a pixel) and converted to float a tile at a time
        padded = np.pad(rgb, ((0, ph - height), (0, pw - width), (0, 0)), mode="edge")
        x = torch.from_numpy(padded).to(self.device)
        level = self.net.config.level_of_quality(quality)
        gain, inv = self.net.gains(level)
        y = self._analyse(x, on_tile).mul_(gain.to(self.device).view(1, -1, 1, 1))
        z2 = self.net.h_a2(y)
        z1 = self.net.h_a1(z2)

        mean1, idx1 = self.z1_params(z1.shape[2], z1.shape[3])
        s1 = _residual(z1, mean1)
        h1, mu2, idx2 = self.hyper_from_z1(s1 * STEPS_PER_MEAN + mean1)
        s2 = _residual(z2, mu2)
        h2, mu3, idx3 = self.hyper_from_z2(s2 * STEPS_PER_MEAN + mu2)
        if ITERATIONS[effort]:
            y = self._search(rgb, y, mu3, idx3, h2, h1, inv, level, ITERATIONS[effort])
        s3 = _residual(y, mu3)

        out = [header.pack()] + [pack_segment(kind, payload) for kind, payload in ancillary]
        if alpha is not None:
            out.append(pack_segment(SEG_ALPHA, alpha))
        out.append(pack_segment(SEG_HYP1, entropy.encode(_np(s1), _np(idx1), self.tables)))
        out.append(pack_segment(SEG_HYP2, entropy.encode(_np(s2), _np(idx2), self.tables)))
        rows = header.latent_size[0]
        s3n, idx3n = _np(s3), _np(idx3)
        for row in range(0, rows, BAND_ROWS):
            end = min(rows, row + BAND_ROWS)
            coded = entropy.encode(s3n[:, :, row:end], idx3n[:, :, row:end], self.tables)
            out.append(pack_band(row, end - row, coded))
        out.append(pack_segment(SEG_END, b""))
        return b"".join(out)

    def _search(
        self,
        rgb: np.ndarray,
        y: torch.Tensor,
        mu3: torch.Tensor,
        idx3: torch.Tensor,
        h2: torch.Tensor,
        h1: torch.Tensor,
        inv: torch.Tensor,
        level: float,
        iterations: int,
    ) -> torch.Tensor:
        """y refined by `search.refine` against this engine's own synthesis."""
        lam = float(lambdas_at(self.net.config.lambdas, torch.tensor([level]))[0])
        with torch.inference_mode(False), torch.enable_grad():
            # tensors made in inference mode cannot enter autograd: copies can
            mean = mu3.to(torch.float32) * MEAN_STEP
            scale = self.scales[idx3.long()].clone()
            h2f, h1f = self._float(h2).clone(), self._float(h1).clone()
            inv_gain = inv.to(self.device).clone()
            image = torch.from_numpy(np.array(rgb)).to(self.device).permute(2, 0, 1).unsqueeze(0)
            image = image.to(torch.float32) / 255.0

            def synthesis(y_hat: torch.Tensor, window: tuple[int, int, int, int]) -> torch.Tensor:
                a0, a1, b0, b1 = window
                return self.net.synthesis(
                    _channels_last(y_hat),
                    inv_gain,
                    h2f[:, :, a0:a1, b0:b1],
                    h1f[:, :, a0 // 2 : a1 // 2, b0 // 2 : b1 // 2],
                    bf16=search_bf16(self.device),
                )

            refined = refine(y.clone(), mean, scale, image, synthesis, lam, iterations)
        return refined.detach()

    def _analyse(self, x: torch.Tensor, on_tile: TileCallback | None = None) -> torch.Tensor:
        """g_a over tiles of the padded uint8 [H, W, 3] image (with HALO latent units of
        context)."""
        f = LATENT_FACTOR
        rows, cols = x.shape[0] // f, x.shape[1] // f
        y = torch.empty((1, self.net.config.m, rows, cols), device=self.device)
        for r0, r1, c0, c1, (a0, a1, b0, b1) in reporting(_tiles(rows, cols), on_tile):
            window = x[a0 * f : a1 * f, b0 * f : b1 * f].permute(2, 0, 1).unsqueeze(0)
            part = self.net.analysis_transform(_channels_last(window.to(torch.float32) / 255.0))
            y[:, :, r0:r1, c0:c1] = part[:, :, r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
        return y

    def latent_shapes(self, header: Header) -> dict[str, tuple[int, int, int, int]]:
        cfg = self.net.config
        rows, cols = header.latent_size
        return {
            "z1": (1, cfg.c1, rows // 4, cols // 4),
            "z2": (1, cfg.c2, rows // 2, cols // 2),
            "y": (1, cfg.m, rows, cols),
        }

    def decode_z1(self, header: Header, payload: bytes) -> torch.Tensor:
        shape = self.latent_shapes(header)["z1"]
        mean1, idx1 = self.z1_params(shape[2], shape[3])
        s1 = self._decode(payload, idx1)
        return s1 * STEPS_PER_MEAN + mean1

    def decode_z2(self, payload: bytes, mu2: torch.Tensor, idx2: torch.Tensor) -> torch.Tensor:
        return self._decode(payload, idx2) * STEPS_PER_MEAN + mu2

    def decode_band(self, coded: bytes, idx3_rows: torch.Tensor) -> torch.Tensor:
        return self._decode(coded, idx3_rows)

    def _decode(self, payload: bytes, idx: torch.Tensor) -> torch.Tensor:
        sym = entropy.decode(payload, _np(idx), self.tables)
        return torch.from_numpy(sym).to(self.device)


def _residual(value: torch.Tensor, mean_steps: torch.Tensor) -> torch.Tensor:
    """Integer symbols round(value - mean), clamped to -32766..32767 (encoder only).

    The lower end is one above the escape range's so that no residual is ever escape
    symbol 0 (spec 7.5 step 8, appendix): the integer networks then see exactly the
    residuals the decoder will get back."""
    # in place, one float64 temporary: -(mean * step) + value is exactly value - mean * step
    r = mean_steps.to(torch.float64).mul_(-MEAN_STEP).add_(value)
    return r.round_().clamp_(1 - SYMBOL_LIMIT, SYMBOL_LIMIT).to(torch.int64)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def to_uint8(x: torch.Tensor, height: int, width: int) -> np.ndarray:
    """[1, 3, H', W'] float in [0, 1] -> uint8 [height, width, 3]."""
    img = x[0, :, :height, :width].clamp(0, 1).mul(255).round().to(torch.uint8)
    return img.permute(1, 2, 0).cpu().numpy()


_CACHE: dict[tuple[str, str], TorchEngine] = {}
_CACHE_LOCK = threading.Lock()


def get_torch_engine(device: torch.device, model_id: bytes | None = None) -> TorchEngine:
    """The shared codec for `model_id` (default: the newest shipped model) on `device`.

    Loaded once per process and reused; the file's hash is checked against its id.
    """
    key_hex, path = installed_model(model_id)
    key = (key_hex, str(device))
    with _CACHE_LOCK:
        codec = _CACHE.get(key)
        if codec is None:
            loaded = load_weights(path)
            check_model_id(key_hex, loaded.model_id, loaded.path)
            codec = TorchEngine(loaded, device)
            _CACHE[key] = codec
    return codec


# the names of before the engines were named alike, kept working
Codec = TorchEngine
get_codec = get_torch_engine

__all__ = [
    "BAND_ROWS",
    "LATENT_FACTOR",
    "Codec",
    "TorchEngine",
    "get_codec",
    "get_torch_engine",
    "pick_device",
]
