"""Scale: validating a large manifest and replaying a large journal, with peak memory.

    python benchmarks/scale.py              # 100,000 jobs
    python benchmarks/scale.py --jobs 10000

Each measurement runs in a fresh subprocess so that its peak RSS is its own. Figures go to
benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

VALIDATE = """
import resource, sys, time
from wanbatch.manifest import load_manifest
started = time.perf_counter()
manifest = load_manifest(sys.argv[1])
seconds = time.perf_counter() - started
print(len(manifest.jobs), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
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
import resource, sys, time
from pathlib import Path
from wanbatch.journal import read_journal
started = time.perf_counter()
replay = read_journal(Path(sys.argv[1]))
seconds = time.perf_counter() - started
print(len(replay.records), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def python(code: str, *args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return result.stdout.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "big.csv"
        with open(manifest, "w") as handle:
            handle.write("prompt,duration,aspect_ratio\n")
            for i in range(args.jobs):
                handle.write(f"a benchmark prompt about scene number {i},{5 + i % 4},16:9\n")
        jobs, validate_s, validate_kb = python(VALIDATE, str(manifest))
        out = Path(folder) / "out"
        (journal_bytes,) = python(WRITE_JOURNAL, str(out), str(args.jobs))
        records, replay_s, replay_kb = python(REPLAY, str(out))
    row = {
        "jobs": int(jobs),
        "validate_s": round(float(validate_s), 2),
        "validate_peak_rss_mb": round(int(validate_kb) / 1024, 1),
        "journal_mb": round(int(journal_bytes) / 2**20, 1),
        "journal_records": int(records),
        "replay_s": round(float(replay_s), 2),
        "replay_peak_rss_mb": round(int(replay_kb) / 1024, 1),
    }
    print(json.dumps(row))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(
        json.dumps({"command": " ".join(sys.argv), "cpus": os.cpu_count(), "rows": [row]}, indent=2)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
