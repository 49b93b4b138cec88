"""Run the atheris fuzzer for a fixed budget, in segments, and keep score.

    python tests/fuzz/campaign.py --minutes 40 --work runs/fuzz/work

Each segment is a fresh fuzzer process resuming from the shared corpus folder: atheris'
comparison tracing grows the instrumented process by a few kB per input (measured: the
same inputs replayed without instrumentation run at constant memory), so one long
process would end on libFuzzer's RSS limit rather than on a finding. A segment that
stops on a crash, a timeout or an out-of-memory report leaves its input behind; the
input is replayed in a clean, uninstrumented process with a 2 GiB address-space limit,
and the replay decides: an input that fails there too is a finding (copied to
tests/fuzz/crashes/); an out-of-memory input that passes was the instrumentation's
growth; a crash or timeout that passes is kept as a regression input and listed as
unconfirmed.

Writes a JSON summary (inputs tried, seconds fuzzed, findings) next to the corpus.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPLAY = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
sys.path.insert(0, {here!r})
from replay import check
check(open(sys.argv[1], "rb").read())
"""


def replay(path: Path, timeout: float = 10.0) -> str | None:
    """None if the input keeps the contract in a clean process, else what went wrong."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", REPLAY.format(here=str(HERE)), str(path)],
            capture_output=True,
            text=True,
            timeout=timeout * 6,  # six decode paths, each allowed `timeout`
        )
    except subprocess.TimeoutExpired:
        return "hang"
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--segment", type=float, default=600.0, help="seconds per fuzzer process")
    ap.add_argument("--work", type=Path, default=Path("runs/fuzz/work"), help="corpus folder")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not any(args.work.iterdir()):
        for seed in (HERE / "corpus").iterdir():
            shutil.copy(seed, args.work)
    artifacts = args.work.parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    summary_path = args.work.parent / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    runs = int(summary.get("inputs_tried", 0))
    seconds = float(summary.get("seconds_fuzzed", 0.0))
    findings: list[dict[str, str]] = list(summary.get("findings", []))
    benign: list[dict[str, str]] = list(summary.get("instrumentation_ooms", []))
    unconfirmed: list[dict[str, str]] = list(summary.get("unconfirmed", []))
    slowest = int(summary.get("slowest_input_seconds", 0))
    peak_rss = int(summary.get("peak_rss_mb_instrumented", 0))
    deadline = time.monotonic() + args.minutes * 60
    segment = 0
    while (left := deadline - time.monotonic()) > 30:
        segment += 1
        budget = int(min(args.segment, left))
        start = time.monotonic()
        before = set(artifacts.iterdir())
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / "fuzz_c2f.py"),
                str(args.work),
                f"-max_total_time={budget}",
                "-timeout=10",
                "-rss_limit_mb=3072",
                f"-artifact_prefix={artifacts}/",
                "-print_final_stats=1",
            ],
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - start
        seconds += took
        found = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
        runs += int(found.group(1)) if found else 0
        found = re.search(r"stat::slowest_unit_time_sec:\s*(\d+)", proc.stderr)
        slowest = max(slowest, int(found.group(1)) if found else 0)
        found = re.search(r"stat::peak_rss_mb:\s*(\d+)", proc.stderr)
        peak_rss = max(peak_rss, int(found.group(1)) if found else 0)
        with (args.work.parent / "segments.log").open("a") as log:
            log.write(proc.stderr[-4000:] + "\n")
        for art in sorted(set(artifacts.iterdir()) - before):
            verdict = replay(art)
            entry = {"file": art.name, "kind": art.name.split("-")[0]}
            if verdict is None and art.name.startswith("oom-"):
                benign.append(entry)
            elif verdict is None:  # kept as a regression input all the same
                entry["replay"] = "did not reproduce in a clean process"
                unconfirmed.append(entry)
                shutil.copy(art, HERE / "crashes" / art.name)
            else:
                entry["replay"] = verdict
                findings.append(entry)
                shutil.copy(art, HERE / "crashes" / art.name)
        print(
            f"segment {segment}: {took:.0f} s, {runs} inputs in all, "
            f"{len(findings)} findings, {len(benign)} instrumentation OOMs",
            flush=True,
        )
        summary = {
            "inputs_tried": runs,
            "seconds_fuzzed": round(seconds),
            "corpus_files": len(list(args.work.iterdir())),
            "slowest_input_seconds": slowest,  # libFuzzer's whole-second resolution
            "peak_rss_mb_instrumented": peak_rss,
            "findings": findings,
            "instrumentation_ooms": benign,
            "unconfirmed": unconfirmed,
        }
        summary_path.write_text(json.dumps(summary, indent=2))
        if proc.returncode and took < 30:  # failed at start-up: a broken harness, or a
            print(proc.stderr[-3000:], file=sys.stderr)  # finding that recurs at once
            break
    print(json.dumps(summary, indent=2))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
