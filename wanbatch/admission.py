"""Admission: every request to the API host waits here for its turn.

Three small pure objects decide (``ratelimit``): the request budget (``RequestPacer``, found by
probing when the user set none), the host's Retry-After gate (``HostGate``), and the number
of tasks in flight (``AdaptiveLimit``, cut on 429s without Retry-After). ``Admission`` adds the
one piece of I/O: a dispatcher that hands the next token to the most urgent waiter. Polls and
Creates and URL refreshes go before polls (each turns a free slot or a finished render into
progress at once); among polls the one planned earliest goes first. A grant is checked against the gate again when the waiter wakes, so a request granted
just before a 429 came back does not go out inside the window the 429 opened.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from wanbatch.errors import TransientApiError
from wanbatch.ratelimit import AdaptiveLimit, HostGate, RequestPacer
from wanbatch.retrying import RetryState
from wanbatch.runcontext import RunContext, Timing

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
    ) -> None:
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
            delay = max(self.gate.delay(now), self.pacer.wait_time(now))
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._timing.sleep(delay)
                continue
            *_, granted = heapq.heappop(self._heap)
            self.pacer.take(now)
            granted.set()
            await anyio.lowlevel.checkpoint()

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
