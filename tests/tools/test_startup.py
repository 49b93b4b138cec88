"""What a decode costs before it starts: the engine a fresh `c2f decode` picks, the imports
a NumPy decode avoids, and the limits a user can set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_python
from PIL import Image

import c2f_format
from c2f_format.codec import files
from c2f_format.tools.cli import main


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process that has not imported torch, with the engine left to c2f."""
    monkeypatch.setattr(files, "_torch_imported", lambda: False)
    monkeypatch.delenv("C2F_BACKEND", raising=False)
    monkeypatch.delenv("C2F_DEVICE", raising=False)


def _stream(tmp_path: Path, name: str, width: int, height: int) -> Path:
    """A stream of that size (the header is all `quick_backend` reads)."""
    path = tmp_path / name
    path.write_bytes(c2f_format.encode(np.full((height, width, 3), 128, np.uint8), quality=10))
    return path


def test_a_small_job_in_a_fresh_process_goes_to_numpy(fresh: None, small_file: Path) -> None:
    assert files.quick_backend([small_file], None) == "numpy"
    assert files.quick_backend([small_file, small_file], "cpu") == "numpy"


def test_large_jobs_and_other_choices_keep_the_usual_engine(
    fresh: None, tmp_path: Path, small_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = _stream(tmp_path, "big.c2f", 1024, 800)  # 0.82 MP, at the limit
    assert files.quick_backend([big], None) is None
    assert files.quick_backend([small_file] * 200, None) is None  # 1.5 MP together
    assert files.quick_backend([small_file], "cuda") is None
    broken = tmp_path / "broken.c2f"
    broken.write_bytes(b"not a stream")
    assert files.quick_backend([small_file, broken], None) is None  # the decode says why
    monkeypatch.setenv("C2F_BACKEND", "torch")
    assert files.quick_backend([small_file], None) is None


def test_no_quick_engine_once_torch_is_loaded(small_file: Path) -> None:
    assert files.quick_backend([small_file], None) is None  # this process has torch


def test_a_numpy_decode_never_imports_torch(small_file: Path, tmp_path: Path) -> None:
    """`c2f decode` of a small file, and the batch pool's sizing, stay out of torch."""
    code = (
        "import sys\n"
        "from c2f_format.codec.batch import default_jobs\n"
        "from c2f_format.tools.cli import main\n"
        "assert default_jobs(backend='numpy') >= 1\n"
        "assert main(['decode', sys.argv[1], '-o', sys.argv[2]]) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = tmp_path / "out.png"
    proc = run_python(code, str(small_file), str(out))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    with Image.open(out) as im:
        assert im.size == (80, 96)


def test_max_pixels_is_the_users_to_set(
    small_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.png"
    assert main(["decode", str(small_file), "-o", str(out), "--max-pixels", "1000"]) == 1
    assert "exceeds the limit of 1000 pixels" in capsys.readouterr().err
    assert main(["decode", str(small_file), "-o", str(out), "--max-pixels", "none"]) == 0
    with pytest.raises(SystemExit):
        main(["decode", str(small_file), "--max-pixels", "0"])
