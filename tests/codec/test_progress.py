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


def test_a_log_gets_one_line_at_the_end_however_often_it_is_advanced_past_it() -> None:
    log = io.StringIO()
    bar = Bar(2, "tiles", log)
    for _ in range(6):  # callers that count past the total (a tile bar's last unit)
        bar.advance()
    assert len(log.getvalue().splitlines()) == 2  # 1/2 (a tenth: 5), then 2/2, once


def test_a_conversion_bar_shows_bytes_and_rate_and_goes_by_bytes() -> None:
    log = io.StringIO()
    bar = Bar(4, "convert", log, total_bytes=10_000_000)
    bar.advance(1, nbytes=9_000_000)  # one big file of four: 90% of the work
    line = log.getvalue().splitlines()[-1]
    assert "[" + "#" * int(Bar.width * 0.9) + "." in line
    assert "1/4 files, 9.0 MB/10.0 MB," in line and "files/s" in line
    bar.advance(3, nbytes=1_000_000)
    assert "4/4 files, 10.0 MB/10.0 MB" in log.getvalue().splitlines()[-1]
