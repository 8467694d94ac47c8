"""The poll stage: ask about a task when the planner says, until it has finished.

Timing is the pure ``planner.PollPlanner``'s; this stage only sleeps until the planned time,
asks, journals what it heard and tells the planner. Plans move when the planner learns (its
``version`` changes): sleepers are then woken to ask for their time again. With a fixed
``--poll-interval`` the planner is not used and each task is asked on that interval.

A task is asked at least once in every run, however old: the job deadline ends the waiting,
never the collecting (a run resumed an hour later still picks up what finished meanwhile).
A 404 for a task we created is waited out (``LostRule``) before the task is called lost.

Webhook notices (``notices.py``) wake a task's poll at once through ``PollStage.notice``; while
they arrive the planned polls, now a fallback, are spread out (``noticerules.NoticePace``).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass

import anyio

from wanbatch.admission import POLL, Admission, after_refusal
from wanbatch.errors import JobRejectedError, TaskNotFoundError, TransientApiError
from wanbatch.models import LOST_CODE, EventKind, JobSpec, JobState, TaskStatus, TaskView
from wanbatch.noticerules import BurstRule, NoticePace
from wanbatch.planner import PollPlanner, Seen, budget_lateness
from wanbatch.retrying import RetryState
from wanbatch.runcontext import RunContext, TaskReader


class Polled(enum.Enum):
    """How polling one task ended."""

    RENDERED = "rendered"  # succeeded with a video URL: download it
    FAILED = "failed"  # the render failed (journaled)
    STALLED = "stalled"  # past the job deadline
    LEFT = "left"  # polling kept failing; a later run asks again


@dataclass(frozen=True, slots=True)
class LostRule:
    """When a task the server answers 404 for is lost rather than not known yet. Pure.

    Servers may not know a task for a while after creating it (eventual consistency), so a
    404 is believed only when the task is ``grace_seconds`` past its create and the 404s have
    lasted ``streak_seconds`` in a row, ``misses`` polls at least. Until then it is asked again
    with backoff. A lost task is journaled as failed with code ``lost``; ``retry`` leaves it
    alone unless told ``--include-lost`` (a new task is paid again).
    """

    grace_seconds: float = 300.0
    streak_seconds: float = 60.0
    misses: int = 3

    def lost(self, age: float, streak: float, misses: int) -> bool:
        return age >= self.grace_seconds and streak >= self.streak_seconds and misses >= self.misses


LOST = LostRule()


def stalled_hint(deadline: float) -> str:
    """How to wait longer for a task past its deadline."""
    return (
        f"still rendering on the server after the {deadline:g} s job deadline; the next run asks"
        " again. To wait longer: --job-deadline S, or limits.job_deadline_seconds in the manifest"
    )


def lost_reason(task_id: str, streak: float, misses: int) -> str:
    return (
        f"task lost: the server has not known task {task_id} for {streak:.0f} s"
        f" ({misses} polls in a row answered 404); `wanbatch retry --include-lost` creates it"
        " anew (and pays again)"
    )


def unknown_status_note(word: str) -> str:
    return f"the server says {word!r}, a status wanbatch does not know; taken as still rendering"


_SEEN = {
    TaskStatus.PENDING: Seen.PENDING,
    TaskStatus.RUNNING: Seen.RUNNING,
    TaskStatus.SUCCEEDED: Seen.DONE,
    TaskStatus.FAILED: Seen.DONE,
}


_FINAL = (TaskStatus.SUCCEEDED, TaskStatus.FAILED)
EARLY_NOTICES = 256  # notices kept for tasks whose polling has not begun


class PlanBoard:
    """The planner, plus a wake-up for every sleeper when its plans may have moved."""

    def __init__(self, planner: PollPlanner) -> None:
        self.planner = planner
        self._seen_version = planner.version
        self.moved = anyio.Event()

    def changed(self) -> None:
        """Call after telling the planner anything: wakes the sleepers if plans moved."""
        if self.planner.version != self._seen_version:
            self._seen_version = self.planner.version
            self.moved.set()
            self.moved = anyio.Event()

    def submitted(self, job_id: str, kind: Hashable, now: float, age: float = 0.0) -> None:
        self.planner.submitted(job_id, kind, now, age=age)
        self.changed()

    def backlog(self, waiting: int) -> None:
        self.planner.backlog(waiting)
        self.changed()

    def observe(self, job_id: str, now: float, seen: Seen) -> None:
        self.planner.observe(job_id, now, seen)
        self.changed()

    def waited(self, seconds: float) -> None:
        self.planner.waited(seconds)
        self.changed()

    def forget(self, job_id: str, now: float) -> None:
        self.planner.forget(job_id, now)
        self.changed()


@dataclass(slots=True)
class _Watch:
    """One task's poll loop, as a notice finds it."""

    job_id: str
    since: float  # when it was last asked (or began to be polled), on the run's clock
    due: float | None = None  # a notice asks for a poll by then
    last_woken: float | None = None
    woken: int = 0  # polls notices have woken
    scope: anyio.CancelScope | None = None  # its wait, while it waits


