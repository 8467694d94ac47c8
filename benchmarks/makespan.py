"""Makespan against the bound, and against the clients users write today, measured side by side.

For each scenario a fresh simulator runs in its own process. Three clients render the same N jobs:
- wanbatch (`python -m wanbatch run`, a subprocess, default poll settings),
- "quickstart": the provider's quickstart made into a batch: a thread per job, a fixed 5 s poll,
- "poll-1s": the same with a fixed 1 s poll.
The bound is the time the render slots alone need: max(total render seconds / slots, longest
render). Figures are printed as a table and written to benchmarks/results/makespan.json.

    python benchmarks/makespan.py            # fixed and lognormal render times, 64 jobs, 8 slots
    python benchmarks/makespan.py --quick    # 16 jobs, 4 slots
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@contextmanager
def simulator(**knobs: Any) -> Iterator[dict[str, str]]:
    """A simulator in a separate process; yields its URLs and key."""
    argv = [sys.executable, "-m", "wanbatch.simulator", "--json", "--port", "0"]
    for name, value in knobs.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())
    finally:
        child.terminate()
        child.wait(timeout=10)


def sim_stats(info: dict[str, str]) -> dict[str, Any]:
    return httpx.get(f"{info['admin_url']}/stats").json()  # type: ignore[no-any-return]


def bound(stats: dict[str, Any]) -> float:
    return max(stats["render_seconds_total"] / stats["slots"], stats["render_seconds_max"])


def prompts(count: int) -> list[str]:
    return [f"benchmark clip number {index}" for index in range(count)]


def run_wanbatch(info: dict[str, str], count: int, folder: Path) -> float:
    manifest = folder / "bench.yaml"
    jobs = "\n".join(f"  - {{id: j{i}, prompt: '{p}'}}" for i, p in enumerate(prompts(count)))
    manifest.write_text(
        f"name: bench\nlimits: {{concurrency: {count}, requests_per_second: 50, downloads: 8}}\n"
        f"output: {{dir: out}}\njobs:\n{jobs}\n"
    )
    env = {**os.environ, "WAN_API_KEY": info["api_key"]}
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wanbatch",
            "run",
            str(manifest),
            "--base-url",
            info["base_url"],
            "-q",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.perf_counter() - started


def run_threads(info: dict[str, str], count: int, folder: Path, poll_seconds: float) -> float:
    """The quickstart as people scale it: one thread per job, a fixed sleep between polls."""
    headers = {"Authorization": f"Bearer {info['api_key']}"}
    base = info["base_url"]

    def one(index: int, prompt: str) -> None:
        with httpx.Client(headers=headers, timeout=30) as client:
            task = client.post(
                f"{base}/video/generations",
                json={"model": "wan-2-2", "prompt": prompt, "duration": 5},
            ).json()
            while True:
                time.sleep(poll_seconds)
                view = client.get(f"{base}/video/generations/{task['id']}").json()
                if view["status"] in ("succeeded", "failed"):
                    break
            video = httpx.get(view["video_url"], timeout=30).content
            (folder / f"t{index}.mp4").write_bytes(video)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(prompts(count))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def measure(
    name: str,
    client: Callable[[dict[str, str], int, Path], float],
    count: int,
    knobs: dict[str, Any],
) -> dict[str, Any]:
    with simulator(**knobs) as info, tempfile.TemporaryDirectory() as folder:
        seconds = client(info, count, Path(folder))
        stats = sim_stats(info)
    requests = stats["requests_total"]
    return {
        "client": name,
        "makespan_s": round(seconds, 2),
        "bound_s": round(bound(stats), 2),
        "makespan_over_bound": round(seconds / bound(stats), 3),
        "polls_per_job": round(stats["polls_total"] / count, 2),
        "requests_per_job": round(requests / count, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 jobs on 4 slots")
    args = parser.parse_args()
    count, slots = (16, 4) if args.quick else (64, 8)
    scenarios = {
        "fixed": {"slots": slots, "generation_seconds": 1.0, "distribution": "fixed"},
        "lognormal": {
            "slots": slots,
            "generation_seconds": 1.0,
            "distribution": "lognormal",
            "spread": 0.5,
            "seed": 7,
        },
    }
    clients: dict[str, Callable[[dict[str, str], int, Path], float]] = {
        "wanbatch": run_wanbatch,
        "quickstart-5s": lambda info, n, folder: run_threads(info, n, folder, 5.0),
        "poll-1s": lambda info, n, folder: run_threads(info, n, folder, 1.0),
    }
    rows = []
    for scenario, knobs in scenarios.items():
        for name, client in clients.items():
            row = {
                "scenario": scenario,
                "jobs": count,
                "slots": slots,
                **measure(name, client, count, knobs),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("makespan-quick.json" if args.quick else "makespan.json")
    out.write_text(
        json.dumps({"command": " ".join(sys.argv), "cpus": os.cpu_count(), "rows": rows}, indent=2)
        + "\n"
    )
    print()
    print(
        f"{'scenario':<10} {'client':<14} {'makespan s':>10} {'bound s':>8} {'ratio':>6} {'polls/job':>9} {'req/job':>8}"
    )
    for row in rows:
        print(
            f"{row['scenario']:<10} {row['client']:<14} {row['makespan_s']:>10} {row['bound_s']:>8} "
            f"{row['makespan_over_bound']:>6} {row['polls_per_job']:>9} {row['requests_per_job']:>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
