"""The download stage: a rendered task's video into the output tree, with its sidecar.

The video URL may have expired (or been forgotten by a crash): the task is then fetched again
for a fresh one (``refresh_url``). Bytes go to ``.part`` and are renamed into place only when
whole (``download.download_video``); the sidecar and the journal's ``downloaded`` follow.
A URL that is not an absolute http(s) URL is never fetched nor retried: the job is left with
that reason, and the URL is forgotten so that the next run asks the task again. A ``DiskError``
is not retried here: the scheduler stops the run (a full disk) or leaves the job (its path).

The video host has its own ``outage.HostHealth``: a download that cannot connect marks it down;
then one download at a time tries it (a probe, at the probe interval) and the others wait
without spending their retries, until any answer from it. After the machine slept, stored URLs
are forgotten (``RunContext.woke``) and fetched anew before use: they may have expired.
"""

from __future__ import annotations

import datetime

from wanbatch.admission import REFRESH, Admission, after_refusal
from wanbatch.download import VideoSource, download_video, write_sidecar
from wanbatch.errors import (
    DownloadError,
    JobRejectedError,
    TaskGoneError,
    TransientApiError,
    TransientDownloadError,
    UnusableVideoUrlError,
    VideoHostUnreachableError,
    VideoUrlExpiredError,
)
from wanbatch.models import EventKind, JobRecord, JobSpec, JobState, TaskStatus
from wanbatch.outage import HostHealth, past_limit
from wanbatch.retrying import RetryState
from wanbatch.runcontext import RunContext, TaskReader, span
from wanbatch.stops import StopReason


