"""The I/O shell of a run: one task group that submits, polls, downloads and journals.

It wires the pure pieces (``lifecycle``, ``backoff``, ``ratelimit``) to the I/O ones (a ``TaskApi``
such as ``client.WanApi``, a ``VideoSource``, the ``Journal``). It knows no wire format: a new
provider is a new ``TaskApi``.

Shape of a run::

    Runner.run
    └── task group
        ├── admission dispatcher   paces every API request; polls and refreshes go before creates;
        │                          a Retry-After closes the gate for the whole host
        ├── signal watcher         first Ctrl-C/SIGTERM: stop, keep the journal whole, exit 130
        ├── job workers (N)        take the next job: create -> poll until done -> hand to downloads
        └── download workers (D)   stream the video into place, sidecar, journal ``downloaded``

Invariants: an ``intent`` record is fsynced before every create; the task id is fsynced before
it is polled; a job with a task id is never created again; a job whose create outcome is unknown
is created again with the same ``Idempotency-Key`` and reported as a possible duplicate.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import heapq
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from wanbatch.backoff import FirstPollEstimator, PollPolicy, QueuePlanner, RetryPolicy
from wanbatch.download import VideoSource, download_video, file_matches, write_sidecar
from wanbatch.errors import (
    AuthError,
    CreditsExhaustedError,
    DownloadError,
    JobRejectedError,
    JournalError,
    ManifestChangedError,
    TransientApiError,
    TransientDownloadError,
    VideoUrlExpiredError,
    WanbatchError,
)
from wanbatch.journal import Journal
from wanbatch.models import (
    EventKind,
    JobEvent,
    JobRecord,
    JobSpec,
    JobState,
    Manifest,
    TaskStatus,
    TaskView,
)
from wanbatch.ratelimit import AdaptiveLimit, HostGate, RequestPacer

POLL_PRIORITY = 0  # polls and URL refreshes free capacity: they go first
CREATE_PRIORITY = 1
LONG_PAUSE_SECONDS = 30.0  # a Retry-After longer than this is announced


class TaskApi(Protocol):
    """What the scheduler needs of a provider; ``client.WanApi`` is one."""

    async def create(self, job: JobSpec, idempotency_key: str) -> TaskView: ...

    async def get(self, task_id: str) -> TaskView: ...


class FaultHook(Protocol):
    """Test-only: called at each crash point; may kill the process. Never set in normal runs."""

    def __call__(self, point: str, job_id: str, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Timing:
    """Clock, randomness and sleep, injected so that tests control time."""

    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep


@dataclass(frozen=True, slots=True)
class RunOptions:
    poll: PollPolicy = PollPolicy()
    queue_aware_polls: bool = True  # poll by place in the server's queue (off: the ladder only)
    retry: RetryPolicy = RetryPolicy()
    download_retry: RetryPolicy = RetryPolicy(max_attempts=6, base_seconds=0.5, cap_seconds=20.0)
    resubmit_changed: bool = False  # render changed jobs anew (costs credits)
    keep_changed: bool = False  # keep what was rendered from the old fields
    handle_signals: bool = False  # the CLI turns this on; tests drive cancellation themselves
    stop_grace_seconds: float = 1.5  # how long an in-flight create may finish after Ctrl-C
    faults: FaultHook | None = None
    max_videos: int | None = None  # cost guard: new tasks this run may create
    max_credits: float | None = None  # cost guard: estimated credits this run may spend


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Where a run stands, for a progress display. Counts are over the manifest's jobs."""

    total: int
    queued: int  # nothing sent yet
    rendering: int  # submitted, not yet rendered (or the create's answer not yet known)
    downloading: int  # rendered, the video not yet on disk
    done: int
    failed: int
    elapsed_seconds: float
    finished_this_run: int  # done or failed during this run
    jobs_per_second: float | None  # finished this run / elapsed; None before the first
    eta_seconds: float | None  # what is left at that rate; None before the first finish
    mean_render_seconds: float | None  # create to rendered, over tasks finished this run
    recent_failures: tuple[tuple[str, str], ...]  # (job id, reason), newest last
    videos_submitted: int
    credits_submitted: float | None
    stopping: str | None  # why no more jobs are submitted, if that is so


