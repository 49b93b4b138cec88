"""One error style everywhere (`c2f: error: FILE: PROBLEM`), devices checked by c2f, and
a CLI that answers --help and usage errors without importing torch."""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import run_python

from c2f_format.tools.cli import build_parser, main

COMMANDS = {
    "info": lambda src, out: ["info", str(src)],
    "preview": lambda src, out: ["preview", str(src), "-o", str(out / "strip.png")],
    "decode": lambda src, out: ["decode", str(src), "-o", str(out / "x.png")],
    "encode": lambda src, out: ["encode", str(src), "-o", str(out / "x.c2f")],
}
CLASS_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|\[Errno")


def _one_error_line(err: str, path: Path, problem: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err == f"c2f: error: {path}: {problem}\n"
    assert not CLASS_NAME.search(err), err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_file(tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.c2f"
    assert main(COMMANDS[command](missing, tmp_path)) == 1
    _one_error_line(capsys.readouterr().err, missing, "No such file or directory")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_given_as_a_file(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder.c2f"
    folder.mkdir()
    assert main(COMMANDS[command](folder, tmp_path)) == 1
    _one_error_line(capsys.readouterr().err, folder, "Is a directory")


@pytest.mark.parametrize("command", COMMANDS)
def test_garbage(tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.c2f"
    garbage.write_bytes(b"definitely not an image" * 10)
    assert main(COMMANDS[command](garbage, tmp_path)) == 1
    problem = (
        "not an image Pillow can read"
        if command == "encode"
        else "not a c2f stream (magic bytes do not match)"
    )
    _one_error_line(capsys.readouterr().err, garbage, problem)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.c2f"]


def test_info_goes_on_after_a_bad_file(
    tmp_path: Path, small_stream: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.c2f"
    good.write_bytes(small_stream)
    missing = tmp_path / "missing.c2f"
    assert main(["info", str(missing), str(good)]) == 1
    out, err = capsys.readouterr()
    assert f"{good}:" in out and "80x96 RGB" in out
    assert err.splitlines() == [
        f"c2f: error: {missing}: No such file or directory",
        "c2f: error: 1 of 2 files failed",
    ]


def test_an_unwritable_output(
    tmp_path: Path, small_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "no" / "such" / "folder.png"
    assert main(["decode", str(small_file), "-o", str(dst)]) == 1
    _one_error_line(capsys.readouterr().err, dst, "cannot write: No such file or directory")
    assert main(["decode", str(small_file), "-o", str(tmp_path / "x.unknown")]) == 1
    _one_error_line(
        capsys.readouterr().err,
        tmp_path / "x.unknown",
        "cannot write .unknown files (not an image format Pillow writes)",
    )


@pytest.mark.parametrize("command", ["encode", "decode", "preview"])
def test_an_invalid_device_is_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """c2f names the devices it runs on, not the dozen device types torch knows."""
    with pytest.raises(SystemExit) as exit_:
        main([command, "x", "--device", "tpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"c2f {command}: error: argument --device: invalid device 'tpu': " in err
    assert err.endswith("c2f runs on cpu, cuda or cuda:N\n")
    assert "xla" not in err and "Expected one of" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none(
    tmp_path: Path, small_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", str(small_file), "--device", "cuda:1"]) == 1
    assert capsys.readouterr().err == (
        "c2f: error: --device 'cuda:1': CUDA is not available on this machine "
        "(devices that work here: cpu)\n"
    )
    assert not (tmp_path / "s.png").exists()


def test_a_bad_device_in_the_environment(
    small_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("C2F_DEVICE", "tpu")
    assert main(["decode", str(small_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("c2f: error: $C2F_DEVICE 'tpu': c2f runs on cpu, cuda or cuda:N")
    assert "devices that work here: cpu" in err
    assert main(["decode", str(small_file), "--device", "cpu"]) == 0  # the option wins


@pytest.mark.parametrize(
    "argv", [["--help"], ["decode", "--help"], ["decode"], ["encode", "x", "-q", "101"]]
)
def test_help_and_usage_errors_do_not_import_torch(argv: list[str]) -> None:
    """torch's import takes seconds: nothing before the real work may need it."""
    script = textwrap.dedent(
        f"""
        import sys
        from c2f_format.tools.cli import main
        try:
            main({argv!r})
        except SystemExit as exc:
            code = exc.code
        print("torch" in sys.modules, code, file=sys.stderr)
        """
    )
    proc = run_python(script, timeout=120)
    assert proc.stderr.decode().splitlines()[-1] == f"False {0 if '--help' in argv else 2}"


def test_import_registers_without_torch(small_file: Path) -> None:
    """`import c2f_format` registers the format with Pillow and imageio; torch comes in
    when a .c2f file is first opened, and the package's names work as before."""
    script = textwrap.dedent(
        f"""
        import sys
        import c2f_format
        import imageio.v3 as iio
        from PIL import Image
        assert "torch" not in sys.modules
        assert Image.registered_extensions()[".c2f"] == "C2F"
        assert Image.OPEN["C2F"][0].__module__ == "c2f_format.plugins"
        with Image.open({str(small_file)!r}) as im:
            im.load()
        assert "torch" in sys.modules
        assert (im.format, im.size) == ("C2F", (80, 96))
        assert type(im).__module__.endswith("pillow_c2f")
        assert Image.OPEN["C2F"][0] is type(im)  # the real adapter took its place
        assert iio.imread({str(small_file)!r}).shape == (96, 80, 3)
        from c2f_format import DEFAULT_MAX_PIXELS, decode, encode_many
        with open({str(small_file)!r}, "rb") as f:
            assert decode(f.read(), max_pixels=DEFAULT_MAX_PIXELS).size == (80, 96)
        assert callable(encode_many) and "decode_many" in dir(c2f_format)
        try:
            c2f_format.no_such_name
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError("no AttributeError")
        print("ok")
        """
    )
    proc = run_python(script)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"ok\n"


def test_imageio_first_loads_the_plugin(small_file: Path) -> None:
    """imageio asks for the plugin class before Pillow has seen a .c2f file."""
    script = f"import c2f_format, imageio.v3 as iio; print(iio.imread({str(small_file)!r}).shape)"
    proc = run_python(script)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"(96, 80, 3)\n"


def _actions(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _actions(sub, f"{name} {sub_name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((name, action))
    return found


def test_every_argument_has_help() -> None:
    from c2f_format.tools import bench

    missing = [
        f"{command}: {'/'.join(action.option_strings) or action.dest}"
        for command, action in _actions(build_parser(), "c2f")
        + _actions(bench.build_parser(), "c2f bench")
        if not action.help
    ]
    assert missing == []
