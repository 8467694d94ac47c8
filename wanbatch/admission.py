"""Admission: every request to the API host waits here for its turn.

Three small pure objects decide (``ratelimit``): the request budget (``RequestPacer``, found by
probing when the user set none), the host's Retry-After gate (``HostGate``), and the number
of tasks in flight (``AdaptiveLimit``, cut on 429s without Retry-After). ``Admission`` adds the
one piece of I/O: a dispatcher that hands the next token to the most urgent waiter. Polls and
Creates and URL refreshes go before polls (each turns a free slot or a finished render into
progress at once); among polls the one planned earliest goes first. A grant is checked against the gate again when the waiter wakes, so a request granted
just before a 429 came back does not go out inside the window the 429 opened.

Outages (``outage.HostHealth``): a request that could not connect marks the API host down.
While it is down the dispatcher grants one request at a time, as a probe (a poll if one waits:
a GET is safe to lose), at the probe interval; every other request waits in ``acquire`` and
spends nothing of its retry budget. ``ReportingApi`` tells admission of every answer: the
first answer ends the outage and everything resumes, paced by the request budget as always.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from wanbatch.errors import ApiError, JobRejectedError, NotSentError, TransientApiError
from wanbatch.models import JobSpec, TaskView
from wanbatch.outage import HostHealth, first_contact_problem, past_limit
from wanbatch.providers.base import Created
from wanbatch.ratelimit import AdaptiveLimit, HostGate, RequestPacer
from wanbatch.retrying import RetryState
from wanbatch.runcontext import RunContext, TaskApi, Timing
from wanbatch.stops import StopReason

# Creates go first: each one starts a render at once, and only a free slot lets one be sent.
# URL refreshes too: a rendered video is waiting for them. Polls share what is left.
CREATE = 0
REFRESH = 0
POLL = 1
LONG_PAUSE_SECONDS = 30.0  # a Retry-After longer than this is announced


@dataclass(frozen=True, slots=True)
class Throttled:
    """What a refusal did to admission; ``pause_seconds`` is set when it is worth announcing."""

    rate_limited: bool
    pause_seconds: float | None


class Admission:
    """Paces API requests; see the module docstring. ``on_limit`` hears the in-flight limit."""

    def __init__(
        self,
        pacer: RequestPacer,
        gate: HostGate,
        limit: AdaptiveLimit,
        timing: Timing,
        on_limit: Callable[[int], None] = lambda current: None,
        health: HostHealth | None = None,
        base_url: str | None = None,
    ) -> None:
        self.health = health or HostHealth(random=timing.random)
        self.base_url = base_url or "the API base URL"
        self._health_moved = anyio.Event()
        self.pacer = pacer
        self.gate = gate
        self.limit = limit
        self._timing = timing
        self._on_limit = on_limit
        self._heap: list[tuple[int, float, int, anyio.Event]] = []
        self._seq = 0
        self._wakeup = anyio.Event()
        self._announced_until = 0.0

    async def acquire(self, priority: int, planned_at: float = -math.inf) -> None:
        """Wait for a token: ``priority`` (``POLL``/``CREATE``), then the earliest plan first."""
        while True:
            granted = anyio.Event()
            self._seq += 1
            heapq.heappush(self._heap, (priority, planned_at, self._seq, granted))
            self._wakeup.set()
            await granted.wait()
            if self.gate.delay(self._timing.clock()) <= 0:
                return

    async def gate_open(self) -> None:
        """Wait, taking no token, until no Retry-After holds the host: for a request granted
        before a slow step (a create's fsynced intent) during which a 429 may have come back."""
        while (delay := self.gate.delay(self._timing.clock())) > 0:
            await self._timing.sleep(delay)

    async def run(self) -> None:
        """The dispatcher: forever, hand the next token to the most urgent waiter."""
        clock = self._timing.clock
        while True:
            while not self._heap:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
            now = clock()
            outage = self.health.probe_wait(now)
            delay = max(self.gate.delay(now), self.pacer.wait_time(now), outage)
            if delay > 0 and outage > 0:
                await self._nap(delay)  # until the probe is due, or the host answers
                continue
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._timing.sleep(delay)
                continue
            probing = self.health.down
            granted = self._next(probing)
            self.pacer.take(now)
            if probing:
                self.health.probe_sent(now)
            granted.set()
            await anyio.lowlevel.checkpoint()

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` of the run's clock, or less if the host's health changes."""
        moved = self._health_moved
        async with anyio.create_task_group() as group:

            async def alarm() -> None:
                await self._timing.sleep(seconds)
                group.cancel_scope.cancel()

            group.start_soon(alarm)
            await moved.wait()
            group.cancel_scope.cancel()

    def _next(self, probing: bool) -> anyio.Event:
        """The next waiter; a probe is a poll when one waits (a lost GET costs nothing)."""
        polls = [entry for entry in self._heap if entry[0] == POLL] if probing else []
        if not polls:
            return heapq.heappop(self._heap)[-1]
        chosen = min(polls)
        self._heap.remove(chosen)
        heapq.heapify(self._heap)
        return chosen[-1]

    def answered(self) -> float | None:
        """The API host answered: the length of the outage this ended, if one did."""
        length = self.health.answered(self._timing.clock())
        if length is not None:
            self._moved()
        return length

    def unreachable(self) -> bool:
        """A request could not connect; True when this began an outage."""
        began = self.health.failed(self._timing.clock())
        self._moved()
        return began

    def _moved(self) -> None:
        self._health_moved.set()
        self._health_moved = anyio.Event()

    def refused(self, exc: TransientApiError) -> Throttled:
        """A request met ``exc``: slow down as it asks."""
        now = self._timing.clock()
        rate_limited = exc.status == 429
        if rate_limited:
            # The server's budget is smaller than ours: stop bursting, and come back at a
            # slower steady rate when its pause ends rather than in a burst it would refuse.
            self.pacer.throttle(now)
        pause = None
        if exc.retry_after_seconds is not None:
            self.gate.block_for(exc.retry_after_seconds, now)
            if (
                exc.retry_after_seconds >= LONG_PAUSE_SECONDS
                and self._announced_until < self.gate.not_before
            ):
                self._announced_until = self.gate.not_before
                pause = exc.retry_after_seconds
        elif rate_limited:
            self.limit.on_throttled()
            self._on_limit(self.limit.current)
        return Throttled(rate_limited=rate_limited, pause_seconds=pause)

    def created(self) -> None:
        """A create went through: the in-flight limit may grow back."""
        self.limit.on_success()
        self._on_limit(self.limit.current)


async def after_refusal(
    ctx: RunContext,
    admission: Admission,
    exc: TransientApiError,
    state: RetryState,
    what: str,
    job_id: str,
) -> bool:
    """Slow down after a transient error and wait before trying again; False: give up."""
    if isinstance(exc, NotSentError):
        return _host_down(ctx, admission, exc, state, what, job_id)
    throttled = admission.refused(exc)
    if throttled.rate_limited:
        ctx.summary.requests["throttled"] += 1
    if throttled.pause_seconds is not None:
        ctx.log.warning("api.paused", seconds=round(throttled.pause_seconds, 1), reason=str(exc))
    told_when = throttled.rate_limited and exc.retry_after_seconds is not None
    decision = state.increment(
        told_when=told_when, gated=exc.retry_after_seconds is not None, random=ctx.timing.random
    )
    if not decision.again:
        ctx.log.warning(f"{what}.gave_up", job=job_id, attempts=state.attempts, error=str(exc))
        return False
    ctx.summary.requests["retry"] += 1
    ctx.log.debug(f"{what}.retry", job=job_id, attempt=state.attempts, error=str(exc))
    if decision.delay > 0:
        await ctx.timing.sleep(decision.delay)
    return True


def _host_down(
    ctx: RunContext,
    admission: Admission,
    exc: NotSentError,
    state: RetryState,
    what: str,
    job_id: str,
) -> bool:
    """A request could not connect: the host is down. The request that found it so spends
    one attempt; those that meet it down spend none (they wait for the probe in ``acquire``).
    Nobody ever answered at the base URL: a configuration error, reported at once."""
    health = admission.health
    if not health.answered_ever:
        message = first_contact_problem(admission.base_url, exc)
        state.attempts += 1
        if what == "create":  # the create journals "not created" before the run ends
            ctx.stop_submitting(StopReason.CONFIG, message)
        else:
            ctx.halt(StopReason.CONFIG, message)
        return False
    began = admission.unreachable()
    now = ctx.timing.clock()
    if began:
        ctx.log.warning(
            "api.unreachable", error=str(exc), next_try_seconds=round(health.probe_wait(now), 1)
        )
        decision = state.increment(told_when=False, gated=True, random=ctx.timing.random)
        if not decision.again:
            ctx.log.warning(f"{what}.gave_up", job=job_id, attempts=state.attempts, error=str(exc))
            return False
    else:
        state.excuse()
        limit = ctx.options.max_outage
        if past_limit(health, now, limit):
            ctx.halt(
                StopReason.UNREACHABLE,
                f"the API host has not answered for {health.down_for(now):.0f} s"
                f" (--max-outage {limit:g} s); rerun resumes",
            )
            return False
    ctx.log.debug(f"{what}.waiting_for_host", job=job_id, error=str(exc))
    return True


class ReportingApi:
    """The provider, telling admission of every answer (any status) from the API host."""

    def __init__(self, api: TaskApi, ctx: RunContext, admission: Admission) -> None:
        self._api = api
        self.provider = api.provider
        self._ctx = ctx
        self._admission = admission

    async def create(self, job: JobSpec, idempotency_key: str) -> Created:
        try:
            view = await self._api.create(job, idempotency_key)
        except ApiError as exc:
            self._heard(exc)
            raise
        self._answered()
        return view

    async def find(self, job: JobSpec, since: float) -> list[Created]:
        try:
            found = await self._api.find(job, since)
        except ApiError as exc:
            self._heard(exc)
            raise
        self._answered()
        return found

    async def get(self, task_id: str, handle: str | None = None) -> TaskView:
        try:
            view = await self._api.get(task_id, handle)
        except ApiError as exc:
            self._heard(exc)
            raise
        self._answered()
        return view

    def _heard(self, exc: ApiError) -> None:
        if exc.status is not None:
            self._answered()
        elif isinstance(exc, JobRejectedError):
            pass  # refused before sending (a bad task id, a URL httpx refuses): no news of the host
        elif not isinstance(exc, NotSentError):  # it connected: the base URL is right
            self._admission.health.reached()
            if self._admission.health.down:  # a probe that broke off: the next one later
                self._admission.unreachable()

    def _answered(self) -> None:
        length = self._admission.answered()
        if length is not None:
            self._ctx.log.warning("api.reachable", seconds=round(length, 1))
