"""Webhook notices: how soon a finished render is found, and at how many polls, with and without.

Each point is a workload on the simulator (run in this process, on its own thread, so that its
tasks' finish times can be read; `seed` seeds the render times); each client is
`python -m wanbatch run` in a subprocess with the poll times planned (no `--poll-interval`):

- `planned`: polling alone;
- `notices`: the same, plus `--notify-url http://127.0.0.1:P/hook --listen 127.0.0.1:P`: the
  simulator POSTs each task's view there when the task ends, which wakes that task's poll.

Figures per run: makespan (first create sent to last video on disk, from the journal), polls
per job (API polls the simulator counted / jobs), and the detection lag of each job: the
journal's `succeeded` record minus the moment the simulator's task finished (both wall clock,
one machine). Across seeds: the median of the runs' median lags and the worst lag of any job.
With notices the lag is split in two: the simulator's delivery (finish to the receiver's
`notice.heard` log record) and wanbatch's own part (that record to `succeeded`: the woken
poll's wait for a request token, the GET and its answer).

Points: `slot-uniform` (32 jobs, 8 slots, C = 8, uniform 2-6 s), `slot-lognormal` (32 jobs,
lognormal renders, median 3.5 s, sigma 0.5), `queue-uniform` (48 jobs, C = 16 on 8 slots,
uniform 1-3 s: half the tasks wait in the queue), `long-10-20` (12 jobs, 4 slots, uniform
10-20 s). The two clients of one point and seed run side by side, each with its own simulator.

    python benchmarks/notices.py                   # every point, seeds 1-3 (about 5 minutes)
    python benchmarks/notices.py --only slot-uniform --seeds 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from common import save, table, write_manifest

from wanbatch.simulator import SimConfig, SimulatorServer


@dataclass(frozen=True)
class Point:
    name: str
    jobs: int
    slots: int
    concurrency: int
    renders: dict[str, Any]


def uniform(low: float, high: float) -> dict[str, Any]:
    mean = (low + high) / 2
    return {"distribution": "uniform", "generation_seconds": mean, "spread": (high - mean) / mean}


def lognormal(median: float, sigma: float) -> dict[str, Any]:
    mean = median * math.exp(sigma * sigma / 2)  # the simulator's knob is the mean
    return {"distribution": "lognormal", "generation_seconds": round(mean, 4), "spread": sigma}


POINTS = [
    Point("slot-uniform", 32, 8, 8, uniform(2.0, 6.0)),
    Point("slot-lognormal", 32, 8, 8, lognormal(3.5, 0.5)),
    Point("queue-uniform", 48, 8, 16, uniform(1.0, 3.0)),
    Point("long-10-20", 12, 4, 4, uniform(10.0, 20.0)),
]
CLIENTS = ("planned", "notices")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(point: Point, seed: int, client: str) -> dict[str, Any]:
    config = SimConfig(slots=point.slots, seed=seed, **point.renders)
    with tempfile.TemporaryDirectory() as tmp, SimulatorServer(config) as sim:
        folder = Path(tmp)
        manifest = write_manifest(
            folder, point.jobs, concurrency=point.concurrency, requests_per_second=None
        )
        argv = [sys.executable, "-m", "wanbatch", "run", str(manifest)]
        argv += ["--base-url", sim.base_url, "-q"]
        if client == "notices":
            port = free_port()
            argv += ["--notify-url", f"http://127.0.0.1:{port}/hook"]
            argv += ["--listen", f"127.0.0.1:{port}"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["WAN_API_KEY"] = sim.api_key
        done = subprocess.run(argv, env=env, cwd=folder, capture_output=True, timeout=600)
        journal = folder / "out" / ".wanbatch" / "journal.jsonl"
        events = [json.loads(line) for line in journal.read_text().splitlines()]
        events = [e for e in events if "job" in e]
        log = folder / "out" / ".wanbatch" / "log.jsonl"
        heard = {
            e["task_id"]: datetime.fromisoformat(e["timestamp"]).timestamp()
            for e in map(json.loads, log.read_text().splitlines())
            if e.get("event") == "notice.heard" and e.get("outcome") == "woken"
        }
        with sim.state.lock:
            finish = {task.id: task.finish for task in sim.state.tasks.values()}
            polls = sim.state.counters["polls_total"]
            delivered = sim.state.counters["webhook_deliveries"]
    task_of = {e["job"]: e["task_id"] for e in events if e["ev"] == "created"}
    lags = [
        e["at"] - finish[task_of[e["job"]]]
        for e in events
        if e["ev"] == "succeeded" and e.get("video_url") and e["job"] in task_of
    ]
    found = {e["job"]: e["at"] for e in events if e["ev"] == "succeeded" and e.get("video_url")}
    ours = [found[job] - heard[task] for job, task in task_of.items() if task in heard]
    delivery = [heard[task] - finish[task] for task in heard if task in finish]
    intents = [e["at"] for e in events if e["ev"] == "intent"]
    downloads = [e["at"] for e in events if e["ev"] == "downloaded"]
    return {
        "point": point.name,
        "client": client,
        "seed": seed,
        "exit": done.returncode,
        "done": len(downloads),
        "makespan_s": round(max(downloads) - min(intents), 3) if downloads else None,
        "polls_per_job": round(polls / point.jobs, 2),
        "lag_median_s": round(statistics.median(lags), 3) if lags else None,
        "lag_worst_s": round(max(lags), 3) if lags else None,
        "notices_delivered": delivered,
        "delivery_median_s": round(statistics.median(delivery), 3) if delivery else None,
        "delivery_worst_s": round(max(delivery), 3) if delivery else None,
        "ours_median_s": round(statistics.median(ours), 3) if ours else None,
        "ours_worst_s": round(max(ours), 3) if ours else None,
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for point in dict.fromkeys(row["point"] for row in rows):
        for client in CLIENTS:
            runs = [r for r in rows if r["point"] == point and r["client"] == client]
            if not runs:
                continue

            def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
                return round(statistics.median(r[key] for r in runs), 3)

            def worst(key: str, runs: list[dict[str, Any]] = runs) -> float:
                return round(max(r[key] for r in runs), 3)

            out.append(
                {
                    "point": point,
                    "client": client,
                    "seeds": len(runs),
                    "all done": all(r["exit"] == 0 for r in runs),
                    "makespan med": med("makespan_s"),
                    "makespan worst": worst("makespan_s"),
                    "polls/job med": med("polls_per_job"),
                    "polls/job worst": worst("polls_per_job"),
                    "lag med": med("lag_median_s"),
                    "lag worst": worst("lag_worst_s"),
                }
            )
            if client == "notices":
                out[-1]["delivery med"] = med("delivery_median_s")
                out[-1]["delivery worst"] = worst("delivery_worst_s")
                out[-1]["ours med"] = med("ours_median_s")
                out[-1]["ours worst"] = worst("ours_worst_s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="one point by name")
    parser.add_argument("--seeds", default="1-3", help="e.g. 1-3 or 4")
    args = parser.parse_args()
    low, _, high = args.seeds.partition("-")
    seeds = list(range(int(low), int(high or low) + 1))
    points = [p for p in POINTS if args.only in (None, p.name)]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(len(CLIENTS)) as pool:
        for point in points:
            for seed in seeds:
                pair = pool.map(lambda c, p=point, s=seed: measure(p, s, c), CLIENTS)
                for row in pair:
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = summarize(rows)
    print(table(summary, list(dict.fromkeys(key for row in summary for key in row))))
    print(f"({time.perf_counter() - started:.0f} s)")
    save("notices", False, rows, summary=summary)


if __name__ == "__main__":
    main()
