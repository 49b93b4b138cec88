"""Convert a collection of images to .c2f (or .c2f files back to PNG): folders walked,
relative paths kept under the destination, on a Dask cluster, a local process pool or
in this process, with a manifest that makes a rerun do only what is missing or changed.

The work is `convert_file`, one source to one output, run where the scheduler puts it:
it reads the source (hashing it), runs the same file job as `c2f encode` / `c2f decode`
(codec/files.py), so the output is byte-identical to theirs, and writes it whole under a
temporary name first. This process plans (walks, maps, refuses collisions before any
work), hands the work out, and keeps the manifest (codec/manifest.py). Nothing here
imports torch: the workers do, once each, and keep the model loaded between files.

Where the work runs: a `client` (a `distributed.Client`) or a `scheduler` address runs
it on that cluster; else with `workers` given, on a local Dask cluster of that many
processes (one thread each), or a local process pool when `distributed` is not
installed; else, for work of fewer than POOL_MIN_PIXELS pixels in all, in this process
(a worker's start, torch and the model, costs about 4 s), and otherwise on a local
cluster (or pool) of one process per core. A worker that dies is replaced and its file
tried again, up to WORKER_DEATHS times; then the file is reported as failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import itertools
import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageFile

from ..format.bitstream import HEADER_SIZE, parse_header
from ..format.errors import C2FError, InvalidArgumentError
from .api import _check_quality
from .batch import POOL_MIN_PIXELS, init_worker
from .effort import DEFAULT_EFFORT, check_effort
from .files import FileJob, decode_file, encode_file
from .manifest import MANIFEST_NAME, Entry, Manifest, opened
from .progress import Bar, format_bytes
from .safe_write import TEMP_SUFFIX, file_identity, make_folder
from .threads import available_cores

if TYPE_CHECKING:
    from distributed import Client

TARGETS = ("c2f", "png")
WORKER_DEATHS = 3  # a file whose conversion killed this many workers is failed
INSTALL_DISTRIBUTED = 'pip install "c2f-format[distributed]"'
FORCE_HINT = "force=True replaces it"  # the CLI says it as its option
# Pillow formats a photo archive's files are not: identified but not decoded by Pillow
# itself (StubImageFile subclasses are left out as well), or needing Ghostscript
_NOT_PHOTOS = frozenset({"EPS", "MPEG", "C2F"})
_HASH_CHUNK = 1 << 20


def image_suffixes() -> frozenset[str]:
    """The file name endings taken as images when a folder is walked: every format
    Pillow opens itself, .c2f aside."""
    Image.init()
    out = set()
    for suffix, fmt in Image.registered_extensions().items():
        opener = Image.OPEN.get(fmt)
        if opener is None or fmt in _NOT_PHOTOS:
            continue
        factory = opener[0]
        if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
            continue
        out.add(suffix)
    return frozenset(out)


# ---- the work, on a worker ---------------------------------------------------------------


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


# ---- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    src: Path  # absolute
    rel: str  # the output's path under the destination (POSIX separators)
    size: int
    mtime_ns: int


def _walk(folder: Path, skip: Path) -> Iterator[Path]:
    """Files under `folder`, sorted, hidden names, manifests and the `skip` folder left out;
    symbolic links to folders are not followed (no cycles), links to files are."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d) != skip)
        for name in sorted(files):
            if not name.startswith(".") and name != MANIFEST_NAME:
                yield here / name


