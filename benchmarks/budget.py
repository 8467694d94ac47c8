"""A tight request budget (issue 6, item 3): many jobs in flight, a server allowing 20 requests/s.

1,000 jobs, `concurrency: 200`; the simulator rate-limits the key at 20 requests/s (burst 10,
its default) and answers 429 with `Retry-After` in whole seconds. Renders are short (fixed
5 s, 200 slots; --quick: 1 s, 40 slots) so the request budget, not the slots, is what binds.
wanbatch runs as `python -m wanbatch run` (a subprocess) with its default poll settings:

- `wanbatch`, `requests_per_second: 20`: the user wrote the documented limit into the manifest;
- `wanbatch`, no `requests_per_second`: the user did not, and wanbatch discovers the rate (it
  starts at 10/s, probes upward, and backs off on 429s);
- `before`, `requests_per_second: 20`: the package at commit 0b37c26 (`common.before_tree()`,
  run with `PYTHONPATH`), the scheduler this round replaced, against the same simulator.

Bound: every job needs at least one create and one poll, so the server's bucket alone needs
(2N - burst) / rate seconds; the slots alone need ceil(N/S)*T. The bound is the larger. Goal:
makespan / bound <= 1.10 for `wanbatch` with the limit in the manifest (printed at the end).

    python benchmarks/budget.py            # 1,000 jobs, 200 in flight, 20 requests/s
    python benchmarks/budget.py --quick    # 200 jobs, 40 in flight, 1 s renders
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    before_tree,
    fixed_slot_bound,
    run_wanbatch,
    save,
    sim_stats,
    simulator,
    table,
    write_manifest,
)

RATE = 20.0
BURST = 10.0


def measure(
    count: int,
    in_flight: int,
    slots: int,
    seconds: float,
    client_rps: float | None,
    before: Path | None = None,
) -> dict[str, Any]:
    knobs = {
        "slots": slots,
        "generation_seconds": seconds,
        "rate_limit_rps": RATE,
        "rate_limit_burst": BURST,
    }
    slot_bound = fixed_slot_bound(count, slots, seconds)
    request_bound = (2 * count - BURST) / RATE
    bound = max(slot_bound, request_bound)
    with simulator(**knobs) as info, tempfile.TemporaryDirectory() as folder:
        manifest = write_manifest(
            Path(folder), count, concurrency=in_flight, requests_per_second=client_rps
        )
        result = run_wanbatch(info, manifest, timeout=1800, before=before)
        stats = sim_stats(info)
    done = result.count("downloaded")
    makespan = result.makespan
    row: dict[str, Any] = {
        "client": "before" if before else "wanbatch",
        "jobs": count,
        "in flight": in_flight,
        "server rps": RATE,
        "manifest rps": client_rps if client_rps is not None else "none",
        "done": f"{done}/{count}",
        "exit": result.exit_code,
        "makespan_s": round(makespan, 1),
        "bound_s": round(bound, 1),
        "makespan/bound": round(makespan / bound, 3),
        "429s": stats["rate_limited_total"],
        "inside Retry-After": stats["requests_inside_wait_window"],
        "polls/job": round(stats["polls_total"] / count, 2),
        "requests/job": round(stats["requests_total"] / count, 2),
        "slot_bound_s": slot_bound,
        "request_bound_s": request_bound,
        "slots": slots,
        "render_s": seconds,
        "process_s": round(result.process_seconds, 1),
        "cpu_s": round(result.cpu_seconds, 1),
        "client_429s": result.summary_count("rate-limited"),
        "client_retries": result.summary_count("retries"),
        "summary": result.stdout.strip().splitlines(),
    }
    return row


COLUMNS = [
    "client",
    "jobs",
    "done",
    "in flight",
    "manifest rps",
    "makespan_s",
    "bound_s",
    "makespan/bound",
    "429s",
    "inside Retry-After",
    "polls/job",
    "requests/job",
]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 jobs, 40 in flight")
    args = parser.parse_args(argv)
    count, in_flight, render = (200, 40, 1.0) if args.quick else (1000, 200, 5.0)
    rows = []
    with before_tree() as tree:
        for client_rps, before in ((RATE, None), (None, None), (RATE, tree)):
            row = measure(count, in_flight, in_flight, render, client_rps, before)
            rows.append(row)
            print(json.dumps(row), flush=True)
    save("budget", args.quick, rows)
    print(table(rows, COLUMNS))
    told = rows[0]["makespan/bound"]
    print(f"goal makespan/bound <= 1.10 (wanbatch, limit told): {told} ", end="")
    print("met" if told <= 1.10 else "NOT met")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
