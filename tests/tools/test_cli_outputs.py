"""The CLI never destroys a user's file: no overwrite without --force, never an input,
outputs written whole or not at all; decode keeps metadata and can accept a cut stream."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import c2f_format
from c2f_format.codec import files
from c2f_format.codec.safe_write import TEMP_SUFFIX, OutputExistsError, write_file
from c2f_format.format import bitstream
from c2f_format.tools.cli import main


def _png(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.rglob(f"*{TEMP_SUFFIX}")]


def test_decode_refuses_to_replace_the_original(
    tmp_path: Path, small_rgb: np.ndarray, small_stream: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """`c2f decode kodim23.c2f` beside kodim23.png: the PNG is the user's original."""
    original = _png(tmp_path / "photo.png", small_rgb).read_bytes()
    (tmp_path / "photo.c2f").write_bytes(small_stream)
    assert main(["decode", str(tmp_path / "photo.c2f")]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"c2f: error: {tmp_path / 'photo.png'}: already exists (use --force to overwrite it)\n"
    )
    assert (tmp_path / "photo.png").read_bytes() == original
    assert main(["decode", str(tmp_path / "photo.c2f"), "--force"]) == 0
    assert (tmp_path / "photo.png").read_bytes() != original
    with Image.open(tmp_path / "photo.png") as im:
        assert im.size == (80, 96)
    _no_temp_files(tmp_path)


