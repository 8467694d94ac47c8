"""Poll schedulers on a family of workloads, in a discrete-event simulation on a simulated clock.

No sockets, no sleeping, no anyio: a heap of timed callbacks drives a model server and one client
policy per run, so a whole family of workloads runs in seconds and every figure is reproducible
from its seed.

The server: S render slots, FIFO (a task created at t starts when the first slot frees, renders
for a drawn time); a poll answers "queued", "running" or "succeeded" (an opaque server says
"running" while queued); every request takes a fixed round trip (evaluated half way); an optional
token bucket the client is not told about answers 429 with ``Retry-After: ceil(wait)`` (>= 1 s).
Each job's video then downloads in ``download_seconds`` (unlimited in parallel).

The clients: ``poll-1s``/``poll-2s``/``poll-5s`` (a pool of C workers: create, sleep P, GET until
done; a 429 just sleeps P), ``before`` (today's schedule, ``benchmarks/before_schedule.py``) and
``new`` (``wanbatch.planner.PollPlanner`` with ``wanbatch.ratelimit``'s pacer and gate).

Measures per (workload, client, seed): makespan (first create sent to last download done),
bound (the server's FIFO schedule of the drawn render times on min(C, S) slots plus one download;
with a rate limit r, at least (2N - burst) / r), their ratio, polls and requests per job (429s
included), 429s as % of requests, and requests sent inside a Retry-After window (sent after the
429 that announced it had reached the client, arriving before the window ends; requests that were
already on the wire are only counted in the JSON's ``arrived_inside_retry_after``). Heavy-tailed renders are Pareto (alpha 1.8) scaled so the median is as given.

    python benchmarks/family.py                        # every workload, seeds 1-5, every client
    python benchmarks/family.py --quick                # seeds 1-2
    python benchmarks/family.py --seeds 101-105        # the held-out seeds
    python benchmarks/family.py --only tight-told,hidden-slot --clients new,poll-1s

Writes ``benchmarks/results/family[-quick][-seeds-A-B].json`` (every row) and ``.md`` (the
tables), and prints the tables: per workload and client the median and worst makespan/bound
over seeds, and the issue's goals for ``new`` (and ``before``, for reference) met or not.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from before_schedule import DEFAULT_REQUESTS_PER_SECOND, KIND, BeforeClient, later
from common import RESULTS, fifo_slot_bound, save, table

CLIENTS = ["new", "before", "poll-1s", "poll-2s", "poll-5s"]
DEFAULT_SEEDS = range(1, 6)
QUICK_SEEDS = range(1, 3)
MAX_EVENTS = 50_000_000  # a runaway policy stops here instead of hanging


# --- workloads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One member of the family. ``shape``: ("uniform", lo, hi), ("lognormal", median, sigma),
    ("bimodal", median) (50/50 of 0.43x and 2x), ("pareto", median, alpha) or ("fixed", s)."""

    name: str
    jobs: int
    slots: int
    concurrency: int
    shape: tuple[Any, ...]
    server_rps: float | None = None  # the server's own limit, not told to the client
    server_burst: float | None = None  # default: server_rps
    told_rps: float | None = None  # `requests_per_second` in the manifest (fixed pollers ignore)
    opaque: bool = False  # "running" while queued
    latency: float = 0.03
    download_seconds: float = 0.2

    @property
    def burst(self) -> float:
        return self.server_burst or self.server_rps or 0.0

    @property
    def median_render(self) -> float:
        kind, *args = self.shape
        return (args[0] + args[1]) / 2 if kind == "uniform" else args[0]

    def draw(self, rng: random.Random) -> float:
        kind, *args = self.shape
        if kind == "uniform":
            return rng.uniform(args[0], args[1])
        if kind == "lognormal":
            return rng.lognormvariate(math.log(args[0]), args[1])
        if kind == "bimodal":
            return args[0] * (0.43 if rng.random() < 0.5 else 2.0)
        if kind == "pareto":  # median of x_m * Pareto(alpha) is x_m * 2 ** (1 / alpha)
            return args[0] / 2 ** (1 / args[1]) * rng.paretovariate(args[1])
        if kind == "fixed":
            return float(args[0])
        raise ValueError(f"unknown shape {kind!r}")


