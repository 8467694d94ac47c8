"""`--simulate` at scale (issue 15, item 5): what the simulator's saved state costs per create.

`wanbatch run --simulate` keeps the simulator's tasks in `.wanbatch/simulator-state.json`. Until
issue 15 every create rewrote that whole file (quadratic); now a create appends one line. Three
measurements, each in its own process, "before" (a tree given by `--before`, run with
`PYTHONPATH`) and "after" (this checkout) alternating, several rounds:

1. `state`: `SimState.admit` alone (no sockets) with N tasks already held, loaded from a state
   file of N tasks in the whole-file form that both versions read: creates/s over a time budget.
2. `run`: `python -m wanbatch run M --simulate` end to end, with the demo farm swapped for a fast
   one (zero render time, 10,000 slots) by a two-line bootstrap, and a state file holding N
   tasks before the run starts (so a short run shows the pace at the tail of an N-job run):
   creates/s from the journal's `created` times.
3. `demo`: the same with the real demo farm (renders of 0.6-2.4 s, 6 slots: at most 4 a second).
4. `load`: a restart, the state of N tasks loaded in the form each version writes (before: the
   whole-file form; after: one line a task). Reported as 1/seconds in the summary line.

    python benchmarks/simulate_scale.py --before /tmp/simstate-before state --held 1000 10000 100000
    python benchmarks/simulate_scale.py --before /tmp/simstate-before run --held 0 10000 99000
    python benchmarks/simulate_scale.py --before /tmp/simstate-before load --held 100000
    python benchmarks/simulate_scale.py run --jobs 100000 --held 0 --rounds 1 --after-only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-wan-sim-local"

STATE = """
import json, sys, time
from pathlib import Path
from wanbatch.simulator.app import SimState
from wanbatch.simulator.config import SimConfig
path, budget, cap = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
state = SimState(SimConfig(generation_seconds=0.0, slots=10_000), state_file=path)
load = time.perf_counter() - started
held = len(state.tasks)
body = {"model": "wan-2-2", "prompt": "benchmark clip", "duration": 5, "aspect_ratio": "16:9"}
count, started = 0, time.perf_counter()
while count < cap and time.perf_counter() - started < budget:
    with state.lock:
        state.admit(state.config.api_key, {**body, "prompt": f"clip {count}"}, f"wb-new-{count}")
    count += 1
seconds = time.perf_counter() - started
print(json.dumps({"held": held, "load_s": load, "creates": count, "seconds": seconds,
                  "file_mb": path.stat().st_size / 1e6}))
"""

# `wanbatch run --simulate`, its farm made fast: the demo's slots would bound it at 4 a second.
FAST = """
import sys
import wanbatch.simulator as simulator
from wanbatch.simulator.config import SimConfig
if sys.argv[1] == "fast":
    simulator.demo_config = lambda: SimConfig(generation_seconds=0.0, slots=10_000)
