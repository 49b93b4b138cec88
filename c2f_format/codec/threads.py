"""How many CPU threads torch and NumPy's BLAS may use for one encode or decode,
decided when it starts.

torch splits every operation across its thread pool and waits for the slowest thread.
When another program keeps a core busy, the thread sharing that core runs only in the
scheduler's time slices, and every one of the decoder's thousands of small operations
waits for it: on 2 cores with one busy, a kodim23 decode took 0.58 s with 2 threads
against 0.43 s with one (docs/speed/threads.md). So each call uses at most as many
threads as there are cores nobody else is running on, counted from the kernel's
number of runnable tasks (`/proc/loadavg`) less this process's own, and never more than
torch's own setting (`torch.set_num_threads`, `OMP_NUM_THREADS`). With every core busy
it uses one thread: two were sometimes as fast and sometimes 2.5 times slower.

`$C2F_THREADS` overrides it: a number fixes the count (the user's choice, whatever the
load, and torch's setting), `auto` is the default. Where the kernel does not say (not
Linux), or where its count is the host's and not this process's cores (pinned to some
cores, or under a CPU quota), the count is torch's setting.

The wavelet model's NumPy coder (`blas_threads`) gives the BLAS the same count, at
most the BLAS's own setting: kodim23's decode took 0.367 s with two BLAS threads and
0.418 with one on an idle 2-core machine, but 0.81 s with two and 0.38 with one while a
training process kept one core busy.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..format.errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch

ENV = "C2F_THREADS"
_SAMPLES = 3  # the least of a few readings: a busy program is runnable in all of them

_REUSE_S = 0.25  # a stream's many segments ask within moments: decide once for them

_last: tuple[float, int, int] = (-1.0, 0, 0)  # (when, limit, count) of the last choice


def requested() -> int | None:
    """$C2F_THREADS as a thread count, or None for the automatic choice."""
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("", "auto"):
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise InvalidArgumentError(f"${ENV}={value!r}: give a thread count of 1 or more, or auto")
    return count


def _own_running() -> int:
    """Threads of this process that are running or runnable right now."""
    count = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        if text[text.rfind(")") + 2 : text.rfind(")") + 3] == "R":
            count += 1
    return count


def busy_cores() -> int | None:
    """Cores kept busy by other processes, or None where the kernel does not say.

    The tasks runnable now (less this process's own) count only where the load of the
    last minute agrees: a program that has been running a while is in both, a command
    that runs for a moment only in the first, and this process's own earlier work only
    in the second."""
    try:
        readings = []
        for _ in range(_SAMPLES):
            fields = Path("/proc/loadavg").read_text().split()
            readings.append(int(fields[3].split("/")[0]) - _own_running())
        recent = round(float(fields[0]))
    except (OSError, ValueError, IndexError):
        return None
    return max(0, min(*readings, recent))


def available_cores() -> int:
    """The cores this process may run on (its affinity where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def _machine_is_ours() -> bool:
    """Whether the kernel's count of runnable tasks describes the cores this process
    runs on: not when it is pinned to some of them (taskset, cpusets) or held to a CPU
    quota (a container's --cpus), where the load of the whole host says nothing."""
    if available_cores() < (os.cpu_count() or 1):
        return False
    try:
        quota = Path("/sys/fs/cgroup/cpu.max").read_text().split()[0]
    except (OSError, IndexError):
        return True
    return quota == "max"


def choose(limit: int) -> int:
    """Threads for one call: $C2F_THREADS if set, else the idle cores, at most `limit`."""
    global _last
    fixed = requested()
    if fixed is not None:
        return fixed
    when, last_limit, last_count = _last
    now = time.monotonic()
    if last_limit == limit and now - when < _REUSE_S:
        return last_count
    busy = busy_cores() if _machine_is_ours() else None
    count = limit if busy is None else max(1, min(limit, available_cores() - busy))
    _last = (now, limit, count)
    return count


@contextmanager
def cpu_threads(device: torch.device) -> Iterator[None]:
    """Run the body with the chosen number of torch threads (CPU only), then restore
    the calling thread's setting. torch's count belongs to the thread that sets it (and
    seeds threads started meanwhile), so each call saves and restores its own."""
    if device.type != "cpu":
        yield
        return
    import torch  # here, so that the rest of this module serves torch-free callers

    saved = torch.get_num_threads()
    count = choose(saved)
    if count != saved:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != saved:
            torch.set_num_threads(saved)


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's view of the BLAS libraries loaded (NumPy's), made once."""
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ImportError:  # an installation without it: the BLAS's own setting
        return None
    return ThreadpoolController()


@contextmanager
def blas_threads() -> Iterator[None]:
    """Run the body with as many BLAS threads as `choose` gives (at most the BLAS's
    own setting), then restore that setting."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    setting = max(
        (lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"), default=1
    )
    with controller.limit(limits=choose(setting), user_api="blas"):
        yield
