"""Rate–distortion benchmark: c2f against Pillow's codecs, measured in one run.

    c2f bench ../shared/data/kodak -o bench/kodak

Every image is encoded at a grid of qualities by each codec; bpp counts the whole file.
Results go to `results.csv` and `results.json`, BD-rates (Bjøntegaard, PSNR-RGB) are
printed against each peer, and `rd.png` plots the curves. For c2f, each row also has
the PSNR of the preview (from the hyper segments alone, upsampled to full size) and the
share of the file the preview needs; a table of those by quality is printed last.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..codec.api import StreamDecoder, decode, encode
from ..codec.effort import DEFAULT_EFFORT, check_effort
from ..codec.metrics import bd_rate, psnr
from ..codec.progress import progress
from ..format.bitstream import hyper_end, iter_segments
from .published_curves import KODAK

CodecFn = Callable[[Image.Image, int], tuple[bytes, Image.Image, float, float]]


def _pillow_codec(fmt: str, options: Callable[[int], dict[str, object]]) -> CodecFn:
    """A Pillow codec whose save options depend on the grid value `q`."""

    def run(im: Image.Image, q: int) -> tuple[bytes, Image.Image, float, float]:
        buf = io.BytesIO()
        t0 = time.perf_counter()
        im.save(buf, fmt, **options(q))
        t1 = time.perf_counter()
        data = buf.getvalue()
        with Image.open(io.BytesIO(data)) as decoded:
            out = decoded.convert("RGB")
        return data, out, t1 - t0, time.perf_counter() - t1

    return run


def _c2f_at(effort: int) -> CodecFn:
    """c2f at one encoder effort (codec/effort.py)."""

    def run(im: Image.Image, q: int) -> tuple[bytes, Image.Image, float, float]:
        return _c2f(im, q, effort)

    return run


def _c2f(
    im: Image.Image, q: int, effort: int = DEFAULT_EFFORT
) -> tuple[bytes, Image.Image, float, float]:
    t0 = time.perf_counter()
    data = encode(im, quality=q, effort=effort)
    t1 = time.perf_counter()
    out = decode(data)
    return data, out, t1 - t0, time.perf_counter() - t1


def preview_quality(data: bytes, ref: np.ndarray) -> tuple[float, float]:
    """(PSNR of the preview upsampled to full size, share of the file it needs)."""
    end = hyper_end(iter_segments(data))
    dec = StreamDecoder()
    dec.feed(data[:end])
    size = (ref.shape[1], ref.shape[0])
    shown = dec.preview().convert("RGB").resize(size, Image.Resampling.BILINEAR)
    return psnr(ref, np.asarray(shown)), end / len(data)


CODECS: dict[str, tuple[CodecFn, list[int]]] = {
    "c2f": (_c2f, [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
    "jpeg": (
        _pillow_codec("JPEG", lambda q: {"quality": q, "subsampling": 0}),
        [3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95],
    ),
    "webp": (
        _pillow_codec("WEBP", lambda q: {"quality": q, "method": 6}),
        [1, 5, 15, 30, 45, 60, 75, 85, 95],
    ),
    "avif": (
        _pillow_codec("AVIF", lambda q: {"quality": q, "subsampling": "4:4:4"}),
        [10, 25, 40, 50, 60, 70, 80, 90],
    ),
    # grid value: compression ratio of the single quality layer
    "jpeg2000": (
        _pillow_codec(
            "JPEG2000",
            lambda q: {
                "quality_mode": "rates",
                "quality_layers": [q],
                "irreversible": True,
                "mct": 1,
            },
        ),
        [200, 120, 80, 50, 32, 20, 12, 8],
    ),
}


# Each peer at its best ordinary settings, written next to every result.
SETTINGS: dict[str, str] = {
    "c2f": "quality 1..100 (shipped weights)",
    "jpeg": "Pillow/libjpeg, 4:4:4 (subsampling=0), quality grid",
    "webp": "Pillow/libwebp, method=6 (slowest, best), quality grid",
    "avif": "Pillow/libavif, 4:4:4, default speed, quality grid",
    "jpeg2000": "Pillow/OpenJPEG, irreversible 9/7, colour transform on (mct=1), "
    "one quality layer at a compression ratio",
}


def monotonicity(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether c2f's bpp and PSNR rise with quality on every image: the inversions
    (image, quality pairs whose successor has less rate or less PSNR) and the mean rate
    at the lowest and highest quality."""
    by_image: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["codec"] == "c2f":
            by_image.setdefault(r["image"], []).append(r)
    inversions = []
    for image, rs in by_image.items():
        rs.sort(key=lambda r: r["quality"])
        for a, b in itertools.pairwise(rs):
            if b["bpp"] <= a["bpp"] or b["psnr"] <= a["psnr"]:
                inversions.append(f"{image}: q{a['quality']}->q{b['quality']}")
    lo = [rs[0]["bpp"] for rs in by_image.values()]
    hi = [rs[-1]["bpp"] for rs in by_image.values()]
    return {
        "images": len(by_image),
        "inversions": inversions,
        "mean_bpp_lowest_quality": float(np.mean(lo)) if lo else float("nan"),
        "mean_bpp_highest_quality": float(np.mean(hi)) if hi else float("nan"),
    }


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang et al. 2003) on RGB, 5 scales, Gaussian window 11 / sigma 1.5."""
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333], dtype=torch.float64)
    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1).unsqueeze(0)
    y = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1).unsqueeze(0)
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for scale in range(5):
        if min(x.shape[2:]) < 11:
            break
        mx, my = F.conv2d(x, win, groups=3), F.conv2d(y, win, groups=3)
        sxx = F.conv2d(x * x, win, groups=3) - mx**2
        syy = F.conv2d(y * y, win, groups=3) - my**2
        sxy = F.conv2d(x * y, win, groups=3) - mx * my
        cs = ((2 * sxy + c2) / (sxx + syy + c2)).mean()
        if scale == 4 or min(x.shape[2:]) < 22:
            lum = ((2 * mx * my + c1) / (mx**2 + my**2 + c1)).mean()
            values.append(cs * lum)
            break
        values.append(cs)
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    v = torch.stack(values).clamp_min(1e-12)
    w = weights[: len(values)] / weights[: len(values)].sum()
    return float(torch.prod(v**w))


def curves(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Mean bpp and mean PSNR per (codec, quality)."""
    acc: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for row in rows:
        acc.setdefault((str(row["codec"]), int(row["quality"])), []).append(
            (float(row["bpp"]), float(row["psnr"]))
        )
    out: dict[str, list[tuple[float, float]]] = {}
    for (codec, _), pts in sorted(acc.items()):
        arr = np.array(pts)
        out.setdefault(codec, []).append((float(arr[:, 0].mean()), float(arr[:, 1].mean())))
    return out


