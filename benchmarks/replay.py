"""Replay of a compacted journal against the event log it replaces (issue 15, item 1).

For each size N: a journal of N finished jobs, five events a job, written with
``wanbatch.journal``'s encoders (as ``scale.py`` writes it), then a copy compacted with
``compact_journal`` (timed). Each round then replays, each in its own process (its peak RSS its
own), alternating:

- before: the event log, by the package at the branch's start (``--before``, a tree extracted
  with ``git archive``, run with ``PYTHONPATH``);
- after: the compacted journal, by this package;
- after, old journal: the event log, by this package (an old journal still reads, no slower).

Wall time and the process's CPU time are both reported: on a shared machine the wall time of a
process waiting for a core varies far more than its CPU time.

    python benchmarks/replay.py --jobs 10000 100000 --rounds 3
    python benchmarks/replay.py --jobs --direct 1000000 --rounds 1   # compacted 1M only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from scale import WRITE_JOURNAL  # benchmarks/ is on sys.path when a script in it runs

ROOT = Path(__file__).resolve().parent.parent

PYTHON = sys.executable

# The event log of N downloaded jobs, five events a job: scale.py's writer (it prints the size).
WRITE = WRITE_JOURNAL

# The compacted journal of WRITE's jobs, written directly (for sizes whose event log takes too
# long to write and compact here): the records are built as the fold of WRITE's five events
# gives them, checked against that fold for the first jobs.
WRITE_COMPACTED = """
import sys
from pathlib import Path
from wanbatch.journal import encode_event, encode_run_header, encode_snapshot, journal_path, replay_bytes
from wanbatch.models import EventKind, JobEvent, JobRecord, JobState
out = Path(sys.argv[1]); count = int(sys.argv[2])
path = journal_path(out); path.parent.mkdir(parents=True, exist_ok=True)
def record(i):
    return JobRecord(f"job-{i}", JobState.DOWNLOADED, 0, f"wb-{i:032x}", "f" * 16, f"gen_{i:012x}",
        f"http://127.0.0.1:2/v/gen_{i:012x}.mp4?exp=1&sig=" + "a" * 32, None, None, f"job-{i}.mp4",
        1877, "0" * 64, 1, None, 1.1, 2.0, 2.5, None, 1.0)
def events(i):
    job = f"job-{i}"
    return b"".join(map(encode_event, [
        JobEvent(EventKind.INTENT, job, 1.0, idempotency_key=f"wb-{i:032x}", fingerprint="f" * 16),
        JobEvent(EventKind.CREATED, job, 1.1, task_id=f"gen_{i:012x}"),
        JobEvent(EventKind.RUNNING, job, 1.2),
        JobEvent(EventKind.SUCCEEDED, job, 2.0, video_url=f"http://127.0.0.1:2/v/gen_{i:012x}.mp4?exp=1&sig=" + "a" * 32),
        JobEvent(EventKind.DOWNLOADED, job, 2.5, path=f"{job}.mp4", size=1877, sha256="0" * 64)]))
header = encode_run_header("http://127.0.0.1:1/v1", "m.yaml")
folded = replay_bytes(header + b"".join(events(i) for i in range(100)), "check").records
assert list(folded.values()) == [record(i) for i in range(100)]
with open(path, "wb") as handle:
    handle.write(header)
    for i in range(count):
        handle.write(encode_snapshot(record(i)))
"""

MEASURE = """
import json, sys, time
from pathlib import Path
from wanbatch import journal  # imports are not timed: the replay (or compaction) alone is
started, cpu = time.perf_counter(), time.process_time()
if sys.argv[1] == "compact":
    assert journal.compact_journal(Path(sys.argv[2]))
    records = None
else:
    records = len(journal.read_journal(Path(sys.argv[2])).records)
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
rss = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]
print(json.dumps({"records": records, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss / 1024}))
"""


def measure(tree: Path, what: str, out: Path) -> dict[str, Any]:
    """One measurement in a fresh process importing wanbatch from ``tree`` (cwd /: no other)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(MEASURE), what, str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
        cwd="/",
        env=env,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def direct(folder: Path, jobs: int) -> tuple[Path, dict[str, Any]]:
    """The compacted journal of ``jobs`` jobs written directly (no event log, no compaction)."""
    compact = folder / f"direct-{jobs}"
    log = compact / ".wanbatch" / "journal.jsonl"
    if not log.exists():
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [PYTHON, "-c", textwrap.dedent(WRITE_COMPACTED), str(compact), str(jobs)],
            check=True,
            timeout=3600,
            cwd="/",
            env=env,
        )
    return compact, {"compacted_mb": log.stat().st_size / 2**20}


