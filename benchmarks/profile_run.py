"""Profile a large end-to-end run (issue 6: find the top costs of the client).

    python benchmarks/profile_run.py                # 3,000 jobs, zero render time, tiny videos
    python benchmarks/profile_run.py --jobs 10000 --top 25
    python benchmarks/profile_run.py --before median  # with an improvement switched off

The simulator runs in its own process (as in `scale.py`); wanbatch runs in this process under
cProfile (the standard library's deterministic profiler: it slows the client down about 2x, so
read shares of time, not absolute speed). Prints the top functions by own time and by cumulative
time, and writes benchmarks/results/profile[-before-X].txt.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import baseline
from common import RESULTS, simulator, write_manifest
from scale import CONCURRENCY, SIM

from wanbatch import cli


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--before", help="patches of baseline.py to apply first")
    args = parser.parse_args(argv)
    if args.before:
        for name in args.before.split(","):
            baseline.PATCHES[name]()
    with simulator(**SIM) as info, tempfile.TemporaryDirectory() as folder:
        manifest = write_manifest(
            Path(folder),
            args.jobs,
            concurrency=CONCURRENCY,
            requests_per_second=100_000,
            downloads=16,
        )
        os.environ["WAN_API_KEY"] = info["api_key"]
        argv_run = ["run", str(manifest), "--base-url", info["base_url"], "-q"]
        argv_run += ["--poll-interval", "0.01"]
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        code = cli.main(argv_run)
        profiler.disable()
        seconds = time.perf_counter() - started
    out = io.StringIO()
    print(f"{args.jobs} jobs in {seconds:.1f} s under cProfile (exit {code})", file=out)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    text = out.getvalue()
    print(text)
    suffix = f"-before-{args.before.replace(',', '-')}" if args.before else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"profile{suffix}.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