QUEUE = {"jobs": 96, "slots": 8, "concurrency": 24}
SLOT = {"jobs": 48, "slots": 8, "concurrency": 8}
WORKLOADS = [
    Workload("slot-uniform", **SLOT, shape=("uniform", 2.0, 6.0)),
    Workload("slot-lognormal", **SLOT, shape=("lognormal", 3.5, 0.5)),
    Workload("slot-bimodal", **SLOT, shape=("bimodal", 3.5)),
    Workload("slot-heavy", **SLOT, shape=("pareto", 3.5, 1.8)),
    Workload("queue-uniform", **QUEUE, shape=("uniform", 1.0, 3.0)),
    Workload("queue-lognormal", **QUEUE, shape=("lognormal", 2.0, 0.5)),
    Workload("long-15-30", jobs=12, slots=4, concurrency=4, shape=("uniform", 15.0, 30.0)),
    Workload("long-lognormal-60", jobs=24, slots=8, concurrency=8, shape=("lognormal", 60.0, 0.5)),
    Workload("long-200-400", jobs=16, slots=4, concurrency=4, shape=("uniform", 200.0, 400.0)),
    Workload("hidden-slot", **SLOT, shape=("uniform", 2.0, 6.0), server_rps=5.0),
    Workload("hidden-queue", **QUEUE, shape=("uniform", 1.0, 3.0), server_rps=5.0),
    Workload(
        "tight-told",
        jobs=1000,
        slots=200,
        concurrency=200,
        shape=("fixed", 5.0),
        server_rps=20.0,
        server_burst=10.0,
        told_rps=20.0,
    ),
    Workload("opaque-queue", **QUEUE, shape=("uniform", 1.0, 3.0), opaque=True),
]


def render_times(work: Workload, seed: int) -> list[float]:
    """The render time of the i-th create the server accepts; one ``Random(seed)`` draws all."""
    rng = random.Random(seed)
    return [work.draw(rng) for _ in range(work.jobs)]


def bound(work: Workload, renders: list[float]) -> float:
    slots = fifo_slot_bound(renders, min(work.concurrency, work.slots))
    limit = min(r for r in (work.server_rps, work.told_rps, math.inf) if r is not None)
    burst = work.burst or limit
    requests = (2 * work.jobs - burst) / limit if limit < math.inf else 0.0
    return max(slots + work.download_seconds, requests)


# --- the event loop and the server ------------------------------------------------------------


