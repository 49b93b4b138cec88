"""The c2f command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from c2f_format.tools.cli import main


@pytest.mark.v1
def test_encode_decode_info(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src)
    assert main(["encode", str(src), "-q", "40"]) == 0
    assert (tmp_path / "a.c2f").exists()
    assert main(["decode", str(tmp_path / "a.c2f"), "-o", str(tmp_path / "back.png")]) == 0
    with Image.open(tmp_path / "back.png") as im:
        assert im.size == (80, 96)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "a.c2f")]) == 0
    out = capsys.readouterr().out
    assert "80x96 RGB" in out and "quality 40" in out and "IEND" in out
    assert main(["info", "--json", str(tmp_path / "a.c2f")]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["quality"] == 40 and meta["segments"][0]["type"] == "HYP1"


@pytest.mark.slow
def test_several_files_show_progress(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.roll(small_rgb, i * 7, axis=1)).save(p)
        inputs.append(str(p))
    out_dir = tmp_path / "out"
    assert main(["encode", *inputs, "-o", str(out_dir), "-q", "30"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["img0.c2f", "img1.c2f", "img2.c2f"]
    err = capsys.readouterr().err
    assert "encode [" in err and "3/3" in err


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.c2f"
    bad.write_bytes(b"definitely not c2f")
    assert main(["decode", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.c2f" in err and "not a c2f stream" in err
    assert main(["encode", str(tmp_path / "missing.png")]) == 1
    assert "No such file" in capsys.readouterr().err
    text = tmp_path / "t.png"
    text.write_text("hello")
    assert main(["encode", str(text)]) == 1
    assert "not an image" in capsys.readouterr().err


def test_console_script_installed() -> None:
    exe = shutil.which("c2f") or str(Path(sys.executable).parent / "c2f")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("c2f ")


def test_preview_strip(
    tmp_path: Path, small_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["preview", str(small_file), "--width", "120"]) == 0
    out = capsys.readouterr().out
    assert "preview:" in out and "final:" in out and "(100.0%)" in out
    with Image.open(tmp_path / "s.stages.png") as strip:
        assert strip.width >= 2 * 120


def test_a_closed_pipe_is_quiet(small_file: Path) -> None:
    """`c2f info x.c2f | head -1`: no error message, the status of a SIGPIPE death."""
    exe = shutil.which("c2f") or str(Path(sys.executable).parent / "c2f")
    proc = subprocess.Popen(
        [exe, "info", str(small_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader leaves before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == b""