sys.argv[1:2] = []
from wanbatch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def held_state(path: Path, count: int) -> None:
    """A state file of ``count`` finished tasks in the whole-file form (both versions read it)."""
    now = time.time() - 3600
    tasks = [
        {
            "id": f"gen_{i:012x}",
            "key": KEY,
            "body": {
                "model": "wan-2-2",
                "prompt": f"an earlier clip number {i}",
                "duration": 5,
                "aspect_ratio": "16:9",
            },
            "created": now,
            "start": now,
            "finish": now + 1.5,
            "fails": False,
            "idempotency_key": f"wb-{i:032x}",
            "flagged": None,
            "webhook_delivered": False,
        }
        for i in range(count)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tasks": tasks, "credits": {KEY: 10_000_000}}))


def lines_state(path: Path, count: int) -> None:
    """The same tasks in the appended form: one record a line, as a run of ``count`` leaves it."""
    held_state(path, count)
    data = json.loads(path.read_text())
    with path.open("w") as handle:
        handle.write(json.dumps({"tasks": [], "credits": data["credits"]}) + "\n")
        for i, task in enumerate(data["tasks"]):
            handle.write(json.dumps({"tasks": [task], "credits": {KEY: 10_000_000 - i}}) + "\n")


def load_cost(tree: Path | None, held: int) -> dict[str, Any]:
    """A restart: the state of ``held`` tasks loaded, in the form the version writes."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = Path(folder) / "simulator-state.json"
        (held_state if tree is not None else lines_state)(path, held)
        out = subprocess.run(
            [sys.executable, "-c", STATE, str(path), "0", "0"],
            env=env_for(tree),
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        row: dict[str, Any] = json.loads(out.stdout)
    row["creates_per_s"] = 1 / row["load_s"]  # so that the summary's "worst" is the slowest
    return row


def env_for(tree: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def state_cost(tree: Path | None, held: int, budget: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = Path(folder) / "simulator-state.json"
        held_state(path, held)
        out = subprocess.run(
            [sys.executable, "-c", STATE, str(path), str(budget), "100000"],
            env=env_for(tree),
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        row: dict[str, Any] = json.loads(out.stdout)
    row["creates_per_s"] = row["creates"] / row["seconds"]
    return row


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def manifest(folder: Path, jobs: int) -> Path:
    path = folder / "big.csv"
    with path.open("w") as handle:
        handle.write("id,prompt\n")
        for i in range(jobs):
            handle.write(f"j{i:06d},benchmark clip number {i}\n")
    (folder / "wanbatch.yaml").write_text(
        "name: big\njobs_from: big.csv\nlimits:\n  concurrency: 64\n  requests_per_second: 100000\n"
        "  downloads: 16\noutput:\n  dir: out\n"
    )
    return folder / "wanbatch.yaml"


def simulate_run(
    tree: Path | None, jobs: int, held: int, farm: str, timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        folder = Path(name)
        path = manifest(folder, jobs)
        state = folder / "out" / ".wanbatch" / "simulator-state.json"
        if held:
            held_state(state, held)
        argv = [sys.executable, "-c", FAST, farm, "run", str(path), "--simulate", "-q"]
        argv += ["--poll-interval", "0.05"] if farm == "fast" else []
        started, cpu = time.perf_counter(), children_cpu()
        with (folder / "wanbatch.out").open("wb") as out:
            child = subprocess.Popen(
                argv, env=env_for(tree), cwd=folder, stdout=out, stderr=subprocess.STDOUT
            )
            timed_out = False
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                timed_out = True
        seconds, cpu = time.perf_counter() - started, children_cpu() - cpu
        if child.returncode not in (0, -9):  # what it said, and the end of its log
            log = folder / "out" / ".wanbatch" / "log.jsonl"
            print((folder / "wanbatch.out").read_text()[-3000:], file=sys.stderr)
            print(log.read_text()[-6000:] if log.exists() else "", file=sys.stderr)
        journal = folder / "out" / ".wanbatch" / "journal.jsonl"
        created = []
        downloaded = 0
        for line in journal.read_bytes().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("ev") == "created":
                created.append(event["at"])
            downloaded += event.get("ev") == "downloaded"
        size = state.stat().st_size if state.exists() else 0
    span = (created[-1] - created[0]) if len(created) > 1 else 0.0
    return {
        "jobs": jobs,
        "held": held,
        "farm": farm,
        "exit": None if timed_out else child.returncode,
        "seconds": seconds,
        "cpu_s": cpu,
        "created": len(created),
        "downloaded": downloaded,
        "creates_per_s": (len(created) - 1) / span if span else 0.0,
        "state_mb": size / 1e6,
    }


def summarise(rows: list[dict[str, Any]], key: str) -> str:
    values = [row[key] for row in rows]
    return f"median {statistics.median(values):.1f}, worst {min(values):.1f} ({len(values)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["state", "load", "run", "demo"])
    parser.add_argument("--before", type=Path, help="a tree of the package before the change")
    parser.add_argument("--held", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--jobs", type=int, default=1000, help="run/demo: the manifest's jobs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=5.0, help="state: seconds per round")
    parser.add_argument("--timeout", type=float, default=600.0, help="run/demo: per run")
    parser.add_argument("--after-only", action="store_true")
    args = parser.parse_args()
    versions: list[tuple[str, Path | None]] = [("after", None)]
    if args.before and not args.after_only:
        versions.insert(0, ("before", args.before))
    results: dict[str, list[dict[str, Any]]] = {}
    for held in args.held:
        for round_ in range(args.rounds):
            order = versions if round_ % 2 == 0 else versions[::-1]
            for label, tree in order:
                if args.what == "state":
                    row = state_cost(tree, held, args.budget)
                elif args.what == "load":
                    row = load_cost(tree, held)
                else:
                    farm = "fast" if args.what == "run" else "demo"
                    row = simulate_run(tree, args.jobs, held, farm, args.timeout)
                row["version"] = label
                print(json.dumps(row), flush=True)
                results.setdefault(f"{label} held={held}", []).append(row)
    print()
    for name, rows in results.items():
        print(f"{name}: creates/s {summarise(rows, 'creates_per_s')}")


if __name__ == "__main__":
    main()