def test_encode_refuses_to_replace_a_stream(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _png(tmp_path / "a.png", small_rgb)
    (tmp_path / "a.c2f").write_bytes(b"the user's older stream")
    assert main(["encode", str(src), "-q", "30"]) == 1
    assert "a.c2f: already exists" in capsys.readouterr().err
    assert (tmp_path / "a.c2f").read_bytes() == b"the user's older stream"
    assert main(["encode", str(src), "-q", "30", "-f"]) == 0
    assert c2f_format.info((tmp_path / "a.c2f").read_bytes()).header.quality == 30


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_an_input_is_never_an_output(
    tmp_path: Path,
    small_rgb: np.ndarray,
    small_stream: bytes,
    force: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Even with --force: by its own name, by another spelling, through a hard link."""
    stream = tmp_path / "s.c2f"
    stream.write_bytes(small_stream)
    src = _png(tmp_path / "p.png", small_rgb)
    os.link(src, tmp_path / "link.c2f")
    cases = [
        ["decode", str(stream), "-o", str(stream)],
        ["decode", str(stream), "-o", str(tmp_path / "." / "s.c2f")],
        ["encode", str(src), "-o", str(src)],
        ["encode", str(src), "-o", str(tmp_path / "link.c2f")],
    ]
    for argv in cases:
        assert main([*argv, *force]) == 1, argv
        assert "is an input of this run; not overwritten, even with --force" in (
            capsys.readouterr().err
        )
    assert stream.read_bytes() == small_stream
    with Image.open(src) as im:
        assert np.array_equal(np.asarray(im), small_rgb)


def test_a_batch_does_what_it_may_and_fails_at_the_end(
    tmp_path: Path, small_stream: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two inputs with one output: neither is written; an existing output: refused; the
    rest is done, and the status is 1."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.c2f").write_bytes(small_stream)
    (tmp_path / "y.c2f").write_bytes(small_stream)
    (tmp_path / "z.c2f").write_bytes(small_stream)
    out = tmp_path / "out"
    out.mkdir()
    (out / "z.png").write_bytes(b"kept")
    inputs = [str(tmp_path / p) for p in ("a/x.c2f", "b/x.c2f", "y.c2f", "z.c2f")]
    assert main(["decode", *inputs, "-o", str(out), "-j", "1"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["y.png", "z.png"]
    assert (out / "z.png").read_bytes() == b"kept"
    err = capsys.readouterr().err.splitlines()
    assert (
        f"c2f: error: {inputs[0]}: its output {out / 'x.png'} is also the output of {inputs[1]}"
        in err
    )
    assert (
        f"c2f: error: {inputs[1]}: its output {out / 'x.png'} is also the output of {inputs[0]}"
        in err
    )
    assert f"c2f: error: {out / 'z.png'}: already exists (use --force to overwrite it)" in err
    assert err[-1] == "c2f: error: 3 of 4 files failed"
    # --force replaces z.png but still writes neither x.png
    assert main(["decode", *inputs, "-o", str(out), "-j", "1", "--force"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["y.png", "z.png"]
    assert (out / "z.png").read_bytes() != b"kept"
    assert capsys.readouterr().err.splitlines()[-1] == "c2f: error: 2 of 4 files failed"


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_decode_leaves_no_file(
    tmp_path: Path,
    small_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: type[BaseException],
    existing: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The save dies half-way: no partial output, no temporary file, an existing target
    (replaced only with --force) intact."""
    dst = tmp_path / "s.png"
    if existing:
        dst.write_bytes(b"the user's file")
    real_save = Image.Image.save

    def dying_save(self: Image.Image, fp: Any, format: str | None = None, **params: Any) -> None:
        real_save(self, fp, format=format, **params)  # everything written ...
        raise failure(28, "No space left on device")  # ... but the write never finishes

    monkeypatch.setattr(Image.Image, "save", dying_save)
    status = main(["decode", str(small_file), "--force"])
    assert status == (130 if failure is KeyboardInterrupt else 1)
    if failure is OSError:
        assert capsys.readouterr().err == (
            f"c2f: error: {dst}: cannot write: No space left on device\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.c2f"] + (["s.png"] if existing else [])
    if existing:
        assert dst.read_bytes() == b"the user's file"


def test_an_interrupted_encode_leaves_no_file(
    tmp_path: Path, small_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted after every byte is written, before the rename: nothing changes."""
    src = _png(tmp_path / "a.png", small_rgb)

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    assert main(["encode", str(src)]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@settings(max_examples=30, deadline=None)
@given(
    old=st.one_of(st.none(), st.binary(max_size=64)),
    new=st.binary(max_size=4096),
    fail_at=st.one_of(st.none(), st.floats(0, 1)),  # share of `new` written before failing
    overwrite=st.booleans(),
)
def test_write_file_is_all_or_nothing(
    old: bytes | None, new: bytes, fail_at: float | None, overwrite: bool
) -> None:
    """Whatever the old file, the new bytes and where writing fails: the target ends
    either as it was or as the complete new file, and no temporary file is left."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.bin"
        if old is not None:
            path.write_bytes(old)

        def write(fp: Any) -> None:
            if fail_at is not None:
                fp.write(new[: int(fail_at * len(new))])
                raise KeyboardInterrupt
            fp.write(new)

        try:
            write_file(path, write, overwrite=overwrite)
        except KeyboardInterrupt:
            assert fail_at is not None
            expected = old
        except OutputExistsError:
            assert old is not None and not overwrite
            expected = old
        else:
            assert overwrite or old is None
            expected = new
        assert (path.read_bytes() if path.exists() else None) == expected
        assert os.listdir(folder) == ([] if expected is None else ["out.bin"])


def test_an_output_that_appears_meanwhile_is_kept(tmp_path: Path) -> None:
    """The existence check is the rename itself: a file created while the output was
    being written wins."""
    path = tmp_path / "out.bin"

    def write(fp: Any) -> None:
        fp.write(b"new")
        path.write_bytes(b"someone else's")

    with pytest.raises(OutputExistsError, match="already exists"):
        write_file(path, write)
    assert path.read_bytes() == b"someone else's"
    assert os.listdir(tmp_path) == ["out.bin"]


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "c2f test camera"  # Make
    return exif.tobytes()


@pytest.mark.parametrize("prefixed", [True, False])
@pytest.mark.parametrize(
    ("suffix", "kept"), [(".png", True), (".jpg", True), (".webp", True), (".bmp", False)]
)
def test_decode_passes_metadata_through(
    tmp_path: Path,
    small_rgb: np.ndarray,
    small_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    kept: bool,
    prefixed: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exif (with or without Pillow's `Exif\\0\\0` prefix) and ICC profile in the decoded
    image's info reach the written file where its format holds them, and a warning
    says so where it does not."""
    icc = b"\x00\x00\x02\x0cfake icc profile"
    exif = _exif() if prefixed else _exif().removeprefix(b"Exif\x00\x00")

    def decode_with_metadata(data: bytes, *args: Any, **kwargs: Any) -> Image.Image:
        image = Image.fromarray(small_rgb)
        image.info.update(exif=exif, icc_profile=icc)
        return image

    monkeypatch.setattr(files, "decode", decode_with_metadata)
    dst = tmp_path / f"s{suffix}"
    assert main(["decode", str(small_file), "-o", str(dst)]) == 0
    err = capsys.readouterr().err
    with Image.open(dst) as im:
        if kept:
            assert im.info.get("icc_profile") == icc
            assert im.getexif()[0x010F] == "c2f test camera"
            assert err == ""
        else:
            assert "icc_profile" not in im.info
            assert err == (
                f"c2f: warning: {dst}: BMP files cannot hold the Exif and ICC profile; not kept\n"
            )


def test_encode_keeps_exif_and_icc(tmp_path: Path, small_rgb: np.ndarray) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src, exif=_exif(), icc_profile=b"fake icc")
    assert main(["encode", str(src)]) == 0
    dec = c2f_format.StreamDecoder()
    dec.feed((tmp_path / "a.c2f").read_bytes())
    assert dec.metadata["icc_profile"] == b"fake icc"
    exif = Image.Exif()
    exif.load(dec.metadata["exif"])  # with or without the "Exif\0\0" prefix
    assert exif[0x010F] == "c2f test camera"


def test_encode_drops_exif_it_cannot_store(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exif that is not TIFF-structured costs the Exif, with a warning, not the image."""
    src = tmp_path / "a.jpg"
    Image.fromarray(small_rgb).save(src, exif=b"Exif\x00\x00not tiff", icc_profile=b"icc")
    assert main(["encode", str(src)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"c2f: warning: {src}: Exif not kept: ") and "TIFF" in err
    dec = c2f_format.StreamDecoder()
    dec.feed((tmp_path / "a.c2f").read_bytes())
    assert dec.metadata == {"icc_profile": b"icc"}


@pytest.mark.v1
def test_allow_truncated(
    tmp_path: Path, small_stream_v1: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stream cut inside y: an error by default; with --allow-truncated the image,
    with a warning naming the file and what was lost."""
    last_band = [
        s for s in bitstream.iter_segments(small_stream_v1) if s.kind == bitstream.SEG_YBND
    ][-1]
    cut = tmp_path / "cut.c2f"
    cut.write_bytes(small_stream_v1[: last_band.offset + 20])
    assert main(["decode", str(cut)]) == 1
    assert capsys.readouterr().err.startswith(f"c2f: error: {cut}: stream ends after 4 of 8")
    assert main(["decode", str(cut), "--allow-truncated"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"c2f: warning: {cut}: stream ends after 4 of 8 latent rows")
    assert err.endswith("missing rows predicted\n") and err.count("\n") == 1
    with Image.open(tmp_path / "cut.png") as im:
        assert im.size == (80, 96)
    cut.write_bytes(small_stream_v1[:60])  # inside the hyper segments: nothing to show
    assert main(["decode", str(cut), "--allow-truncated", "--force"]) == 1


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.v1
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_one_large_file_shows_progress_on_a_terminal(
    tmp_path: Path, kodim23: Image.Image, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """A 600x40 image is two tiles: the bar moves per tile (the codec's `on_tile`
    callback), then once more for the file written."""
    src = tmp_path / "wide.png"
    kodim23.crop((0, 0, 600, 40)).save(src)
    if command == "decode":
        assert main(["encode", str(src), "-o", str(tmp_path / "wide.c2f")]) == 0
        src = tmp_path / "wide.c2f"
        argv = ["decode", str(src), "-o", str(tmp_path / "out.png")]
    else:
        argv = ["encode", str(src)]
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(argv) == 0
    shown = terminal.getvalue()
    assert shown.startswith(f"\r{command} {src.name} [") and shown.endswith("\n")
    steps = [part.split("] ")[1].split()[0] for part in shown.strip().split("\r")]
    assert steps == ["0%", "33%", "67%", "100%"]


def test_no_bar_where_nobody_watches(small_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(small_file)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.v1
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_the_codec_reports_its_tiles(kodim23: Image.Image, backend: str) -> None:
    """`on_tile` hears (0, n) before the first of the n tiles and (k, n) after each,
    from the analysis and from the synthesis of either engine."""
    calls: list[tuple[int, int]] = []
    wide = kodim23.crop((0, 0, 600, 40))
    data = c2f_format.encode(wide, on_tile=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]
    calls.clear()
    c2f_format.decode(data, backend=backend, on_tile=lambda *c: calls.append(c))
    assert calls == [(0, 2), (1, 2), (2, 2)]


def test_an_alpha_stream_is_not_flattened_into_a_jpeg(
    tmp_path: Path, small_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    rgba = np.dstack([small_rgb, np.full(small_rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    assert main(["encode", str(tmp_path / "cut.png")]) == 0
    assert main(["decode", str(tmp_path / "cut.c2f"), "-o", str(tmp_path / "cut.jpg")]) == 1
    err = capsys.readouterr().err
    assert "JPEG files have no alpha channel" in err and "PNG" in err
    assert not (tmp_path / "cut.jpg").exists()
    _no_temp_files(tmp_path)
    assert main(["decode", str(tmp_path / "cut.c2f"), "-o", str(tmp_path / "cut.webp")]) == 0
    with Image.open(tmp_path / "cut.webp") as im:
        assert im.mode == "RGBA"
