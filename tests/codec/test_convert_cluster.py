"""`convert` on a real `dask.distributed` cluster that the tests start: a scheduler and
two worker processes on localhost. The 24 Kodak images convert byte for byte as
`c2f encode` makes them in one process; a rerun converts nothing; a worker killed by
its pid mid-run, or the converting process itself, loses nothing and the rerun
completes the rest; broken inputs are reported while the others convert."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import KODAK, read_only_folder

import c2f_format
from c2f_format.codec.convert import convert
from c2f_format.codec.manifest import MANIFEST_NAME
from c2f_format.codec.safe_write import TEMP_SUFFIX
from c2f_format.tools.cli import main

distributed = pytest.importorskip("distributed")
if TYPE_CHECKING:
    from distributed import Client

KODAK_FILES = sorted(KODAK.glob("kodim*.png"))
pytestmark = pytest.mark.skipif(len(KODAK_FILES) != 24, reason=f"the Kodak set is not in {KODAK}")


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What `c2f encode` writes for each Kodak image, in this one process."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["encode", *map(str, KODAK_FILES), "-o", str(out), "-j", "1"]) == 0
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.c2f"))}


def _linked(folder: Path, files: list[Path]) -> Path:
    """A folder of links to `files` (a subset of Kodak to convert)."""
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path)
    return folder


def _made(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.c2f"))}


def _no_parts(out: Path) -> bool:
    return not [p for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_kodak_on_the_cluster_is_byte_identical_and_a_rerun_does_nothing(
    client: Client, reference: dict[str, bytes], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = convert([KODAK], out, client=client)
    assert (summary.converted, summary.failed) == (24, [])
    assert summary.where == "the Dask client given"
    assert _made(out) == reference
    assert summary.output_bytes == sum(len(v) for v in reference.values())
    again = convert([KODAK], out, client=client)
    assert (again.converted, again.up_to_date, again.failed) == (0, 24, [])


def _when_outputs_appear(
    out: Path, count: int, action: object, timeout: float = 300
) -> threading.Thread:
    def watch() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if out.is_dir() and len(list(out.glob("*.c2f"))) >= count:
                action()  # type: ignore[operator]
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_worker_killed_mid_run_loses_nothing(
    client: Client, reference: dict[str, bytes], tmp_path: Path
) -> None:
    sources = _linked(tmp_path / "some", KODAK_FILES[:8])
    out = tmp_path / "out"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed: list[int] = []

    def kill() -> None:
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    watcher = _when_outputs_appear(out, 1, kill)
    first = convert([sources], out, client=client)
    watcher.join(timeout=5)
    assert killed == [victim]
    assert victim not in client.run(os.getpid).values()  # the nanny started another
    # the scheduler gave the lost worker's file to another: nothing failed, or the
    # rerun completes what did
    rerun = convert([sources], out, client=client)
    assert first.converted + rerun.converted >= 8 - first.up_to_date
    assert rerun.failed == []
    expected = {
        n.replace(".png", ".c2f"): reference[n.replace(".png", ".c2f")]
        for n in sorted(p.name for p in KODAK_FILES[:8])
    }
    assert _made(out) == expected
    assert _no_parts(out)
    final = convert([sources], out, client=client)
    assert (final.converted, final.up_to_date) == (0, 8)


def test_the_converting_process_killed_mid_run_loses_nothing(
    client: Client, reference: dict[str, bytes], tmp_path: Path
) -> None:
    """`c2f convert --scheduler ADDRESS` killed (SIGKILL, no cleanup) once it has
    recorded two outputs done: the rerun converts only the rest, every output whole."""
    sources = _linked(tmp_path / "some", KODAK_FILES[8:16])
    out = tmp_path / "out"
    address = client.scheduler.address
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "c2f_format.tools.cli",
            "convert",
            str(sources),
            "-o",
            str(out),
            "--scheduler",
            address,
        ],
        cwd=tmp_path,  # not the checkout: -m would import its folder, not the install
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + 300
        while time.monotonic() < end and run.poll() is None:
            manifest = out / MANIFEST_NAME
            if manifest.exists() and manifest.read_text().count('"state": "done"') >= 2:
                break
            time.sleep(0.05)
        run.kill()
    finally:
        run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stderr.read() if run.stderr else ""
    kept = len(list(out.glob("*.c2f")))
    assert kept >= 2 and (out / MANIFEST_NAME).exists()
    rerun = convert([sources], out, scheduler=address)
    assert rerun.where == f"the Dask scheduler at {address}"
    assert rerun.failed == [] and rerun.converted + rerun.up_to_date == 8
    assert rerun.up_to_date >= 2  # what was recorded done stays done
    expected = {n: reference[n] for n in (p.with_suffix(".c2f").name for p in KODAK_FILES[8:16])}
    assert _made(out) == expected
    assert _no_parts(out)


def test_broken_inputs_are_reported_while_the_others_convert(
    client: Client, reference: dict[str, bytes], tmp_path: Path
) -> None:
    sources = _linked(tmp_path / "mixed", KODAK_FILES[:2])
    (sources / "corrupt.png").write_bytes(KODAK_FILES[2].read_bytes()[:5000])  # cut short
    (sources / "unreadable.jpg").symlink_to(tmp_path / "nowhere.jpg")
    summary = convert([sources], tmp_path / "out", scheduler=client.scheduler.address)
    assert summary.converted == 2
    failed = {Path(src).name: why for src, why in summary.failed}
    assert sorted(failed) == ["corrupt.png", "unreadable.jpg"]
    assert "No such file or directory" in failed["unreadable.jpg"]
    assert "truncated" in failed["corrupt.png"].lower() or failed["corrupt.png"]
    assert _made(tmp_path / "out") == {n: reference[n] for n in ("kodim01.c2f", "kodim02.c2f")}


def test_a_read_only_destination_fails_before_any_work_on_the_cluster(
    client: Client, tmp_path: Path
) -> None:
    with read_only_folder(tmp_path / "ro") as (out, reason):
        with pytest.raises(c2f_format.C2FError) as caught:
            convert([KODAK_FILES[0]], out, client=client)
        assert str(caught.value) == f"{out}: cannot write: {reason}; nothing converted"
    target = tmp_path / "file"
    target.write_text("a file, not a folder")
    with pytest.raises(c2f_format.C2FError, match="not a folder"):
        convert([KODAK_FILES[0]], target, client=client)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    import dask

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(
            c2f_format.C2FError,
            match=re.escape("cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
        ),
    ):
        convert([KODAK_FILES[0]], tmp_path / "out", scheduler="tcp://127.0.0.1:9")


def test_workers_start_a_local_cluster(reference: dict[str, bytes], tmp_path: Path) -> None:
    """`workers=2` (`c2f convert -j 2`) without a scheduler: a local Dask cluster of two
    processes, started and closed by `convert`."""
    sources = _linked(tmp_path / "two", KODAK_FILES[:2])
    summary = convert([sources], tmp_path / "out", workers=2)
    assert summary.where == "a local Dask cluster of 2 workers"
    assert (summary.converted, summary.failed) == (2, [])
    assert _made(tmp_path / "out") == {n: reference[n] for n in ("kodim01.c2f", "kodim02.c2f")}