class Loop:
    """A simulated clock: a heap of (time, sequence, callback, args), run in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, fn, args))

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + delay, fn, *args)

    def run(self) -> None:
        heap = self._heap
        while heap:
            self.now, _, fn, args = heapq.heappop(heap)
            fn(*args)
            self.events += 1
            if self.events > MAX_EVENTS:
                raise RuntimeError(f"more than {MAX_EVENTS} events: a runaway client")


@dataclass(slots=True)
class Reply:
    status: int  # 200 or 429
    task: str = ""
    state: str = ""  # queued, running, succeeded
    retry_after: int = 0


class Server:
    """FIFO render slots, a hidden token bucket, and the counters the tables report."""

    def __init__(self, loop: Loop, work: Workload, renders: list[float]) -> None:
        self.loop = loop
        self.work = work
        self.renders = renders
        self.half = work.latency / 2
        self.free = [0.0] * work.slots
        self.tasks: dict[str, tuple[float, float]] = {}  # task id -> (start, finish)
        self.tokens = work.burst
        self.updated = 0.0
        self.windows: deque[tuple[float, float]] = deque()  # (client told at, window end)
        self.told_until = -math.inf  # the latest window end the client had been told of
        self.blocked_until = -math.inf  # the latest window end announced at all
        self.first_create: float | None = None
        self.counts: Counter[str] = Counter()

    def send(self, kind: str, task: str, on_reply: Callable[[Reply], None]) -> None:
        """A request leaves the client now; the server sees it half a round trip later."""
        self.counts[kind] += 1
        if kind == "create" and self.first_create is None:
            self.first_create = self.loop.now
        self.loop.after(self.half, self._arrive, kind, task, on_reply)

    def _arrive(self, kind: str, task: str, on_reply: Callable[[Reply], None]) -> None:
        now = self._count_windows(self.loop.now)
        wait = self._take_token(now)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            self.counts["throttled"] += 1
            self.blocked_until = max(self.blocked_until, now + seconds)
            self.windows.append((now + self.half, now + seconds))
            reply = Reply(429, task, retry_after=seconds)
        elif kind == "create":
            reply = Reply(200, self._create(now), "queued")
        else:
            reply = Reply(200, task, self._state(task, now))
        self.loop.after(self.half, on_reply, reply)

    def _count_windows(self, now: float) -> float:
        """Count a request sent inside a Retry-After window the client had already been told of
        (its 429 answered before this request left), and, apart, any arriving inside one."""
        if now < self.blocked_until:
            self.counts["arrived_inside_retry_after"] += 1
        sent = now - self.half
        while self.windows and self.windows[0][0] <= sent:
            self.told_until = max(self.told_until, self.windows.popleft()[1])
        if now < self.told_until:
            self.counts["inside_retry_after"] += 1
        return now

    def _take_token(self, now: float) -> float | None:
        rate = self.work.server_rps
        if not rate:
            return None
        burst = self.work.burst
        self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / rate

    def _create(self, now: float) -> str:
        task = str(len(self.tasks))
        start = max(now, heapq.heappop(self.free))
        finish = start + self.renders[len(self.tasks)]
        heapq.heappush(self.free, finish)
        self.tasks[task] = (start, finish)
        return task

    def _state(self, task: str, now: float) -> str:
        start, finish = self.tasks[task]
        if now >= finish:
            return "succeeded"
        return "running" if now >= start or self.work.opaque else "queued"


class Sim:
    """One run: the loop, the server, and what clients call."""

    def __init__(self, work: Workload, seed: int) -> None:
        self.work = work
        self.seed = seed
        self.loop = Loop()
        self.renders = render_times(work, seed)
        self.server = Server(self.loop, work, self.renders)
        self.done = 0
        self.left = 0
        self.last_done = 0.0

    def create(self, on_reply: Callable[[Reply], None]) -> None:
        self.server.send("create", "", on_reply)

    def poll(self, task: str, on_reply: Callable[[Reply], None]) -> None:
        self.server.send("poll", task, on_reply)

    def rendered(self) -> None:
        """A task was seen done: its download starts now."""
        self.loop.after(self.work.download_seconds, self._downloaded)

    def gave_up(self) -> None:
        self.left += 1

    def _downloaded(self) -> None:
        self.done += 1
        self.last_done = self.loop.now


# --- clients ----------------------------------------------------------------------------------


class FixedPoller:
    """What users write: C workers, each creates, then sleeps P and GETs until done. A 429 is
    answered by sleeping P and trying again (Retry-After is not read)."""

    def __init__(self, sim: Sim, period: float) -> None:
        self.sim = sim
        self.period = period
        self.jobs_left = sim.work.jobs
        self.reasons: Counter[str] = Counter()

    def start(self) -> None:
        for _ in range(min(self.sim.work.concurrency, self.jobs_left)):
            self._next_job()

    def _next_job(self) -> None:
        if self.jobs_left > 0:
            self.jobs_left -= 1
            self._create()

    def _create(self) -> None:
        self.sim.create(self._created)

    def _created(self, reply: Reply) -> None:
        if reply.status == 429:
            self.sim.loop.after(self.period, self._create)
        else:
            self.sim.loop.after(self.period, self._poll, reply.task)

    def _poll(self, task: str) -> None:
        self.sim.poll(task, self._polled)

    def _polled(self, reply: Reply) -> None:
        if reply.status == 200 and reply.state == "succeeded":
            self.sim.rendered()
            self._next_job()
        else:
            self.sim.loop.after(self.period, self._poll, reply.task)


CREATE, POLL = 0, 1  # the new admission's order: a create starts a render at once


class NewClient:
    """The new scheduler's pure parts (``wanbatch.planner``, ``wanbatch.ratelimit``), driven the
    way its runner does: each task sleeps until ``next_poll``, re-asked when ``version`` moves;
    a due poll or a create waits for the gate and a token; polls go first, earliest plan first."""

    def __init__(self, sim: Sim) -> None:
        from wanbatch.planner import PollPlanner, Seen
        from wanbatch.ratelimit import HostGate, RequestPacer

        self.sim = sim
        self.loop = sim.loop
        self.seen = {"queued": Seen.PENDING, "running": Seen.RUNNING, "succeeded": Seen.DONE}
        self.planner = PollPlanner()
        self.pacer = RequestPacer.for_limit(sim.work.told_rps, sim.work.concurrency)
        self.gate = HostGate()
        self.version = self.planner.version
        self.queue: list[tuple[int, float, int, str]] = []  # (priority, planned at, seq, task)
        self.seq = 0
        self.wake_at: float | None = None  # the dispatcher's next look, if one is scheduled
        self.sleeping: dict[str, int] = {}  # task -> token of its live timer
        self.plans: dict[str, tuple[float, str]] = {}  # task -> (next poll at, reason)
        self.unassigned = sim.work.jobs  # jobs holding no concurrency slot yet
        self.not_created = sim.work.jobs
        self.in_flight = 0
        self.reasons: Counter[str] = Counter()

    def start(self) -> None:
        self.planner.backlog(self.not_created)
        self._fill()
        self._sync()

    def _fill(self) -> None:
        while self.in_flight < self.sim.work.concurrency and self.unassigned > 0:
            self.unassigned -= 1
            self.in_flight += 1
            self._enqueue(CREATE, 0.0, "")

    # --- admission: the gate, the pacer, and the order of waiting requests -------------------

    def _enqueue(self, priority: int, planned: float, task: str) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (priority, planned, self.seq, task))
        if self.wake_at is None:  # a scheduled look is not moved: waiting does not shorten
            self.wake_at = self.loop.now
            self.loop.at(self.loop.now, self._dispatch)

    def _dispatch(self) -> None:
        self.wake_at = None
        while self.queue:
            now = self.loop.now
            wait = max(self.gate.delay(now), self.pacer.wait_time(now))
            if wait > 0:
                self.wake_at = later(now, wait)
                self.loop.at(self.wake_at, self._dispatch)
                return
            _, planned, _, task = heapq.heappop(self.queue)
            self.pacer.take(now)
            if task:
                self.planner.waited(now - planned if self.pacer.settled else 0.0)
            # The runner re-checks the gate after a grant; here grant and send are one instant.
            if task:
                self.sim.poll(task, self._polled)
            else:
                self.sim.create(self._created)

    def _throttled(self, reply: Reply) -> None:
        now = self.loop.now
        self.pacer.throttle(now)
        self.gate.block_for(reply.retry_after, now)

    # --- answers ----------------------------------------------------------------------------

    def _created(self, reply: Reply) -> None:
        if reply.status == 429:
            self._throttled(reply)
            self._enqueue(CREATE, 0.0, "")
            return
        now = self.loop.now
        self.not_created -= 1
        self.planner.submitted(reply.task, KIND, now)
        self.planner.backlog(self.not_created)
        self._sleep(reply.task)
        self._sync()

    def _polled(self, reply: Reply) -> None:
        task = reply.task
        if reply.status == 429:
            self._throttled(reply)
            self._enqueue(POLL, self.plans[task][0], task)
            return
        seen = self.seen[reply.state]
        self.planner.observe(task, self.loop.now, seen)
        if seen is self.seen["succeeded"]:
            del self.plans[task]
            self.in_flight -= 1
            self.sim.rendered()
            self._fill()
        else:
            self._sleep(task)
        self._sync()

    # --- sleeping tasks ---------------------------------------------------------------------

    def _sleep(self, task: str) -> None:
        at, reason = self.planner.next_poll(task, self.loop.now)
        self.plans[task] = (at, reason)
        token = self.sleeping.get(task, 0) + 1
        self.sleeping[task] = token
        self.loop.at(at, self._due, task, token)

    def _due(self, task: str, token: int) -> None:
        if self.sleeping.get(task) != token:
            return  # re-planned since
        del self.sleeping[task]
        at, reason = self.plans[task]
        self.reasons[reason] += 1
        self._enqueue(POLL, at, task)

    def _sync(self) -> None:
        """The plan moved: every sleeping task asks for its time again."""
        if self.planner.version == self.version:
            return
        self.version = self.planner.version
        for task in list(self.sleeping):
            self._sleep(task)


def make_client(name: str, sim: Sim) -> Any:
    if name == "new":
        return NewClient(sim)
    if name == "before":
        rps = sim.work.told_rps or DEFAULT_REQUESTS_PER_SECOND
        rng = random.Random(10_000 + sim.seed)
        return BeforeClient(sim, requests_per_second=rps, random=rng.random)
    if name.startswith("poll-") and name.endswith("s"):
        return FixedPoller(sim, float(name[5:-1]))
    raise ValueError(f"unknown client {name!r}")


# --- one run, and the tables ------------------------------------------------------------------


def run_one(work: Workload, client_name: str, seed: int) -> dict[str, Any]:
    sim = Sim(work, seed)
    client = make_client(client_name, sim)
    client.start()
    sim.loop.run()
    counts = sim.server.counts
    requests = counts["create"] + counts["poll"]
    makespan = sim.last_done - (sim.server.first_create or 0.0)
    limit = bound(work, sim.renders)
    return {
        "workload": work.name,
        "client": client_name,
        "seed": seed,
        "jobs": work.jobs,
        "done": sim.done,
        "gave_up": sim.left,
        "makespan": round(makespan, 3),
        "bound": round(limit, 3),
        "ratio": round(makespan / limit, 4),
        "polls_per_job": round(counts["poll"] / work.jobs, 3),
        "requests_per_job": round(requests / work.jobs, 3),
        "throttled": counts["throttled"],
        "throttled_pct": round(100 * counts["throttled"] / max(1, requests), 2),
        "inside_retry_after": counts["inside_retry_after"],
        "arrived_inside_retry_after": counts["arrived_inside_retry_after"],
        "reasons": dict(client.reasons),
        "events": sim.loop.events,
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload and client, across seeds: median and worst ratio, the rest as medians/max."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["workload"], row["client"]), []).append(row)
    out = []
    for (name, client), group in groups.items():
        ratios = [r["ratio"] for r in group]
        out.append(
            {
                "workload": name,
                "client": client,
                "done": f"{min(r['done'] for r in group)}/{group[0]['jobs']}",
                "bound s": f"{statistics.median(r['bound'] for r in group):.1f}",
                "makespan s": f"{statistics.median(r['makespan'] for r in group):.1f}",
                "ratio median": f"{statistics.median(ratios):.3f}",
                "ratio worst": f"{max(ratios):.3f}",
                "polls/job": f"{statistics.median(r['polls_per_job'] for r in group):.2f}",
                "requests/job": f"{statistics.median(r['requests_per_job'] for r in group):.2f}",
                "429 % max": f"{max(r['throttled_pct'] for r in group):.1f}",
                "inside RA max": max(r["inside_retry_after"] for r in group),
            }
        )
    return out


def pivot(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per workload: each client's makespan/bound median/worst and requests/job."""
    out: dict[str, dict[str, Any]] = {}
    for row in summarize(rows):
        line = out.setdefault(row["workload"], {"workload": row["workload"]})
        line["bound s"] = row["bound s"]
        line[row["client"]] = f"{row['ratio median']}/{row['ratio worst']} {row['requests/job']}r"
    return list(out.values())