@dataclass(slots=True)
class RunSummary:
    """What a run did, for the closing lines and the exit code."""

    total: int = 0
    downloaded: list[str] = field(default_factory=list)  # videos written by this run
    already_done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # job id -> reason (this run or before)
    stalled: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)  # job id -> why it is not done yet
    possible_duplicates: list[str] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    stop_reason: str | None = None  # "auth", "credits", "interrupted", "journal"
    stop_message: str | None = None
    wall_seconds: float = 0.0
    videos_submitted: int = 0  # tasks this run created
    credits_submitted: float | None = None  # their estimated credits (None: no pricing)
    cap_message: str | None = None  # the cost guard stopped submissions: what it said

    @property
    def exit_code(self) -> int:
        if self.stop_reason == "interrupted":
            return 130
        if self.stop_reason == "auth":
            return 3
        if self.stop_reason == "credits":
            return 4
        if self.stop_reason == "journal" or self.left or self.stalled:
            return 5
        if self.failed:
            return 1
        return 0


def idempotency_key_for(job: JobSpec, attempt: int) -> str:
    """Stable for a job's fields and attempt: a rerun asks for the same task, ``retry`` for a new one."""
    digest = hashlib.sha256(f"{job.id}\x00{job.fingerprint()}\x00{attempt}".encode()).hexdigest()
    return f"wb-{digest[:32]}"


class _Stop(Exception):
    """Raised inside a worker to leave the job alone: the reason is already recorded."""


