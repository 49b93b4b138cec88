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


def progress(
    items: Iterable[T], total: int, label: str = "", stream: TextIO | None = None
) -> Iterator[T]:
    """Yield `items`, drawing `label [#####.....] k/total eta` on `stream` (stderr).

    On a terminal the bar redraws in place; otherwise one line per item is written,
    so logs stay readable.
    """
    out = stream if stream is not None else sys.stderr
    tty = out.isatty()
    start = time.monotonic()
    width = 24
    for done, item in enumerate(items, start=1):
        yield item
        elapsed = time.monotonic() - start
        eta = elapsed / done * (total - done)
        filled = int(width * done / max(total, 1))
        line = (
            f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"{format_duration(elapsed)} elapsed, eta {format_duration(eta)}"
        )
        out.write(("\r" + line) if tty else (line + "\n"))
        out.flush()
    if tty:
        out.write("\n")