COLORS = {
    "c2f": (200, 30, 30),
    "jpeg": (90, 90, 90),
    "webp": (30, 120, 200),
    "avif": (30, 160, 60),
    "jpeg2000": (200, 140, 0),
    "bpg444 (published)": (150, 60, 160),
    "bmshj2018-hyperprior (CompressAI, published)": (0, 150, 150),
}
# curves under other names (a candidate model, an effort) take these, in order
SPARE_COLORS = ((120, 0, 160), (230, 110, 20), (20, 20, 140), (140, 90, 40), (220, 60, 150))


def plot(curve: dict[str, list[tuple[float, float]]], path: Path, title: str) -> None:
    """A plain RD plot (bpp vs PSNR) drawn with Pillow, no plotting library needed."""
    w, h, m = 900, 620, 70
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    pts = [p for c in curve.values() for p in c]
    x_max = min(2.0, max(p[0] for p in pts))
    y_lo = np.floor(min(p[1] for p in pts if p[0] <= x_max)) - 1
    y_hi = np.ceil(max(p[1] for p in pts if p[0] <= x_max)) + 1

    def xy(bpp: float, db: float) -> tuple[float, float]:
        return (m + bpp / x_max * (w - 2 * m), h - m - (db - y_lo) / (y_hi - y_lo) * (h - 2 * m))

    d.rectangle([m, m, w - m, h - m], outline="black")
    for i in range(0, 11):
        bpp = x_max * i / 10
        x, _ = xy(bpp, y_lo)
        d.line([x, h - m, x, h - m + 5], fill="black")
        d.text((x - 10, h - m + 8), f"{bpp:.2f}", fill="black")
    for db in range(int(y_lo), int(y_hi) + 1):
        _, y = xy(0, db)
        d.line([m - 5, y, m, y], fill="black")
        d.text((m - 30, y - 6), f"{db}", fill="black")
    d.text((w // 2 - 40, h - 30), "bits per pixel", fill="black")
    d.text((10, m - 30), "PSNR-RGB (dB)", fill="black")
    d.text((m, 15), title, fill="black")
    spare = itertools.cycle(SPARE_COLORS)
    for i, (codec, c) in enumerate(sorted(curve.items())):
        color = COLORS[codec] if codec in COLORS else next(spare)
        line = [xy(b, p) for b, p in sorted(c) if b <= x_max * 1.02]
        if len(line) > 1:
            d.line(line, fill=color, width=3)
        for x, y in line:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        ly = h - m - 18 * (len(curve) - i) - 8  # legend in the empty lower right
        d.line([w - m - 330, ly + 6, w - m - 300, ly + 6], fill=color, width=3)
        d.text((w - m - 292, ly), codec, fill="black")
    im.save(path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="c2f bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "folder", type=Path, help="lossless images (PNG, PPM, BMP, TIFF), in subfolders too"
    )
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("bench"), help="results folder (default: bench)"
    )
    ap.add_argument(
        "--codecs",
        default=",".join(CODECS),
        help=f"comma-separated, from {', '.join(CODECS)} (default: all)",
    )
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument(
        "--every", type=int, default=1, help="only every Nth image (after --limit's cut)"
    )
    ap.add_argument(
        "--effort",
        type=int,
        default=DEFAULT_EFFORT,
        help=f"c2f's encoder effort 1..9 (default {DEFAULT_EFFORT})",
    )
    ap.add_argument(
        "--c2f-qualities",
        help="comma-separated c2f qualities instead of 1, 10, ..., 100",
    )
    ap.add_argument("--no-msssim", action="store_true", help="do not compute MS-SSIM")
    ap.add_argument(
        "--reference",
        choices=["auto", "kodak", "none"],
        default="auto",
        help="add published Kodak curves (BPG-444, CompressAI); auto: when the folder is kodak",
    )
    return ap


def _sources(folder: Path, out: Path, limit: int) -> list[Path]:
    """The lossless images under `folder` (subfolders too), sorted, never our own output."""
    out_dir = out.resolve()
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in {".png", ".ppm", ".bmp", ".tif", ".tiff"}
        and not p.resolve().is_relative_to(out_dir)
    )
    return paths[:limit] if limit else paths