def journals(folder: Path, jobs: int) -> tuple[Path, Path, dict[str, Any]]:
    """The event log of ``jobs`` jobs and its compacted copy (made once, kept in ``folder``)."""
    events, compact = folder / f"events-{jobs}", folder / f"compact-{jobs}"
    log = events / ".wanbatch" / "journal.jsonl"
    if not log.exists():
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [PYTHON, "-c", textwrap.dedent(WRITE), str(events), str(jobs)],
            check=True,
            timeout=3600,
            cwd="/",
            env=env,
        )
    shutil.rmtree(compact, ignore_errors=True)
    shutil.copytree(events, compact)
    compaction = measure(ROOT, "compact", compact)
    sizes = {
        "events_mb": log.stat().st_size / 2**20,
        "compacted_mb": (compact / ".wanbatch" / "journal.jsonl").stat().st_size / 2**20,
        "compaction_wall_s": compaction["wall_s"],
        "compaction_cpu_s": compaction["cpu_s"],
        "compaction_peak_rss_mb": compaction["peak_rss_mb"],
    }
    return events, compact, sizes


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (worst {max(values):.2f})"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--direct",
        type=int,
        nargs="*",
        default=[],
        help="sizes whose compacted journal is written directly and replayed (no before row)",
    )
    parser.add_argument("--before", default="f02e753", help="the commit of the 'before' rows")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "replay-bench")
    parser.add_argument("--skip-before", action="store_true", help="no 'before' replay")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    before = args.folder / f"tree-{args.before}"
    if not before.exists():
        before.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.before, "wanbatch"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    rows = []
    for jobs in args.direct:
        compact, sizes = direct(args.folder, jobs)
        found = [measure(ROOT, "replay", compact) for _ in range(args.rounds)]
        assert all(run["records"] == jobs for run in found)
        rows.append(
            {
                "jobs": jobs,
                "replay": "after (written directly)",
                "wall_s": summary([run["wall_s"] for run in found]),
                "cpu_s": summary([run["cpu_s"] for run in found]),
                "peak_rss_mb": summary([run["peak_rss_mb"] for run in found]),
                "events_mb": "",
                **sizes,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    for jobs in args.jobs:
        events, compact, sizes = journals(args.folder, jobs)
        print(json.dumps({"jobs": jobs, **sizes}), flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": [], "after, old": []}
        for _ in range(args.rounds):
            if not args.skip_before:
                runs["before"].append(measure(before, "replay", events))
            runs["after"].append(measure(ROOT, "replay", compact))
            runs["after, old"].append(measure(ROOT, "replay", events))
            print(json.dumps({k: v[-1] for k, v in runs.items() if v}), flush=True)
        for name, found in runs.items():
            if not found:
                continue
            assert all(run["records"] == jobs for run in found)
            rows.append(
                {
                    "jobs": jobs,
                    "replay": name,
                    "wall_s": summary([run["wall_s"] for run in found]),
                    "cpu_s": summary([run["cpu_s"] for run in found]),
                    "peak_rss_mb": summary([run["peak_rss_mb"] for run in found]),
                    **sizes,
                }
            )
        if runs["before"]:
            ratios = [
                b["cpu_s"] / a["cpu_s"] for b, a in zip(runs["before"], runs["after"], strict=True)
            ]
            walls = [
                b["wall_s"] / a["wall_s"]
                for b, a in zip(runs["before"], runs["after"], strict=True)
            ]
            print(
                json.dumps(
                    {
                        "jobs": jobs,
                        "before/after cpu, median": statistics.median(ratios),
                        "worst": min(ratios),
                        "before/after wall, median": statistics.median(walls),
                        "worst wall": min(walls),
                    }
                ),
                flush=True,
            )
    columns = ["jobs", "replay", "wall_s", "cpu_s", "peak_rss_mb", "events_mb", "compacted_mb"]
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for row in rows:
        cells = [f"{row[c]:.1f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
