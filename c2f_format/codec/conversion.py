"""One conversion, a source file to its output, as a worker runs it (wherever the
scheduler puts it): read and hash the source, run the same file job as `c2f encode` /
`c2f decode` (codec/files.py), so that the output is byte-identical to theirs, written
whole under a temporary name first, and hash what was written. Torch is imported by the
file job, once per worker process, which keeps the model loaded between files."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..format.errors import C2FError
from .files import FileJob, decode_file, encode_file

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Task:
    """One source to one output, as a worker needs it (paths every worker sees)."""

    src: str
    dst: str
    to: str
    quality: int
    effort: int
    device: str | None
    known: tuple[str, str] | None = None  # (source, output) SHA-256 of the last conversion


@dataclass(frozen=True)
class Outcome:
    task: Task
    state: str  # "done", "unchanged" (the same bytes as last time, output intact), "failed"
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    out_size: int | None = None
    out_sha256: str | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()


def _sha256(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fp:
        while chunk := fp.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _reason(task: Task, message: str) -> str:
    """The file job's message without the source's path in front (the report names it)."""
    return message.removeprefix(f"{task.src}: ")


def convert_file(task: Task) -> Outcome:
    """Convert one file (run on a worker). Every failure of the file itself comes back as
    an Outcome saying why; only a bug of c2f raises."""
    try:
        st = os.stat(task.src)
        sha, size = _sha256(task.src)
    except OSError as exc:
        return Outcome(task, "failed", reason=exc.strerror or str(exc))
    stats: dict[str, Any] = {"size": size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    if task.known is not None and task.known[0] == sha:
        with contextlib.suppress(OSError):
            out_sha, out_size = _sha256(task.dst)
            if out_sha == task.known[1]:
                return Outcome(task, "unchanged", out_size=out_size, out_sha256=out_sha, **stats)
    job = FileJob(
        Path(task.src),
        Path(task.dst),
        quality=task.quality,
        device=task.device,
        overwrite=True,  # the name is this conversion's: claimed in the manifest first
        effort=task.effort,
    )
    try:
        os.makedirs(os.path.dirname(task.dst), exist_ok=True)
        result = encode_file(job) if task.to == "c2f" else decode_file(job)
        out_sha, out_size = _sha256(task.dst)
    except C2FError as exc:
        return Outcome(task, "failed", reason=_reason(task, str(exc)), **stats)
    except MemoryError:
        return Outcome(task, "failed", reason="out of memory", **stats)
    except OSError as exc:
        return Outcome(task, "failed", reason=f"cannot write {task.dst}: {exc.strerror}", **stats)
    return Outcome(
        task, "done", out_size=out_size, out_sha256=out_sha, warnings=result.warnings, **stats
    )


def worker_version() -> str:
    """The c2f a process runs (checked on every worker before any work: another version
    may code other bytes)."""
    try:
        return importlib.metadata.version("c2f-format")
    except importlib.metadata.PackageNotFoundError:  # not installed: a bare checkout
        return "unknown"


__all__ = ["Outcome", "Task", "convert_file", "worker_version"]
