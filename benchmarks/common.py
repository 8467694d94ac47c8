"""Shared pieces of the benchmarks: a simulator in its own process, wanbatch as a subprocess.

Nothing here is a test. Every request goes to 127.0.0.1 (the simulator binds loopback only), and
every request loop is bounded by a job count.

"before" is the package as it was at ``BEFORE_COMMIT``: ``before_tree()`` checks that commit out
as a git worktree, and ``run_wanbatch(..., before=tree)`` runs ``python -m wanbatch`` from it
(``PYTHONPATH=tree``, in a directory with no ``wanbatch/`` of its own, so that the old copy is
the one imported; checked once per tree). The simulator is always today's, run from the
repository root, so every client meets the same server.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PYTHON = sys.executable
BEFORE_COMMIT = "0b37c26"  # the last commit before the scheduler rewrite
BEFORE_TREE = Path("/tmp/wanbatch-before")


def _without_pythonpath() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@contextmanager
def simulator(**knobs: Any) -> Iterator[dict[str, str]]:
    """`python -m wanbatch.simulator` in a separate process; yields its URLs and key.

    Always today's simulator (run from the repository root, no PYTHONPATH), whichever client
    is measured against it.
    """
    argv = [PYTHON, "-m", "wanbatch.simulator", "--json", "--port", "0"]
    for name, value in knobs.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_without_pythonpath()
    )
    try:
        assert child.stdout is not None
        info: dict[str, str] = json.loads(child.stdout.readline())
        assert info["base_url"].startswith("http://127.0.0.1:"), info
        yield info
    finally:
        child.terminate()
        child.wait(timeout=10)


def sim_stats(info: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{info['admin_url']}/stats", timeout=30)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    # The per-key and per-task maps are large at scale and not needed by any table.
    for name in ("creates_by_idempotency_key", "creates_by_prompt", "polls_by_task"):
        stats.pop(name, None)
    return stats


# --- bounds -----------------------------------------------------------------------------------


def seeded_render_times(count: int, **knobs: Any) -> list[float]:
    """The render times the simulator draws for its first ``count`` creates, in order.

    The simulator's randomness is one ``random.Random(seed)`` drawn from in a fixed order per
    create (the render time, the task id, the failure draw), and nowhere else while
    ``error_rate`` is 0 (429s draw nothing). Driving a fresh ``SimState`` with the same knobs
    through ``count`` creates therefore yields the very render times the server process used,
    whatever the distribution; they are taken from ``render_seconds`` itself (not ``finish -
    start``, which rounds at wall-clock magnitudes). Callers check the sum and maximum against
    the server's ``render_seconds_total`` and ``render_seconds_max``.
    """
    from wanbatch.simulator.app import SimState
    from wanbatch.simulator.config import SimConfig

    state = SimState(SimConfig().replace(**knobs))
    draw = state.render_seconds
    times: list[float] = []

    def recorded() -> float:
        times.append(draw())
        return times[-1]

    state.render_seconds = recorded  # type: ignore[method-assign]
    body = {"model": "wan-2-2", "prompt": "x", "duration": 5}
    for _ in range(count):
        state.create_task(state.config.api_key, body, None)
    assert len(times) == count
    return times


def check_render_times(times: list[float], stats: dict[str, Any]) -> None:
    """The replayed draws must be the server's own (sum and maximum of what it rendered)."""
    assert abs(sum(times) - stats["render_seconds_total"]) < 1e-6 * max(1.0, sum(times)), stats
    assert abs(max(times) - stats["render_seconds_max"]) < 1e-6 * max(1.0, max(times)), stats


def fifo_slot_bound(render_times: list[float], slots: int) -> float:
    """Makespan of the server's own FIFO slot schedule if every create arrived at time 0.

    The simulator gives the i-th create the slot that frees first. The finish times are monotone
    in the arrival times, so no client can finish the renders sooner than this.
    """
    free = [0.0] * slots
    end = 0.0
    for seconds in render_times:
        finish = heapq.heappop(free) + seconds
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


def slot_bound(render_times: list[float], *, slots: int, concurrency: int) -> float:
    """FIFO bound on min(concurrency, slots) slots: with C < S jobs in flight, C slots are used."""
    return fifo_slot_bound(render_times, max(1, min(slots, concurrency)))


def fixed_slot_bound(jobs: int, slots: int, seconds: float) -> float:
    return math.ceil(jobs / slots) * seconds


# --- manifests and wanbatch runs ---------------------------------------------------------------