def plan(
    sources: Iterable[str | os.PathLike[str]], out_dir: Path, to: str
) -> tuple[list[Planned], int]:
    """The conversions, and how many files in the folders were not images of the
    kind converted. A folder's files keep their path relative to it; a file named
    itself goes to the top of `out_dir`. C2FError, before any work, for a source that
    does not exist, two sources with one output, or an output that is a source."""
    suffixes = image_suffixes() if to == "c2f" else frozenset({".c2f"})
    new_suffix = "." + to
    skip = out_dir.absolute()
    found: list[tuple[Path, str]] = []
    ignored = 0
    for given in sources:
        src = Path(given).absolute()
        if src.is_dir():
            for path in _walk(src, skip):
                if path.suffix.lower() in suffixes:
                    found.append((path, path.relative_to(src).with_suffix(new_suffix).as_posix()))
                else:
                    ignored += 1
        elif src.exists():
            found.append((src, src.with_suffix(new_suffix).name))
        else:
            raise C2FError(f"{given}: no such file or folder")
    by_output: dict[str, list[Path]] = {}
    for src, rel in found:
        by_output.setdefault(rel, []).append(src)
    clashes = [
        f"{' and '.join(map(str, s))} would all be {out_dir / r}"
        for r, s in by_output.items()
        if len(s) > 1
    ]
    if clashes:
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise C2FError(
            "two sources, one output: " + "; ".join(clashes[:5]) + more + "; nothing converted"
        )
    inputs = {file_identity(src) for src, _ in found}
    for src, rel in found:
        if file_identity(out_dir / rel) in inputs:
            raise C2FError(f"{out_dir / rel}: the output of {src} is a source; nothing converted")
    planned = []
    for src, rel in found:
        try:
            st = src.stat()
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:  # a dangling link, say: its worker says what is wrong
            size, mtime_ns = 0, 0
        planned.append(Planned(src, rel, size, mtime_ns))
    return planned, ignored


def _pixels_below(planned: list[Planned], to: str, limit: int) -> bool:
    """Whether the sources hold fewer than `limit` pixels together (headers only, read
    until the limit is passed; an unreadable file counts nothing: it fails at once)."""
    total = 0
    for p in planned:
        try:
            if to == "png":
                with p.src.open("rb") as fp:
                    header = parse_header(fp.read(HEADER_SIZE), max_pixels=None)
                total += header.width * header.height
            else:
                with Image.open(p.src) as im:
                    total += im.width * im.height
        except (OSError, C2FError, Image.DecompressionBombError, ValueError, SyntaxError):
            continue
        if total >= limit:
            return False
    return True


# ---- where the work runs -------------------------------------------------------------------


def _run_here(tasks: list[Task]) -> Iterator[Outcome]:
    for task in tasks:
        yield convert_file(task)


