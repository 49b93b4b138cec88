"""Conformance vectors (spec/vectors): make them, and check a decoder against them.

Each vector is a stream, the SHA-256 of the integers the exact path must produce, and a
reference image with the tolerance of spec section 11.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .api import StreamDecoder, encode

# name, crop box of the sample image (left, top, right, bottom), mode, quality
VECTORS = [
    ("kodim23-crop-q50", (256, 128, 512, 320), "RGB", 50),
    ("kodim23-crop-q95", (400, 200, 528, 328), "RGB", 95),
    ("gray-61x37-q80", (300, 300, 361, 337), "L", 80),
    ("pixel-1x1-q1", (10, 10, 11, 11), "RGB", 1),
]
DIGEST_ORDER = ("z1", "z2", "mu3", "idx3", "y")  # spec: z1q, z2q, mu3, idx3, s3
MIN_PSNR = 45.0
MAX_ABS_DIFF = 8


def latent_digest(latents: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in DIGEST_ORDER:
        h.update(np.ascontiguousarray(latents[key], dtype="<i8").tobytes())
    return h.hexdigest()


def make_vectors(source: Path, folder: Path) -> list[dict[str, object]]:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    with Image.open(source) as im:
        base = im.convert("RGB")
    for name, box, mode, quality in VECTORS:
        data = encode(base.crop(box).convert(mode), quality=quality)
        (folder / f"{name}.c2f").write_bytes(data)
        dec = StreamDecoder()
        dec.feed(data)
        dec.image().save(folder / f"{name}.png")
        entries.append(
            {
                "stream": f"{name}.c2f",
                "reference": f"{name}.png",
                "latents_sha256": latent_digest(dec.latents()),
                "stream_sha256": hashlib.sha256(data).hexdigest(),
                "min_psnr": MIN_PSNR,
                "max_abs_diff": MAX_ABS_DIFF,
            }
        )
    (folder / "vectors.json").write_text(json.dumps({"vectors": entries}, indent=2) + "\n")
    return entries


def check_vector(folder: Path, entry: dict[str, Any], device: str | None = None) -> None:
    """Raise ConformanceError unless this decoder conforms on the vector."""
    name = entry["stream"]
    data = (folder / str(name)).read_bytes()
    dec = StreamDecoder(device=device)
    dec.feed(data)
    _require(dec.complete, f"{name}: stream incomplete")
    digest = latent_digest(dec.latents())
    _require(digest == entry["latents_sha256"], f"{name}: decoded integers differ")
    got = np.asarray(dec.image(), dtype=np.float64)
    with Image.open(folder / str(entry["reference"])) as ref_im:
        ref = np.asarray(ref_im, dtype=np.float64)
    _require(got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}")
    diff = np.abs(got - ref)
    mse = float(np.mean(diff**2))
    score = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    _require(score >= float(entry["min_psnr"]), f"{name}: {score:.2f} dB against the reference")
    _require(diff.max() <= float(entry["max_abs_diff"]), f"{name}: max difference {diff.max()}")


class ConformanceError(Exception):
    """A decoder's output differs from a conformance vector."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


if __name__ == "__main__":
    import sys

    root = Path(__file__).resolve().parent.parent
    out = make_vectors(root / "tests" / "data" / "kodim23.png", root / "spec" / "vectors")
    print(f"wrote {len(out)} vectors", file=sys.stderr)
