"""`wanbatch` with proposed scheduler changes patched in at run time, to measure them first.

    python benchmarks/prototype.py PATCH[,PATCH...] run MANIFEST --base-url URL ...

Nothing under wanbatch/ is edited: this module replaces one method of the installed Runner in
its own process and then calls `wanbatch.cli.main`. The benchmarks run it beside the real
`python -m wanbatch` and label its rows "prototype"; the figures show what a change would buy
before it is made properly (with tests) in wanbatch/scheduler.py.

Patches:

- `pacer`: on a 429, stop the client's token bucket from bursting: its burst drops to one
  request and its saved tokens are spent, so that when the Retry-After pause ends requests
  resume at the steady rate instead of in a burst of `requests_per_second` at once (which the
  server, with a smaller burst of its own, answers with another round of 429s). A 429 that
  carried Retry-After no longer counts against the request's retry attempts.
- `estimator`: the learned first-poll time stops learning from itself. Today
  `RenderTimeEstimator` keeps the median of "first success seen" times, but a task is never seen
  done before its first poll, so every observation is at least the delay it was given plus a
  round trip, and the median ratchets upward (with zero-second renders it climbs to about 1 s
  within 2,000 jobs). Here the first poll's outcome steers the estimate instead: found done at
  once, the estimate shrinks by 10% (it could have polled sooner); found not done, it grows by
  25% (capped at the time the task really took). The estimate then sits where about a third of
  first polls come early.
- `queue`: polls timed by each task's place in the server's queue, never later than the ladder.
  Tasks in flight are numbered in submission order (k = 1, 2, ...). The server's throughput R
  (tasks finished a second) is estimated from the first finish on: it never drops below
  finishes seen / seconds since the first create, and every poll steers it: a poll that finds
  the task done raises R by 5% (it could have come sooner), one that finds it unfinished lowers
  it by 15%. Task k is asked at (first create) + k / R, but no sooner than 6 / R after its
  previous poll and no later than the ladder would ask. A waiting poll re-plans every 50 ms
  as R moves (the scheduler proper would wake it on each finish instead). Steering matters:
  an estimate learned only from finishes *seen* is censored by the poll schedule itself and
  settles at whatever pace the polls set (tried first: 1.23-1.36x the bound).
- `sniffio`: make httpcore's per-request `import sniffio` fail at once instead of searching
  sys.path (sniffio is not installed: anyio 4.16 no longer needs it).
"""

from __future__ import annotations

import contextvars
import dataclasses
import sys
from typing import Any

import anyio

from wanbatch import cli
from wanbatch.backoff import PollPolicy
from wanbatch.errors import TransientApiError
from wanbatch.models import TaskStatus
from wanbatch.scheduler import Runner


def patch_pacer() -> None:
    original = Runner._after_transient

    async def after_transient(
        self: Runner, exc: TransientApiError, attempt: int, what: str, job: Any
    ) -> bool:
        if exc.status == 429:
            pacer = self.admission.pacer
            pacer.burst = 1.0
            pacer._tokens = min(pacer._tokens, 0.0)
            if exc.retry_after_seconds is not None:
                attempt = 1  # the server said when to come back: not a failed attempt
        return await original(self, exc, attempt, what, job)

    Runner._after_transient = after_transient  # type: ignore[method-assign]


class SteeredEstimator:
    """First-poll time per (model, duration), steered by whether the first poll was early."""

    SHRINK = 0.9
    GROW = 1.25

    def __init__(self) -> None:
        self.seconds: dict[Any, float] = {}

    def expect(self, model: str, duration: int) -> float | None:
        return self.seconds.get((model, duration), self.seconds.get("any"))

    def first_poll_outcome(self, model: str, duration: int, done: bool, elapsed: float) -> None:
        for key in ((model, duration), "any"):
            current = self.seconds.get(key)
            if current is None:
                self.seconds[key] = elapsed * (self.SHRINK if done else 1.0)
            elif done:
                self.seconds[key] = min(current, elapsed) * self.SHRINK
            else:
                self.seconds[key] = min(current * self.GROW, elapsed)

    def observe(self, model: str, duration: int, seconds: float) -> None:
        return None  # replaced by first_poll_outcome