class PollStage:
    def __init__(
        self, ctx: RunContext, api: TaskReader, admission: Admission, board: PlanBoard
    ) -> None:
        self.ctx = ctx
        self.api = api
        self.admission = admission
        self.board = board
        self._unknown_words: set[str] = set()  # status words already warned about
        self._watches: dict[str, _Watch] = {}  # task id -> its poll loop, while it runs
        self._ended: set[str] = set()  # tasks polled to their end in this run
        # Notices for tasks not polled yet (one may beat its create's journaling): the last
        # few, so that such a task is asked at once when its polling begins.
        self._early: dict[str, None] = {}
        factor = ctx.options.notice_pace
        self.pace = NoticePace(factor=factor) if factor is not None else None
        self._burst = BurstRule()

    def notice(self, task_id: str) -> str:
        """A webhook notice names ``task_id``: poll it now (at most once per burst) if this run
        is polling it. What became of the notice: woken, coalesced, late or unknown."""
        watch = self._watches.get(task_id)
        if watch is None:
            if task_id in self._ended:
                return "late"
            self._early[task_id] = None
            if len(self._early) > EARLY_NOTICES:
                del self._early[next(iter(self._early))]
            return "unknown"
        if watch.due is not None:
            return "coalesced"  # a poll is already asked for
        watch.due = self._burst.due(watch.last_woken, self.ctx.timing.clock(), watch.woken)
        if watch.scope is not None:
            watch.scope.cancel()
        return "woken"

    async def until_done(self, job: JobSpec) -> Polled:
        ctx = self.ctx
        record = ctx.journal.record(job.id)
        age = ctx.timing.wall() - record.submitted_at if record.submitted_at else 0.0
        self.board.submitted(job.id, (job.model, job.duration), ctx.timing.clock(), age)
        watch = _Watch(job.id, ctx.timing.clock())
        task_id = record.task_id or ""
        if task_id in self._early:  # its notice came first
            del self._early[task_id]
            watch.due = ctx.timing.clock()
        self._watches[task_id] = watch
        try:
            return await self._loop(job, watch)
        finally:
            self._watches.pop(task_id, None)
            self._ended.add(task_id)
            self.board.forget(job.id, ctx.timing.clock())  # a no-op after a finish

    async def _loop(self, job: JobSpec, watch: _Watch) -> Polled:
        ctx = self.ctx
        polls = 0
        retries = RetryState(ctx.options.retry)
        deadline = ctx.limits.job_deadline_seconds
        missing_since: float | None = None  # the first 404 of the current run of 404s
        misses = 0
        while True:
            record = ctx.journal.record(job.id)
            if record.state is JobState.SUCCEEDED:
                return Polled.RENDERED
            if record.state is JobState.FAILED:
                return Polled.FAILED
            assert record.task_id is not None
            submitted = record.submitted_at or ctx.timing.wall()
            # Asked at least once in this run before the deadline counts: it ends waiting.
            if polls and ctx.timing.wall() - submitted - ctx.slept_since(submitted) > deadline:
                ctx.summary.stalled.append(job.id)
                ctx.log.warning(
                    "job.stalled",
                    job=job.id,
                    task_id=record.task_id,
                    deadline=deadline,
                    hint=stalled_hint(deadline),
                )
                return Polled.STALLED
            planned, woken = await self._wait_turn(watch, polls)
            polls += 1
            ctx.summary.requests["poll"] += 1
            try:
                view = await self.api.get(record.task_id, record.handle)
            except TaskNotFoundError as exc:
                now = ctx.timing.wall()
                missing_since = now if missing_since is None else missing_since
                misses += 1
                streak = now - missing_since - ctx.slept_since(missing_since)  # awake time
                if LOST.lost(now - submitted, streak, misses):
                    await ctx.fail(job, lost_reason(record.task_id, streak, misses), LOST_CODE)
                    return Polled.FAILED
                ctx.log.info("job.not_found_yet", job=job.id, misses=misses, error=str(exc))
                await ctx.timing.sleep(ctx.options.retry.delay(misses - 1, ctx.timing.random))
                continue
            except JobRejectedError as exc:
                await ctx.fail(job, exc.server_message, exc.code)
                return Polled.FAILED
            except TransientApiError as exc:
                # No answer about the task: the 404s on either side are not "in a row".
                missing_since, misses = None, 0
                if not await after_refusal(ctx, self.admission, exc, retries, "poll", job.id):
                    ctx.summary.left[job.id] = f"polling failed {retries.attempts} times: {exc}"
                    return Polled.LEFT
                continue
            missing_since, misses = None, 0
            await self._heard(job, view, planned, woken)

    async def _wait_turn(self, watch: _Watch, polls: int) -> tuple[float, bool]:
        """Sleep until this task's next poll (or a notice's) and take a request token; the
        planned time, and whether a notice woke it."""
        clock = self.ctx.timing.clock
        fixed = self.ctx.options.poll
        pace = self.pace
        woken = False
        if fixed is not None:
            target = clock() + fixed.delay(polls, self.ctx.timing.random)
            if pace is not None:
                target = pace.stretch(clock(), target)
            while True:
                due = watch.due
                until = target if due is None else min(target, due)
                if until <= clock():
                    woken = due is not None and due <= target
                    break
                with anyio.CancelScope() as scope:
                    watch.scope = scope
                    await self.ctx.timing.sleep(until - clock())
                watch.scope = None
                if not scope.cancel_called:  # slept its time out
                    woken = due is not None and due <= target
                    break
            at = clock()
        else:
            while True:
                at, _ = self.board.planner.next_poll(watch.job_id, clock())
                if pace is not None:
                    at = pace.stretch(watch.since, at)
                if watch.due is not None:
                    at = min(at, watch.due)
                remaining = at - clock()
                if remaining <= 0:
                    break
                moved = self.board.moved
                with anyio.move_on_after(remaining), anyio.CancelScope() as scope:
                    watch.scope = scope
                    await moved.wait()
                watch.scope = None
            woken = watch.due is not None and watch.due <= clock()
        if woken:
            watch.due, watch.last_woken = None, clock()
            watch.woken += 1
        watch.since = clock()
        asked = clock()
        await self.admission.acquire(POLL, at)
        if fixed is None:
            # How long the budget held it: the planner thins polls out while they queue.
            # (An outage held it, not the budget: ``admission`` waits those out.)
            held = self.admission.pacer.settled and not self.admission.health.down_since(asked)
            late = budget_lateness(asked, at, clock()) if held else 0.0
            self.board.waited(late)
        return at, woken

    async def _heard(self, job: JobSpec, view: TaskView, planned: float, woken: bool) -> None:
        ctx = self.ctx
        record = ctx.journal.record(job.id)
        status = view.status
        if status is TaskStatus.SUCCEEDED and view.video_url is None:
            ctx.log.warning("job.succeeded_without_url", job=job.id, task_id=view.task_id)
            status = TaskStatus.RUNNING  # poll again: some servers fill the URL in a moment later
        self.board.observe(job.id, ctx.timing.clock(), _SEEN[status])
        pace = self.pace
        if pace is not None and status in _FINAL and pace.finished(woken=woken):
            ctx.log.warning(
                "notices.not_arriving",
                detail=f"{pace.misses} tasks in a row were found finished by a poll before any"
                " notice came; polling goes back to its own pace",
            )
        note = unknown_status_note(view.raw_status) if view.unrecognised_status else None
        if note is not None and view.raw_status not in self._unknown_words:
            self._unknown_words.add(view.raw_status)
            ctx.log.warning("api.unknown_status", status=view.raw_status, job=job.id, detail=note)
        if status is TaskStatus.RUNNING and (
            record.state is JobState.SUBMITTED or record.reason != note
        ):
            # The word is kept (``reason``) so that `status` shows what the server says.
            await ctx.journal.append(
                ctx.event(EventKind.RUNNING, job.id, reason=note), durable=False
            )
        elif status is TaskStatus.SUCCEEDED:
            await ctx.journal.append(
                ctx.event(EventKind.SUCCEEDED, job.id, video_url=view.video_url)
            )
            if record.submitted_at is not None:
                ctx.stats.rendered(ctx.timing.wall() - record.submitted_at)
            ctx.log.debug("job.rendered", job=job.id, task_id=view.task_id)
        elif status is TaskStatus.FAILED:
            reason = view.error_message or f"generation {view.raw_status or 'failed'}"
            await ctx.fail(job, reason, view.error_code)
