"""The benchmarks' arithmetic and a small end-to-end run of each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from c2f_format.tools import bench, bench_load, bench_preview, bench_speed


def test_bd_rate_recovers_a_known_saving() -> None:
    ref = [(0.2, 28.0), (0.4, 31.0), (0.8, 34.0), (1.6, 37.0)]
    test = [(b * 0.8, p) for b, p in ref]  # 20% fewer bits at every quality
    assert bench.bd_rate(ref, test) == pytest.approx(-20.0, abs=1e-6)
    assert bench.bd_rate(test, ref) == pytest.approx(25.0, abs=1e-6)
    assert np.isnan(bench.bd_rate(ref, [(1.0, 50.0), (2.0, 55.0)]))  # no overlap


def test_plot_tells_every_curve_apart(tmp_path: Path) -> None:
    """Curves named after no known codec (candidates, efforts) each get their own colour."""
    names = ["c2f", "webp", "candidate a", "candidate b", "effort 9"]
    curve = {n: [(0.2 + 0.1 * i, 28.0 + i), (0.8, 33.0 + i)] for i, n in enumerate(names)}
    bench.plot(curve, tmp_path / "rd.png", "five curves")
    im = np.asarray(Image.open(tmp_path / "rd.png").convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(im, axis=0)}
    spare = set(bench.SPARE_COLORS[:3])
    assert {bench.COLORS["c2f"], bench.COLORS["webp"]} | spare <= colours


def test_psnr_and_ms_ssim() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert bench.psnr(a, a) == float("inf")
    b = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)
    assert 47 < bench.psnr(a, b) < 49  # MSE just under 1
    assert bench.ms_ssim(a, a) == pytest.approx(1.0)
    assert bench.ms_ssim(a, b) > bench.ms_ssim(a, rng.permutation(a))


def test_bench_end_to_end(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    (folder / "set").mkdir(parents=True)  # images in subfolders count too
    Image.fromarray(small_rgb).save(folder / "set" / "a.png")
    out = tmp_path / "out"
    assert bench.main([str(folder), "-o", str(out), "--codecs", "c2f,jpeg", "--no-msssim"]) == 0
    result = json.loads((out / "results.json").read_text())
    c2f_rows = [r for r in result["rows"] if r["codec"] == "c2f"]
    assert len(c2f_rows) == len(bench.CODECS["c2f"][1])
    assert all(0 < r["preview_share"] < 1 and r["preview_psnr"] > 15 for r in c2f_rows)
    assert "jpeg" in result["bd_rate_c2f_vs"] and "bpg444 (published)" not in result["curves"]
    assert (out / "rd.png").stat().st_size > 0 and (out / "results.csv").exists()
    printed = capsys.readouterr().out
    assert "BD-rate of c2f against jpeg" in printed and "preview PSNR" in printed


def test_the_bench_codes_pixels_only(tmp_path: Path, small_rgb: np.ndarray) -> None:
    """An image's ICC profile and Exif reach no file in the bench: some encoders would
    write them (c2f, AVIF) and others not (JPEG, WebP), and a CID22 PNG's 3 KB profile
    once cost c2f 0.08 bpp on every validation image."""
    exif = Image.Exif()
    exif[0x010F] = "camera"
    tagged = tmp_path / "tagged.png"
    Image.fromarray(small_rgb).save(tagged, icc_profile=bytes(range(256)) * 12, exif=exif)
    plain = tmp_path / "plain.png"
    Image.fromarray(small_rgb).save(plain)
    rows = bench._measure([tagged, plain], ["c2f", "avif"], tmp_path, no_msssim=True)
    sizes: dict[tuple[str, int], set[int]] = {}
    for row in rows:
        sizes.setdefault((row["codec"], row["quality"]), set()).add(row["bytes"])
    assert all(len(both) == 1 for both in sizes.values())


@pytest.mark.slow
def test_speed_benchmark_end_to_end(tmp_path: Path, small_rgb: np.ndarray) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src)
    out = tmp_path / "speed"
    assert bench_speed.main([str(src), "--runs", "1", "-o", str(out)]) == 0
    result = json.loads((out / "speed.json").read_text())
    cpu = result["times"]["cpu"]
    assert {"c2f encode", "c2f decode", "c2f Pillow load", "c2f Pillow draft"} <= set(cpu)
    assert all(v > 0 for v in cpu.values())
    assert "Pillow draft / Pillow full load" in result["ratios"]
    assert "| cpu | c2f decode |" in (out / "speed.md").read_text()
    memory = result["peak_memory"]
    # the codec's process holds more than Python with torch alone, and not absurdly more
    assert 0 < memory["python + torch only"] < memory["c2f encode + decode"] < 4096  # MiB


@pytest.mark.slow
def test_load_benchmark_end_to_end(tmp_path: Path, small_rgb: np.ndarray) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src)
    out = tmp_path / "load"
    assert bench_load.main([str(src), "--runs", "1", "--busy", "0", "1", "-o", str(out)]) == 0
    result = json.loads((out / "load.json").read_text())
    for row in result["times"].values():
        assert {"auto", "1"} <= set(row) and all(v > 0 for v in row.values())
    assert "| 1 |" in (out / "load.md").read_text()


def test_preview_benchmark_end_to_end(tmp_path: Path, small_rgb: np.ndarray) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(small_rgb).save(folder / "a.png")
    out = tmp_path / "preview.json"
    assert bench_preview.main([str(folder), "--runs", "1", "-o", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    for key in ("full", "1/2", "1/4", "1/8"):
        assert row[f"{key}_s"] > 0 and row[f"{key}_psnr"] > 15
    assert row["1/4_psnr_vs_full_reduced"] > 30


def test_bench_effort_subset_and_qualities(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(small_rgb).save(folder / f"{name}.png")
    out = tmp_path / "out"
    args = [str(folder), "-o", str(out), "--codecs", "c2f", "--no-msssim", "--every", "2"]
    args += ["--effort", "4", "--c2f-qualities", "20,60"]
    assert bench.main(args) == 0
    result = json.loads((out / "results.json").read_text())
    assert sorted({r["image"] for r in result["rows"]}) == ["a.png", "c.png"]
    assert sorted({r["quality"] for r in result["rows"]}) == [20, 60]
    assert result["settings"]["c2f"].endswith("effort 4")
    with pytest.raises(SystemExit):
        bench.main([str(folder), "--effort", "10"])
    assert "effort must be 1..9" in capsys.readouterr().err