def _verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def goals_for(work: Workload, client: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals for ``client`` on one workload, from this run's rows (paired by seed)."""
    mine = {r["seed"]: r for r in rows if r["workload"] == work.name and r["client"] == client}
    base = {r["seed"]: r for r in rows if r["workload"] == work.name and r["client"] == "poll-1s"}
    if not mine:
        return []
    out = []

    def goal(text: str, measured: str, ok: bool) -> None:
        row = {"workload": work.name, "client": client, "goal": text, "measured": measured}
        out.append({**row, "status": _verdict(ok)})

    paired = sorted(set(mine) & set(base))
    if paired:
        gap = max(mine[s]["ratio"] - base[s]["ratio"] for s in paired)
        goal("(a) makespan/bound - poll-1s's, worst seed <= 0.03", f"{gap:+.3f}", gap <= 0.03)
        cap = 0.35 if work.median_render > 15 else 0.8
        share = max(mine[s]["requests_per_job"] / base[s]["requests_per_job"] for s in paired)
        goal(f"(b) requests/job <= {cap} x poll-1s's, worst seed", f"{share:.3f}x", share <= cap)
    if work.server_rps and not work.told_rps:
        worst = max(r["ratio"] for r in mine.values())
        pct = max(r["throttled_pct"] for r in mine.values())
        inside = max(r["inside_retry_after"] for r in mine.values())
        goal("(c) hidden limit: makespan/bound <= 1.30", f"{worst:.3f}", worst <= 1.30)
        goal("(c) hidden limit: 429s < 5 % of requests", f"{pct:.1f} %", pct < 5)
        goal("(c) hidden limit: none inside Retry-After", str(inside), inside == 0)
    if work.told_rps:
        worst = max(r["ratio"] for r in mine.values())
        goal("(d) tight told budget: makespan/bound <= 1.10", f"{worst:.3f}", worst <= 1.10)
    return out


# --- command line -----------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seeds 1-2 instead of 1-5")
    parser.add_argument("--seeds", help="e.g. 1-5 or 101-105 or 1,3,7")
    parser.add_argument("--only", help="workload names, comma-separated")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    args = parser.parse_args()
    seeds = (
        parse_seeds(args.seeds)
        if args.seeds
        else list(QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    )
    works = select(args.only)
    clients = args.clients.split(",")
    if "new" in clients and not planner_available():
        print("wanbatch.planner is not there yet: skipping the `new` client", file=sys.stderr)
        clients.remove("new")
    started = time.perf_counter()
    rows = [run_one(w, c, s) for w in works for c in clients for s in seeds]
    seconds = time.perf_counter() - started
    report = render(works, clients, rows, seeds, seconds)
    print(report)
    name = "family" + (f"-seeds-{args.seeds.replace(',', '_')}" if args.seeds else "")
    path = save(name, args.quick, rows, seeds=seeds, clients=clients, seconds=round(seconds, 2))
    path.with_suffix(".md").write_text(report + "\n")
    print(f"\nwrote {path} and {path.with_suffix('.md').relative_to(RESULTS.parent.parent)}")


def select(only: str | None) -> list[Workload]:
    if not only:
        return WORKLOADS
    names = only.split(",")
    unknown = set(names) - {w.name for w in WORKLOADS}
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    return [w for w in WORKLOADS if w.name in names]


def planner_available() -> bool:
    try:
        import wanbatch.planner  # noqa: F401
    except ImportError:
        return False
    return True


def render(
    works: list[Workload],
    clients: list[str],
    rows: list[dict[str, Any]],
    seeds: list[int],
    seconds: float,
) -> str:
    columns = list(summarize(rows[:1])[0]) if rows else []
    goals = [
        g for w in works for c in ("new", "before") if c in clients for g in goals_for(w, c, rows)
    ]
    parts = [
        f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), {len(rows)} runs in {seconds:.1f} s",
        "",
        table(summarize(rows), columns),
        "",
        "makespan/bound median/worst over seeds, and requests/job (median):",
        "",
        table(pivot(rows), ["workload", "bound s", *clients]),
    ]
    if goals:
        parts += ["", table(goals, ["workload", "client", "goal", "measured", "status"])]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
