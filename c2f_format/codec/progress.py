"""A dependency-free progress bar for long work (batch encodes, training, benchmarks)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class Bar:
    """`label [#####.....] k/total eta` on `stream` (stderr), advanced by calls.

    For work that reports through callbacks rather than an iterator (the tiles of one
    large image). On a terminal the bar redraws in place; otherwise (a log, a pipe) a
    line is written at the first step and at each tenth of the work, so a log of a
    thousand files holds eleven lines of it. `percent` shows 45% instead of k/total, for
    steps that mean nothing to a user. With `total_bytes` (a conversion of files) it
    also shows the bytes done and the rate, and its share and eta go by bytes.
    """

    width = 24

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: TextIO | None = None,
        *,
        percent: bool = False,
        total_bytes: int | None = None,
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.out = stream if stream is not None else sys.stderr
        self.tty = self.out.isatty()
        self.percent = percent
        self.done = 0
        self.total_bytes = total_bytes
        self.bytes_done = 0
        self._tenths = -1  # the last tenth of the work a log line was written at
        self.start = time.monotonic()
        self.closed = False
        if self.tty:  # the bar is there from the start, not after the first (slow) step
            self._draw()

    def advance(self, steps: int = 1, nbytes: int = 0) -> None:
        self.done = min(self.done + steps, self.total) if self.total else self.done + steps
        self.bytes_done += nbytes
        self._draw()

    def _share(self) -> float:
        if self.total_bytes:
            if self.done >= self.total:
                return 1.0
            return min(self.bytes_done / self.total_bytes, 1.0)
        return self.done / self.total if self.total else 1.0

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.start
        share = self._share()
        if not self.tty:
            tenths = int(10 * share)
            if tenths == self._tenths:  # also past the end: one line for 100%
                return
            self._tenths = tenths
        eta = elapsed / share * (1 - share) if share > 0 else None
        filled = int(self.width * share)
        count = f"{100 * share:3.0f}%" if self.percent else f"{self.done}/{self.total}"
        if self.total_bytes is not None:
            rate = self.done / elapsed if elapsed > 0 else 0.0
            count += (
                f" files, {format_bytes(self.bytes_done)}/{format_bytes(self.total_bytes)}, "
                f"{rate:.2f} files/s,"
            )
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {count} "
            f"{format_duration(elapsed)} elapsed, eta "
            + (format_duration(eta) if eta is not None else "-:--")
        )
        self.out.write(("\r" + line) if self.tty else (line + "\n"))
        self.out.flush()

    def close(self) -> None:
        """End the bar's line on a terminal, so what follows starts on its own line."""
        if self.tty and not self.closed:
            self.out.write("\n")
            self.out.flush()
        self.closed = True


def progress(
    items: Iterable[T], total: int, label: str = "", stream: TextIO | None = None
) -> Iterator[T]:
    """Yield `items`, drawing `label [#####.....] k/total eta` on `stream` (stderr).

    On a terminal the bar redraws in place; otherwise a line is written at each tenth of
    the items and at the end (`Bar`).
    """
    bar = Bar(total, label, stream)
    try:
        for item in items:
            yield item
            bar.advance()
    finally:
        bar.close()
