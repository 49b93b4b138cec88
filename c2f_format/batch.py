"""Many images at once: a pool of worker processes on the CPU, one process on a GPU.

One process with all cores spends much of its time in serial stretches (entropy coding,
Python between layers); several single-threaded processes keep every core busy. Workers
are started with "spawn" (forking a process whose OpenMP threads are running can
deadlock) and each loads the model once. On a GPU the work stays in this process: the
device is already shared between images, and several processes would only compete for
its memory.

Like any spawn-based pool, it needs a script that calls it at top level to do so under
`if __name__ == "__main__":`. Results come back in input order. A failure on one item
does not stop the others: each result is either the value or the `C2FError` it raised
(a worker that dies fails only the items it held).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from PIL import Image, UnidentifiedImageError

from . import backend as backends
from .api import DEFAULT_MAX_PIXELS, ImageLike, decode, encode
from .errors import C2FError, InvalidArgumentError
from .progress import Bar, progress
from .safe_write import check_writable, write_file
from .threads import available_cores

if TYPE_CHECKING:  # torch is imported where it is used: decoding may run without it
    import torch

    from .tiling import TileCallback

EXIF_PREFIX = b"Exif\x00\x00"  # as JPEG's APP1 marker and Pillow's Exif.tobytes() write it

T = TypeVar("T")
R = TypeVar("R")


def default_jobs(device: str | torch.device | None = None) -> int:
    """Worker processes to use: one per core on the CPU, none (in-process) on a GPU."""
    if backends.torch_available():
        from .codec import pick_device

        try:
            dev = pick_device(device)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if dev.type != "cpu":
            return 1
    else:
        backends.check_device("numpy", device)  # only the CPU without torch
    return available_cores()


def _init_worker(threads: int) -> None:
    if backends.torch_available():
        import torch

        torch.set_num_threads(threads)


def _guarded(fn: Callable[[T], R], item: T) -> R | C2FError:
    try:
        return fn(item)
    except C2FError as exc:
        return exc
    except MemoryError:  # one item too big
        return C2FError("out of memory")
    except Image.DecompressionBombError as exc:
        return C2FError(str(exc))


def run_batch(
    fn: Callable[[T], R],
    items: Sequence[T],
    jobs: int | None = None,
    device: str | torch.device | None = None,
    label: str = "",
    show_progress: bool = False,
) -> Iterator[R | C2FError]:
    """Apply `fn` (a module-level function) to every item, in `jobs` processes.

    Yields each result, or the `C2FError` it raised, in input order, as soon as it and
    all before it are done.
    """
    n = len(items)
    jobs = default_jobs(device) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidArgumentError(f"jobs must be a positive integer, got {jobs!r}")
    jobs = min(jobs, n) if n else 1
    results: Iterable[R | C2FError]
    if jobs == 1:
        results = (_guarded(fn, item) for item in items)
    else:
        results = _pooled(fn, items, jobs)
    yield from progress(results, n, label) if show_progress else results


def _pooled(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[R | C2FError]:
    cores = default_jobs("cpu")
    threads = max(1, cores // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, context, initializer=_init_worker, initargs=(threads,)) as pool:
        # at most two items in flight per worker: bounded memory for long lists
        window = 2 * jobs
        pending: list[Future[R | C2FError]] = []
        broken: BrokenExecutor | None = None
        for item in items:
            if broken is None:
                try:
                    pending.append(pool.submit(_guarded, fn, item))
                except BrokenExecutor as exc:
                    broken = exc
            if broken is not None:
                pending.append(_failed(broken))
            if len(pending) >= window:
                yield _result(pending.pop(0))
        for fut in pending:
            yield _result(fut)


def _failed(exc: BaseException) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_exception(exc)
    return fut


def _result(fut: Future[R | C2FError]) -> R | C2FError:
    """The item's result; a worker that died (killed for memory, say) fails its items,
    not the batch."""
    try:
        return fut.result()
    except BrokenExecutor as exc:
        return C2FError(f"worker process died: {exc}")


# ---- images and streams in memory ------------------------------------------------------


@dataclass(frozen=True)
class _EncodeJob:
    image: ImageLike
    quality: int
    device: str | None


@dataclass(frozen=True)
class _DecodeJob:
    data: bytes
    device: str | None
    max_pixels: int | None


def _encode_job(job: _EncodeJob) -> bytes:
    return encode(job.image, job.quality, job.device)


def _decode_job(job: _DecodeJob) -> Image.Image:
    image = decode(job.data, job.device, max_pixels=job.max_pixels)
    image.load()
    return image


def _device_name(device: str | torch.device | None) -> str | None:
    return None if device is None else str(device)


def encode_many(
    images: Iterable[ImageLike],
    quality: int = 75,
    device: str | torch.device | None = None,
    *,
    jobs: int | None = None,
    show_progress: bool = False,
) -> list[bytes | C2FError]:
    """Encode many images; each entry is the stream or the `C2FError` for that image."""
    items = [_EncodeJob(im, quality, _device_name(device)) for im in images]
    return list(run_batch(_encode_job, items, jobs, device, "encode", show_progress))


def decode_many(
    streams: Iterable[bytes],
    device: str | torch.device | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    jobs: int | None = None,
    show_progress: bool = False,
) -> list[Image.Image | C2FError]:
    """Decode many streams; each entry is the image or the `C2FError` for that stream."""
    items = [_DecodeJob(bytes(s), _device_name(device), max_pixels) for s in streams]
    return list(run_batch(_decode_job, items, jobs, device, "decode", show_progress))


# ---- files (the CLI): workers read and write them, nothing large crosses processes ----

# Pillow formats whose writers take `exif` and `icc_profile` keyword arguments
METADATA_FORMATS = frozenset({"AVIF", "JPEG", "MPO", "PNG", "TIFF", "WEBP"})
_METADATA_KEYS = ("exif", "icc_profile")


@dataclass(frozen=True)
class FileJob:
    src: Path
    dst: Path
    quality: int = 75
    device: str | None = None
    overwrite: bool = False  # replace an existing `dst` (never an input: the CLI checks)
    allow_truncated: bool = False  # decode a cut or damaged stream, predicting what is lost
    show_progress: bool = False  # a bar on stderr over this one image's tiles


@dataclass(frozen=True)
class FileResult:
    """A file written, and what its user should hear about it (rows predicted, metadata
    a format could not keep), as lines for stderr."""

    path: Path
    warnings: tuple[str, ...] = ()


# formats Pillow writes without an alpha channel: an RGBA decode is refused rather than
# flattened onto a background nobody chose
NO_ALPHA_FORMATS = frozenset({"JPEG", "MPO", "PPM", "PCX", "EPS", "PDF"})


def output_format(path: Path) -> str:
    """Pillow's name for the format `path`'s extension asks for; C2FError if Pillow has
    no writer for it (checked before any work, and needed to save through a temp file)."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        kind = f"{path.suffix} files" if path.suffix else "files without an extension"
        raise C2FError(f"{path}: cannot write {kind} (not an image format Pillow writes)")
    return fmt


