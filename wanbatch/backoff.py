"""How long to wait: retry backoff, poll spacing and ``Retry-After``. Pure; randomness injected.

The backoff is "full jitter" (a uniform draw below an exponentially growing, capped ceiling),
which spreads a herd of clients that failed together. Exponents are capped before they are
raised so that a large attempt number cannot overflow.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass

Random = Callable[[], float]  # returns a float in [0, 1)

_MAX_EXPONENT = 60  # 2**60 already dwarfs any cap; larger attempts reuse it


def compute_backoff(attempt: int, *, base: float, cap: float, random: Random) -> float:
    """Full-jitter delay before retry number ``attempt`` (0-based): uniform in [0, min(cap, base*2^n))."""
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    ceiling = min(cap, base * (2.0**exponent))
    return random() * ceiling


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one request: how many and how far apart."""

    max_attempts: int = 8  # attempts in all, the first included
    # ...when the server said when to come back (429 with Retry-After): waiting as told is not
    # failing, so a busy server gets more patience than a broken one.
    max_attempts_told_when: int = 32
    base_seconds: float = 0.5
    cap_seconds: float = 30.0

    def delay(self, attempt: int, random: Random) -> float:
        return compute_backoff(attempt, base=self.base_seconds, cap=self.cap_seconds, random=random)


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Spacing of status polls for one task: a capped geometric ladder with +-jitter.

    ``expected_seconds`` (when known, e.g. learned from finished tasks) moves the first poll
    near the expected finish, so a typical task is asked about once or twice.
    """

    initial_seconds: float = 2.0
    factor: float = 1.5
    cap_seconds: float = 30.0
    jitter: float = 0.1  # +- fraction of each delay

    def delay(
        self, polls_done: int, random: Random, expected_seconds: float | None = None
    ) -> float:
        exponent = min(max(polls_done, 0), _MAX_EXPONENT)
        if polls_done == 0 and expected_seconds is not None:
            base = min(max(self.initial_seconds, expected_seconds), self.cap_seconds)
        else:
            base = min(self.cap_seconds, self.initial_seconds * (self.factor**exponent))
        spread = 1.0 + self.jitter * (2.0 * random() - 1.0)
        return base * spread


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    ``now`` is the wall clock in epoch seconds, for the date form. Negative and garbled values
    give None (the caller falls back to its own backoff); a past date gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class FirstPollEstimator:
    """When to ask about a new task first, per (model, duration), steered by how that went.

    A task is never seen done before its first poll, so "how long did it take" learned from
    polls only ever grows (each observation is at least the delay it was given). Instead the
    outcome of each first poll steers the estimate: found done, it shrinks by ``shrink`` (the
    poll could have come sooner); found unfinished, it grows by ``grow`` (that poll was
    wasted), but to no more than ``grow`` times what that task took. The estimate settles where the share of early first polls is
    ln(1/shrink) / (ln(grow) + ln(1/shrink)): about 10% with the defaults, so a typical task
    is asked about once, a little after it finished. Before any task of a kind has finished,
    the estimate of all kinds is used, and before the first finish at all, None (the poll
    ladder's own first step).
    """

    def __init__(self, shrink: float = 0.97, grow: float = 1.3) -> None:
        self.shrink = shrink
        self.grow = grow
        self._by_kind: dict[tuple[str, int], float] = {}
        self._any: float | None = None

    def expect(self, model: str, duration: int) -> float | None:
        return self._by_kind.get((model, duration), self._any)

    def first_poll(self, model: str, duration: int, *, done: bool, elapsed: float) -> None:
        """A task finished ``elapsed`` seconds after its create; ``done``: its first poll saw it."""
        if elapsed < 0:
            return
        kind = (model, duration)
        self._by_kind[kind] = self._steer(self._by_kind.get(kind), done, elapsed)
        self._any = self._steer(self._any, done, elapsed)

    def _steer(self, current: float | None, done: bool, elapsed: float) -> float:
        if current is None:  # the first finish: start from the time it took
            return elapsed * (self.shrink if done else 1.0)
        if done:
            return min(current, elapsed) * self.shrink
        # Capped near the time the task took: first polls of many tasks come at once, and a
        # run of misses together must not compound into an estimate far beyond any render.
        return min(current, elapsed) * self.grow


class QueuePlanner:
    """Times polls by each task's place in the server's queue. Pure: times are passed in.

    When a batch is submitted faster than the server renders, tasks wait in its queue and a
    fixed ladder asks the last of them far too early and then far too late. The planner numbers
    tasks in flight in submission order (k = 1, 2, ...) and estimates the server's throughput
    ``rate`` (tasks finished a second). Task k is expected done at ``first create + k / rate``.

    The throughput is steered by outcomes rather than learned from finishes seen, because
    finishes are only seen when polled: an estimate learned from them settles at whatever pace
    the polls set. It never drops below finishes seen / seconds since the first create; a poll
    that finds its task done raises it by ``faster`` (the poll could have come sooner), one that
    finds it unfinished lowers it by ``slower``. A task is asked no sooner than
    ``spacing / rate`` after its previous poll, and never later than the ladder would ask, so
    the ladder stays the fallback when the estimate is wrong or a task overruns.
    """

    def __init__(self, faster: float = 1.05, slower: float = 0.85, spacing: float = 6.0) -> None:
        self.faster = faster
        self.slower = slower
        self.spacing = spacing
        self.rate: float | None = None
        self.finished = 0
        self._seq = 0
        self._first_create: float | None = None
        self._pending: dict[str, int] = {}
        self._last_poll: dict[str, float] = {}

    def submitted(self, job_id: str, now: float) -> None:
        """A task is in flight (created now, or found in the journal on resume)."""
        if job_id in self._pending:
            return
        self._seq += 1
        self._pending[job_id] = self._seq
        if self._first_create is None:
            self._first_create = now

    def polled(self, job_id: str, now: float) -> None:
        if job_id in self._pending:
            self._last_poll[job_id] = now

    def outcome(self, job_id: str, *, done: bool, now: float, steer: bool = True) -> None:
        """A poll of ``job_id`` found it done (or failed) or not; done tasks leave the queue.

        ``steer``: the poll was timed by the queue (see ``poll_at``), so its outcome says
        whether the throughput estimate is too low or too high. Any finish raises the floor.
        """
        if self._first_create is not None and job_id in self._pending:
            floor = (self.finished + done) / max(1e-3, now - self._first_create)
            if self.rate is None:
                self.rate = floor if done else None
            elif steer:
                self.rate = max(floor, self.rate * (self.faster if done else self.slower))
            else:
                self.rate = max(floor, self.rate)
        if done:
            self.forget(job_id, finished=True)

    def forget(self, job_id: str, *, finished: bool = False) -> None:
        """``job_id`` is no longer in flight (done, or left for another reason)."""
        if self._pending.pop(job_id, None) is not None and finished:
            self.finished += 1
        self._last_poll.pop(job_id, None)

    def poll_at(
        self, job_id: str, ladder_at: float, expected_at: float | None = None
    ) -> tuple[float, str]:
        """When to poll ``job_id``, and which estimate chose that time.

        ``expected_at`` is when the render-time estimate expects the task done (its create plus
        the learned time). The task is asked at the latest of that, its place in the queue and
        the spacing after its previous poll, but no later than ``ladder_at``. The reason is one
        of "estimate", "queue", "spacing" or "ladder", so that each estimate is steered only by
        the outcomes of the polls it timed.
        """
        plan: list[tuple[float, str]] = []
        if expected_at is not None:
            plan.append((expected_at, "estimate"))
        rate = self.rate
        if rate is not None and self._first_create is not None and job_id in self._pending:
            plan.append((self._first_create + self._pending[job_id] / rate, "queue"))
            last = self._last_poll.get(job_id)
            if last is not None:
                plan.append((last + self.spacing / rate, "spacing"))
        if plan:
            at, why = max(plan)
            if at <= ladder_at:
                return at, why
        return ladder_at, "ladder"
