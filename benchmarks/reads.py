"""Fast reads (issue 15, items 2 and 3): `validate`, `plan` and `status` of 10k-1M jobs.

Generates, under /tmp, a CSV manifest of N jobs (no id column: every id and fingerprint is
derived, the costly path) with mixed models, durations and aspect ratios, and a journal of the
same jobs written with `wanbatch.journal`'s encoders: 60 % downloaded (5 events), 10 % failed,
10 % rendering, 20 % not yet sent. The output tree holds no videos (so `status` and `plan` stat
a missing file for every downloaded job, and call them "to download").

Each measurement runs in a fresh process (`python -c`), the "before" tree (the branch's start,
checked out as a git worktree) and the "after" tree (this checkout) alternating, several rounds.
Columns: `wall` is the whole process (interpreter start included); `work` is from the first line
of the script (before `import wanbatch`) to the end of the command; `rss` is the peak RSS
(`ru_maxrss`) of the process. `load` is `load_manifest` alone; `replay` is `read_journal`
alone (journal.py is not this part's: it is shown to separate its share).

    python benchmarks/reads.py --jobs 10000,100000 --rounds 3
    python benchmarks/reads.py --jobs 1000000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BEFORE_COMMIT = "f02e753"  # the start of branch p15-reads
BEFORE_TREE = Path("/tmp/wanbatch-reads-before")
DATA = Path("/tmp/wanbatch-reads")

MODELS = ("wan-2-2", "wan-2-1")
RATIOS = ("16:9", "9:16", "1:1")
SUBJECTS = ("a red fox", "a lighthouse", "a city street", "an old sailor", "a paper boat")
PLACES = ("in the snow at dawn", "under a storm", "at night, neon lights", "by the sea")

WRITE_JOURNAL = """
import sys
from pathlib import Path
from wanbatch.journal import encode_event, encode_run_header, journal_path
from wanbatch.manifest import load_manifest
from wanbatch.models import EventKind, JobEvent
manifest = load_manifest(sys.argv[1])
path = journal_path(manifest.output_dir); path.parent.mkdir(parents=True, exist_ok=True)
with open(path, "wb") as handle:
    handle.write(encode_run_header("http://127.0.0.1:1/v1", sys.argv[1]))
    for i, job in enumerate(manifest.jobs):
        share = i % 10
        if share >= 8:
            continue  # not sent yet
        out = []
        fp = job.fingerprint()
        out.append(JobEvent(EventKind.INTENT, job.id, 1.0, idempotency_key=f"wb-{i:032x}", fingerprint=fp))
        out.append(JobEvent(EventKind.CREATED, job.id, 1.1, task_id=f"gen_{i:012x}"))
        out.append(JobEvent(EventKind.RUNNING, job.id, 1.2))
        if share == 7:
            out.append(JobEvent(EventKind.FAILED, job.id, 2.0, reason="moderation: refused", code="content_policy"))
        elif share < 6:
            url = f"http://127.0.0.1:2/v/gen_{i:012x}.mp4?exp=1&sig=" + "a" * 32
            out.append(JobEvent(EventKind.SUCCEEDED, job.id, 2.0, video_url=url))
            out.append(JobEvent(EventKind.DOWNLOADED, job.id, 2.5, path=job.output_path, size=1877, sha256="0" * 64))
        for event in out:
            handle.write(encode_event(event))
print(path.stat().st_size)
"""

# {tree} is put first on sys.path by PYTHONPATH; the script checks it imported that tree.
COMMAND = """
import time
_started = time.perf_counter()
import io, resource, sys, contextlib
what, tree, manifest = sys.argv[1], sys.argv[2], sys.argv[3]
import wanbatch
assert wanbatch.__file__.startswith(tree), (wanbatch.__file__, tree)
sink = io.StringIO()
if what == "load":
    from wanbatch.manifest import load_manifest
    count = len(load_manifest(manifest).jobs)