def write_manifest(
    folder: Path,
    jobs: int,
    *,
    concurrency: int,
    requests_per_second: float | None,
    downloads: int = 8,
    name: str = "bench",
) -> Path:
    """A YAML manifest of ``jobs`` one-line jobs; ``requests_per_second=None`` leaves it out."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    lines = [f"name: {name}", "limits:", f"  concurrency: {concurrency}"]
    if requests_per_second is not None:
        lines.append(f"  requests_per_second: {requests_per_second}")
    lines += [
        f"  downloads: {downloads}",
        "output:",
        "  dir: out",
        '  path: "{id}.mp4"',
        "jobs:",
    ]
    lines += [f"  - {{id: j{i:06d}, prompt: 'benchmark clip number {i}'}}" for i in range(jobs)]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class WanbatchRun:
    process_seconds: float  # fork to exit, interpreter start and imports included
    cpu_seconds: float  # user + system of the wanbatch process
    peak_rss_mb: float
    exit_code: int
    stdout: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def first(self, kind: str) -> float:
        return min(e["at"] for e in self.events if e["ev"] == kind)

    def last(self, kind: str) -> float:
        return max(e["at"] for e in self.events if e["ev"] == kind)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e["ev"] == kind)

    @property
    def makespan(self) -> float:
        """First create sent (its intent record) to last video on disk, from the journal."""
        return self.last("downloaded") - self.first("intent")

    def summary_count(self, label: str) -> int:
        match = re.search(rf"(\d+) {label}", self.stdout)
        return int(match.group(1)) if match else 0


@contextmanager
def before_tree(commit: str = BEFORE_COMMIT, path: Path = BEFORE_TREE) -> Iterator[Path]:
    """``commit`` checked out as a git worktree at ``path``, for ``run_wanbatch(before=...)``.

    A worktree already there at that commit is reused and left in place; one made here is
    removed (``git worktree remove --force``) on the way out.
    """
    full = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    made = False
    if path.exists():
        head = _git("-C", str(path), "rev-parse", "HEAD")
        if head != full:
            raise RuntimeError(f"{path} is at {head[:12]}, not {commit}: move it away first")
    else:
        _git("worktree", "add", "--detach", str(path), full)
        made = True
    try:
        check_before_import(path)
        yield path
    finally:
        if made:
            _CHECKED_TREES.discard(path)
            _git("worktree", "remove", "--force", str(path))


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=120
    )
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


_CHECKED_TREES: set[Path] = set()


def before_env(tree: Path) -> dict[str, str]:
    return {**_without_pythonpath(), "PYTHONPATH": str(tree)}


def check_before_import(tree: Path) -> None:
    """``PYTHONPATH=tree python -c 'import wanbatch'`` in an empty folder loads the old tree."""
    if tree in _CHECKED_TREES:
        return
    scratch = Path(tempfile.mkdtemp(prefix="wanbatch-before-check-"))
    try:
        loaded = subprocess.run(
            [PYTHON, "-c", "import wanbatch; print(wanbatch.__file__)"],
            env=before_env(tree),
            cwd=scratch,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not Path(loaded).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"PYTHONPATH={tree} imports {loaded}, not the old tree")
    _CHECKED_TREES.add(tree)


def run_wanbatch(
    info: dict[str, str],
    manifest: Path,
    *,
    poll_interval: float | None = None,
    timeout: float = 900,
    before: Path | None = None,
    sample_seconds: float = 0.005,
) -> WanbatchRun:
    """`python -m wanbatch run MANIFEST -q` in a subprocess; rusage from ``os.wait4``.

    ``before``: a tree from ``before_tree()``, run instead of today's package. The child runs
    in the manifest's folder either way, so that no ``wanbatch/`` in the current directory can
    shadow the copy meant. ``sample_seconds``: how often its peak RSS is read while it runs.
    """
    argv = [PYTHON, "-m", "wanbatch", "run", str(manifest), "--base-url", info["base_url"], "-q"]
    if poll_interval is not None:
        argv += ["--poll-interval", str(poll_interval)]
    if before is not None:
        check_before_import(before)
        env = before_env(before)
    else:
        env = _without_pythonpath()
    env["WAN_API_KEY"] = info["api_key"]
    out_path = manifest.parent / "wanbatch.stdout"
    with open(out_path, "w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, env=env, cwd=manifest.parent, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = started + timeout
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, high_water_kb(child.pid))
            if time.perf_counter() > deadline:
                child.kill()
                raise TimeoutError(f"wanbatch ran longer than {timeout} s")
            time.sleep(sample_seconds)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    journal = manifest.parent / "out" / ".wanbatch" / "journal.jsonl"
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    events = [e for e in events if "job" in e]
    return WanbatchRun(
        process_seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=peak_kb / 1024,
        exit_code=child.returncode,
        stdout=out_path.read_text(),
        events=events,
    )


def high_water_kb(pid: int | str = "self") -> int:
    """Peak RSS (VmHWM) of a live process, in KiB; 0 once it is gone.

    Not ``ru_maxrss``: on Linux that survives ``exec``, so a child forked from a large parent
    reports the parent's size as its own floor.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- reporting --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def save(name: str, quick: bool, rows: list[dict[str, Any]], **extra: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{name}-quick.json" if quick else f"{name}.json")
    payload = {"command": " ".join([Path(PYTHON).name, *sys.argv]), "machine": machine()}
    payload.update(extra)
    payload["rows"] = rows
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of ``columns`` from ``rows``."""
    text = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        text.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(text)
