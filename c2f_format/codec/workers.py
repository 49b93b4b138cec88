"""Where conversions run, each yielding the Outcome of every Task as it comes: this
process; a local process pool (without the `distributed` package); a Dask cluster, the
caller's, one reached by its scheduler's address, or a local one started for the run. A
worker that dies is replaced and its file tried again, up to WORKER_DEATHS times; then
the file is failed, and only it."""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from ..format.errors import C2FError
from .batch import init_worker
from .conversion import Outcome, Task, convert_file, worker_version
from .threads import available_cores

if TYPE_CHECKING:
    from distributed import Client

WORKER_DEATHS = 3  # a file whose conversion killed this many workers is failed
INSTALL_DISTRIBUTED = 'pip install "c2f-format[distributed]"'


def run_here(tasks: list[Task]) -> Iterator[Outcome]:
    for task in tasks:
        yield convert_file(task)


def run_pool(tasks: list[Task], workers: int) -> Iterator[Outcome]:
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


def run_on_cluster(
    tasks: list[Task], client: Client | None, scheduler: str | None, workers: int
) -> Iterator[Outcome]:
    if not tasks:
        return
    with _cluster(client, scheduler, workers) as c:
        _check_workers(c)
        yield from _run_dask(tasks, c)


__all__ = [
    "INSTALL_DISTRIBUTED",
    "WORKER_DEATHS",
    "run_here",
    "run_on_cluster",
    "run_pool",
]