def _measure(
    paths: list[Path],
    names: list[str],
    folder: Path,
    no_msssim: bool,
    codecs: dict[str, tuple[CodecFn, list[int]]] = CODECS,
) -> list[dict[str, Any]]:
    """One row per image, codec and quality: size, quality metrics, times and, for c2f,
    the preview's quality and share of the file (each image is read once)."""
    jobs = [(p, c, q) for p in paths for c in names for q in codecs[c][1]]
    rows: list[dict[str, Any]] = []
    cache: dict[Path, tuple[Image.Image, np.ndarray]] = {}
    for path, codec, q in progress(jobs, len(jobs), "bench"):
        if path not in cache:
            cache.clear()
            with Image.open(path) as src:
                pixels = np.asarray(src.convert("RGB"))
            # pixels only: an ICC profile or Exif in `info` would reach some codecs' files
            # (c2f's and AVIF's take them from it) and not others' (JPEG, WebP)
            cache[path] = (Image.fromarray(pixels), pixels)
        image, ref = cache[path]
        data, out, t_enc, t_dec = codecs[codec][0](image, q)
        got = np.asarray(out.convert("RGB"))
        preview_db, preview_share = (
            preview_quality(data, ref) if codec == "c2f" else (float("nan"), float("nan"))
        )
        rows.append(
            {
                "image": path.relative_to(folder).as_posix(),
                "codec": codec,
                "quality": q,
                "bytes": len(data),
                "bpp": len(data) * 8 / (ref.shape[0] * ref.shape[1]),
                "psnr": psnr(ref, got),
                "ms_ssim": float("nan") if no_msssim else ms_ssim(ref, got),
                "encode_s": t_enc,
                "decode_s": t_dec,
                "preview_psnr": preview_db,
                "preview_share": preview_share,
            }
        )
    return rows


