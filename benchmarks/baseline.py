"""`wanbatch` with a shipped improvement switched off, to measure before and after in one run.

    python benchmarks/baseline.py PATCH[,PATCH...] run MANIFEST --base-url URL ...

Nothing under wanbatch/ is edited: this module changes the installed Runner in its own process
and then calls `wanbatch.cli.main`. The benchmarks run it beside the real `python -m wanbatch`
and label its rows "before: PATCH", so each table shows what a change bought, side by side.

Patches:

- `ladder`: polls on the capped geometric ladder only (2 s, then x1.5), with the first poll
  moved by the learned first-poll estimate: the schedule before the queue planner
  (`QueuePlanner` in wanbatch/backoff.py).
- `burst`: after a 429 the client's token bucket keeps its burst of `requests_per_second`
  tokens and its rate, and a 429 with Retry-After counts as a failed attempt like any other:
  the request budget before `RequestPacer.throttle`.
- `median`: the first poll is timed by the median of "first seen done" times, as before
  `FirstPollEstimator`; that median only grows, since a task is never seen done before its
  first poll.

Not a patch: sniffio. httpcore runs `import sniffio` on every request; without the package
installed (anyio >= 4.5 no longer brings it) each import fails only after searching sys.path.
Its "before" is measured by uninstalling it (BENCHMARKS.md gives the commands).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from wanbatch import cli
from wanbatch.ratelimit import RequestPacer
from wanbatch.scheduler import Runner


def patch_ladder() -> None:
    original_init = Runner.__init__

    def init(self: Runner, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.options = dataclasses.replace(self.options, queue_aware_polls=False)

    Runner.__init__ = init  # type: ignore[method-assign]


def patch_burst() -> None:
    RequestPacer.throttle = lambda self, now: None  # type: ignore[method-assign]
    original_init = Runner.__init__

    def init(self: Runner, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        retry = dataclasses.replace(
            self.options.retry, max_attempts_told_when=self.options.retry.max_attempts
        )
        self.options = dataclasses.replace(self.options, retry=retry)

    Runner.__init__ = init  # type: ignore[method-assign]


class MedianEstimator:
    """The median of "first seen done" seconds per (model, duration), over the last 50."""

    def __init__(self) -> None:
        self.samples: dict[Any, list[float]] = {}

    def expect(self, model: str, duration: int) -> float | None:
        samples = self.samples.get((model, duration)) or self.samples.get("any")
        return sorted(samples)[len(samples) // 2] if samples else None

    def first_poll(self, model: str, duration: int, *, done: bool, elapsed: float) -> None:
        for key in ((model, duration), "any"):
            bucket = self.samples.setdefault(key, [])
            bucket.append(elapsed)
            del bucket[:-50]


def patch_median() -> None:
    original_init = Runner.__init__

    def init(self: Runner, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.estimator = MedianEstimator()  # type: ignore[assignment]

    Runner.__init__ = init  # type: ignore[method-assign]


PATCHES = {
    "ladder": patch_ladder,
    "burst": patch_burst,
    "median": patch_median,
}


def main(argv: list[str]) -> int:
    names, *rest = argv
    for name in names.split(","):
        PATCHES[name]()
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
