"""The CPU thread policy (threads.py): what it chooses, and that it leaves torch as found."""

from __future__ import annotations

import threading

import pytest
import torch

from c2f_format.codec import threads
from c2f_format.format.errors import InvalidArgumentError


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.setattr(threads, "_last", (-1.0, 0, 0))  # no choice reused across tests


@pytest.mark.parametrize("value, count", [("auto", None), ("", None), (" 3 ", 3), ("1", 1)])
def test_requested_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, count: int | None
) -> None:
    monkeypatch.setenv(threads.ENV, value)
    assert threads.requested() == count


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_bad_thread_counts_are_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(InvalidArgumentError, match="C2F_THREADS"):
        threads.requested()


@pytest.mark.parametrize(
    "busy, cores, limit, expected",
    [
        (0, 2, 2, 2),
        (1, 2, 2, 1),
        (2, 2, 2, 1),
        (5, 2, 2, 1),
        (0, 8, 2, 2),
        (3, 8, 8, 5),
        (None, 2, 2, 2),
    ],
)
def test_auto_uses_the_idle_cores_up_to_torchs_setting(
    monkeypatch: pytest.MonkeyPatch, busy: int | None, cores: int, limit: int, expected: int
) -> None:
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    monkeypatch.setattr(threads, "_machine_is_ours", lambda: True)
    assert threads.choose(limit) == expected


def test_the_hosts_load_is_ignored_where_the_cores_are_not_all_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pinned to some cores or under a CPU quota, the host's runnable tasks say nothing
    monkeypatch.setattr(threads, "busy_cores", lambda: 30)
    monkeypatch.setattr(threads, "_machine_is_ours", lambda: False)
    assert threads.choose(4) == 4


def test_a_fixed_count_wins_over_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "busy_cores", lambda: 7)
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.choose(2) == 3


def test_busy_cores_reads_the_kernel() -> None:
    busy = threads.busy_cores()
    assert busy is None or busy >= 0


def test_cpu_threads_sets_and_restores_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv(threads.ENV, "1")
    with threads.cpu_threads(torch.device("cpu")):
        assert torch.get_num_threads() == 1
        with threads.cpu_threads(torch.device("cpu")):  # nested: one saved setting
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cpu_threads_restores_after_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv(threads.ENV, "1")
    with pytest.raises(RuntimeError), threads.cpu_threads(torch.device("cpu")):
        raise RuntimeError("decode failed")
    assert torch.get_num_threads() == before


def _blas() -> list[int]:
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.mark.parametrize("busy", [0, 1, 2])
def test_the_blas_gets_the_idle_cores_up_to_its_setting(
    monkeypatch: pytest.MonkeyPatch, busy: int
) -> None:
    """The NumPy coder's BLAS threads follow the same policy as torch's, at most the
    BLAS's own setting, which is restored after."""
    before = _blas()
    if not before:
        pytest.skip("no BLAS that threadpoolctl knows in this NumPy")
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    monkeypatch.setattr(threads, "available_cores", lambda: 3)
    monkeypatch.setattr(threads, "_machine_is_ours", lambda: True)
    with threads.blas_threads():
        assert _blas() == [max(1, min(max(before), 3 - busy))] * len(before)
    assert _blas() == before
    monkeypatch.setenv(threads.ENV, "3")
    with threads.blas_threads():
        assert _blas() == [3] * len(before)
    assert _blas() == before


def test_other_devices_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv(threads.ENV, "1")
    with threads.cpu_threads(torch.device("cuda")):
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("first_out", [0, 1])
def test_concurrent_calls_each_restore_their_own_thread(
    monkeypatch: pytest.MonkeyPatch, first_out: int
) -> None:
    # torch's count belongs to the thread that sets it: a call leaving first must not
    # leave its thread at the reduced count, whichever order the calls leave in
    monkeypatch.setenv(threads.ENV, "1")
    inside = threading.Barrier(2)
    leave = [threading.Event(), threading.Event()]
    after: dict[int, int] = {}

    def work(i: int) -> None:
        torch.set_num_threads(2)
        with threads.cpu_threads(torch.device("cpu")):
            inside.wait()
            leave[i].wait()
        after[i] = torch.get_num_threads()

    pool = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in pool:
        t.start()
    leave[first_out].set()
    pool[first_out].join()
    leave[1 - first_out].set()
    pool[1 - first_out].join()
    assert after == {0: 2, 1: 2}


@pytest.mark.parametrize("choice", ["float32", "bfloat16"])
def test_the_pixels_do_not_depend_on_the_thread_count(
    monkeypatch: pytest.MonkeyPatch, kodim23_stream: bytes, choice: str
) -> None:
    """The count follows the machine's load, so it must not show in the image: every
    layer of the synthesis is one whose sums oneDNN splits the same way at any count
    (its own transposed convolution is not: networks/inference.py)."""
    import hashlib

    import c2f_format
    from c2f_format.codec import precision

    digests = set()
    with precision.using(choice):
        for count in (1, 2, 3, 5):
            monkeypatch.setenv(threads.ENV, str(count))
            image = c2f_format.decode(kodim23_stream, "cpu", backend="torch")
            digests.add(hashlib.sha256(image.tobytes()).hexdigest())
    assert len(digests) == 1
