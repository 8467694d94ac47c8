"""The run: one task group that wires the stages together. Wiring only; the rules live elsewhere.

    Runner.run
    └── task group
        ├── admission dispatcher   (admission.py) paces every API request; creates first, then
        │                          polls by planned time; a Retry-After closes the gate for all
        ├── signal watcher         first Ctrl-C/SIGTERM: stop, keep the journal whole, exit 130
        ├── clock watcher          notices a sleep (the wall clock gained on the monotonic one):
        │                          stored video URLs are forgotten, deadlines skip the sleep
        ├── job workers (N)        take the next job: submit stage (submit.py), then poll stage
        │                          (polling.py, timed by the pure planner.py) until rendered
        └── download workers (D)   download stage (fetching.py): video, sidecar, ``downloaded``

What each job needs is read from the journal (``worklist.plan_work``); why a run stops and its
exit code (``stops``); the cost guard (``costguard``); retries (``retrying``).

Invariants: an ``intent`` record is fsynced before every create; the task id is fsynced before
it is polled; a job with a task id is never created again; a job whose create outcome is unknown
is created again with the same ``Idempotency-Key`` and reported as a possible duplicate.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from wanbatch.admission import Admission, ReportingApi
from wanbatch.costguard import CostGuard
from wanbatch.download import VideoSource, file_matches
from wanbatch.errors import (
    AuthError,
    CreditsExhaustedError,
    DiskError,
    JournalError,
    WanbatchError,
)
from wanbatch.fetching import DownloadStage
from wanbatch.interrupts import Interrupts
from wanbatch.journal import Journal
from wanbatch.models import EventKind, JobRecord, JobSpec, Manifest
from wanbatch.outage import HostHealth, outage_line
from wanbatch.planner import PollPlanner
from wanbatch.polling import PlanBoard, Polled, PollStage
from wanbatch.ratelimit import AdaptiveLimit, HostGate, RequestPacer
from wanbatch.runcontext import FaultHook, RunContext, RunOptions, TaskApi, Timing
from wanbatch.stops import StopController, StopReason
from wanbatch.submit import SubmitStage, Submitted, idempotency_key_for
from wanbatch.summary import ProgressSnapshot, RunSummary, account_unfinished, progress_snapshot
from wanbatch.worklist import changed_error, changed_jobs, plan_work

__all__ = [
    "FaultHook",
    "ProgressSnapshot",
    "RunOptions",
    "RunSummary",
    "Runner",
    "TaskApi",
    "Timing",
    "idempotency_key_for",
]


class Runner:
    """Renders a manifest's jobs, resuming from the journal."""

    def __init__(
        self,
        manifest: Manifest,
        journal: Journal,
        api: TaskApi,
        videos: VideoSource,
        *,
        options: RunOptions | None = None,
        timing: Timing | None = None,
        planner: PollPlanner | None = None,
    ) -> None:
        self.manifest = manifest
        self.journal = journal
        options = options or RunOptions()
        self.timing = timing = timing or Timing()
        limits = options.limits or manifest.limits
        self.summary = RunSummary(total=len(manifest.jobs))
        self.stops = StopController(cancel=self._cancel)
        self.ctx = ctx = RunContext(manifest, journal, options, timing, self.summary, self.stops)
        self.in_flight = anyio.CapacityLimiter(limits.concurrency)
        self.admission = Admission(
            RequestPacer.for_limit(limits.requests_per_second, limits.concurrency),
            HostGate(),
            AdaptiveLimit(ceiling=limits.concurrency),
            timing,
            on_limit=self._set_in_flight,
            health=HostHealth(options.probe, timing.random, answered_ever=options.reached_before),
            base_url=getattr(api, "base_url", None),
        )
        api = ReportingApi(api, ctx, self.admission)
        self.guard = CostGuard(
            options.max_videos,
            options.max_credits,
            priced=bool(manifest.pricing),
            earlier_videos=options.earlier_videos,
            earlier_credits=options.earlier_credits,
        )
        self.board = PlanBoard(planner or PollPlanner())
        self.interrupts = Interrupts(ctx, cancel=self._cancel)
        self.submit = SubmitStage(ctx, api, self.admission, self.guard, self.interrupts.shielded)
        self.polls = PollStage(ctx, api, self.admission, self.board)
        self.downloads = DownloadStage(ctx, api, self.admission, videos)
        self._started = timing.clock()
        self._backlog = 0  # jobs not yet created
        self._main_scope: anyio.CancelScope | None = None

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        # The signal watcher lives outside the run's own scope, so that a second Ctrl-C still
        # finds it while the first one's stop is under way.
        error: Exception | None = None
        async with anyio.create_task_group() as watcher:
            if self.ctx.options.handle_signals:
                watcher.start_soon(self.interrupts.watch)
            try:
                summary = await self._run()
            except Exception as exc:  # raised below as it is: a task group would wrap it
                error = exc
            finally:
                watcher.cancel_scope.cancel()
        if error is not None:
            raise error
        return summary

    async def _run(self) -> RunSummary:
        started = self._started = self.timing.clock()
        log = self.ctx.log
        self.ctx.look_at_clocks()  # the first look: a sleep is measured from here
        try:
            await self._apply_changes()
            plan = plan_work(self.manifest.jobs, self.journal.record, self._video_intact)
            self.summary.already_done = plan.already_done
            self.summary.failed.update(plan.failed)
            for job_id in plan.missing_videos:
                # The journal says rendered, not downloaded, as the disk does: every view agrees.
                await self.journal.append(
                    self.ctx.event(EventKind.SUCCEEDED, job_id, video_url=None), durable=False
                )
                log.info("job.video_missing", job=job_id)
            log.info(
                "run.started",
                jobs=len(self.manifest.jobs),
                done=plan.already_done,
                to_create=len(plan.to_create),
                in_flight=len(plan.to_poll),
                to_download=len(plan.to_download),
            )
            with anyio.CancelScope() as scope:
                self._main_scope = scope
                self.interrupts.scope = scope
                async with anyio.create_task_group() as outer:
                    outer.start_soon(self.admission.run)
                    outer.start_soon(self._watch_clocks)
                    await self._work(plan.to_poll, plan.to_download, plan.to_create)
                    outer.cancel_scope.cancel()
            if scope.cancelled_caught and self.stops.reason is None:
                self.stops.record(StopReason.INTERRUPTED, "interrupted")
        except JournalError as exc:
            self.ctx.halt(StopReason.JOURNAL, str(exc))
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.journal.flush()
                except JournalError as exc:
                    self.ctx.halt(StopReason.JOURNAL, str(exc))
            self.summary.wall_seconds = self.timing.clock() - started
        self._account_unfinished()
        log.info(
            "run.finished",
            exit_code=self.summary.exit_code,
            downloaded=len(self.summary.downloaded),
            failed=len(self.summary.failed),
            left=len(self.summary.left),
            requests=dict(self.summary.requests),
            wall_seconds=round(self.summary.wall_seconds, 3),
        )
        return self.summary

    async def _work(
        self, to_poll: list[JobSpec], to_download: list[JobSpec], to_create: list[JobSpec]
    ) -> None:
        downloads = max(1, self.ctx.limits.downloads)
        send, receive = anyio.create_memory_object_stream[JobSpec](max_buffer_size=downloads)
        pending = [*to_poll, *to_create]
        self._backlog = len(to_create)
        self.board.backlog(self._backlog)
        queue: Iterator[JobSpec] = iter(pending)
        workers_wanted = min(self.ctx.limits.concurrency, len(pending))
        async with anyio.create_task_group() as group:
            for _ in range(downloads):
                group.start_soon(self._download_worker, receive.clone())
            receive.close()
            async with send:
                for job in to_download:
                    await send.send(job)
                async with anyio.create_task_group() as workers:
                    for _ in range(workers_wanted):
                        workers.start_soon(self._job_worker, queue, send.clone())

    async def _job_worker(
        self, queue: Iterator[JobSpec], send: MemoryObjectSendStream[JobSpec]
    ) -> None:
        async with send:
            for job in queue:
                if not self.journal.record(job.id).state.has_task:
                    self._backlog -= 1
                    self.board.backlog(self._backlog if self.stops.submitting else 0)
                    if not self.stops.submitting:
                        continue  # accounted for at the end
                rendered = False
                with self._contained(job):
                    async with self.in_flight:
                        rendered = await self._render(job)
                if rendered:
                    await send.send(job)

    async def _render(self, job: JobSpec) -> bool:
        """Create ``job``'s task if it has none, then poll it; True when it rendered."""
        has_task = self.journal.record(job.id).state.has_task
        if not has_task and await self.submit.create(job) is not Submitted.CREATED:
            return False
        return await self.polls.until_done(job) is Polled.RENDERED

    async def _download_worker(self, receive: MemoryObjectReceiveStream[JobSpec]) -> None:
        async with receive:
            async for job in receive:
                with self._contained(job):
                    await self.downloads.download(job)

    @contextlib.contextmanager
    def _contained(self, job: JobSpec) -> Iterator[None]:
        """End one job's turn; errors that concern the whole batch stop it."""
        try:
            yield
        except AuthError as exc:
            self.ctx.halt(StopReason.AUTH, str(exc))
        except JournalError as exc:
            self.ctx.halt(StopReason.JOURNAL, str(exc))
        except CreditsExhaustedError as exc:
            self.ctx.stop_submitting(StopReason.CREDITS, str(exc))
        except WanbatchError as exc:
            if isinstance(exc, DiskError) and exc.stops_batch:  # a full or read-only disk
                self.ctx.halt(StopReason.DISK, str(exc))
                return
            self.summary.left[job.id] = str(exc)
            self.ctx.log.warning("job.left", job=job.id, error=str(exc))

    async def _watch_clocks(self) -> None:
        """Look at the clocks now and then: after a sleep, stored video URLs are forgotten."""
        while True:
            await self.timing.sleep(self.ctx.options.sleep_check_seconds)
            await self.ctx.woke()

    def _cancel(self) -> None:
        if self._main_scope is not None:
            self._main_scope.cancel()

    def _set_in_flight(self, limit: int) -> None:
        self.in_flight.total_tokens = limit

    def _video_intact(self, job: JobSpec, record: JobRecord) -> bool:
        return file_matches(
            self.manifest.output_dir / (record.path or job.output_path), record.size
        )

    # --- what the live view reads -------------------------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        """Where the run stands now (for the progress display; reads, never waits)."""
        record = self.journal.record
        stats = self.ctx.stats
        return progress_snapshot(
            Counter(record(job.id).state for job in self.manifest.jobs),
            elapsed_seconds=self.timing.clock() - self._started,
            finished_this_run=stats.finished_now,
            render_seconds=(stats.render_total, stats.render_count),
            recent_failures=tuple(stats.recent_failures),
            videos_submitted=self.guard.videos,
            credits_submitted=self.guard.credits_submitted,
            stopping=self.stops.why_not_submitting,
            outages=tuple(line for line in self._outage_lines() if line),
        )

    def _outage_lines(self) -> tuple[str | None, ...]:
        now, wall = self.timing.clock(), self.timing.wall()
        return (
            outage_line("API", self.admission.health, now, wall),
            outage_line("video host", self.downloads.health, now, wall),
        )

    # --- before and after ---------------------------------------------------------------

    async def _apply_changes(self) -> None:
        changed = changed_jobs(self.manifest.jobs, self.journal.records)
        if not changed:
            return
        options = self.ctx.options
        if not options.resubmit_changed and not options.keep_changed:
            raise changed_error(changed, self.manifest.estimate_credits(tuple(changed)))
        # --keep-changed is journaled, so that the next run does not ask again for these edits.
        kind = EventKind.REQUEUED if options.resubmit_changed else EventKind.KEPT
        for job in changed:
            await self.journal.append(
                self.ctx.event(kind, job.id, fingerprint=job.fingerprint()), durable=False
            )
            self.ctx.log.info(f"job.{kind}_changed", job=job.id)
        await self.journal.flush()

    def _account_unfinished(self) -> None:
        """The stop and the cost guard's counts go into the summary; every job not done gets
        its reason."""
        summary = self.summary
        summary.stop_reason = self.stops.reason
        summary.stop_message = self.stops.message
        summary.cap_message = self.stops.cap_message
        summary.videos_submitted = self.guard.videos
        summary.credits_submitted = self.guard.credits_submitted
        now = self.timing.clock()
        for host, health in (("api", self.admission.health), ("video", self.downloads.health)):
            if health.outages:
                summary.outages[host] = health.outages
                summary.outage_seconds[host] = health.total_seconds(now)
        account_unfinished(summary, self.manifest.jobs, self.journal.record)
