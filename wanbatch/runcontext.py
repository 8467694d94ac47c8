"""What every stage of a run shares: the manifest, the journal, the clock, the summary, the log.

The stages (``submit``, ``polling``, ``fetching``) each hold one ``RunContext``; the ``Runner``
makes it. Time, randomness and sleep come from ``Timing`` so tests can drive them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import structlog

from wanbatch.backoff import PollPolicy, RetryPolicy
from wanbatch.journal import Journal
from wanbatch.models import EventKind, JobEvent, JobSpec, JobState, Limits, Manifest, TaskView
from wanbatch.outage import MAX_OUTAGE_SECONDS, ClockWatch, ProbePolicy
from wanbatch.providers.base import Created, Provider
from wanbatch.stops import StopController, StopReason
from wanbatch.summary import RunSummary

RECENT_FAILURES = 5  # failures the live view shows


class TaskReader(Protocol):
    """Asks a provider about a task (polls, URL refreshes)."""

    async def get(self, task_id: str, handle: str | None = None) -> TaskView: ...


class TaskApi(TaskReader, Protocol):
    """What a run needs of a provider; ``client.ProviderApi`` is one. ``provider`` is the
    adapter (its ``capabilities`` say whether a resent create is deduped, and whether tasks
    can be listed to ``find`` one whose create went unanswered)."""

    provider: Provider

    async def create(self, job: JobSpec, idempotency_key: str) -> Created: ...

    async def find(self, job: JobSpec, since: float) -> list[Created]: ...


class FaultHook(Protocol):
    """Test-only: called at each crash point; may kill the process. Never set in normal runs."""

    def __call__(self, point: str, job_id: str, /) -> None: ...


async def sleep_at_least_zero(seconds: float) -> None:
    """``anyio.sleep``, taking a time already past as "now" (it raises on a negative delay, and
    ``until - clock()`` read just after ``until <= clock()`` was checked can be negative)."""
    await anyio.sleep(max(0.0, seconds))


@dataclass(frozen=True, slots=True)
class Timing:
    """Clock, randomness and sleep, injected so that tests control time."""

    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
    sleep: Callable[[float], Awaitable[None]] = sleep_at_least_zero


@dataclass(frozen=True, slots=True)
class RunOptions:
    # The run's limits as the settings decided them (flag > manifest > default); None: the
    # manifest's own (tests that build a Runner directly).
    limits: Limits | None = None
    # A fixed interval between polls (``--poll-interval``): the ladder only, no planner.
    poll: PollPolicy | None = None
    retry: RetryPolicy = RetryPolicy()
    download_retry: RetryPolicy = RetryPolicy(max_attempts=6, base_seconds=0.5, cap_seconds=20.0)
    resubmit_changed: bool = False  # render changed jobs anew (costs credits)
    keep_changed: bool = False  # keep what was rendered from the old fields
    handle_signals: bool = False  # the CLI turns this on; tests drive cancellation themselves
    stop_grace_seconds: float = 1.5  # how long an in-flight create may finish after Ctrl-C
    faults: FaultHook | None = None
    max_videos: int | None = None  # cost guard: new tasks this run may create
    max_credits: float | None = None  # cost guard: estimated credits this run may spend
    probe: ProbePolicy = ProbePolicy()  # how often an unreachable host is tried again
    max_outage: float = MAX_OUTAGE_SECONDS  # a host down longer stops the run; 0: never
    sleep_check_seconds: float = 5.0  # how often the clocks are compared to notice a sleep
    reached_before: bool = False  # an earlier round reached the API host (--until-done)
    # Earlier rounds of this run (--until-done): what they created counts against the caps,
    # and a create whose answer is unknown is not resent by a round nobody asked for.
    earlier_videos: int = 0
    earlier_credits: float = 0.0
    resend_unknown: bool = True
    # --resend-unknown: on an API without idempotency keys, send again a create whose answer
    # was lost even where no task list could settle whether it made a task (may pay twice).
    force_resend: bool = False
    # Webhook notices are on (``--notify-url``): the planned polls, a fallback now, are spread
    # this many times further apart while notices arrive (``noticerules.NoticePace``).
    notice_pace: float | None = None


@dataclass(slots=True)
class RunStats:
    """Running figures for the live view."""

    finished_now: int = 0  # jobs done or failed during this run
    render_total: float = 0.0
    render_count: int = 0
    recent_failures: list[tuple[str, str]] = field(default_factory=list)

    def rendered(self, seconds: float) -> None:
        self.render_total += seconds
        self.render_count += 1

    def failed(self, job_id: str, reason: str) -> None:
        self.finished_now += 1
        self.recent_failures.append((job_id, reason))
        del self.recent_failures[:-RECENT_FAILURES]


@dataclass(slots=True)
class RunContext:
    manifest: Manifest
    journal: Journal
    options: RunOptions
    timing: Timing
    summary: RunSummary
    stops: StopController
    stats: RunStats = field(default_factory=RunStats)
    log: Any = field(default_factory=lambda: structlog.get_logger("wanbatch.run"))
    clocks: ClockWatch = field(default_factory=ClockWatch)

    @property
    def limits(self) -> Limits:
        """The run's limits: the settings' when given, else the manifest's."""
        return self.options.limits or self.manifest.limits

    def event(self, kind: EventKind, job_id: str, **fields: Any) -> JobEvent:
        return JobEvent(kind=kind, job_id=job_id, at=self.timing.wall(), **fields)

    def fault(self, point: str, job_id: str) -> None:
        if self.options.faults is not None:
            self.options.faults(point, job_id)

    def look_at_clocks(self) -> None:
        """Compare the clocks: a wall clock that gained on the monotonic one was a sleep."""
        slept = self.clocks.look(self.timing.clock(), self.timing.wall())
        if slept:
            self.summary.slept_seconds += slept
            self.log.warning("run.woke", slept_seconds=round(slept, 1))

    def slept_since(self, wall: float) -> float:
        """Seconds the machine slept since wall time ``wall``: a job deadline does not count them."""
        self.look_at_clocks()
        return self.clocks.slept_since(wall)

    async def woke(self) -> bool:
        """After a sleep, forget every stored video URL once: signed URLs may have expired
        meanwhile, and each is fetched anew before use. True when it did."""
        self.look_at_clocks()
        if not self.clocks.take_unseen():
            return False
        for job in self.manifest.jobs:
            record = self.journal.record(job.id)
            if record.state is JobState.SUCCEEDED and record.video_url is not None:
                await self.journal.append(
                    self.event(EventKind.SUCCEEDED, job.id, video_url=None), durable=False
                )
        return True

    def halt(self, reason: StopReason, message: str) -> None:
        """Stop the whole run now (a rejected key, a broken journal)."""
        self.log.error("run.stopping", reason=str(reason), detail=message)
        self.stops.halt(reason, message)

    def stop_submitting(self, reason: StopReason, message: str) -> None:
        """Create nothing more; what is in flight is finished (402)."""
        if self.stops.submitting:
            self.log.error("run.stopping", reason=str(reason), detail=message)
        self.stops.stop_submitting(reason, message)

    async def fail(self, job: JobSpec, reason: str, code: str | None) -> None:
        """The job failed for good: journal it, count it, say so once."""
        await self.journal.append(self.event(EventKind.FAILED, job.id, reason=reason, code=code))
        self.summary.failed[job.id] = reason
        self.stats.failed(job.id, reason)
        record = self.journal.record(job.id)
        self.log.warning(
            "job.finished",
            job=job.id,
            state=str(record.state),
            reason=reason,
            code=code,
            model=job.model,
            duration=job.duration,
            task_id=record.task_id,
            render_seconds=span(record.submitted_at, record.finished_at),
        )


def span(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(end - start, 3)
