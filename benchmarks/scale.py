"""Scale (issue 6, item 4): a 100,000-job manifest and journal, and a large end-to-end run.

1. `validate` of a 100,000-row CSV manifest: `python -m wanbatch validate` as a subprocess (what
   the user waits for, interpreter start included), and `load_manifest` alone in a fresh process.
2. Replay of a 100,000-job journal (5 events a job, written with `wanbatch.journal`'s encoders):
   `read_journal` in a fresh process.
3. End to end: N jobs with zero render time and tiny (~1.9 kB) videos through a simulator in its
   own process; `python -m wanbatch run --poll-interval 0.01` (a subprocess; concurrency 64,
   requests_per_second 100000, downloads 16) against a raw httpx client doing the same three
   requests a job (create, one poll, the video) with no journal (`rawclient.py api`, also a
   subprocess) at concurrency 16 and 64, each against a fresh simulator, in the same run; and
   the package at commit 0b37c26 (`common.before_tree()`, run with `PYTHONPATH`), the "before"
   of this round. `--run-jobs` sets N (default 4,000, so that the step stays near
   3 minutes; the 100,000-job run is `--run-jobs 100000 --skip-before`).

Each measurement runs in its own process so that its peak RSS (VmHWM) is its own.

    python benchmarks/scale.py                 # 100,000-job manifest and journal; run of 4,000
    python benchmarks/scale.py --quick         # 10,000 and 1,000
    python benchmarks/scale.py --jobs N --run-jobs M
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from common import (
    PYTHON,
    ROOT,
    before_tree,
    run_wanbatch,
    save,
    sim_stats,
    simulator,
    table,
    write_manifest,
)

VALIDATE = """
import sys, time
from wanbatch.manifest import load_manifest
started = time.perf_counter()
manifest = load_manifest(sys.argv[1])
seconds = time.perf_counter() - started
print(len(manifest.jobs), seconds, [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])
"""

WRITE_JOURNAL = """
import sys, time
from pathlib import Path
from wanbatch.journal import encode_event, encode_run_header, journal_path
from wanbatch.models import EventKind, JobEvent
out = Path(sys.argv[1]); count = int(sys.argv[2])
path = journal_path(out); path.parent.mkdir(parents=True, exist_ok=True)
with open(path, "wb") as handle:
    handle.write(encode_run_header("http://127.0.0.1:1/v1", "m.yaml"))
    for i in range(count):
        job = f"job-{i}"
        handle.write(encode_event(JobEvent(EventKind.INTENT, job, 1.0, idempotency_key=f"wb-{i:032x}", fingerprint="f" * 16)))
        handle.write(encode_event(JobEvent(EventKind.CREATED, job, 1.1, task_id=f"gen_{i:012x}")))
        handle.write(encode_event(JobEvent(EventKind.RUNNING, job, 1.2)))
        handle.write(encode_event(JobEvent(EventKind.SUCCEEDED, job, 2.0, video_url=f"http://127.0.0.1:2/v/gen_{i:012x}.mp4?exp=1&sig=" + "a" * 32)))
        handle.write(encode_event(JobEvent(EventKind.DOWNLOADED, job, 2.5, path=f"{job}.mp4", size=1877, sha256="0" * 64)))
