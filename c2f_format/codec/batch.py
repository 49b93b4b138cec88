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

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image

from ..format.bitstream import HEADER_SIZE, parse_header
from ..format.errors import C2FError, InvalidArgumentError
from . import engines, precision
from .api import DEFAULT_MAX_PIXELS, ImageLike, decode, encode
from .effort import DEFAULT_EFFORT, check_effort
from .progress import progress
from .threads import available_cores

if TYPE_CHECKING:  # torch is imported where it is used: decoding may run without it
    import torch


T = TypeVar("T")
R = TypeVar("R")

# Below this much work a pool loses to a loop in this process: on 2 cores (with a
# training job beside) two workers took 4.9 s for two 768x512 encodes, 8.8 s for 16,
# where a loop took 0.59 and 5.8 s; each worker first imports torch and loads the model
# (about 4 s), so a pool pays off only past some 80 such images, or three 12 MP photos.
POOL_MIN_PIXELS = 32_000_000


def default_jobs(device: str | torch.device | None = None, backend: str | None = None) -> int:
    """Worker processes to use: one per core on the CPU, none (in-process) on a GPU.
    torch is imported only when the work may run on a GPU through it."""
    if engines.resolve(backend) == "numpy":
        engines.check_device("numpy", device)  # only the CPU without torch
        return available_cores()
    from .torch_engine import pick_device

    try:
        dev = pick_device(device)
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    return 1 if dev.type != "cpu" else available_cores()


def init_worker(threads: int) -> None:
    if engines.torch_available():
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
    backend: str | None = None,
    pixels: int | None = None,
) -> Iterator[R | C2FError]:
    """Apply `fn` (a module-level function) to every item, in `jobs` processes.

    Yields each result, or the `C2FError` it raised, in input order, as soon as it and
    all before it are done. `backend` is the engine `fn` will use (engines.resolve),
    for choosing the number of processes without importing torch for nothing. With
    `jobs` left to c2f, work of fewer than POOL_MIN_PIXELS `pixels` in all runs in this
    process: a pool's workers each import torch and load the model first.
    """
    n = len(items)
    if jobs is None:
        jobs = default_jobs(device, backend)  # which also checks the device and backend
        if pixels is not None and pixels < POOL_MIN_PIXELS:
            jobs = 1
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
    cores = available_cores()
    threads = max(1, cores // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, context, initializer=init_worker, initargs=(threads,)) as pool:
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
    effort: int = DEFAULT_EFFORT


@dataclass(frozen=True)
class _DecodeJob:
    data: bytes
    device: str | None
    max_pixels: int | None
    precision: str = "auto"  # the caller's (precision.using does not cross processes)


def _encode_job(job: _EncodeJob) -> bytes:
    return encode(job.image, job.quality, job.device, effort=job.effort)


def _decode_job(job: _DecodeJob) -> Image.Image:
    with precision.using(job.precision):
        image = decode(job.data, job.device, max_pixels=job.max_pixels)
        image.load()
    return image


def _pixels_of(image: object) -> int:
    """An image's pixels (PIL image or array); 0 for what encode will refuse anyway."""
    if isinstance(image, Image.Image):
        return image.width * image.height
    shape: tuple[int, ...] = tuple(getattr(image, "shape", ()))
    return int(shape[0]) * int(shape[1]) if len(shape) >= 2 else 0


def _stream_pixels(data: bytes) -> int:
    """A stream's pixels from its header (0 for one that cannot be read: its decode
    fails at once and says why)."""
    try:
        header = parse_header(data[:HEADER_SIZE], max_pixels=None)
    except C2FError:
        return 0
    return header.width * header.height


def _device_name(device: str | torch.device | None) -> str | None:
    return None if device is None else str(device)


def encode_many(
    images: Iterable[ImageLike],
    quality: int = 75,
    device: str | torch.device | None = None,
    *,
    effort: int = DEFAULT_EFFORT,
    jobs: int | None = None,
    show_progress: bool = False,
) -> list[bytes | C2FError]:
    """Encode many images; each entry is the stream or the `C2FError` for that image."""
    check_effort(effort)
    items = [_EncodeJob(im, quality, _device_name(device), effort) for im in images]
    pixels = sum(_pixels_of(job.image) for job in items)
    return list(run_batch(_encode_job, items, jobs, device, "encode", show_progress, pixels=pixels))


def decode_many(
    streams: Iterable[bytes],
    device: str | torch.device | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    jobs: int | None = None,
    show_progress: bool = False,
) -> list[Image.Image | C2FError]:
    """Decode many streams; each entry is the image or the `C2FError` for that stream."""
    chosen = precision.requested()
    items = [_DecodeJob(bytes(s), _device_name(device), max_pixels, chosen) for s in streams]
    pixels = sum(_stream_pixels(job.data) for job in items)
    return list(run_batch(_decode_job, items, jobs, device, "decode", show_progress, pixels=pixels))


__all__ = [
    "POOL_MIN_PIXELS",
    "decode_many",
    "default_jobs",
    "encode_many",
    "run_batch",
]