def patch_estimator() -> None:
    original_init = Runner.__init__
    original_view = Runner._on_task_view

    def init(self: Runner, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.estimator = SteeredEstimator()  # type: ignore[assignment]
        self._views_seen: dict[str, int] = {}  # type: ignore[attr-defined]

    async def on_task_view(self: Runner, job: Any, view: Any) -> None:
        seen = self._views_seen  # type: ignore[attr-defined]
        seen[job.id] = seen.get(job.id, 0) + 1
        record = self.journal.record(job.id)
        if view.status is TaskStatus.SUCCEEDED and record.submitted_at is not None:
            elapsed = self.timing.wall() - record.submitted_at
            self.estimator.first_poll_outcome(  # type: ignore[attr-defined]
                job.model, job.duration, seen[job.id] == 1, elapsed
            )
            seen.pop(job.id, None)
        await original_view(self, job, view)

    Runner.__init__ = init  # type: ignore[method-assign]
    Runner._on_task_view = on_task_view  # type: ignore[method-assign]


CURRENT_JOB: contextvars.ContextVar[str] = contextvars.ContextVar("job")
_WAKE_SECONDS = 0.05  # a waiting poll re-plans this often as other tasks finish


class QueueState:
    """Tasks in flight in submission order, and what finishing has taught about the server."""

    def __init__(self, ladder: PollPolicy, clock: Any) -> None:
        self.ladder = ladder
        self.clock = clock
        self.seq = 0
        self.pending: dict[str, int] = {}  # job id -> submission number
        self.first_create: float | None = None
        self.finished = 0
        self.last_finish = 0.0
        self.last_poll: dict[str, float] = {}
        self.ladder_deadline: dict[str, float] = {}
        self.rate: float | None = None  # tasks the server finishes a second, steered

    # Tuned by hand on 64 jobs / 8 slots (fixed and lognormal): 1.1 / 0.93 / 2 met the
    # makespan goals at 3.3-3.9 polls a job; these trade a little makespan for ~2.5 polls.
    FASTER = 1.05
    SLOWER = 0.85
    SPACING = 6.0  # a task found unfinished is asked again no sooner than SPACING / rate later

    def submitted(self, job_id: str) -> None:
        if job_id not in self.pending:
            self.seq += 1
            self.pending[job_id] = self.seq
            if self.first_create is None:
                self.first_create = self.clock()

    def done(self, job_id: str) -> None:
        if self.pending.pop(job_id, None) is not None:
            self.finished += 1
            self.last_finish = self.clock()
        self.last_poll.pop(job_id, None)

    def delay(self, polls: int, random: Any, expected: float | None = None) -> float:
        """The ladder's delay, noted as a deadline; ``sleep`` may poll sooner."""
        wait = self.ladder.delay(polls, random, expected)
        job_id = CURRENT_JOB.get(None)
        if job_id is not None:
            self.ladder_deadline[job_id] = self.clock() + wait
        return wait

    def target(self, job_id: str, deadline: float) -> float:
        if self.rate is None or self.first_create is None or job_id not in self.pending:
            return deadline
        eta = self.first_create + self.pending[job_id] / self.rate
        earliest = self.last_poll.get(job_id, -1e9) + self.SPACING / self.rate
        return min(deadline, max(eta, earliest))

    def outcome(self, job_id: str, done: bool) -> None:
        """Steer the throughput: a poll that found the task done could have come sooner."""
        if self.first_create is None:
            return
        # The finishes seen so far are a floor on the throughput; steering moves it above.
        floor = (self.finished + done) / max(1e-3, self.clock() - self.first_create)
        if self.rate is None:
            self.rate = floor if done else None
            return
        self.rate = max(floor, self.rate * (self.FASTER if done else self.SLOWER))

    async def sleep(self, seconds: float) -> None:
        job_id = CURRENT_JOB.get(None)
        deadline = self.ladder_deadline.pop(job_id, None) if job_id is not None else None
        if job_id is None or deadline is None:  # not a poll's wait: retries, the dispatcher
            await anyio.sleep(seconds)
            return
        while True:
            remaining = self.target(job_id, deadline) - self.clock()
            if remaining <= 0:
                break
            await anyio.sleep(min(remaining, _WAKE_SECONDS))
        self.last_poll[job_id] = self.clock()


def patch_queue() -> None:
    original_init = Runner.__init__
    original_poll = Runner._poll_until_done
    original_view = Runner._on_task_view

    def init(self: Runner, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        state = QueueState(self.options.poll, self.timing.clock)
        self._queue = state  # type: ignore[attr-defined]
        self.options = dataclasses.replace(self.options, poll=state)  # type: ignore[arg-type]
        self.timing = dataclasses.replace(self.timing, sleep=state.sleep)

    async def poll_until_done(self: Runner, job: Any) -> None:
        CURRENT_JOB.set(job.id)
        self._queue.submitted(job.id)  # type: ignore[attr-defined]
        try:
            await original_poll(self, job)
        finally:
            self._queue.done(job.id)  # type: ignore[attr-defined]

    async def on_task_view(self: Runner, job: Any, view: Any) -> None:
        done = view.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)
        self._queue.outcome(job.id, done)  # type: ignore[attr-defined]
        if done:
            self._queue.done(job.id)  # type: ignore[attr-defined]
        await original_view(self, job, view)

    Runner.__init__ = init  # type: ignore[method-assign]
    Runner._poll_until_done = poll_until_done  # type: ignore[method-assign]
    Runner._on_task_view = on_task_view  # type: ignore[method-assign]


def patch_sniffio() -> None:
    """httpcore runs `import sniffio` on every request; absent, each try walks sys.path.

    A None in sys.modules makes the failed import immediate; installing sniffio (a dependency
    of anyio < 4.5 that newer anyio dropped) would do as well.
    """
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


PATCHES = {
    "pacer": patch_pacer,
    "estimator": patch_estimator,
    "queue": patch_queue,
    "sniffio": patch_sniffio,
}


def main(argv: list[str]) -> int:
    names, *rest = argv
    for name in names.split(","):
        PATCHES[name]()
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
