"""Makespan against the slot bound, and against the clients users write today (issue 6, items 1-2).

For each scenario (fixed and lognormal render times) and each client, a fresh simulator runs in
its own process, and the client renders the same N jobs through it:

- wanbatch: `python -m wanbatch run` as a subprocess, default poll settings (PollPolicy()
  with the learned first-poll estimate), and again with `--poll-interval 1`;
  manifest `concurrency: N, requests_per_second: 100, downloads: 8`, so the client is not the limit;
- before: ladder / before: ladder,median: wanbatch with the queue planner switched off (polls on
  the ladder only), and also with the old median first-poll estimate, through
  `benchmarks/baseline.py`: the schedule before issue 6, measured in the same run;
- quickstart-5s: the provider's quickstart made into a batch, a thread per job, each with its own
  sync httpx client (requests-style), create, then sleep 5 s / GET until done, then download;
- poll-1s: the same with a 1 s sleep.

Makespan is from the first create sent to the last video on disk (wanbatch: from its journal,
so interpreter start is not counted; the process time is in the JSON). The bound is the time the
slots alone need: ceil(N/S)*T for fixed T; for lognormal T, the server's FIFO slot schedule of
the render times the server actually drew (replayed from its seed, checked against its totals).

    python benchmarks/makespan.py            # 64 jobs, 8 slots, T = 1 s
    python benchmarks/makespan.py --quick    # 16 jobs, 4 slots
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import (
    fifo_slot_bound,
    fixed_slot_bound,
    run_wanbatch,
    save,
    seeded_render_times,
    sim_stats,
    simulator,
    table,
    write_manifest,
)

Client = Callable[[dict[str, str], int, Path], dict[str, Any]]


def wanbatch_client(poll_interval: float | None, before: str | None = None) -> Client:
    def run(info: dict[str, str], count: int, folder: Path) -> dict[str, Any]:
        manifest = write_manifest(folder, count, concurrency=count, requests_per_second=100)
        result = run_wanbatch(info, manifest, poll_interval=poll_interval, before=before)
        assert result.exit_code == 0, result.stdout
        return {
            "makespan_s": result.makespan,
            "process_s": round(result.process_seconds, 2),
            "cpu_s": round(result.cpu_seconds, 2),
        }

    return run


def thread_client(poll_seconds: float) -> Client:
    """The quickstart as people scale it: one thread per job, a fixed sleep between polls."""

    def run(info: dict[str, str], count: int, folder: Path) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {info['api_key']}"}
        base = info["base_url"]
        finished: list[float] = []
        errors: list[BaseException] = []

        def one(index: int) -> None:
            try:
                with httpx.Client(headers=headers, timeout=60) as client:
                    task = client.post(
                        f"{base}/video/generations",
                        json={
                            "model": "wan-2-2",
                            "prompt": f"benchmark clip number {index}",
                            "duration": 5,
                        },
                    ).json()
                    for _ in range(10_000):  # bounded: 10,000 polls is hours at these sleeps
                        time.sleep(poll_seconds)
                        view = client.get(f"{base}/video/generations/{task['id']}").json()
                        if view["status"] in ("succeeded", "failed"):
                            break
                    video = httpx.get(view["video_url"], timeout=60).content
                (folder / f"t{index}.mp4").write_bytes(video)
                finished.append(time.perf_counter())
            except BaseException as exc:  # reported below; a benchmark must not hang
                errors.append(exc)

        started = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"{len(errors)} thread(s) failed: {errors[0]!r}")
        return {"makespan_s": max(finished) - started}

    return run


CLIENTS: dict[str, Client] = {
    "wanbatch": wanbatch_client(None),
    "wanbatch --poll-interval 1": wanbatch_client(1.0),
    "before: ladder": wanbatch_client(None, "ladder"),
    "before: ladder,median": wanbatch_client(None, "ladder,median"),
    "quickstart, 5 s poll": thread_client(5.0),
    "1 s poller": thread_client(1.0),
}


def scenarios(count: int, slots: int) -> dict[str, dict[str, Any]]:
    return {
        "fixed": {"slots": slots, "generation_seconds": 1.0, "distribution": "fixed"},
        "lognormal": {
            "slots": slots,
            "generation_seconds": 1.0,
            "distribution": "lognormal",
            "spread": 0.5,
            "seed": 7,
        },
    }


def scenario_bound(name: str, knobs: dict[str, Any], count: int) -> tuple[float, list[float]]:
    if knobs["distribution"] == "fixed":
        return fixed_slot_bound(count, knobs["slots"], knobs["generation_seconds"]), []
    times = seeded_render_times(count, **knobs)
    return fifo_slot_bound(times, knobs["slots"]), times


def measure(
    scenario: str, knobs: dict[str, Any], name: str, client: Client, count: int
) -> dict[str, Any]:
    bound, times = scenario_bound(scenario, knobs, count)
    with simulator(**knobs) as info, tempfile.TemporaryDirectory() as folder:
        figures = client(info, count, Path(folder))
        stats = sim_stats(info)
    if times:  # the replayed draws must be the server's own
        assert abs(sum(times) - stats["render_seconds_total"]) < 1e-3, stats
        assert abs(max(times) - stats["render_seconds_max"]) < 1e-5, stats
    assert stats["creates_accepted"] == count, stats
    makespan = figures.pop("makespan_s")
    return {
        "scenario": scenario,
        "client": name,
        "jobs": count,
        "slots": knobs["slots"],
        "makespan_s": round(makespan, 2),
        "bound_s": round(bound, 2),
        "lower_bound_s": round(
            max(stats["render_seconds_total"] / knobs["slots"], stats["render_seconds_max"]), 2
        ),
        "makespan/bound": round(makespan / bound, 3),
        "polls/job": round(stats["polls_total"] / count, 2),
        "requests/job": round(stats["requests_total"] / count, 2),
        "429s": stats["rate_limited_total"],
        **figures,
    }


COLUMNS = [
    "scenario",
    "client",
    "makespan_s",
    "bound_s",
    "makespan/bound",
    "polls/job",
    "requests/job",
]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 jobs on 4 slots")
    args = parser.parse_args(argv)
    count, slots = (16, 4) if args.quick else (64, 8)
    rows = []
    for scenario, knobs in scenarios(count, slots).items():
        for name, client in CLIENTS.items():
            row = measure(scenario, knobs, name, client, count)
            rows.append(row)
            print(json.dumps(row), flush=True)
    save("makespan", args.quick, rows)
    print(table(rows, COLUMNS))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
