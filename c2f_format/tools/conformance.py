"""Conformance vectors: make them, and check a decoder against them.

A version 2 vector (spec/vectors-v2) is a stream and the image every decoder must output,
pixel for pixel: the whole decode is integer arithmetic. A version 1 vector (spec/vectors)
is a stream, the SHA-256 of the integers its exact path must produce, and a reference
image (decoded in float32) with the tolerance of v1 section 11 for the colour. Alpha, Exif
and ICC profile must come out exactly in both.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms

from ..codec import precision
from ..codec.api import StreamDecoder, encode
from ..codec.metrics import psnr_from_mse
from ..format import alpha as alpha_coding
from ..format.bitstream import SEG_ALPHA, iter_segments, pack_segment

# name, crop box of the sample image (left, top, right, bottom), mode, quality; RGBA and
# LA vectors get the alpha of `vector_alpha` and the metadata of `vector_metadata`
VECTORS = [
    ("kodim23-crop-q50", (256, 128, 512, 320), "RGB", 50),
    ("kodim23-crop-q95", (400, 200, 528, 328), "RGB", 95),
    ("gray-61x37-q80", (300, 300, 361, 337), "L", 80),
    ("pixel-1x1-q1", (10, 10, 11, 11), "RGB", 1),
    ("kodim23-rgba-exif-icc-q60", (300, 150, 428, 246), "RGBA", 60),
]
MIN_PSNR = 45.0
MAX_ABS_DIFF = 8


def vector_alpha(width: int, height: int) -> np.ndarray:
    """A cut-out's alpha: a soft-edged ellipse (a 6-pixel ramp) with a hard-edged
    transparent notch, so the ALPH coding meets flat runs, hard edges and ramps."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    dist = np.hypot((x - width / 2) / (0.45 * width), (y - height / 2) / (0.45 * height))
    ramp = np.clip((1.0 - dist) * 0.45 * min(width, height) / 6.0, 0.0, 1.0)
    alpha = np.round(255.0 * ramp).astype(np.uint8)
    alpha[height // 3 : height // 2, width // 2 :] = 0
    return alpha


def vector_metadata() -> dict[str, bytes]:
    """Exif with Orientation 6 (stored, not applied: spec 2.3) and an sRGB ICC profile
    with a fixed creation date, so that remaking the vectors gives the same bytes."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    exif[0x010F] = "c2f conformance"  # Make
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = bytes.fromhex("07ea000b001a000000000000")  # 2026-11-26 00:00:00
    return {"exif": exif.tobytes(), "icc_profile": bytes(icc)}


def make_vectors(source: Path, folder: Path) -> list[dict[str, object]]:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    with Image.open(source) as im:
        base = im.convert("RGB")
    for name, box, mode, quality in VECTORS:
        image = base.crop(box).convert(mode)
        metadata: dict[str, bytes] = {}
        if mode in ("LA", "RGBA"):
            image.putalpha(Image.fromarray(vector_alpha(*image.size)))
            metadata = vector_metadata()
        exif, icc = metadata.get("exif"), metadata.get("icc_profile")
        data = encode(image, quality=quality, exif=exif, icc_profile=icc)
        if mode in ("LA", "RGBA"):
            data = _with_every_filter(data, vector_alpha(*image.size))
        (folder / f"{name}.c2f").write_bytes(data)
        dec = StreamDecoder()
        dec.feed(data)
        with precision.using("float32"):  # a version 1 reference is float32's (precision.py)
            reference = dec.image()
        reference.save(folder / f"{name}.png", exif=reference.info.get("exif"))
        entry: dict[str, object] = {"stream": f"{name}.c2f", "reference": f"{name}.png"}
        if dec.header is not None and dec.header.version[0] >= 2:
            entry["exact"] = True
        else:
            entry["latents_sha256"] = dec.exact_digest()
        entry["stream_sha256"] = hashlib.sha256(data).hexdigest()
        if not entry.get("exact"):
            entry |= {"min_psnr": MIN_PSNR, "max_abs_diff": MAX_ABS_DIFF}
        entries.append(entry)
    (folder / "vectors.json").write_text(json.dumps({"vectors": entries}, indent=2) + "\n")
    return entries


def _with_every_filter(data: bytes, alpha: np.ndarray) -> bytes:
    """`data` with its ALPH recoded with filters drawn at random for each row (the
    first row predicted from above), so that a decoder meets every filter, runs of
    them and changes between them; the reference encoder would pick fewer."""
    rows = int(alpha.shape[0])
    filters = np.random.default_rng(23).integers(0, alpha_coding.FILTERS, size=rows)
    filters[0] = alpha_coding.FILTER_UP | alpha_coding.FILTER_LEFT
    seg = next(s for s in iter_segments(data) if s.kind == SEG_ALPHA)
    payload = alpha_coding.encode_plane(alpha, filters)
    return data[: seg.offset] + pack_segment(SEG_ALPHA, payload) + data[seg.offset + seg.size :]


def check_vector(
    folder: Path, entry: dict[str, Any], device: str | None = None, backend: str | None = None
) -> None:
    """Raise ConformanceError unless this decoder (with `backend`, see `StreamDecoder`)
    conforms on the vector."""
    name = entry["stream"]
    data = (folder / str(name)).read_bytes()
    dec = StreamDecoder(device=device, backend=backend)
    dec.feed(data)
    _require(dec.complete, f"{name}: stream incomplete")
    exact = bool(entry.get("exact"))
    if not exact:
        _require(dec.exact_digest() == entry["latents_sha256"], f"{name}: decoded integers differ")
    image = dec.image()
    with Image.open(folder / str(entry["reference"])) as ref_im:
        ref_im.load()
    _require(image.mode == ref_im.mode, f"{name}: mode {image.mode} != {ref_im.mode}")
    for key in ("exif", "icc_profile"):
        _require(image.info.get(key) == ref_im.info.get(key), f"{name}: {key} differs")
    got, ref = np.asarray(image, dtype=np.float64), np.asarray(ref_im, dtype=np.float64)
    _require(got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}")
    if image.mode in ("LA", "RGBA"):  # alpha is exact; the colour has a tolerance
        _require(np.array_equal(got[..., -1], ref[..., -1]), f"{name}: alpha differs")
        got, ref = got[..., :-1], ref[..., :-1]
    if exact:
        differ = int(np.count_nonzero(got != ref))
        _require(not differ, f"{name}: {differ} samples differ from the reference")
        return
    diff = np.abs(got - ref)
    score = psnr_from_mse(float(np.mean(diff**2)))
    _require(score >= float(entry["min_psnr"]), f"{name}: {score:.2f} dB against the reference")
    _require(diff.max() <= float(entry["max_abs_diff"]), f"{name}: max difference {diff.max()}")


class ConformanceError(Exception):
    """A decoder's output differs from a conformance vector."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


def main(argv: list[str] | None = None) -> None:
    """`python -m c2f_format.tools.conformance IMAGE FOLDER`: the paths are the caller's (the
    checkout's tests/data/kodim23.png and spec/vectors-v2 make the published set with the
    shipped model; spec/vectors holds version 1's, made with c2f-v3 alone installed),
    since an installed package has neither."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m c2f_format.tools.conformance")
    parser.add_argument("image", type=Path, help="the sample image the vectors are cut from")
    parser.add_argument("folder", type=Path, help="where to write the vectors")
    args = parser.parse_args(argv)
    out = make_vectors(args.image, args.folder)
    print(f"wrote {len(out)} vectors to {args.folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
