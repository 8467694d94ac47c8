"""Run every benchmark of issue 6 in order and write one summary.

    . .venv/bin/activate
    python benchmarks/run_all.py            # about 25 minutes on 2 cores
    python benchmarks/run_all.py --quick    # about 4.5 minutes: smaller N everywhere
    python benchmarks/run_all.py --only makespan,downloads

Each benchmark starts its simulators in separate processes and writes
benchmarks/results/<name>[-quick].json; this writes benchmarks/results/summary[-quick].md with
every table, the machine and the command. The benchmarks run one after another, never side by
side: the machine has 2 cores (makespan.py runs the light clients of one point side by side).
"before" rows are the package at commit 0b37c26 (`common.before_tree()`), run in the same pass.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import budget
import downloads
import makespan
import scale
from common import PYTHON, RESULTS, machine, table

BENCHMARKS: dict[str, Callable[[list[str]], Any]] = {
    "makespan": makespan.main,
    "budget": budget.main,
    "scale": scale.main,
    "downloads": downloads.main,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast pass with smaller N")
    parser.add_argument("--only", help="comma-separated subset of " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so that every simulator process started so far is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    flags = ["--quick"] if args.quick else []
    sections = []
    host = machine()
    for name in names:
        print(f"== {name} ==", flush=True)
        started = time.perf_counter()
        result = BENCHMARKS[name](flags)
        seconds = time.perf_counter() - started
        sections.append(f"## {name} ({seconds:.0f} s)\n\n{render(name, result)}\n")
    command = " ".join(["python", "benchmarks/run_all.py", *sys.argv[1:]])
    text = (
        f"# Benchmark run\n\n`{command}` ({PYTHON})\n\n"
        f"Machine: {host['nproc']} cores, Python {host['python']}, {host['platform']}, "
        f"load average at start {host['load_average']}, {host['date']}.\n\n" + "\n".join(sections)
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("summary-quick.md" if args.quick else "summary.md")
    out.write_text(text)
    print(text)
    return 0


def render(name: str, result: Any) -> str:
    if name == "makespan":
        return table(result, makespan.COLUMNS)
    if name == "budget":
        return table(result, budget.COLUMNS)
    if name == "scale":
        return (
            table(result["files"], scale.FILE_COLUMNS)
            + "\n\n"
            + table(result["runs"], scale.RUN_COLUMNS)
        )
    if name == "downloads":
        return table(result, downloads.COLUMNS)
    raise ValueError(name)


if __name__ == "__main__":
    sys.exit(main())