def encode_file(job: FileJob) -> FileResult:
    image = _load_image(job.src)
    check_writable(job.dst, job.overwrite)  # before the slow part
    with _tile_bar(job.show_progress, f"encode {job.src.name}") as bar:
        data, notes = _encode_keeping_metadata(image, job, bar.on_tile if bar else None)
        _write(job.dst, lambda fp: fp.write(data), job.overwrite)
        if bar is not None:
            bar.written()
    return FileResult(job.dst, notes)


def decode_file(job: FileJob) -> FileResult:
    try:
        data = job.src.read_bytes()
    except OSError as exc:
        raise C2FError(f"{job.src}: {exc.strerror or exc}") from None
    fmt = output_format(job.dst)
    check_writable(job.dst, job.overwrite)
    with _tile_bar(job.show_progress, f"decode {job.src.name}") as bar:
        image, notes = _decode_noting_losses(data, job, bar.on_tile if bar else None)
        if image.mode in ("RGBA", "LA") and fmt in NO_ALPHA_FORMATS:
            raise C2FError(
                f"{job.dst}: {fmt} files have no alpha channel and {job.src} has one; "
                "decode to PNG, WebP or TIFF to keep it"
            )
        params = _metadata_params(image)
        if params and fmt not in METADATA_FORMATS:
            lost = " and ".join("Exif" if k == "exif" else "ICC profile" for k in params)
            notes += (f"{job.dst}: {fmt} files cannot hold the {lost}; not kept",)
            params = {}
        _write(job.dst, lambda fp: image.save(fp, format=fmt, **params), job.overwrite)
        if bar is not None:
            bar.written()
    return FileResult(job.dst, notes)