def _bd_rates(curve: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """BD-rate of c2f against every other curve (none when c2f was not measured)."""
    bd: dict[str, float] = {}
    if "c2f" in curve:
        for peer in curve:
            if peer != "c2f":
                bd[peer] = bd_rate(curve[peer], curve["c2f"])
    return bd


def _summary(
    curve: dict[str, list[tuple[float, float]]],
    bd: dict[str, float],
    settings: dict[str, str],
    mono: dict[str, Any],
) -> list[str]:
    """The lines printed after a run: curves, BD-rates, codec settings, c2f's quality range."""
    lines = [
        f"{codec:>9}: " + "  ".join(f"{b:.3f}/{p:.2f}" for b, p in c) for codec, c in curve.items()
    ]
    lines += [f"BD-rate of c2f against {peer}: {v:+.1f}%" for peer, v in bd.items()]
    lines += [f"{codec:>9} settings: {text}" for codec, text in settings.items()]
    if mono["images"]:
        lines.append(
            f"c2f quality range: {mono['mean_bpp_lowest_quality']:.3f} bpp (lowest) to "
            f"{mono['mean_bpp_highest_quality']:.3f} bpp (highest), mean over "
            f"{mono['images']} images; {len(mono['inversions'])} inversions"
            + (f": {', '.join(mono['inversions'][:10])}" if mono["inversions"] else "")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        effort = check_effort(args.effort)
        qualities = (
            [int(q) for q in args.c2f_qualities.split(",")]
            if args.c2f_qualities
            else CODECS["c2f"][1]
        )
    except ValueError as exc:
        ap.error(str(exc))
    if args.every < 1 or not all(1 <= q <= 100 for q in qualities):
        ap.error("--every must be at least 1 and --c2f-qualities within 1..100")
    codecs = {**CODECS, "c2f": (_c2f_at(effort), qualities)}
    paths = _sources(args.folder, args.out, args.limit)[:: args.every]
    if not paths:
        print(f"c2f bench: no PNG, PPM, BMP or TIFF images in {args.folder}", file=sys.stderr)
        return 1
    names = [c for c in args.codecs.split(",") if c]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = _measure(paths, names, args.folder, args.no_msssim, codecs)
    with (args.out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    curve = curves(rows)
    if args.reference == "kodak" or (
        args.reference == "auto" and "kodak" in args.folder.name.lower()
    ):
        curve.update(KODAK)
    bd = _bd_rates(curve)
    mono = monotonicity(rows)
    settings = {c: SETTINGS[c] for c in names}
    if "c2f" in settings and effort != DEFAULT_EFFORT:
        settings["c2f"] += f", effort {effort}"
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "curves": curve,
                "bd_rate_c2f_vs": bd,
                "settings": settings,
                "c2f_monotonicity": mono,
            },
            indent=1,
        )
    )
    plot(curve, args.out / "rd.png", f"{args.folder.name}: {len(paths)} images")
    for line in _summary(curve, bd, settings, mono):
        print(line)
    for line in preview_table(rows):
        print(line)
    return 0


def preview_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: c2f's preview (upsampled to full size) against the final image, by
    quality, averaged over the images."""
    by_q: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r["codec"] == "c2f":
            by_q.setdefault(int(r["quality"]), []).append(r)
    if not by_q:
        return []
    out = [
        "| quality | bpp | PSNR | preview PSNR | preview share of file |",
        "|---:|---:|---:|---:|---:|",
    ]
    for q, group in sorted(by_q.items()):
        keys = ("bpp", "psnr", "preview_psnr", "preview_share")
        mean = {k: float(np.mean([g[k] for g in group])) for k in keys}
        out.append(
            f"| {q} | {mean['bpp']:.3f} | {mean['psnr']:.2f} | {mean['preview_psnr']:.2f} "
            f"| {100 * mean['preview_share']:.1f}% |"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
