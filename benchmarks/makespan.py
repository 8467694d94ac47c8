"""End-to-end confirmation of the workload family (`family.py`) on real sockets.

Each point is a workload on the simulator (`python -m wanbatch.simulator`, always today's, in its
own process, fresh for every client and seed; `seed` seeds its render times). The clients, each
with at most C jobs in flight:

- `wanbatch`: `python -m wanbatch run` (a subprocess), manifest `concurrency: C` and nothing
  else in `limits` but `downloads: 8`: no `requests_per_second`, so the request rate is
  discovered, and the poll times are planned;
- `before`: the same manifest through the package at commit 0b37c26 (`common.before_tree()`: a
  git worktree run with `PYTHONPATH`), the scheduler this round replaced;
- `poll-1s` / `poll-2s` / `poll-5s`: the provider's quickstart made into a batch the way people
  do it: a pool of C threads, each with its own sync httpx client, create, then sleep P / GET
  until done, then download; a 429 just sleeps P and asks again.

Points (3 seeds each; `family.py` has the same workloads on a simulated clock):

- `slot-lognormal`: 48 jobs, 8 slots, C = 8, lognormal renders, median 3.5 s, sigma 0.5 (the
  simulator's `generation_seconds` is the *mean*: 3.5 x exp(0.5^2 / 2) = 3.97 s);
- `slot-uniform`: 48 jobs, 8 slots, C = 8, uniform 2-6 s;
- `queue-uniform`: 96 jobs, C = 24 on 8 slots, uniform 1-3 s (16 tasks wait in the queue);
- `hidden-slot`: `slot-uniform` with the simulator limiting the key to 5 requests/s (burst 5),
  which no client is told;
- `long-15-30`: 12 jobs, 4 slots, C = 4, uniform 15-30 s.

No 5-minute point: the simulator's `time_scale` multiplies the drawn render times only, not
the clock the client sees, so "5-minute renders at time_scale 0.01" are 3 s renders to every
client, which `slot-*` already covers.

Makespan: first create sent to last video on disk (wanbatch and before: from the journal, so
interpreter start is not counted). Bound: the server's FIFO schedule of the render times it
really drew (replayed from its seed with `common.seeded_render_times` and checked against the
server's totals) on min(C, slots) slots, as if every create arrived at once; with a rate limit
r (burst b), at least (2N - b) / r. Requests are API requests (429s included), not downloads.
"inside RA": requests that reached the server inside a Retry-After it had sent
(`requests_inside_wait_window`).

The clients of one point and seed run side by side (five simulators, five clients, started
together; for `hidden-slot` and `long-15-30`, whose runs are long and mostly asleep (the 5 s
poller takes ~105 s on `hidden-slot`), all three seeds at once), so the whole run takes about
11 minutes on 2 cores; `--one-at-a-time` runs them one after another (about 45 minutes). The
clients are light: a few requests a second each; a wanbatch process uses ~1.5 s of CPU in a
30 s run.

    python benchmarks/makespan.py                  # every point, seeds 1-3
    python benchmarks/makespan.py --quick          # 3 smaller points, seed 1
    python benchmarks/makespan.py --only hidden-slot --clients wanbatch,poll-1s --seeds 4-6
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from common import (
    before_tree,
    check_render_times,
    run_wanbatch,
    save,
    seeded_render_times,
    sim_stats,
    simulator,
    slot_bound,
    table,
    write_manifest,
)


@dataclass(frozen=True)
class Point:
    name: str
    jobs: int
    slots: int
    concurrency: int
    renders: dict[str, Any]  # simulator knobs: distribution, generation_seconds, spread
    limit: dict[str, Any] = field(default_factory=dict)  # rate_limit_rps, rate_limit_burst
    seeds_together: bool = False  # the seeds run side by side too (long, mostly idle runs)

    def knobs(self, seed: int) -> dict[str, Any]:
        return {"slots": self.slots, **self.renders, **self.limit, "seed": seed}


def uniform(low: float, high: float) -> dict[str, Any]:
    mean = (low + high) / 2
    return {"distribution": "uniform", "generation_seconds": mean, "spread": (high - mean) / mean}


def lognormal(median: float, sigma: float) -> dict[str, Any]:
    mean = median * math.exp(sigma * sigma / 2)  # the simulator's knob is the mean
    return {"distribution": "lognormal", "generation_seconds": round(mean, 4), "spread": sigma}


SLOT = {"jobs": 48, "slots": 8, "concurrency": 8}
HIDDEN = {"rate_limit_rps": 5.0, "rate_limit_burst": 5.0}
POINTS = [
    Point("slot-lognormal", **SLOT, renders=lognormal(3.5, 0.5)),
    Point("slot-uniform", **SLOT, renders=uniform(2.0, 6.0)),
    Point("queue-uniform", jobs=96, slots=8, concurrency=24, renders=uniform(1.0, 3.0)),
    Point("hidden-slot", **SLOT, renders=uniform(2.0, 6.0), limit=HIDDEN, seeds_together=True),
    Point(
        "long-15-30",
        jobs=12,
        slots=4,
        concurrency=4,
        renders=uniform(15.0, 30.0),
        seeds_together=True,
    ),
]
QUICK = {"slot-uniform": 24, "queue-uniform": 48, "hidden-slot": 24}  # point -> jobs
SEEDS = [1, 2, 3]

Client = Callable[[dict[str, str], Point, Path, Path | None], dict[str, Any]]


# --- clients ----------------------------------------------------------------------------------


def wanbatch_client(before: bool) -> Client:
    def run(info: dict[str, str], point: Point, folder: Path, tree: Path | None) -> dict[str, Any]:
        manifest = write_manifest(
            folder, point.jobs, concurrency=point.concurrency, requests_per_second=None
        )
        assert not before or tree is not None
        result = run_wanbatch(
            info, manifest, before=tree if before else None, timeout=600, sample_seconds=0.05
        )
        done = result.count("downloaded")
        figures: dict[str, Any] = {
            "done": done,
            "exit": result.exit_code,
            "process_s": round(result.process_seconds, 2),
            "cpu_s": round(result.cpu_seconds, 2),
        }
        if done:
            figures["makespan_s"] = result.makespan
        if result.exit_code:
            figures["stdout"] = result.stdout[-2000:]
        return figures

    return run


def thread_client(poll_seconds: float) -> Client:
    """A pool of C threads, each: create, then sleep P / GET until done, then download."""

    def run(info: dict[str, str], point: Point, folder: Path, tree: Path | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {info['api_key']}"}
        base = info["base_url"]
        pending: queue.Queue[int] = queue.Queue()
        for index in range(point.jobs):
            pending.put(index)
        sent: list[float] = []  # each create's send time (list.append is atomic)
        finished: list[float] = []
        errors: list[BaseException] = []

        def one(client: httpx.Client, index: int) -> None:
            body = {"model": "wan-2-2", "prompt": f"benchmark clip number {index}", "duration": 5}
            for _ in range(10_000):  # bounded: 10,000 tries is hours at these sleeps
                sent.append(time.perf_counter())
                response = client.post(f"{base}/video/generations", json=body)
                if response.status_code != 429:
                    break
                time.sleep(poll_seconds)
            response.raise_for_status()
            task = response.json()
            for _ in range(10_000):
                time.sleep(poll_seconds)
                response = client.get(f"{base}/video/generations/{task['id']}")
                if response.status_code == 429:
                    continue
                response.raise_for_status()
                view = response.json()
                if view["status"] in ("succeeded", "failed"):
                    break
            else:
                raise RuntimeError(f"task {task['id']} not done after 10,000 polls")
            video = httpx.get(view["video_url"], timeout=60)  # the CDN gets no key
            video.raise_for_status()
            (folder / f"t{index}.mp4").write_bytes(video.content)
            finished.append(time.perf_counter())

        def worker() -> None:
            with httpx.Client(headers=headers, timeout=60) as client:
                while True:
                    try:
                        index = pending.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        one(client, index)
                    except Exception as exc:  # reported below; a benchmark must not hang
                        errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(point.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        figures: dict[str, Any] = {"done": len(finished), "exit": 1 if errors else 0}
        if finished:
            figures["makespan_s"] = max(finished) - min(sent)
        if errors:
            figures["stdout"] = f"{len(errors)} job(s) failed: {errors[0]!r}"
        return figures

    return run


CLIENTS: dict[str, Client] = {
    "wanbatch": wanbatch_client(before=False),
    "before": wanbatch_client(before=True),
    "poll-1s": thread_client(1.0),
    "poll-2s": thread_client(2.0),
    "poll-5s": thread_client(5.0),
}


# --- measuring --------------------------------------------------------------------------------


def bound(point: Point, times: list[float]) -> float:
    slots = slot_bound(times, slots=point.slots, concurrency=point.concurrency)
    rps = point.limit.get("rate_limit_rps")
    if not rps:
        return slots
    return max(slots, (2 * point.jobs - point.limit.get("rate_limit_burst", rps)) / rps)


def measure(point: Point, seed: int, name: str, tree: Path | None) -> dict[str, Any]:
    knobs = point.knobs(seed)
    times = seeded_render_times(point.jobs, **knobs)
    limit = bound(point, times)
    row: dict[str, Any] = {"point": point.name, "client": name, "seed": seed, "jobs": point.jobs}
    try:
        with simulator(**knobs) as info, tempfile.TemporaryDirectory() as folder:
            figures = CLIENTS[name](info, point, Path(folder), tree)
            stats = sim_stats(info)
    except Exception:  # one broken run is a row, not the end of a 10-minute benchmark
        return {**row, "done": 0, "error": traceback.format_exc(limit=3)}
    if stats["creates_accepted"] == point.jobs:  # every draw was made: check them all
        check_render_times(times, stats)
    makespan = figures.pop("makespan_s", None)
    row.update(
        {
            "done": figures.pop("done"),
            "makespan_s": round(makespan, 3) if makespan is not None else None,
            "bound_s": round(limit, 3),
            "ratio": round(makespan / limit, 4) if makespan is not None else None,
            "polls/job": round(stats["polls_total"] / point.jobs, 2),
            "requests/job": round(stats["requests_total"] / point.jobs, 2),
            "429s": stats["rate_limited_total"],
            "inside RA": stats["requests_inside_wait_window"],
            "creates_accepted": stats["creates_accepted"],
            **figures,
        }
    )
    return row


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per point and client, across seeds: median and worst makespan/bound, other medians."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["point"], row["client"]), []).append(row)
    out = []
    for (point, client), group in groups.items():
        whole = [r for r in group if r.get("ratio") is not None and r["done"] == r["jobs"]]
        line: dict[str, Any] = {
            "point": point,
            "client": client,
            "done": f"{sum(r['done'] for r in group)}/{sum(r['jobs'] for r in group)}",
        }
        if whole:

            def median(key: str, rows: list[dict[str, Any]] = whole) -> float:
                return statistics.median(r[key] for r in rows)

            line.update(
                {
                    "bound s": f"{median('bound_s'):.1f}",
                    "makespan s": f"{median('makespan_s'):.1f}",
                    "ratio median": f"{median('ratio'):.3f}",
                    "ratio worst": f"{max(r['ratio'] for r in whole):.3f}",
                    "polls/job": f"{median('polls/job'):.2f}",
                    "requests/job": f"{median('requests/job'):.2f}",
                    "429s max": max(r["429s"] for r in whole),
                    "inside RA max": max(r["inside RA"] for r in whole),
                }
            )
        out.append(line)
    return out


COLUMNS = [
    "point",
    "client",
    "done",
    "bound s",
    "makespan s",
    "ratio median",
    "ratio worst",
    "polls/job",
    "requests/job",
    "429s max",
    "inside RA max",
]


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 smaller points, seed 1")
    parser.add_argument("--seeds", help="e.g. 1-3 or 4,7 (default 1-3; --quick: 1)")
    parser.add_argument(
        "--only", help="points, comma-separated: " + ", ".join(p.name for p in POINTS)
    )
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    parser.add_argument(
        "--one-at-a-time", action="store_true", help="no clients side by side (slower)"
    )
    args = parser.parse_args(argv)
    points = POINTS
    if args.quick:
        points = [replace(p, jobs=QUICK[p.name]) for p in POINTS if p.name in QUICK]
    if args.only:
        wanted = args.only.split(",")
        points = [p for p in points if p.name in wanted]
    seeds = parse_seeds(args.seeds) if args.seeds else ([1] if args.quick else SEEDS)
    clients = args.clients.split(",")
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with before_tree() as tree:
        for point in points:
            together = [seeds] if point.seeds_together else [[seed] for seed in seeds]
            for group in together:
                runs = [(seed, client) for seed in group for client in clients]
                width = 1 if args.one_at_a_time else len(runs)
                with ThreadPoolExecutor(max_workers=width) as pool:
                    futures = [pool.submit(measure, point, s, c, tree) for s, c in runs]
                    for future in futures:
                        row = future.result()
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    summary = summarize(rows)
    seconds = round(time.perf_counter() - started)
    save(
        "makespan",
        args.quick,
        rows,
        summary=summary,
        seconds=seconds,
        side_by_side=not args.one_at_a_time,
        points=[p.__dict__ for p in points],
        seeds=seeds,
    )
    print(f"{len(rows)} runs in {seconds} s; makespan/bound median and worst over seeds {seeds}")
    print(table(summary, COLUMNS))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