elif what == "replay":
    from wanbatch.journal import read_journal
    count = len(read_journal(__import__("pathlib").Path(sys.argv[4])).records)
else:
    from wanbatch.cli import main
    with contextlib.redirect_stdout(sink):
        code = main([what, manifest])
    assert code == 0, code
    count = len(sink.getvalue())
work = time.perf_counter() - _started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(f"{work} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime} {count}")
"""


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def before_tree() -> Path:
    full = _git("rev-parse", "--verify", f"{BEFORE_COMMIT}^{{commit}}")
    if BEFORE_TREE.exists():
        head = _git("-C", str(BEFORE_TREE), "rev-parse", "HEAD")
        if head != full:
            raise RuntimeError(f"{BEFORE_TREE} is at {head[:12]}, not {BEFORE_COMMIT}")
    else:
        _git("worktree", "add", "--detach", str(BEFORE_TREE), full)
    return BEFORE_TREE


def write_csv(path: Path, jobs: int) -> None:
    lines = ["prompt,model,duration,aspect_ratio"]
    for i in range(jobs):
        subject, place = SUBJECTS[i % len(SUBJECTS)], PLACES[i % len(PLACES)]
        prompt = f'"{subject} {place}, take {i}, cinematic, 35mm film grain"'
        lines.append(f"{prompt},{MODELS[i % 2]},{4 + i % 5},{RATIOS[i % 3]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def prepare(jobs: int) -> tuple[Path, Path]:
    folder = DATA / f"n{jobs}"
    manifest = folder / "jobs.csv"
    output = folder / "renders" / "jobs"
    journal = output / ".wanbatch" / "journal.jsonl"
    if not journal.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(manifest, jobs)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [PYTHON, "-c", WRITE_JOURNAL, str(manifest)], env=env, cwd=folder, check=True
        )
    return manifest, output


def measure(tree: Path, what: str, manifest: Path, output: Path) -> dict[str, float]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), "WAN_API_KEY": "unused"}
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-c", COMMAND, what, str(tree), str(manifest), str(output)],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{what} in {tree}: {done.stderr[-2000:]}")
    work, rss, cpu, _ = done.stdout.split()
    return {"wall": wall, "work": float(work), "cpu": float(cpu), "rss_mb": int(rss) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--what", default="load,replay,validate,plan,status")
    parser.add_argument("--only-after", action="store_true")
    args = parser.parse_args()
    trees = {"after": ROOT} if args.only_after else {"before": before_tree(), "after": ROOT}
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for jobs in [int(n) for n in args.jobs.split(",")]:
        manifest, output = prepare(jobs)
        for _ in range(args.rounds):
            for what in args.what.split(","):
                for label, tree in trees.items():
                    row = measure(tree, what, manifest, output)
                    results.setdefault(f"{jobs} {what}", {}).setdefault(label, []).append(row)
                    print(f"{jobs:>8} {what:<8} {label:<6} {json.dumps(row)}", flush=True)
    print()
    print(
        "| jobs | command | tree | cpu med / worst (s) | work med (s) | wall med (s) | peak RSS med (MB) |"
    )
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for key, by_tree in results.items():
        jobs, what = key.split()
        for label, rows in by_tree.items():
            cpu = [r["cpu"] for r in rows]
            print(
                f"| {int(jobs):,} | {what} | {label} | {statistics.median(cpu):.2f} / "
                f"{max(cpu):.2f} | {statistics.median(r['work'] for r in rows):.2f} | "
                f"{statistics.median(r['wall'] for r in rows):.2f} | "
                f"{statistics.median(r['rss_mb'] for r in rows):.0f} |"
            )
        if len(by_tree) == 2:
            ratios = [
                a["cpu"] / b["cpu"]
                for a, b in zip(by_tree["after"], by_tree["before"], strict=True)
            ]
            print(
                f"| | {what} | after/before | {statistics.median(ratios):.2f} / "
                f"{max(ratios):.2f} | | | |"
            )


if __name__ == "__main__":
    main()
