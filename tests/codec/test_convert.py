"""`convert` in this process and on the local pool: the plan (folders walked, relative
paths, collisions refused before any work), the manifest (a rerun does only what is
missing or changed; a cut line, a foreign file, a second run at once), failures reported
while the rest converts, and files in the way never replaced without `force`.
(On a real Dask cluster: test_convert_cluster.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import read_only_folder
from PIL import Image

import c2f_format
from c2f_format.codec import conversion, workers
from c2f_format.codec import convert as convert_module
from c2f_format.codec.convert import convert, plan
from c2f_format.codec.manifest import MANIFEST_NAME, Manifest
from c2f_format.format.weights_file import weights_index
from c2f_format.tools.cli import main


def _image(path: Path, seed: int, size: tuple[int, int] = (48, 32)) -> Path:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    src = tmp_path / "photos"
    _image(src / "a.png", 0)
    _image(src / "2019" / "b.jpg", 1)
    _image(src / "2019" / "deep" / "c.webp", 2)
    (src / "notes.txt").write_text("not an image")
    _image(src / ".hidden" / "d.png", 3)
    _image(src / ".e.png", 4)
    return src


def _outputs(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def test_plan_keeps_relative_paths_and_leaves_out_the_rest(photos: Path, tmp_path: Path) -> None:
    single = _image(tmp_path / "single.png", 5)
    planned, ignored = plan([photos, single], tmp_path / "out", "c2f")
    assert [p.rel for p in planned] == ["a.c2f", "2019/b.c2f", "2019/deep/c.c2f", "single.c2f"]
    assert ignored == 1  # notes.txt; hidden files and folders are not looked at


def test_plan_skips_the_destination_inside_a_source(photos: Path) -> None:
    out = photos / "converted"
    _image(out / "old.png", 9)
    planned, _ = plan([photos], out, "c2f")
    assert all(not p.rel.startswith("converted") for p in planned)


def test_two_sources_one_output_refused_before_any_work(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _image(src / "x.png", 0)
    _image(src / "x.jpg", 1)
    _image(src / "y.png", 2)
    out = tmp_path / "out"
    with pytest.raises(
        c2f_format.C2FError, match=r"two sources, one output: .*x\.jpg and .*x\.png"
    ):
        convert([src], out)
    assert not out.exists()


def test_an_output_that_is_a_source_is_refused(tmp_path: Path) -> None:
    stream = tmp_path / "x.c2f"
    stream.write_bytes(c2f_format.encode(np.zeros((16, 16, 3), np.uint8)))
    before = stream.read_bytes()
    with pytest.raises(c2f_format.C2FError, match="is a source"):
        convert([stream], tmp_path)  # x.c2f re-encoded would be x.c2f itself
    assert stream.read_bytes() == before


def test_convert_then_rerun_does_only_what_changed(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = convert([photos], out)
    assert (first.converted, first.up_to_date, first.failed, first.ignored) == (3, 0, [], 1)
    assert first.where == "in this process"
    assert first.input_bytes == sum(
        (photos / n).stat().st_size for n in ("a.png", "2019/b.jpg", "2019/deep/c.webp")
    )
    made = _outputs(out)
    assert sorted(made) == ["2019/b.c2f", "2019/deep/c.c2f", "a.c2f"]
    assert first.output_bytes == sum(len(v) for v in made.values())
    # the same bytes as `c2f encode` of each file
    reference = tmp_path / "ref.c2f"
    assert main(["encode", str(photos / "2019" / "deep" / "c.webp"), "-o", str(reference)]) == 0
    assert made["2019/deep/c.c2f"] == reference.read_bytes()

    again = convert([photos], out)
    assert (again.converted, again.up_to_date) == (0, 3)

    # touched, same bytes: found unchanged by its hash, the output left alone
    stamp = (out / "a.c2f").stat().st_mtime_ns
    os.utime(photos / "a.png", ns=(1_000_000_000, 1_000_000_000))
    touched = convert([photos], out)
    assert (touched.converted, touched.up_to_date) == (0, 3)
    assert (out / "a.c2f").stat().st_mtime_ns == stamp
    # the new mtime is recorded: the next run does not hash it again
    assert Manifest(out).entries["a.c2f"].mtime_ns == 1_000_000_000

    # changed content: converted again; other settings: all converted again
    _image(photos / "a.png", 7)
    changed = convert([photos], out)
    assert (changed.converted, changed.up_to_date) == (1, 2)
    assert _outputs(out)["a.c2f"] != made["a.c2f"]
    requality = convert([photos], out, quality=40)
    assert (requality.converted, requality.up_to_date) == (3, 0)


def test_a_new_model_makes_every_file_again(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    convert([photos], out)
    model = next(iter(weights_index()))
    holder = Manifest(out)
    assert {e.settings["model"] for e in holder.entries.values()} == {model}
    holder.close()
    # what a rerun after an upgrade sees: another model newest in the index
    monkeypatch.setattr(convert_module, "installed_model", lambda _: ("ab" * 16, Path()))
    upgraded = convert([photos], out)
    assert (upgraded.converted, upgraded.up_to_date) == (3, 0)


def test_missing_output_is_made_again(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert([photos], out)
    made = _outputs(out)
    (out / "2019" / "b.c2f").unlink()
    (out / "a.c2f").write_bytes(b"cut")  # damaged: its size no longer matches
    summary = convert([photos], out)
    assert (summary.converted, summary.up_to_date) == (2, 1)
    assert _outputs(out) == made


def test_failures_are_reported_and_the_rest_converts(photos: Path, tmp_path: Path) -> None:
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "gone.png").symlink_to(photos / "nowhere.png")  # unreadable: a dangling link
    out = tmp_path / "out"
    summary = convert([photos], out)
    assert summary.converted == 3
    failed = dict(summary.failed)
    assert sorted(Path(s).name for s in failed) == ["corrupt.jpg", "gone.png"]
    assert "No such file" in failed[str(photos / "gone.png")]
    assert failed[str(photos / "corrupt.jpg")]  # Pillow's reason, whatever it says
    entries = Manifest(out).entries
    assert entries["corrupt.c2f"].state == "failed" and entries["corrupt.c2f"].reason
    assert not (out / "corrupt.c2f").exists()


def test_cli_exit_status_and_report(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    assert main(["convert", str(photos), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"c2f: error: {photos / 'corrupt.png'}: " in captured.err
    assert "1 of 4 files failed" in captured.err
    assert "converted 3, up to date 0, failed 1, not images 1" in captured.out


def test_a_file_in_the_way_is_not_replaced_without_force(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.c2f").write_bytes(b"the user's own file")
    summary = convert([photos], out)
    assert summary.converted == 2
    [(src, why)] = summary.failed
    assert src.endswith("a.png") and "not written by this conversion" in why
    assert "force=True replaces it" in why
    assert (out / "a.c2f").read_bytes() == b"the user's own file"
    # the CLI says its option
    assert main(["convert", str(photos), "-o", str(out)]) == 1
    forced = convert([photos], out, force=True)
    assert (forced.converted, forced.up_to_date, forced.failed) == (1, 2, [])
    assert (out / "a.c2f").read_bytes()[:4] != b"the "


def test_manifest_survives_a_cut_line_and_refuses_foreign_files(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _image(photos / "a.png", 0)
    _image(photos / "b.png", 1)
    out = tmp_path / "out"
    convert([photos], out)
    manifest = out / MANIFEST_NAME
    lines = manifest.read_text().splitlines()
    head, records = lines[0], lines[1:]
    assert json.loads(head)["format"] == "c2f-convert-manifest"
    # a crash cut b's last record short: b (claimed by its pending record) is made
    # again, a is kept
    pending = json.dumps({**json.loads(records[1]), "state": "pending"})
    cut = records[1][: len(records[1]) // 2]
    manifest.write_text("\n".join([head, records[0], pending, cut]))
    summary = convert([photos], out)
    assert (summary.converted, summary.up_to_date) == (1, 1)
    (out / MANIFEST_NAME).write_text("something else\n")
    with pytest.raises(c2f_format.C2FError, match="not a c2f conversion manifest"):
        convert([photos], out)


def test_a_second_conversion_into_one_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    holder = Manifest(out)
    try:
        with pytest.raises(c2f_format.C2FError, match="another conversion is writing"):
            convert([_image(tmp_path / "a.png", 0)], out)
    finally:
        holder.close()


def test_a_read_only_destination_fails_before_any_work(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _image(photos / "a.png", 0)
    with read_only_folder(tmp_path / "ro") as (out, reason):
        result = subprocess.run(
            [sys.executable, "-m", "c2f_format.tools.cli", "convert", str(photos), "-o", str(out)],
            cwd=tmp_path,  # not the checkout: -m would import its folder, not the install
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"c2f: error: {out}: cannot write: {reason}; nothing converted"
        ]
        assert os.listdir(out) == []
        with pytest.raises(c2f_format.C2FError, match="sub: cannot create folder"):
            convert([photos], out / "sub")


def test_decode_back_to_png(photos: Path, tmp_path: Path) -> None:
    streams = tmp_path / "streams"
    convert([photos], streams)
    pngs = tmp_path / "pngs"
    summary = convert([streams], pngs, to="png")
    assert (summary.converted, summary.ignored) == (3, 0)  # the manifest is not a file to convert
    decoded = Image.open(pngs / "2019" / "deep" / "c.png")
    assert decoded.size == (48, 32)
    reference = c2f_format.decode((streams / "2019" / "deep" / "c.c2f").read_bytes())
    assert np.array_equal(np.asarray(decoded), np.asarray(reference))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(c2f_format.InvalidArgumentError, match="to must be one of c2f, png"):
        convert([tmp_path], tmp_path / "o", to="jpeg")
    with pytest.raises(c2f_format.InvalidArgumentError, match="quality"):
        convert([tmp_path], tmp_path / "o", quality=0)
    with pytest.raises(c2f_format.InvalidArgumentError, match="effort"):
        convert([tmp_path], tmp_path / "o", effort=10)
    with pytest.raises(c2f_format.InvalidArgumentError, match="workers"):
        convert([tmp_path], tmp_path / "o", workers=0)
    with pytest.raises(c2f_format.C2FError, match="no such file or folder"):
        convert([tmp_path / "missing"], tmp_path / "o")


def test_local_pool_without_distributed(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the distributed package, `workers` runs a local process pool, with the
    same outputs as in this process."""
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    here = convert([photos], tmp_path / "here")
    pooled = convert([photos], tmp_path / "pool", workers=2)
    assert pooled.where == "a local pool of 2 processes"
    assert pooled.converted == 3 and _outputs(tmp_path / "pool") == _outputs(tmp_path / "here")
    assert here.converted == 3
    with pytest.raises(c2f_format.C2FError, match=r'pip install "c2f-format\[distributed\]"'):
        convert([photos], tmp_path / "cluster", scheduler="tcp://127.0.0.1:1")


def _die_on_killer(task: conversion.Task) -> conversion.Outcome:
    """convert_file, except that the worker dies on killer.png (in the pool's processes:
    pickled by name, this module is importable there as it is here)."""
    if task.src.endswith("killer.png"):
        os.kill(os.getpid(), signal.SIGKILL)
    return conversion.convert_file(task)


def test_pool_retries_a_file_whose_worker_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool whose worker died is started again and the files it held tried again;
    a file that keeps killing workers fails after WORKER_DEATHS tries, and the others
    still convert."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    src = tmp_path / "src"
    for i in range(3):
        _image(src / f"ok{i}.png", i)
    _image(src / "killer.png", 9)
    monkeypatch.setattr(workers, "convert_file", _die_on_killer)
    summary = convert([src], tmp_path / "out", workers=2)
    assert summary.converted == 3
    [(bad, why)] = summary.failed
    assert bad.endswith("killer.png")
    assert f"died {workers.WORKER_DEATHS} times" in why