print(path.stat().st_size)
"""

REPLAY = """
import sys, time
from pathlib import Path
from wanbatch.journal import read_journal
started = time.perf_counter()
replay = read_journal(Path(sys.argv[1]))
seconds = time.perf_counter() - started
print(len(replay.records), seconds, [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])
"""


def python(code: str, *args: str) -> list[str]:
    result = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return result.stdout.split()


def manifest_and_journal(jobs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "big.csv"
        with open(manifest, "w") as handle:
            handle.write("prompt,duration,aspect_ratio\n")
            for i in range(jobs):
                handle.write(f"a benchmark prompt about scene number {i},{5 + i % 4},16:9\n")
        started = time.perf_counter()
        subprocess.run(
            [PYTHON, "-m", "wanbatch", "validate", str(manifest)],
            capture_output=True,
            check=True,
            timeout=900,
            cwd=ROOT,
        )
        cli_validate_s = time.perf_counter() - started
        loaded, validate_s, validate_kb = python(VALIDATE, str(manifest))
        out = Path(folder) / "out"
        (journal_bytes,) = python(WRITE_JOURNAL, str(out), str(jobs))
        records, replay_s, replay_kb = python(REPLAY, str(out))
    return {
        "jobs": int(loaded),
        "validate_cli_s": round(cli_validate_s, 2),
        "load_manifest_s": round(float(validate_s), 2),
        "load_manifest_peak_rss_mb": round(int(validate_kb) / 1024, 1),
        "journal_mb": round(int(journal_bytes) / 2**20, 1),
        "journal_events": 5 * jobs,
        "journal_records": int(records),
        "replay_s": round(float(replay_s), 2),
        "replay_peak_rss_mb": round(int(replay_kb) / 1024, 1),
    }


SIM = {"generation_seconds": 0.0, "slots": 1000, "video_size": 0}
CONCURRENCY = 64


def raw_client(jobs: int, concurrency: int) -> dict[str, Any]:
    with simulator(**SIM) as info:
        raw = subprocess.run(
            [
                PYTHON,
                str(ROOT / "benchmarks" / "rawclient.py"),
                "api",
                info["base_url"],
                info["api_key"],
                str(jobs),
                str(concurrency),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        figures = json.loads(raw.stdout)
        stats = sim_stats(info)
    requests = stats["requests_total"] + stats["cdn_requests_total"]
    return {
        "client": f"raw httpx, {concurrency} at a time (no journal)",
        "jobs": jobs,
        "seconds": figures["seconds"],
        "jobs/s": round(jobs / figures["seconds"], 1),
        "requests/job": round(requests / jobs, 2),
        "requests/s": round(requests / figures["seconds"], 1),
        "cpu_s": figures["cpu_s"],
        "peak_rss_mb": figures["peak_rss_mb"],
    }


def wanbatch_client(jobs: int, concurrency: int, before: Path | None = None) -> dict[str, Any]:
    with simulator(**SIM) as info, tempfile.TemporaryDirectory() as folder:
        manifest = write_manifest(
            Path(folder),
            jobs,
            concurrency=concurrency,
            requests_per_second=100_000,
            downloads=16,
        )
        result = run_wanbatch(info, manifest, poll_interval=0.01, timeout=3600, before=before)
        stats = sim_stats(info)
    assert result.exit_code == 0, result.stdout
    requests = stats["requests_total"] + stats["cdn_requests_total"]
    seconds = result.makespan
    return {
        "client": f"{'before (0b37c26)' if before else 'wanbatch run'}, concurrency {concurrency}",
        "jobs": jobs,
        "seconds": round(seconds, 2),
        "process_s": round(result.process_seconds, 2),
        "jobs/s": round(jobs / seconds, 1),
        "requests/job": round(requests / jobs, 2),
        "requests/s": round(requests / seconds, 1),
        "cpu_s": round(result.cpu_seconds, 2),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }


def end_to_end(
    jobs: int, skip_before: bool = False, wanbatch_only: bool = False
) -> list[dict[str, Any]]:
    """Raw httpx at two concurrencies (its pool slows down with many waiters), then wanbatch.

    The faster raw figure is the reference for the ratio.
    """
    if wanbatch_only:
        return [wanbatch_client(jobs, CONCURRENCY)]
    rows = [raw_client(jobs, 16), raw_client(jobs, CONCURRENCY)]
    rows.append(wanbatch_client(jobs, CONCURRENCY))
    if not skip_before:
        with before_tree() as tree:
            rows.append(wanbatch_client(jobs, CONCURRENCY, tree))
    best = max(rows[0]["jobs/s"], rows[1]["jobs/s"])
    for row in rows:
        row["vs best raw (jobs/s)"] = round(row["jobs/s"] / best, 3)
    return rows


RUN_COLUMNS = [
    "client",
    "jobs",
    "seconds",
    "jobs/s",
    "requests/job",
    "requests/s",
    "cpu_s",
    "peak_rss_mb",
    "vs best raw (jobs/s)",
]
FILE_COLUMNS = [
    "jobs",
    "validate_cli_s",
    "load_manifest_s",
    "load_manifest_peak_rss_mb",
    "journal_mb",
    "replay_s",
    "replay_peak_rss_mb",
]


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000-job files, 1,000-job run")
    parser.add_argument("--jobs", type=int, help="manifest and journal size (default 100,000)")
    parser.add_argument("--run-jobs", type=int, help="end-to-end run size (default 4,000)")
    parser.add_argument("--skip-before", action="store_true", help="no 'before' row")
    parser.add_argument(
        "--wanbatch-only", action="store_true", help="the end-to-end run of wanbatch alone"
    )
    parser.add_argument("--skip-files", action="store_true", help="no validate/replay step")
    args = parser.parse_args(argv)
    jobs = args.jobs or (10_000 if args.quick else 100_000)
    run_jobs = args.run_jobs or (1_000 if args.quick else 4_000)
    files = [] if args.skip_files else [manifest_and_journal(jobs)]
    for row in files:
        print(json.dumps(row), flush=True)
    runs = end_to_end(run_jobs, args.skip_before, args.wanbatch_only)
    for row in runs:
        print(json.dumps(row), flush=True)
    save("scale-100k-run" if args.wanbatch_only else "scale", args.quick, runs, files=files)
    print(table(files, FILE_COLUMNS))
    print(table(runs, RUN_COLUMNS))
    return {"files": files, "runs": runs}


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
