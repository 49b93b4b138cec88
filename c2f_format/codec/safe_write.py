"""Writing an output file so that no user's file is ever left half-written or clobbered.

The bytes go to a temporary file in the target's folder (same file system, so the final
rename is atomic), which is renamed into place only once complete: an interrupted or
failed run leaves the target as it was, absent or intact, and removes its temporary file.
Without `overwrite` an existing target is never replaced, not even one that appears
while the output is being written (the rename is a hard link, which fails on an existing
name, where the file system has them).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..format.errors import C2FError

TEMP_SUFFIX = ".c2f-part"


class OutputExistsError(C2FError):
    """The output file exists and overwriting was not asked for."""


def exists_message(path: Path) -> str:
    return f"{path}: already exists (use --force to overwrite it)"


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail early, before minutes of work, if `path` exists and may not be replaced or
    its folder is missing."""
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(exists_message(path))
    folder = path.parent
    if not folder.is_dir():
        reason = errno.ENOTDIR if folder.exists() else errno.ENOENT
        raise C2FError(f"{path}: cannot write: {os.strerror(reason)}")


def file_identity(path: Path) -> tuple[object, ...]:
    """The file `path` names: (device, inode) when it exists, so that links and other
    spellings of one file compare equal; else its absolute, normalised path."""
    try:
        st = path.stat()
    except OSError:
        return ("path", os.path.normcase(os.path.abspath(path)))
    return ("inode", st.st_dev, st.st_ino)


def make_folder(path: Path, why_a_folder: str = "") -> None:
    """Create the output folder `path` (and its parents) if missing; C2FError if it is
    a file (`why_a_folder` says why it must be a folder) or cannot be made."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise C2FError(f"{path}: not a folder{why_a_folder}") from None
    except OSError as exc:
        raise C2FError(f"{path}: cannot create folder: {exc.strerror or exc}") from None


def write_file(path: Path, write: Callable[[BinaryIO], object], *, overwrite: bool = False) -> None:
    """Create `path` with what `write(fp)` writes, all or nothing.

    Errors of the file system become `C2FError` naming `path`; whatever `write` raises
    (KeyboardInterrupt included) propagates, after the temporary file is removed.
    """
    check_writable(path, overwrite)
    temp, fd = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())  # the rename must not outlive the data in a crash
        _publish(temp, path, overwrite)
    except OSError as exc:
        _remove(temp)
        raise C2FError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _remove(temp)
        raise


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new, hidden file beside `path`; mode 0666 less the umask, as `open()` would give."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise C2FError(f"{path}: cannot write: {exc.strerror or exc}") from None
    raise C2FError(f"{path}: cannot write: no free temporary name in {path.parent}")


def _publish(temp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # fails if `path` exists, however recently it appeared
    except FileExistsError:
        _remove(temp)
        raise OutputExistsError(exists_message(path)) from None
    except OSError as exc:
        if exc.errno not in (
            errno.EPERM,
            errno.ENOSYS,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EXDEV,
        ):
            raise
        # no hard links on this file system (FAT, some network shares): check, then rename
        if os.path.lexists(path):
            _remove(temp)
            raise OutputExistsError(exists_message(path)) from None
        os.replace(temp, path)
        return
    _remove(temp)


def _remove(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


__all__ = [
    "TEMP_SUFFIX",
    "OutputExistsError",
    "check_writable",
    "file_identity",
    "make_folder",
    "write_file",
]