class DownloadStage:
    def __init__(
        self, ctx: RunContext, api: TaskReader, admission: Admission, videos: VideoSource
    ) -> None:
        self.ctx = ctx
        self.api = api
        self.admission = admission
        self.videos = videos
        self.health = HostHealth(ctx.options.probe, ctx.timing.random)  # the video host's
        self._prober: str | None = None  # the job whose download probes the video host

    async def download(self, job: JobSpec) -> None:
        """Fetch ``job``'s video; if it cannot be had now, its reason goes into ``left``."""
        ctx = self.ctx
        target = ctx.manifest.output_dir / job.output_path
        retries = RetryState(ctx.options.download_retry)
        while True:
            await self._video_host_turn(job.id)
            await ctx.woke()
            record = ctx.journal.record(job.id)
            url = record.video_url if record.state is JobState.SUCCEEDED else None
            try:
                if url is None:
                    url = await self.refresh_url(job)
                ctx.fault("before_download", job.id)
                if await ctx.woke():  # the machine slept meanwhile: the URL may have expired
                    continue
                result = await download_video(
                    self.videos,
                    url,
                    target,
                    root=ctx.manifest.output_dir,
                    checkpoint=lambda point: ctx.fault(point, job.id),
                )
                self._video_host_answered()
                break
            except VideoHostUnreachableError as exc:
                if not self._video_host_down(exc):
                    retries.excuse()  # the host is down, not this download: no budget spent
                    if ctx.stops.reason is StopReason.UNREACHABLE:
                        ctx.summary.left[job.id] = f"the video host is unreachable: {exc}"
                        return
                    continue
                error: Exception = exc
            except TaskGoneError:
                return  # failed for good and journaled by the refresh
            except UnusableVideoUrlError as exc:
                ctx.log.warning("download.unusable_url", job=job.id, detail=str(exc))
                await self._forget_url(job)
                ctx.summary.left[job.id] = str(exc)
                return
            except VideoUrlExpiredError as exc:
                self._video_host_answered()
                ctx.log.info("download.url_expired", job=job.id, detail=str(exc))
                await self._forget_url(job)
                error = exc
            except (TransientDownloadError, TransientApiError) as exc:
                if isinstance(exc, TransientDownloadError):  # the video host did answer
                    self._video_host_answered()
                ctx.log.info("download.retry", job=job.id, detail=str(exc))
                error = exc
            except DownloadError as exc:
                error = exc
            decision = retries.increment(told_when=False, gated=False, random=ctx.timing.random)
            if not decision.again:
                ctx.summary.left[job.id] = f"download failed {retries.attempts} times: {error}"
                return
            ctx.summary.requests["download_retry"] += 1
            await ctx.timing.sleep(decision.delay)
        ctx.fault("before_record_download", job.id)
        record = ctx.journal.record(job.id)
        await write_sidecar(target, self._sidecar(job, record, result.size, result.sha256))
        await ctx.journal.append(
            ctx.event(
                EventKind.DOWNLOADED,
                job.id,
                path=job.output_path,
                size=result.size,
                sha256=result.sha256,
            )
        )
        ctx.summary.downloaded.append(job.id)
        ctx.summary.requests["download"] += 1
        ctx.stats.finished_now += 1
        done = ctx.journal.record(job.id)
        ctx.log.info(
            "job.finished",
            job=job.id,
            state=str(done.state),
            path=job.output_path,
            size=result.size,
            model=job.model,
            duration=job.duration,
            task_id=done.task_id,
            render_seconds=span(done.submitted_at, done.finished_at),
            download_seconds=span(done.finished_at, done.downloaded_at),
            resumed_from=result.resumed_from,
            reused_part=result.reused_part,
        )

    async def _video_host_turn(self, job_id: str) -> None:
        """While the video host is down, wait: one download at a time goes, as the probe (the
        job holding the probe goes on at once when it comes round again)."""
        health, clock = self.health, self.ctx.timing.clock
        if health.probing and self._prober == job_id:
            health.probe_sent(clock())
            return
        while (wait := health.probe_wait(clock())) > 0:
            await self.ctx.timing.sleep(min(wait, 1.0))
        if health.down:
            health.probe_sent(clock())
            self._prober = job_id

    def _video_host_answered(self) -> None:
        length = self.health.answered(self.ctx.timing.clock())
        if length is not None:
            self.ctx.log.warning("video.reachable", seconds=round(length, 1))

    def _video_host_down(self, exc: VideoHostUnreachableError) -> bool:
        """A download could not connect; True when this began an outage of the video host.
        Down past ``--max-outage``, the run stops."""
        ctx, now = self.ctx, self.ctx.timing.clock()
        if self.health.failed(now):
            wait = round(self.health.probe_wait(now), 1)
            ctx.log.warning("video.unreachable", error=str(exc), next_try_seconds=wait)
            return True
        limit = ctx.options.max_outage
        if past_limit(self.health, now, limit) and ctx.stops.reason is not StopReason.UNREACHABLE:
            ctx.halt(
                StopReason.UNREACHABLE,
                f"the video host has not answered for {self.health.down_for(now):.0f} s"
                f" (--max-outage {limit:g} s); rerun resumes",
            )
        return False

    async def refresh_url(self, job: JobSpec) -> str:
        """Ask the task again for its video URL (``TransientApiError`` when that keeps failing)."""
        ctx = self.ctx
        record = ctx.journal.record(job.id)
        assert record.task_id is not None
        retries = RetryState(ctx.options.retry)
        while True:
            await self.admission.acquire(REFRESH)
            ctx.summary.requests["refresh"] += 1
            try:
                view = await self.api.get(record.task_id, record.handle)
            except JobRejectedError as exc:  # for good: the adapter says asking again cannot help
                await ctx.fail(job, f"cannot refresh the video URL: {exc.server_message}", exc.code)
                raise TaskGoneError(str(exc)) from exc
            except TransientApiError as exc:
                if not await after_refusal(ctx, self.admission, exc, retries, "refresh", job.id):
                    raise  # the download's own retries take it from here
                continue
            if view.status is TaskStatus.SUCCEEDED and view.video_url:
                await ctx.journal.append(
                    ctx.event(EventKind.SUCCEEDED, job.id, video_url=view.video_url),
                    durable=False,
                )
                return view.video_url
            raise DownloadError(f"the task no longer offers a video (status {view.raw_status!r})")

    async def _forget_url(self, job: JobSpec) -> None:
        """Mark the URL stale so the next attempt fetches the task again."""
        record = self.ctx.journal.record(job.id)
        if record.state is JobState.SUCCEEDED and record.video_url is not None:
            await self.ctx.journal.append(
                self.ctx.event(EventKind.SUCCEEDED, job.id, video_url=None), durable=False
            )

    def _sidecar(
        self, job: JobSpec, record: JobRecord, size: int, sha256: str
    ) -> dict[str, object]:
        return {
            "id": job.id,
            "fields": job.fields(),
            "provider": self.ctx.manifest.api.provider,
            "task_id": record.task_id,
            "handle": record.handle,  # what the provider handed out to find the task again
            "idempotency_key": record.idempotency_key,
            "submitted_at": _iso(record.submitted_at),
            "rendered_at": _iso(record.finished_at),
            "downloaded_at": _iso(self.ctx.timing.wall()),
            "render_seconds": span(record.submitted_at, record.finished_at),
            "size": size,
            "sha256": sha256,
            "manifest": self.ctx.manifest.name,
            "source": job.source,
        }


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")