def _metadata_params(image: Image.Image) -> dict[str, bytes]:
    """`exif` and `icc_profile` for Pillow's writers, from the decoded image's info; Exif
    with its `Exif\\0\\0` prefix, the form every Pillow writer takes (JPEG needs it)."""
    params = {k: v for k in _METADATA_KEYS if isinstance(v := image.info.get(k), bytes) and v}
    exif = params.get("exif")
    if exif is not None and not exif.startswith(EXIF_PREFIX):
        params["exif"] = EXIF_PREFIX + exif
    return params


def _load_image(src: Path) -> Image.Image:
    try:
        with Image.open(src) as im:
            im.load()  # the pixels stay when the with block closes the file
            return im
    except UnidentifiedImageError:
        raise C2FError(f"{src}: not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise C2FError(f"{src}: {exc}") from None
    except MemoryError:
        raise C2FError(f"{src}: out of memory") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        # an unreadable file, or one of Pillow's format plugins failing on a broken file
        raise C2FError(f"{src}: {getattr(exc, 'strerror', None) or exc}") from None


def _encode_keeping_metadata(
    image: Image.Image, job: FileJob, on_tile: TileCallback | None
) -> tuple[bytes, tuple[str, ...]]:
    """The stream, with the source's Exif and ICC profile when c2f can carry them: a
    block it refuses (Exif not TIFF-structured, too large) is dropped with a warning
    rather than failing the image. (encode() checks them before any real work.)"""
    exif, icc = (image.info.get(k) for k in _METADATA_KEYS)
    exif = exif if isinstance(exif, bytes) and exif else None
    icc = icc if isinstance(icc, bytes) and icc else None
    reason = ""
    try:
        for e, c in dict.fromkeys([(exif, icc), (None, icc), (None, None)]):
            try:
                data = encode(
                    image, job.quality, job.device, exif=e, icc_profile=c, on_tile=on_tile
                )
            except InvalidArgumentError as exc:
                if e is None and c is None:
                    raise
                reason = str(exc)
                continue
            lost = [
                n
                for n, had, kept in (("Exif", exif, e), ("ICC profile", icc, c))
                if had and not kept
            ]
            notes = (f"{job.src}: {' and '.join(lost)} not kept: {reason}",) if lost else ()
            return data, notes
    except (C2FError, Image.DecompressionBombError) as exc:
        raise C2FError(f"{job.src}: {exc}") from None
    except MemoryError:
        raise C2FError(f"{job.src}: out of memory") from None
    raise AssertionError("unreachable: the last try carries no metadata")


def _decode_noting_losses(
    data: bytes, job: FileJob, on_tile: TileCallback | None
) -> tuple[Image.Image, tuple[str, ...]]:
    """The image, and the decoder's warnings (rows predicted) as lines for the user."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            image = decode(
                data, device=job.device, allow_truncated=job.allow_truncated, on_tile=on_tile
            )
        except C2FError as exc:
            raise C2FError(f"{job.src}: {exc}") from None
        except MemoryError:
            raise C2FError(f"{job.src}: out of memory") from None
    notes = []
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, UserWarning) and text.startswith("c2f: "):
            notes.append(f"{job.src}: {text.removeprefix('c2f: ')}")
        else:  # not ours: shown as it would have been
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return image, tuple(notes)


def _write(path: Path, write: Callable[[BinaryIO], object], overwrite: bool) -> None:
    try:
        write_file(path, write, overwrite=overwrite)
    except (OSError, ValueError, KeyError) as exc:  # Pillow's writer refusing the image
        raise C2FError(f"{path}: cannot write: {getattr(exc, 'strerror', None) or exc}") from None


# ---- a progress bar for one large image -------------------------------------------------


class _TileBar:
    """A bar over one image's tiles, then its writing, drawn from the codec's `on_tile`
    callback (made at its first call, when the tile count is known). One unit beyond
    the tiles is left for the caller: the file written."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Bar | None = None

    def on_tile(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Bar(total + 1, self.label, percent=True)
        if done > self.bar.done:
            self.bar.advance(done - self.bar.done)

    def written(self) -> None:
        if self.bar is not None:
            self.bar.advance()


@contextlib.contextmanager
def _tile_bar(show: bool, label: str) -> Iterator[_TileBar | None]:
    """A `_TileBar` when `show`, closed (its line ended) however the work ends."""
    if not show:
        yield None
        return
    tile_bar = _TileBar(label)
    try:
        yield tile_bar
    finally:
        if tile_bar.bar is not None:
            tile_bar.bar.close()


__all__ = [
    "METADATA_FORMATS",
    "FileJob",
    "FileResult",
    "decode_file",
    "decode_many",
    "default_jobs",
    "encode_file",
    "encode_many",
    "output_format",
    "run_batch",
]
