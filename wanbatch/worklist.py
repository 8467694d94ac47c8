"""What a run has to do, read from the journal's records. Pure: the disk check is passed in.

``plan_work`` sorts the manifest's jobs by what each needs next; ``changed_jobs`` finds jobs
edited since they were submitted; what is left of each job at the end is ``summary.account_unfinished``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wanbatch.errors import ManifestChangedError
from wanbatch.models import JobRecord, JobSpec, JobState


@dataclass(slots=True)
class WorkPlan:
    to_poll: list[JobSpec] = field(default_factory=list)  # a task exists: ask it
    to_download: list[JobSpec] = field(default_factory=list)  # rendered: fetch the video
    to_create: list[JobSpec] = field(default_factory=list)  # unknown outcomes first, then new
    already_done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # failed for good before this run
    missing_videos: list[str] = field(default_factory=list)  # downloaded once, gone from disk


def plan_work(
    jobs: Iterable[JobSpec],
    record_of: Callable[[str], JobRecord],
    video_intact: Callable[[JobSpec, JobRecord], bool],
) -> WorkPlan:
    plan = WorkPlan()
    unknown: list[JobSpec] = []
    for job in jobs:
        record = record_of(job.id)
        state = record.state
        if state is JobState.DOWNLOADED:
            if video_intact(job, record):
                plan.already_done += 1
            else:
                plan.missing_videos.append(job.id)
                plan.to_download.append(job)
        elif state is JobState.SUCCEEDED:
            plan.to_download.append(job)
        elif state in (JobState.SUBMITTED, JobState.RUNNING):
            plan.to_poll.append(job)
        elif state is JobState.SUBMITTING:
            unknown.append(job)
        elif state is JobState.FAILED:
            plan.failed[job.id] = record.reason or "failed"
        else:
            plan.to_create.append(job)
    plan.to_create[:0] = unknown
    # Tasks in flight in the order they were created: the server's queue is in that order.
    plan.to_poll.sort(key=lambda job: record_of(job.id).submitted_at or 0.0)
    return plan


def changed_jobs(jobs: Iterable[JobSpec], records: dict[str, JobRecord]) -> list[JobSpec]:
    """Jobs whose fields changed since their task was asked for."""
    return [
        job
        for job in jobs
        if (record := records.get(job.id)) is not None
        and record.state is not JobState.PLANNED
        and record.fingerprint is not None
        and record.fingerprint != job.fingerprint()
    ]


def changed_error(changed: list[JobSpec], credits: float | None) -> ManifestChangedError:
    """The refusal to run while jobs changed and the user has not said what to do."""
    names = ", ".join(job.id for job in changed[:10]) + (" ..." if len(changed) > 10 else "")
    cost = f" (about {credits:g} credits)" if credits is not None else ""
    return ManifestChangedError(
        [job.id for job in changed],
        f"{len(changed)} job(s) changed in the manifest since they were submitted: {names}. "
        "Nothing was sent. Choose one: --resubmit-changed renders them anew from the "
        f"new fields{cost}; --keep-changed keeps what the old fields rendered; or undo "
        "the edit.",
    )
