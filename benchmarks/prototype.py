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
"""

from __future__ import annotations

import sys
from typing import Any

from wanbatch import cli
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


PATCHES = {"pacer": patch_pacer, "estimator": patch_estimator}


def main(argv: list[str]) -> int:
    names, *rest = argv
    for name in names.split(","):
        PATCHES[name]()
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
