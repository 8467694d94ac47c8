"""Profile a large end-to-end run (issue 6: find the top costs of the client).

    python benchmarks/profile_run.py                # 3,000 jobs, zero render time, tiny videos
    python benchmarks/profile_run.py --jobs 10000 --top 25
    python benchmarks/profile_run.py --before       # the package at commit 0b37c26

The simulator runs in its own process (as in `scale.py`); wanbatch runs in this process under
cProfile (the standard library's deterministic profiler: it slows the client down about 2x, so
read shares of time, not absolute speed). Prints the top functions by own time and by cumulative
time, and writes benchmarks/results/profile[-before].txt. With `--before` this script runs
itself again in a child process with `PYTHONPATH` set to a worktree of 0b37c26
(`common.before_tree()`), so that the old package is the one imported and profiled; the
simulator is today's either way.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, RESULTS, before_env, before_tree, simulator, write_manifest
from scale import CONCURRENCY, SIM

import wanbatch
from wanbatch import cli

AS_BEFORE = "WANBATCH_PROFILE_BEFORE"  # set in the child that profiles the old tree


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--before", action="store_true", help="profile commit 0b37c26 instead")
    args = parser.parse_args(argv)
    if args.before:
        rest = [a for a in argv if a != "--before"]
        with before_tree() as tree:
            env = {**before_env(tree), AS_BEFORE: str(tree)}
            return subprocess.run([PYTHON, __file__, *rest], env=env, check=False).returncode
    tree = os.environ.get(AS_BEFORE)
    loaded = Path(wanbatch.__file__).resolve()
    if tree and not loaded.is_relative_to(Path(tree).resolve()):
        raise RuntimeError(f"meant to profile {tree}, but imported {loaded}")
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
    print(f"{args.jobs} jobs in {seconds:.1f} s under cProfile (exit {code}), {loaded}", file=out)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    text = out.getvalue()
    print(text)
    suffix = "-before" if tree else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"profile{suffix}.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
