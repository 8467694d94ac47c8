"""What a run has to do, read from the journal's records. Pure: the disk check is passed in.

``plan_work`` sorts the manifest's jobs by what each needs next; ``changed_jobs`` finds jobs
edited since they were submitted; what is left of each job at the end is ``summary.account_unfinished``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from wanbatch.errors import ManifestChangedError
from wanbatch.jobstate import Standing, is_changed, standing, video_missing
from wanbatch.models import JobRecord, JobSpec
from wanbatch.words import count, plural


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
    """Sort ``jobs`` by where each stands (``jobstate.standing``, the views' classification).

    Edits are settled before (``changed_jobs``): a job is taken by its journal state here."""
    plan = WorkPlan()
    unknown: list[JobSpec] = []
    for job in jobs:
        record = record_of(job.id)
        found = standing(job, record, video_intact, check_changed=False)
        if found is Standing.DONE:
            plan.already_done += 1
        elif found is Standing.TO_DOWNLOAD:
            if video_missing(record, found):
                plan.missing_videos.append(job.id)
            plan.to_download.append(job)
        elif found is Standing.IN_FLIGHT:
            plan.to_poll.append(job)
        elif found is Standing.UNCONFIRMED:
            unknown.append(job)
        elif found is Standing.FAILED:
            plan.failed[job.id] = record.reason or "failed"
        else:
            plan.to_create.append(job)
    plan.to_create[:0] = unknown
    # Tasks in flight in the order they were created: the server's queue is in that order.
    plan.to_poll.sort(key=lambda job: record_of(job.id).submitted_at or 0.0)
    return plan


def changed_jobs(jobs: Iterable[JobSpec], records: Mapping[str, JobRecord]) -> list[JobSpec]:
    """Jobs whose fields changed since their task was asked for (and were not kept)."""
    return [job for job in jobs if is_changed(job, records.get(job.id))]


def changed_error(changed: list[JobSpec], credits: float | None) -> ManifestChangedError:
    """The refusal to run while jobs changed and the user has not said what to do."""
    names = ", ".join(job.id for job in changed[:10]) + (" ..." if len(changed) > 10 else "")
    cost = f" (about {credits:g} credits)" if credits is not None else ""
    return ManifestChangedError(
        [job.id for job in changed],
        f"{count(len(changed), 'job')} changed in the manifest since"
        f" {plural(len(changed), 'it was', 'they were')} submitted: {names}. Nothing was sent."
        f" Choose one: --resubmit-changed renders {plural(len(changed), 'it', 'them')} anew from the "
        f"new fields{cost}; --keep-changed keeps what the old fields rendered; or undo "
        "the edit.",
    )