class Admission:
    """Paces API requests: a token bucket, the host's Retry-After gate, and priorities."""

    def __init__(self, pacer: RequestPacer, gate: HostGate, timing: Timing) -> None:
        self.pacer = pacer
        self.gate = gate
        self._timing = timing
        self._heap: list[tuple[int, int, anyio.Event]] = []
        self._seq = 0
        self._wakeup = anyio.Event()
        self.paused_until_logged = 0.0

    async def acquire(self, priority: int) -> None:
        granted = anyio.Event()
        self._seq += 1
        heapq.heappush(self._heap, (priority, self._seq, granted))
        self._wakeup.set()
        await granted.wait()

    async def run(self) -> None:
        """The dispatcher: forever, hand the next token to the most urgent live waiter."""
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
            _, _, granted = heapq.heappop(self._heap)
            self.pacer.take(now)
            granted.set()
            await anyio.lowlevel.checkpoint()


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
    ) -> None:
        self.manifest = manifest
        self.journal = journal
        self.api = api
        self.videos = videos
        self.options = options or RunOptions()
        self.timing = timing or Timing()
        limits = manifest.limits
        self.gate = HostGate()
        self.admission = Admission(
            RequestPacer(
                rate=limits.requests_per_second, burst=max(1.0, limits.requests_per_second)
            ),
            self.gate,
            self.timing,
        )
        self.adaptive = AdaptiveLimit(ceiling=limits.concurrency)
        self.in_flight = anyio.CapacityLimiter(limits.concurrency)
        self.estimator = FirstPollEstimator()
        self.planner = QueuePlanner()
        self._plan_changed = anyio.Event()  # set (and replaced) when the planner's rate moves
        self._rate_announced: float | None = None
        self.summary = RunSummary(total=len(manifest.jobs))
        self.log = structlog.get_logger("wanbatch.run")
        self._stop_submitting = False
        self._reserved: dict[str, float] = {}  # creates under way: their estimated credits
        self._started = self.timing.clock()
        self._finished_now = 0
        self._render_total = 0.0
        self._render_count = 0
        self._recent_failures: list[tuple[str, str]] = []
        if manifest.pricing:
            self.summary.credits_submitted = 0.0
        self._main_scope: anyio.CancelScope | None = None
        self._shields: set[anyio.CancelScope] = set()

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        started = self._started = self.timing.clock()
        try:
            await self._apply_changes()
            to_poll, to_download, to_create = self._plan()
            self.log.info(
                "run.started",
                jobs=len(self.manifest.jobs),
                done=self.summary.already_done,
                to_create=len(to_create),
                in_flight=len(to_poll),
                to_download=len(to_download),
            )
            with anyio.CancelScope() as scope:
                self._main_scope = scope
                async with anyio.create_task_group() as outer:
                    outer.start_soon(self.admission.run)
                    if self.options.handle_signals:
                        outer.start_soon(self._watch_signals)
                    await self._work(to_poll, to_download, to_create)
                    outer.cancel_scope.cancel()
            if scope.cancelled_caught and self.summary.stop_reason is None:
                self.summary.stop_reason = "interrupted"
        except JournalError as exc:
            self._record_stop("journal", str(exc))
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.journal.flush()
                except JournalError as exc:
                    self._record_stop("journal", str(exc))
            self.summary.wall_seconds = self.timing.clock() - started
        self._account_unfinished()
        self.log.info(
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
        downloads = max(1, self.manifest.limits.downloads)
        send, receive = anyio.create_memory_object_stream[JobSpec](max_buffer_size=downloads)
        pending = [*to_poll, *to_create]
        queue: Iterator[JobSpec] = iter(pending)
        workers_wanted = min(self.manifest.limits.concurrency, len(pending))
        async with anyio.create_task_group() as group:
            for _ in range(downloads):
                group.start_soon(self._download_worker, receive.clone())
            receive.close()
            async with send:
                await self._feed_downloads(to_download, send)
                async with anyio.create_task_group() as workers:
                    for _ in range(workers_wanted):
                        workers.start_soon(self._job_worker, queue, send.clone())

    async def _feed_downloads(
        self, jobs: list[JobSpec], send: MemoryObjectSendStream[JobSpec]
    ) -> None:
        for job in jobs:
            await send.send(job)

    async def _job_worker(
        self, queue: Iterator[JobSpec], send: MemoryObjectSendStream[JobSpec]
    ) -> None:
        async with send:
            for job in queue:
                record = self.journal.record(job.id)
                if not record.state.has_task and self._stop_submitting:
                    continue  # accounted for at the end
                with self._contained(job):
                    async with self.in_flight:
                        await self._render(job)
                if self.journal.record(job.id).state is JobState.SUCCEEDED:
                    await send.send(job)

    @contextlib.contextmanager
    def _contained(self, job: JobSpec) -> Iterator[None]:
        """End one job's turn: ``_Stop`` is routine; batch-level errors stop the whole run."""
        try:
            yield
        except _Stop:
            pass
        except AuthError as exc:
            self._halt("auth", str(exc))
        except JournalError as exc:
            self._halt("journal", str(exc))
        except CreditsExhaustedError as exc:
            self._stop_submitting = True
            self._record_stop("credits", str(exc))
        except WanbatchError as exc:
            self.summary.left[job.id] = str(exc)
            self.log.warning("job.left", job=job.id, error=str(exc))

    def _halt(self, reason: str, message: str) -> None:
        self._record_stop(reason, message)
        if self._main_scope is not None:
            self._main_scope.cancel()

    def snapshot(self) -> ProgressSnapshot:
        """Where the run stands now (for the progress display; reads, never waits)."""
        counts = dict.fromkeys(JobState, 0)
        record = self.journal.record
        for job in self.manifest.jobs:
            counts[record(job.id).state] += 1
        elapsed = max(1e-9, self.timing.clock() - self._started)
        finished = self._finished_now
        rate = finished / elapsed if finished else None
        done = counts[JobState.DOWNLOADED]
        failed = counts[JobState.FAILED]
        remaining = len(self.manifest.jobs) - done - failed
        stopping = self.summary.cap_message or (
            self.summary.stop_message if self._stop_submitting else None
        )
        return ProgressSnapshot(
            total=len(self.manifest.jobs),
            queued=counts[JobState.PLANNED],
            rendering=(
                counts[JobState.SUBMITTING] + counts[JobState.SUBMITTED] + counts[JobState.RUNNING]
            ),
            downloading=counts[JobState.SUCCEEDED],
            done=done,
            failed=failed,
            elapsed_seconds=elapsed,
            finished_this_run=finished,
            jobs_per_second=rate,
            eta_seconds=remaining / rate if rate else None,
            mean_render_seconds=(
                self._render_total / self._render_count if self._render_count else None
            ),
            recent_failures=tuple(self._recent_failures),
            videos_submitted=self.summary.videos_submitted,
            credits_submitted=self.summary.credits_submitted,
            stopping=stopping,
        )

    # --- one job ------------------------------------------------------------------------

    async def _render(self, job: JobSpec) -> None:
        record = self.journal.record(job.id)
        if not record.state.has_task:
            await self._create(job)
        await self._poll_until_done(job)

    async def _create(self, job: JobSpec) -> None:
        record = self.journal.record(job.id)
        unknown = record.state is JobState.SUBMITTING and record.idempotency_key is not None
        # An unknown outcome is asked about again with the same key, so the server can dedupe.
        key = record.idempotency_key if unknown else idempotency_key_for(job, record.attempt)
        assert key is not None
        # Wait for the request budget before promising anything, so that the gap between the
        # intent on disk and the create on the wire is as short as it can be.
        await self.admission.acquire(CREATE_PRIORITY)
        if self._stop_submitting or not self._reserve(job):
            raise _Stop
        try:
            await self._create_reserved(job, key, unknown)
        finally:
            self._reserved.pop(job.id, None)

    def _cost(self, job: JobSpec) -> float:
        return self.manifest.pricing.get(job.model, 0.0) * job.duration

    def _reserve(self, job: JobSpec) -> bool:
        """The cost guard: may this run create one more task? Stops submitting when not."""
        options = self.options
        videos = self.summary.videos_submitted + len(self._reserved) + 1
        credits = (
            (self.summary.credits_submitted or 0.0) + sum(self._reserved.values()) + self._cost(job)
        )
        cap = None
        if options.max_videos is not None and videos > options.max_videos:
            cap = f"--max-videos {options.max_videos} reached"
        elif options.max_credits is not None and credits > options.max_credits:
            cap = (
                f"--max-credits {options.max_credits:g} reached (the next job would bring the"
                f" estimate to {credits:g})"
            )
        if cap is not None:
            if not self._stop_submitting:
                self._stop_submitting = True
                self.summary.cap_message = cap
                self.log.warning(
                    "run.cap_reached",
                    detail=cap,
                    videos_submitted=self.summary.videos_submitted,
                    credits_submitted=self.summary.credits_submitted,
                )
            return False
        self._reserved[job.id] = self._cost(job)
        return True

    def _count_created(self, job: JobSpec) -> None:
        self._reserved.pop(job.id, None)
        self.summary.videos_submitted += 1
        if self.summary.credits_submitted is not None:
            self.summary.credits_submitted += self._cost(job)

    async def _create_reserved(self, job: JobSpec, key: str, unknown: bool) -> None:
        self._fault("before_intent", job.id)
        await self.journal.append(
            self._event(
                EventKind.INTENT, job.id, idempotency_key=key, fingerprint=job.fingerprint()
            )
        )
        self._fault("after_intent", job.id)
        if unknown and job.id not in self.summary.possible_duplicates:
            self.summary.possible_duplicates.append(job.id)
            self.log.warning("job.resubmitting_unknown_outcome", job=job.id, idempotency_key=key)
        attempt = 0
        ambiguous = False  # the last attempt got no answer: the server may have made the task
        while True:
            if attempt:
                if self._stop_submitting and not ambiguous:
                    await self._not_created(job, "credits ran out before it was sent")
                await self.admission.acquire(CREATE_PRIORITY)
                if ambiguous:
                    # Sending again after an unanswered create may pay twice where the server
                    # ignores Idempotency-Key: journal it as a resubmission and report it.
                    await self.journal.append(
                        self._event(
                            EventKind.INTENT,
                            job.id,
                            idempotency_key=key,
                            fingerprint=job.fingerprint(),
                        )
                    )
                    if job.id not in self.summary.possible_duplicates:
                        self.summary.possible_duplicates.append(job.id)
            self.summary.requests["create"] += 1
            try:
                with self._shielded() as shield:
                    view = await self.api.create(job, key)
                    self._fault("after_create", job.id)
                    await self.journal.append(
                        self._event(EventKind.CREATED, job.id, task_id=view.task_id)
                    )
                    self._count_created(job)
                if shield.cancelled_caught:  # interrupted mid-create: the outcome is unknown
                    raise _Stop
                self._fault("after_created", job.id)
                self.adaptive.on_success()
                self.in_flight.total_tokens = self.adaptive.current
                self.log.debug("job.submitted", job=job.id, task_id=view.task_id)
                return
            except JobRejectedError as exc:
                await self._fail(job, exc.server_message, exc.code)
            except AuthError as exc:
                await self._not_created(job, str(exc), stop=("auth", str(exc)))
            except CreditsExhaustedError as exc:
                self._stop_submitting = True
                if self.summary.stop_reason is None:
                    self._record_stop("credits", str(exc))
                await self._not_created(job, "credits ran out (402)")
            except TransientApiError as exc:
                attempt += 1
                ambiguous = exc.status is None or 200 <= exc.status < 300
                if not await self._after_transient(exc, attempt, "create", job):
                    self.summary.left[job.id] = (
                        f"create not confirmed after {attempt} attempts: {exc}"
                    )
                    raise _Stop from exc

    async def _poll_until_done(self, job: JobSpec) -> None:
        self.planner.submitted(job.id, self.timing.clock())
        try:
            await self._poll_loop(job)
        finally:
            self.planner.forget(job.id)

    async def _poll_loop(self, job: JobSpec) -> None:
        polls = 0
        errors = 0
        first_why = ""  # which estimate timed the first poll
        why = ""
        deadline = self.manifest.limits.job_deadline_seconds
        while True:
            record = self.journal.record(job.id)
            if record.state in (JobState.SUCCEEDED, JobState.FAILED):
                return
            assert record.task_id is not None
            submitted = record.submitted_at or self.timing.wall()
            if self.timing.wall() - submitted > deadline:
                self.summary.stalled.append(job.id)
                self.log.warning(
                    "job.stalled", job=job.id, task_id=record.task_id, deadline=deadline
                )
                raise _Stop
            expected = self.estimator.expect(job.model, job.duration)
            if expected is not None:
                expected = max(0.0, expected - (self.timing.wall() - submitted))
            why = await self._wait_to_poll(
                job.id,
                self.options.poll.delay(polls, self.timing.random, expected),
                None if expected is None or polls else expected,
            )
            first_why = first_why or why
            polls += 1
            try:
                view = await self._get(record.task_id, "poll")
            except JobRejectedError as exc:
                await self._fail(job, exc.server_message, exc.code)
                return
            except TransientApiError as exc:
                errors += 1
                if not await self._after_transient(exc, errors, "poll", job):
                    self.summary.left[job.id] = f"polling failed {errors} times: {exc}"
                    raise _Stop from exc
                continue
            await self._on_task_view(job, view, polls, why, first_why)

    async def _wait_to_poll(
        self, job_id: str, ladder_seconds: float, expected_seconds: float | None
    ) -> str:
        """Sleep until the planner's time for this task's next poll; say which estimate chose it.

        At most ``ladder_seconds``; ``expected_seconds`` is when the render-time estimate expects
        the task done. The planned time moves as other tasks finish: waiters are woken when the
        planner's rate moves by more than 10% since the last wake-up, else sleep to their time.
        """
        if not self.options.queue_aware_polls:
            await self.timing.sleep(ladder_seconds)
            return "ladder"
        clock = self.timing.clock
        now = clock()
        ladder_at = now + ladder_seconds
        expected_at = None if expected_seconds is None else now + expected_seconds
        while True:
            at, why = self.planner.poll_at(job_id, ladder_at, expected_at)
            remaining = at - clock()
            if remaining <= 0:
                break
            changed = self._plan_changed
            with anyio.move_on_after(remaining):
                await changed.wait()
        self.planner.polled(job_id, clock())
        return why

    def _steer(self, job: JobSpec, done: bool, polls: int, why: str, first_why: str) -> None:
        """Teach the planner and the first-poll estimate what this poll found.

        Each estimate learns only from the polls it timed: the throughput from polls timed by
        the queue, the render time from first polls timed by it (or by the ladder before it
        knew anything: then it starts from that task). Otherwise queue waits would inflate the
        render time, and render times
        would drag down the throughput while the server is not the bottleneck.
        """
        self.planner.outcome(
            job.id, done=done, now=self.timing.clock(), steer=why in ("queue", "spacing")
        )
        rate = self.planner.rate
        if rate is not None and (
            self._rate_announced is None or abs(rate / self._rate_announced - 1.0) > 0.1
        ):
            self._rate_announced = rate
            self._plan_changed.set()
            self._plan_changed = anyio.Event()
        if done and (
            first_why == "estimate" or self.estimator.expect(job.model, job.duration) is None
        ):
            record = self.journal.record(job.id)
            if record.submitted_at is not None:
                self.estimator.first_poll(
                    job.model,
                    job.duration,
                    done=polls == 1,
                    elapsed=self.timing.wall() - record.submitted_at,
                )

    async def _on_task_view(
        self, job: JobSpec, view: TaskView, polls: int, why: str, first_why: str
    ) -> None:
        record = self.journal.record(job.id)
        done = view.status is TaskStatus.FAILED or (
            view.status is TaskStatus.SUCCEEDED and view.video_url is not None
        )
        self._steer(job, done, polls, why, first_why)
        if view.status is TaskStatus.RUNNING and record.state is JobState.SUBMITTED:
            await self.journal.append(self._event(EventKind.RUNNING, job.id), durable=False)
        elif view.status is TaskStatus.SUCCEEDED:
            if view.video_url is None:
                self.log.warning("job.succeeded_without_url", job=job.id, task_id=view.task_id)
                return  # poll again: some servers fill the URL in a moment later
            await self.journal.append(
                self._event(EventKind.SUCCEEDED, job.id, video_url=view.video_url)
            )
            if record.submitted_at is not None:
                self._render_total += self.timing.wall() - record.submitted_at
                self._render_count += 1
            self.log.debug("job.rendered", job=job.id, task_id=view.task_id)
        elif view.status is TaskStatus.FAILED:
            reason = view.error_message or f"generation {view.raw_status or 'failed'}"
            await self._fail(job, reason, view.error_code)

    async def _get(self, task_id: str, kind: str) -> TaskView:
        """One GET with retries left to the caller; counted as ``kind``."""
        await self.admission.acquire(POLL_PRIORITY)
        self.summary.requests[kind] += 1
        return await self.api.get(task_id)

    # --- downloads ----------------------------------------------------------------------

    async def _download_worker(self, receive: MemoryObjectReceiveStream[JobSpec]) -> None:
        async with receive:
            async for job in receive:
                with self._contained(job):
                    await self._download(job)

    async def _download(self, job: JobSpec) -> None:
        target = self.manifest.output_dir / job.output_path
        attempt = 0
        policy = self.options.download_retry
        while True:
            record = self.journal.record(job.id)
            url = record.video_url if record.state is JobState.SUCCEEDED else None
            try:
                if url is None:
                    url = await self._refresh_url(job)
                self._fault("before_download", job.id)
                result = await download_video(
                    self.videos, url, target, checkpoint=lambda point: self._fault(point, job.id)
                )
                break
            except VideoUrlExpiredError as exc:
                self.log.info("download.url_expired", job=job.id, detail=str(exc))
                await self._forget_url(job)
                error: Exception = exc
            except (TransientDownloadError, TransientApiError) as exc:
                self.log.info("download.retry", job=job.id, detail=str(exc))
                error = exc
            except DownloadError as exc:
                error = exc
            attempt += 1
            if attempt >= policy.max_attempts:
                self.summary.left[job.id] = f"download failed {attempt} times: {error}"
                raise _Stop from error
            self.summary.requests["download_retry"] += 1
            await self.timing.sleep(policy.delay(attempt - 1, self.timing.random))
        self._fault("before_record_download", job.id)
        record = self.journal.record(job.id)
        await write_sidecar(target, self._sidecar(job, record, result.size, result.sha256))
        await self.journal.append(
            self._event(
                EventKind.DOWNLOADED,
                job.id,
                path=job.output_path,
                size=result.size,
                sha256=result.sha256,
            )
        )
        self.summary.downloaded.append(job.id)
        self.summary.requests["download"] += 1
        self._finished_now += 1
        done = self.journal.record(job.id)
        self.log.info(
            "job.finished",
            job=job.id,
            state=str(done.state),
            path=job.output_path,
            size=result.size,
            model=job.model,
            duration=job.duration,
            task_id=done.task_id,
            render_seconds=_span(done.submitted_at, done.finished_at),
            download_seconds=_span(done.finished_at, done.downloaded_at),
            resumed_from=result.resumed_from,
            reused_part=result.reused_part,
        )

    async def _refresh_url(self, job: JobSpec) -> str:
        record = self.journal.record(job.id)
        assert record.task_id is not None
        errors = 0
        while True:
            try:
                view = await self._get(record.task_id, "refresh")
            except JobRejectedError as exc:
                raise DownloadError(f"cannot refresh the video URL: {exc}") from exc
            except TransientApiError as exc:
                errors += 1
                if not await self._after_transient(exc, errors, "refresh", job):
                    raise
                continue
            if view.status is TaskStatus.SUCCEEDED and view.video_url:
                await self.journal.append(
                    self._event(EventKind.SUCCEEDED, job.id, video_url=view.video_url),
                    durable=False,
                )
                return view.video_url
            raise DownloadError(f"the task no longer offers a video (status {view.raw_status!r})")

    async def _forget_url(self, job: JobSpec) -> None:
        """Mark the URL stale so the next attempt fetches the task again."""
        record = self.journal.record(job.id)
        if record.state is JobState.SUCCEEDED and record.video_url is not None:
            await self.journal.append(
                self._event(EventKind.SUCCEEDED, job.id, video_url=None), durable=False
            )

    def _sidecar(
        self, job: JobSpec, record: JobRecord, size: int, sha256: str
    ) -> dict[str, object]:
        render_seconds = (
            round(record.finished_at - record.submitted_at, 3)
            if record.finished_at is not None and record.submitted_at is not None
            else None
        )
        return {
            "id": job.id,
            "fields": job.fields(),
            "task_id": record.task_id,
            "idempotency_key": record.idempotency_key,
            "submitted_at": _iso(record.submitted_at),
            "rendered_at": _iso(record.finished_at),
            "downloaded_at": _iso(self.timing.wall()),
            "render_seconds": render_seconds,
            "size": size,
            "sha256": sha256,
            "manifest": self.manifest.name,
            "source": job.source,
        }

    # --- plan, changes and endings ------------------------------------------------------

    async def _apply_changes(self) -> None:
        changed = [
            job
            for job in self.manifest.jobs
            if (record := self.journal.records.get(job.id)) is not None
            and record.state is not JobState.PLANNED
            and record.fingerprint is not None
            and record.fingerprint != job.fingerprint()
        ]
        if not changed or self.options.keep_changed:
            return
        if not self.options.resubmit_changed:
            names = ", ".join(job.id for job in changed[:10]) + (
                " ..." if len(changed) > 10 else ""
            )
            credits = self.manifest.estimate_credits(tuple(changed))
            cost = f" (about {credits:g} credits)" if credits is not None else ""
            raise ManifestChangedError(
                [job.id for job in changed],
                f"{len(changed)} job(s) changed in the manifest since they were submitted: {names}. "
                "Nothing was sent. Choose one: --resubmit-changed renders them anew from the "
                f"new fields{cost}; --keep-changed keeps what the old fields rendered; or undo "
                "the edit.",
            )
        for job in changed:
            await self.journal.append(
                self._event(EventKind.REQUEUED, job.id, fingerprint=job.fingerprint()),
                durable=False,
            )
            self.log.info("job.requeued_changed", job=job.id)
        await self.journal.flush()

    def _plan(self) -> tuple[list[JobSpec], list[JobSpec], list[JobSpec]]:
        to_poll: list[JobSpec] = []
        to_download: list[JobSpec] = []
        unknown: list[JobSpec] = []
        to_create: list[JobSpec] = []
        for job in self.manifest.jobs:
            record = self.journal.record(job.id)
            state = record.state
            if state is JobState.DOWNLOADED:
                if file_matches(
                    self.manifest.output_dir / (record.path or job.output_path), record.size
                ):
                    self.summary.already_done += 1
                else:
                    self.log.info("job.video_missing", job=job.id)
                    to_download.append(job)
            elif state is JobState.SUCCEEDED:
                to_download.append(job)
            elif state in (JobState.SUBMITTED, JobState.RUNNING):
                to_poll.append(job)
            elif state is JobState.SUBMITTING:
                unknown.append(job)
            elif state is JobState.FAILED:
                self.summary.failed[job.id] = record.reason or "failed"
            else:
                to_create.append(job)
        return to_poll, to_download, unknown + to_create

    def _account_unfinished(self) -> None:
        """Every job not done, failed or stalled gets a reason in ``left``."""
        for job in self.manifest.jobs:
            if job.id in self.summary.left or job.id in self.summary.failed:
                continue
            if job.id in self.summary.stalled:
                continue
            record = self.journal.record(job.id)
            if record.state is JobState.DOWNLOADED:
                continue
            if record.state is JobState.FAILED:
                self.summary.failed[job.id] = record.reason or "failed"
                continue
            why = {
                JobState.PLANNED: "not submitted",
                JobState.SUBMITTING: "create sent, answer unknown",
                JobState.SUBMITTED: "rendering on the server",
                JobState.RUNNING: "rendering on the server",
                JobState.SUCCEEDED: "rendered, not downloaded",
            }[record.state]
            self.summary.left[job.id] = why

    async def _after_transient(
        self, exc: TransientApiError, attempt: int, what: str, job: JobSpec
    ) -> bool:
        """Back off after a transient error; False when the attempts are used up."""
        if exc.status == 429:
            self.summary.requests["throttled"] += 1
            # The server's own budget is smaller than ours: stop bursting, and come back at the
            # steady rate when its pause ends rather than in a burst it would refuse again.
            self.admission.pacer.throttle(self.timing.clock())
        now = self.timing.clock()
        if exc.retry_after_seconds is not None:
            self.gate.block_for(exc.retry_after_seconds, now)
            if (
                exc.retry_after_seconds >= LONG_PAUSE_SECONDS
                and self.admission.paused_until_logged < self.gate.not_before
            ):
                self.admission.paused_until_logged = self.gate.not_before
                self.log.warning(
                    "api.paused", seconds=round(exc.retry_after_seconds, 1), reason=str(exc)
                )
        elif exc.status == 429:
            self.adaptive.on_throttled()
            self.in_flight.total_tokens = self.adaptive.current
        policy = self.options.retry
        told_when = exc.status == 429 and exc.retry_after_seconds is not None
        if attempt >= (policy.max_attempts_told_when if told_when else policy.max_attempts):
            self.log.warning(f"{what}.gave_up", job=job.id, attempts=attempt, error=str(exc))
            return False
        self.summary.requests["retry"] += 1
        self.log.debug(f"{what}.retry", job=job.id, attempt=attempt, error=str(exc))
        if exc.retry_after_seconds is None:
            await self.timing.sleep(policy.delay(attempt - 1, self.timing.random))
        return True

    async def _fail(self, job: JobSpec, reason: str, code: str | None) -> None:
        await self.journal.append(self._event(EventKind.FAILED, job.id, reason=reason, code=code))
        self.summary.failed[job.id] = reason
        self._finished_now += 1
        self._recent_failures.append((job.id, reason))
        del self._recent_failures[:-_RECENT_FAILURES]
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
            render_seconds=_span(record.submitted_at, record.finished_at),
        )
        raise _Stop

    async def _not_created(
        self, job: JobSpec, why: str, stop: tuple[str, str] | None = None
    ) -> None:
        await self.journal.append(self._event(EventKind.NOT_CREATED, job.id, reason=why))
        if stop is not None:
            self._halt(*stop)
        raise _Stop

    def _record_stop(self, reason: str, message: str) -> None:
        if self.summary.stop_reason in (None, "credits") or reason == "journal":
            self.summary.stop_reason = reason
            self.summary.stop_message = message
        self.log.error("run.stopping", reason=reason, detail=message)

    # --- plumbing -----------------------------------------------------------------------

    def _event(self, kind: EventKind, job_id: str, **fields: object) -> JobEvent:
        return JobEvent(kind=kind, job_id=job_id, at=self.timing.wall(), **fields)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def _shielded(self) -> Iterator[anyio.CancelScope]:
        """Shield a create and its journal line from Ctrl-C, for a short grace period only."""
        scope = anyio.CancelScope(shield=True)
        if self._main_scope is not None and self._main_scope.cancel_called:
            scope.deadline = anyio.current_time() + self.options.stop_grace_seconds
        self._shields.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._shields.discard(scope)

    def _fault(self, point: str, job_id: str) -> None:
        if self.options.faults is not None:
            self.options.faults(point, job_id)

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.summary.stop_reason == "interrupted":
                    os._exit(130)  # second signal: leave now; the journal is already whole
                self.summary.stop_reason = "interrupted"
                self.summary.stop_message = f"stopped by {signal.Signals(signum).name}"
                self.log.warning("run.interrupted", signal=signal.Signals(signum).name)
                deadline = anyio.current_time() + self.options.stop_grace_seconds
                for shield in list(self._shields):
                    shield.deadline = min(shield.deadline, deadline)
                if self._main_scope is not None:
                    self._main_scope.cancel()


_RECENT_FAILURES = 5


def _span(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(end - start, 3)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")
