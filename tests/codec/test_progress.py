"""The progress bar: in place on a terminal, about ten lines in a log."""

from __future__ import annotations

import io

from c2f_format.codec.progress import Bar, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_per_tenth_and_the_end() -> None:
    log = io.StringIO()
    assert list(progress(range(1000), 1000, "decode", log)) == list(range(1000))
    lines = log.getvalue().splitlines()
    assert len(lines) == 11  # the first item done, then 100, 200, ... 1000
    assert lines[-1].startswith("decode [" + "#" * Bar.width + "] 1000/1000")


def test_a_short_job_logs_every_step_it_takes() -> None:
    log = io.StringIO()
    list(progress(range(3), 3, "encode", log))
    assert [line.split("]")[1].split()[0] for line in log.getvalue().splitlines()] == [
        "1/3",
        "2/3",
        "3/3",
    ]


def test_a_terminal_redraws_in_place() -> None:
    screen = _Terminal()
    list(progress(range(50), 50, "encode", screen))
    text = screen.getvalue()
    assert text.count("\r") == 51 and text.endswith("\n")  # drawn at the start, then each
