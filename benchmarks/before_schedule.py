"""Today's poll schedule ("before"), for `benchmarks/family.py`: the pure pieces and how the Runner drives them.

The classes below are copied verbatim from commit 0b37c26 (`git show 0b37c26:wanbatch/backoff.py`
and `...:wanbatch/ratelimit.py`), because the package is being rewritten and will lose them:
``compute_backoff``, ``RetryPolicy``, ``PollPolicy``, ``FirstPollEstimator``, ``QueuePlanner``
(backoff.py), ``RequestPacer`` and ``HostGate`` (ratelimit.py). ``AdaptiveLimit`` is left out:
it acts only on 429s without ``Retry-After``, and the simulated server always sends one.

``BeforeClient`` at the end is ``Runner`` (wanbatch/scheduler.py at the same commit) restated as
callbacks on a simulated clock: ``Admission.run`` (one dispatcher; polls before creates, FIFO
within a priority; it sleeps until the gate opens and a token is free, and is not woken by new
waiters meanwhile), ``_poll_loop``, ``_wait_to_poll`` (woken when the planner's rate moves by more
than 10%), ``_steer`` and ``_after_transient`` (a 429 throttles the pacer and closes the gate for
the host for ``Retry-After``; 32 attempts when told when). Journaling, downloads, deadlines and
cost guards are left out: they do not move the timing.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# --- verbatim from wanbatch/backoff.py at 0b37c26 ------------------------------------------------

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


# --- verbatim from wanbatch/ratelimit.py at 0b37c26 ---------------------------------------------

_EPSILON = 1e-9


@dataclass(slots=True)
class RequestPacer:
    """A token bucket: ``rate`` requests a second on average, up to ``burst`` at once.

    The rate adapts to the server's (additive increase, multiplicative decrease): each 429
    stops bursts and cuts the rate by ``cut`` (at most once per ``cut_window`` seconds, so a
    volley of 429s from one burst counts once); each request granted afterwards wins back
    ``regrow`` requests a second, up to the user's ``ceiling``. A user who wrote the server's
    limit into the manifest loses little; one who did not is brought down to it by the 429s.
    """

    rate: float
    burst: float = 1.0
    cut: float = 0.8
    cut_window: float = 1.0
    regrow: float = 0.01
    ceiling: float = field(init=False, default=0.0)
    _tokens: float = field(init=False, default=0.0)
    _updated: float | None = field(init=False, default=None)
    _last_cut: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = self.rate
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._updated is None:
            self._updated = now
            return
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now

    def wait_time(self, now: float) -> float:
        """How long until a token is free (0 if one is free now). Takes nothing."""
        self._refill(now)
        missing = 1.0 - self._tokens
        # A sliver below one token is float rounding, not a reason to wait a nanosecond.
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self, now: float) -> None:
        """Spend a token (the caller checked ``wait_time`` is 0)."""
        self._refill(now)
        self._tokens -= 1.0
        if self.rate < self.ceiling:
            self.rate = min(self.ceiling, self.rate + self.regrow)

    def throttle(self, now: float) -> None:
        """The server refused a request for its rate: no more bursts, no saved tokens, and a
        slower pace (once per ``cut_window``)."""
        self._refill(now)
        self.burst = 1.0
        self._tokens = min(self._tokens, 0.0)
        if self._last_cut is None or now - self._last_cut >= self.cut_window:
            self._last_cut = now
            self.rate = max(min(1.0, self.ceiling), self.rate * self.cut)


@dataclass(slots=True)
class HostGate:
    """The not-before time for the whole host, set by ``Retry-After``."""

    not_before: float = 0.0

    def block_for(self, seconds: float, now: float) -> None:
        """No request before ``now + seconds`` (a later existing block is kept)."""
        self.not_before = max(self.not_before, now + max(0.0, seconds))

    def delay(self, now: float) -> float:
        return max(0.0, self.not_before - now)


# --- Runner and Admission (wanbatch/scheduler.py at 0b37c26), on a simulated clock -------------

POLL_PRIORITY = 0  # polls and URL refreshes free capacity: they go first
CREATE_PRIORITY = 1
KIND = ("wan-2-2", 5)  # (model, duration) of every simulated job
DEFAULT_REQUESTS_PER_SECOND = 4.0  # `limits.requests_per_second` when the manifest sets none


def later(now: float, delay: float) -> float:
    """``now + delay``, but strictly after ``now`` (a delay below one ulp must still advance)."""
    when = now + delay
    return when if when > now else math.nextafter(now, math.inf)


@dataclass(slots=True)
class _Job:
    """What one job worker of ``Runner`` holds in its local variables."""

    task: str = ""
    submitted: float = 0.0  # the create's answer (``record.submitted_at``)
    attempts: int = 0  # create attempts refused
    polls: int = 0
    errors: int = 0  # poll attempts refused
    why: str = ""
    first_why: str = ""
    ladder_at: float = 0.0
    expected_at: float | None = None
    token: int = 0  # the live timer of ``_wait_to_poll``; older timers are stale


@dataclass
class BeforeClient:
    """Today's client. ``sim`` offers ``loop`` (``now``, ``at``), ``work`` (``jobs``,
    ``concurrency``), ``create(cb)``, ``poll(task, cb)``, ``rendered()`` and ``gave_up()``."""

    sim: Any
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    random: Callable[[], float] = field(default_factory=lambda: random.Random(0).random)
    poll: PollPolicy = PollPolicy()
    retry: RetryPolicy = RetryPolicy()
    reasons: Counter[str] = field(default_factory=Counter)  # which estimate timed each poll

    def __post_init__(self) -> None:
        rate = self.requests_per_second
        self.loop = self.sim.loop
        self.gate = HostGate()
        self.pacer = RequestPacer(rate=rate, burst=max(1.0, rate))
        self.estimator = FirstPollEstimator()
        self.planner = QueuePlanner()
        self._rate_announced: float | None = None
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self._idle = True  # the dispatcher waits for a waiter (not for a token)
        self._waiting: dict[str, _Job] = {}  # tasks inside ``_wait_to_poll``
        self._jobs_left = self.sim.work.jobs

    def start(self) -> None:
        for _ in range(min(self.sim.work.concurrency, self._jobs_left)):
            self._job_worker()

    # --- Admission --------------------------------------------------------------------------

    def _acquire(self, priority: int, granted: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (priority, self._seq, granted))
        if self._idle:
            self._idle = False
            self.loop.at(self.loop.now, self._dispatch)

    def _dispatch(self) -> None:
        """``Admission.run``: hand the next token to the most urgent waiter, or sleep."""
        while self._heap:
            now = self.loop.now
            delay = max(self.gate.delay(now), self.pacer.wait_time(now))
            if delay > 0:
                self.loop.at(later(now, delay), self._dispatch)
                return
            _, _, granted = heapq.heappop(self._heap)
            self.pacer.take(now)
            granted()
        self._idle = True

    # --- one job: create --------------------------------------------------------------------

    def _job_worker(self) -> None:
        """A worker takes the next job (``_job_worker``); ``in_flight`` is the worker count."""
        if self._jobs_left <= 0:
            return
        self._jobs_left -= 1
        job = _Job()
        self._acquire(CREATE_PRIORITY, lambda: self._send_create(job))

    def _send_create(self, job: _Job) -> None:
        self.sim.create(lambda reply: self._created(job, reply))

    def _created(self, job: _Job, reply: Any) -> None:
        if reply.status == 429:
            job.attempts += 1
            if not self._after_transient(reply.retry_after, job.attempts):
                self._give_up()
                return
            self._acquire(CREATE_PRIORITY, lambda: self._send_create(job))
            return
        job.task = reply.task
        job.submitted = self.loop.now
        self.planner.submitted(job.task, self.loop.now)  # ``_poll_until_done``
        self._poll_loop(job)

    # --- one job: polls ---------------------------------------------------------------------

    def _poll_loop(self, job: _Job) -> None:
        """The top of ``Runner._poll_loop``: the ladder's delay, then ``_wait_to_poll``."""
        now = self.loop.now
        expected = self.estimator.expect(*KIND)
        if expected is not None:
            expected = max(0.0, expected - (now - job.submitted))
        ladder = self.poll.delay(job.polls, self.random, expected)
        self._wait_to_poll(job, ladder, None if expected is None or job.polls else expected)

    def _wait_to_poll(
        self, job: _Job, ladder_seconds: float, expected_seconds: float | None
    ) -> None:
        now = self.loop.now
        job.ladder_at = now + ladder_seconds
        job.expected_at = None if expected_seconds is None else now + expected_seconds
        self._waiting[job.task] = job
        self._recheck(job)

    def _recheck(self, job: _Job) -> None:
        """One pass of the ``while True`` in ``_wait_to_poll``: sleep to the plan, or poll now."""
        now = self.loop.now
        at, why = self.planner.poll_at(job.task, job.ladder_at, job.expected_at)
        job.token += 1
        if at - now > 0:
            self.loop.at(at, self._timer, job, job.token)
            return
        del self._waiting[job.task]
        self.planner.polled(job.task, now)
        job.why = why
        job.first_why = job.first_why or why
        job.polls += 1
        self.reasons[why] += 1
        self._acquire(POLL_PRIORITY, lambda: self._send_poll(job))

    def _timer(self, job: _Job, token: int) -> None:
        if token == job.token and job.task in self._waiting:
            self._recheck(job)

    def _plan_changed(self) -> None:
        """``self._plan_changed.set()``: every task in ``_wait_to_poll`` looks again."""
        for job in list(self._waiting.values()):
            if job.task in self._waiting:
                self._recheck(job)

    def _send_poll(self, job: _Job) -> None:
        self.sim.poll(job.task, lambda reply: self._polled(job, reply))

    def _polled(self, job: _Job, reply: Any) -> None:
        if reply.status == 429:
            job.errors += 1
            if not self._after_transient(reply.retry_after, job.errors):
                self.planner.forget(job.task)
                self._give_up()
                return
            self._poll_loop(job)
            return
        done = reply.state == "succeeded"
        self._steer(job, done)
        if not done:
            self._poll_loop(job)
            return
        self.planner.forget(job.task)
        self.sim.rendered()
        self._job_worker()

    def _steer(self, job: _Job, done: bool) -> None:
        """``Runner._steer``."""
        now = self.loop.now
        self.planner.outcome(job.task, done=done, now=now, steer=job.why in ("queue", "spacing"))
        rate = self.planner.rate
        if rate is not None and (
            self._rate_announced is None or abs(rate / self._rate_announced - 1.0) > 0.1
        ):
            self._rate_announced = rate
            self.loop.at(now, self._plan_changed)  # waiters run after this task yields
        if done and (job.first_why == "estimate" or self.estimator.expect(*KIND) is None):
            self.estimator.first_poll(*KIND, done=job.polls == 1, elapsed=now - job.submitted)

    # --- errors -----------------------------------------------------------------------------

    def _after_transient(self, retry_after: float, attempt: int) -> bool:
        """``Runner._after_transient`` for a 429 with ``Retry-After``; False: attempts used up."""
        now = self.loop.now
        self.pacer.throttle(now)
        self.gate.block_for(retry_after, now)
        return attempt < self.retry.max_attempts_told_when

    def _give_up(self) -> None:
        self.sim.gave_up()
        self._job_worker()
