"""Convert a collection of images to .c2f (or .c2f files back to PNG): folders walked,
relative paths kept under the destination, with a manifest that makes a rerun do only
what is missing or changed (codec/manifest.py).

This process plans (walks, maps, refuses collisions and unwritable destinations before
any work), decides what is left to do, hands it out and keeps the record; the work on
each file is codec/conversion.py's, run where codec/workers.py puts it. Nothing here
imports torch. Where: a `client` (a `distributed.Client`) or a `scheduler` address runs
it on that cluster; else with `workers` given, on a local Dask cluster of that many
processes (one thread each), or a local process pool when `distributed` is not
installed; else, for work of fewer than POOL_MIN_PIXELS pixels in all, in this process
(a worker's start, torch and the model, costs about 2 s on 2 cores), and otherwise on a
local cluster (or pool) of one process per core.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageFile

from ..format.errors import C2FError, InvalidArgumentError
from ..format.weights_file import installed_model
from .api import _check_quality
from .batch import POOL_MIN_PIXELS
from .conversion import Outcome, Task
from .effort import DEFAULT_EFFORT, check_effort
from .files import job_pixels
from .manifest import MANIFEST_NAME, Entry, Manifest, opened
from .progress import Bar, format_bytes
from .safe_write import TEMP_SUFFIX, file_identity, make_folder
from .threads import available_cores
from .workers import run_here, run_on_cluster, run_pool

if TYPE_CHECKING:
    from distributed import Client

TARGETS = ("c2f", "png")
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
    """What an output is made with: for .c2f also the model that encodes (the newest
    installed), so that a rerun after a new model ships makes every file again."""
    if to != "c2f":
        return {"to": to}
    return {"to": to, "quality": quality, "effort": effort, "model": installed_model(None)[0]}


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
        outcomes, summary.where = _runner(tasks, to, client, scheduler, workers)
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
    to: str,
    client: Client | None,
    scheduler: str | None,
    workers: int | None,
) -> tuple[Iterator[Outcome], str]:
    """The outcomes of `tasks` as they come, from where they run, and its name."""
    if client is None and scheduler is None:
        if workers is None:
            sources = [Path(t.src) for t in tasks]
            kind = "decode" if to == "png" else "encode"
            if len(tasks) <= 1 or job_pixels(sources, kind, POOL_MIN_PIXELS) < POOL_MIN_PIXELS:
                return run_here(tasks), "in this process"
            workers = available_cores()
        workers = min(workers, max(1, len(tasks)))
        try:
            import distributed  # noqa: F401
        except ImportError:
            return run_pool(tasks, workers), f"a local pool of {workers} processes"
        where = f"a local Dask cluster of {workers} workers"
        return run_on_cluster(tasks, None, None, workers), where
    return run_on_cluster(tasks, client, scheduler, workers or 1), (
        f"the Dask scheduler at {scheduler}" if scheduler else "the Dask client given"
    )


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
    "image_suffixes",
    "plan",
]
