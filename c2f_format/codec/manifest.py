"""The record a conversion keeps in its destination, so that a rerun does only what is
missing or changed and nothing converted is lost when a run dies.

A JSON Lines file, `c2f-manifest.jsonl` in the destination folder: a first line naming
the format, then one line per event, appended and flushed as it happens. Each event is
about one output (its path relative to the folder is the key) and the last one wins:

- `pending`: the output is about to be made from this source. Written before the work
  is handed out, it marks the output's name as this conversion's, so that a rerun may
  replace a file found there (the output of a run that died before saying `done`).
- `done`: the source's size, mtime and SHA-256 as it was read, the output's size and
  SHA-256, and the settings it was made with.
- `failed`: why, for the summary and for the next run, which tries again.

A line cut short by a crash is ignored when read. A lock (`flock`) held for the run
keeps a second conversion from writing to the same folder at once. `compact()` rewrites
the file with the last event of each output only, whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ..format.errors import C2FError
from .safe_write import write_file

MANIFEST_NAME = "c2f-manifest.jsonl"
FORMAT = "c2f-convert-manifest"
VERSION = 1
_SYNC_S = 2.0  # fsync at most this often: a crash loses at most this much of the record


@dataclass(frozen=True)
class Entry:
    """One event about one output. `dst` is relative to the manifest's folder (POSIX
    separators); `src` is the source's absolute path as the run was given it."""

    dst: str
    src: str
    state: str  # "pending", "done" or "failed"
    settings: dict[str, Any] = field(default_factory=dict)
    size: int | None = None  # the source's, as converted
    mtime_ns: int | None = None
    sha256: str | None = None
    out_size: int | None = None
    out_sha256: str | None = None
    reason: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})


def _entry(record: object) -> Entry | None:
    if not isinstance(record, dict):
        return None
    try:
        entry = Entry(**record)
    except TypeError:  # fields of a later version, or missing ones
        return None
    ok = isinstance(entry.dst, str) and isinstance(entry.src, str)
    return entry if ok and entry.state in ("pending", "done", "failed") else None


class Manifest:
    """The manifest of `folder`, open for appending (and locked) until `close()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, Entry] = {}
        try:
            self._fp: IO[str] = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise C2FError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        try:
            self._lock()
            self._read()
        except BaseException:
            self._fp.close()
            raise
        self._synced = time.monotonic()

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        try:
            fcntl.flock(self._fp.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise C2FError(
                f"{self.folder}: another conversion is writing to this folder now"
            ) from None
        except OSError:  # a file system without locks: go on unlocked
            pass

    def _read(self) -> None:
        self._fp.seek(0)
        text = self._fp.read()
        lines = text.splitlines()
        if not lines:
            self._fp.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
            self._fp.flush()
            return
        try:
            head = json.loads(lines[0])
        except ValueError:
            head = None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise C2FError(f"{self.path}: not a c2f conversion manifest; move it away first")
        if head.get("version") != VERSION:
            raise C2FError(
                f"{self.path}: manifest version {head.get('version')!r}, this c2f reads "
                f"version {VERSION}"
            )
        for line in lines[1:]:
            try:
                entry = _entry(json.loads(line))
            except ValueError:  # a line cut short by a crash
                continue
            if entry is not None:
                self.entries[entry.dst] = entry
        if not text.endswith("\n"):
            self._fp.write("\n")  # what a crash cut short stays a line of its own

    def record(self, entries: list[Entry]) -> None:
        """Append `entries` (flushed; synced to disk at most every two seconds)."""
        if not entries:
            return
        try:
            self._fp.write("".join(e.to_json() + "\n" for e in entries))
            self._fp.flush()
            if time.monotonic() - self._synced > _SYNC_S:
                os.fsync(self._fp.fileno())
                self._synced = time.monotonic()
        except OSError as exc:
            raise C2FError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        for e in entries:
            self.entries[e.dst] = e

    def compact(self) -> None:
        """Rewrite the file with the last event of each output (outputs sorted)."""
        head = json.dumps({"format": FORMAT, "version": VERSION})
        text = "".join(
            e.to_json() + "\n" for _, e in sorted(self.entries.items(), key=lambda kv: kv[0])
        )
        write_file(self.path, lambda fp: fp.write((head + "\n" + text).encode()), overwrite=True)
        # the lock and the appends go on in the new file
        self._fp.close()
        self._fp = self.path.open("a+", encoding="utf-8")
        self._lock()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fp.flush()
            os.fsync(self._fp.fileno())
        self._fp.close()


@contextlib.contextmanager
def opened(folder: Path) -> Iterator[Manifest]:
    manifest = Manifest(folder)
    try:
        yield manifest
    finally:
        manifest.close()


__all__ = ["MANIFEST_NAME", "Entry", "Manifest", "opened"]