def _run_pool(tasks: list[Task], workers: int) -> Iterator[Outcome]:
    """A local process pool (without `distributed`). A pool whose worker died is started
    again; the files it held are tried again one at a time, so that a file that kills
    its worker is failed after WORKER_DEATHS deaths of its own, and only it."""
    todo = list(reversed(tasks))
    suspects: list[Task] = []  # held by a pool that broke
    deaths: dict[str, int] = {}
    threads = max(1, available_cores() // workers)
    context = multiprocessing.get_context("spawn")
    while todo or suspects:
        running: dict[Future[Outcome], Task] = {}
        broken = False
        with ProcessPoolExecutor(
            workers, context, initializer=init_worker, initargs=(threads,)
        ) as pool:
            while not broken and (todo or suspects or running):
                while not broken:
                    if suspects and not running:
                        source = suspects
                    elif not suspects and todo and len(running) < 2 * workers:
                        source = todo
                    else:
                        break
                    task = source.pop()
                    try:
                        running[pool.submit(convert_file, task)] = task
                    except BrokenExecutor:
                        source.append(task)  # never ran
                        broken = True
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        outcome = fut.result()
                    except BrokenExecutor:
                        broken = True  # it stays in `running`, with what the pool held
                        continue
                    del running[fut]
                    yield outcome
        held = list(running.values())
        if len(held) == 1:  # alone in the pool: its own death
            task = held[0]
            deaths[task.dst] = deaths.get(task.dst, 0) + 1
            if deaths[task.dst] >= WORKER_DEATHS:
                yield _killed(task, deaths[task.dst])
            else:
                suspects.append(task)
        else:
            suspects.extend(held)


def _killed(task: Task, times: int) -> Outcome:
    return Outcome(
        task,
        "failed",
        reason=f"the worker process converting it died {times} times (out of memory?)",
    )


def _run_dask(tasks: list[Task], client: Client) -> Iterator[Outcome]:
    """On a Dask cluster, a bounded number of files in flight, each result released as
    soon as it is read (a worker lost later must not make the scheduler redo it)."""
    from distributed import as_completed

    threads = sum(client.nthreads().values()) or 1
    window = max(8, 4 * threads)
    pending = iter(tasks)
    run_id = uuid.uuid4().hex[:8]
    held: dict[Any, Task] = {}
    numbers = itertools.count()

    def submit(n: int) -> list[Any]:
        futures = []
        for task in pending:
            key = f"c2f-convert-{run_id}-{next(numbers)}"
            fut = client.submit(convert_file, task, key=key, pure=False)
            held[fut.key] = task
            futures.append(fut)
            if len(futures) >= n:
                break
        return futures

    queue = as_completed(submit(window))
    for fut in queue:
        task = held.pop(fut.key)
        if fut.status == "finished":
            outcome = fut.result()
        else:
            outcome = Outcome(task, "failed", reason=_dask_reason(fut.exception()))
        fut.release()
        yield outcome
        for new in submit(1):
            queue.add(new)


def _dask_reason(exc: BaseException | None) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return "the worker processes converting it kept dying (out of memory?)"
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _cluster(client: Client | None, scheduler: str | None, workers: int) -> Iterator[Client]:
    """The Dask client the work goes to: the caller's, one connected to `scheduler`, or
    a local cluster of `workers` processes (closed after)."""
    try:
        import distributed
    except ImportError:
        raise C2FError(
            f"a Dask cluster needs the distributed package: {INSTALL_DISTRIBUTED}"
        ) from None
    if client is not None:
        yield client
        return
    if scheduler is not None:
        try:  # waits up to distributed.comm.timeouts.connect (dask's config: 30 s)
            own = distributed.Client(scheduler)
        except (OSError, TimeoutError) as exc:
            raise C2FError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with own:
            yield own
        return
    import dask

    threads = max(1, available_cores() // workers)
    # the scheduler fails a task after more than `allowed-failures` workers died on it
    with dask.config.set({"distributed.scheduler.allowed-failures": WORKER_DEATHS - 1}):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,  # what goes wrong is in the summary
            env={"OMP_NUM_THREADS": str(threads)},
        )
    with cluster, distributed.Client(cluster) as own:
        yield own


def _check_workers(client: Client) -> None:
    """Every worker runs this c2f (another version may write other bytes), and there is
    at least one (waited for a minute)."""
    try:
        client.wait_for_workers(1, timeout=60)
    except TimeoutError:
        raise C2FError(
            f"no Dask worker joined {client.scheduler.address} within a minute"
        ) from None
    try:
        versions = client.run(worker_version)
    except Exception as exc:
        raise C2FError(
            f"the Dask workers cannot run c2f ({type(exc).__name__}: {exc}); install "
            f"c2f-format {worker_version()} on every worker"
        ) from None
    ours = worker_version()
    other = {addr: v for addr, v in versions.items() if v != ours}
    if other:
        listed = ", ".join(f"{a} has {v}" for a, v in sorted(other.items()))
        raise C2FError(f"Dask workers run another c2f than this one ({ours}): {listed}")


# ---- the conversion ----------------------------------------------------------------------------


@dataclass
class ConvertSummary:
    """What a conversion did. `failed` lists (source, why); `input_bytes` and
    `output_bytes` count the files converted in this run."""

    converted: int = 0
    up_to_date: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0  # files in the folders that are not images of the kind converted
    input_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0
    where: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def ratio(self) -> float:
        return self.input_bytes / self.output_bytes if self.output_bytes else float("nan")

    @property
    def images_per_second(self) -> float:
        return self.converted / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        lines = [
            f"converted {self.converted}, up to date {self.up_to_date}, failed "
            f"{len(self.failed)}" + (f", not images {self.ignored}" if self.ignored else "")
        ]
        if self.converted:
            lines.append(
                f"{format_bytes(self.input_bytes)} -> {format_bytes(self.output_bytes)} "
                f"(ratio {self.ratio:.1f}), {self.images_per_second:.2f} images/s over "
                f"{self.seconds:.1f} s ({self.where})"
            )
        return "\n".join(lines)


def _settings(to: str, quality: int, effort: int) -> dict[str, Any]:
    return {"to": to, "quality": quality, "effort": effort} if to == "c2f" else {"to": to}


def _prepare_destination(out_dir: Path) -> None:
    make_folder(out_dir)
    probe = out_dir / f".c2f-convert-probe-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as exc:
        raise C2FError(
            f"{out_dir}: cannot write: {exc.strerror or exc}; nothing converted"
        ) from None


def _owned(entry: Entry | None) -> bool:
    """Whether the manifest claims the output's name: a file found there is this
    conversion's to replace."""
    if entry is None:
        return False
    return entry.state != "failed" or entry.out_sha256 is not None


def _tasks(
    planned: list[Planned],
    out_dir: Path,
    manifest: Manifest,
    settings: dict[str, Any],
    device: str | None,
    force: bool,
    summary: ConvertSummary,
) -> list[Task]:
    """What is left to do: sources new, changed, failed before or converted with other
    settings. Up-to-date ones are counted; outputs in the way that this conversion did
    not write are refused (unless `force`)."""
    tasks = []
    for p in planned:
        dst = out_dir / p.rel
        entry = manifest.entries.get(p.rel)
        same = entry is not None and entry.state == "done" and entry.settings == settings
        if same and entry is not None and entry.size == p.size and entry.mtime_ns == p.mtime_ns:
            with contextlib.suppress(OSError):
                if dst.stat().st_size == entry.out_size:
                    summary.up_to_date += 1
                    continue
        if not force and not _owned(entry) and os.path.lexists(dst):
            summary.failed.append(
                (
                    str(p.src),
                    f"{dst} exists and was not written by this conversion; not replaced "
                    f"({FORCE_HINT})",
                )
            )
            continue
        known = (
            (entry.sha256, entry.out_sha256)
            if same and entry and entry.sha256 and entry.out_sha256
            else None
        )
        tasks.append(
            Task(
                str(p.src),
                str(dst),
                settings["to"],
                settings.get("quality", 75),
                settings.get("effort", DEFAULT_EFFORT),
                device,
                known=known,
            )
        )
    return tasks


def _entry_of(
    outcome: Outcome, rel: str, settings: dict[str, Any], previous: Entry | None
) -> Entry:
    t = outcome.task
    if outcome.state == "failed":
        # a file this conversion wrote before stays its own to replace
        kept = previous.out_sha256 if previous is not None and previous.state == "done" else None
        return Entry(
            rel,
            t.src,
            "failed",
            settings,
            outcome.size,
            outcome.mtime_ns,
            outcome.sha256,
            reason=outcome.reason,
            out_sha256=kept,
        )
    return Entry(
        rel,
        t.src,
        "done",
        settings,
        outcome.size,
        outcome.mtime_ns,
        outcome.sha256,
        outcome.out_size,
        outcome.out_sha256,
    )


def convert(
    sources: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    to: str = "c2f",
    quality: int = 75,
    effort: int = DEFAULT_EFFORT,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    device: str | None = None,
    force: bool = False,
    show_progress: bool = False,
) -> ConvertSummary:
    """Convert every image in `sources` (files and folders) into `out_dir`, keeping
    relative paths; `to="png"` decodes .c2f files instead. Returns what it did; a file
    that fails is listed in `summary.failed` and the rest goes on. Run again, it does
    only what is missing or changed (the manifest in `out_dir`).

    `client` (a `distributed.Client`) or `scheduler` (its address) runs the work on that
    cluster, whose workers must see `sources` and `out_dir` at the same paths; `workers`
    starts a local cluster of that many processes (see the module's docstring).
    """
    started = time.monotonic()
    if to not in TARGETS:
        raise InvalidArgumentError(f"to must be one of {', '.join(TARGETS)}, got {to!r}")
    quality, effort = _check_quality(quality), check_effort(effort)
    if client is not None and scheduler is not None:
        raise InvalidArgumentError("give a client or a scheduler address, not both")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise InvalidArgumentError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out = Path(out_dir).absolute()
    planned, ignored = plan(list(sources), out, to)
    _prepare_destination(out)
    summary = ConvertSummary(ignored=ignored)
    settings = _settings(to, quality, effort)
    with opened(out) as manifest:
        tasks = _tasks(planned, out, manifest, settings, device, force, summary)
        rel_of = {str(out / p.rel): p.rel for p in planned}
        manifest.record([Entry(rel_of[t.dst], t.src, "pending", settings) for t in tasks])
        outcomes, summary.where = _runner(tasks, planned, to, client, scheduler, workers)
        size_of = {str(p.src): p.size for p in planned}
        bar = None
        if show_progress and tasks:
            total_bytes = sum(size_of[t.src] for t in tasks)
            bar = Bar(len(tasks), "convert", total_bytes=total_bytes)
        try:
            for outcome in outcomes:
                rel = rel_of[outcome.task.dst]
                manifest.record([_entry_of(outcome, rel, settings, manifest.entries.get(rel))])
                _count(summary, outcome)
                if bar is not None:
                    bar.advance(1, nbytes=outcome.size or 0)
        finally:
            if bar is not None:
                bar.close()
        manifest.compact()
        _remove_stale_parts(out, planned)
    summary.seconds = time.monotonic() - started
    return summary


def _count(summary: ConvertSummary, outcome: Outcome) -> None:
    if outcome.state == "done":
        summary.converted += 1
        summary.input_bytes += outcome.size or 0
        summary.output_bytes += outcome.out_size or 0
        summary.warnings.extend(outcome.warnings)
    elif outcome.state == "unchanged":
        summary.up_to_date += 1
    else:
        summary.failed.append((outcome.task.src, outcome.reason or "failed"))


def _runner(
    tasks: list[Task],
    planned: list[Planned],
    to: str,
    client: Client | None,
    scheduler: str | None,
    workers: int | None,
) -> tuple[Iterator[Outcome], str]:
    """The outcomes of `tasks` as they come, from where they run, and its name."""
    if client is None and scheduler is None:
        if workers is None:
            if len(tasks) <= 1 or _pixels_below(planned, to, POOL_MIN_PIXELS):
                return _run_here(tasks), "in this process"
            workers = available_cores()
        workers = min(workers, max(1, len(tasks)))
        try:
            import distributed  # noqa: F401
        except ImportError:
            return _run_pool(tasks, workers), f"a local pool of {workers} processes"
        return _on_cluster(tasks, None, None, workers), f"a local Dask cluster of {workers} workers"
    return _on_cluster(tasks, client, scheduler, workers or 1), (
        f"the Dask scheduler at {scheduler}" if scheduler else "the Dask client given"
    )


def _on_cluster(
    tasks: list[Task], client: Client | None, scheduler: str | None, workers: int
) -> Iterator[Outcome]:
    if not tasks:
        return
    with _cluster(client, scheduler, workers) as c:
        _check_workers(c)
        yield from _run_dask(tasks, c)


def _remove_stale_parts(out: Path, planned: list[Planned]) -> None:
    """Remove the temporary files a killed worker left beside this run's outputs (named
    `.NAME.xxxxxxxx.c2f-part` by safe_write; nothing else writes those names now: the
    manifest's lock keeps other conversions out)."""
    names: dict[Path, set[str]] = {}
    for p in planned:
        dst = out / p.rel
        names.setdefault(dst.parent, set()).add(dst.name)
    for folder, outputs in names.items():
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for name in entries:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                target = name[1:].removesuffix(TEMP_SUFFIX).rsplit(".", 1)[0]
                if target in outputs:
                    with contextlib.suppress(OSError):
                        os.unlink(folder / name)


__all__ = [
    "MANIFEST_NAME",
    "TARGETS",
    "ConvertSummary",
    "convert",
    "convert_file",
    "image_suffixes",
    "plan",
]
