"""Where a job stands, for every view: one classification from its journal record, its manifest
entry and one fact from the disk (is its video there, whole). Pure: the disk check is passed in.

``run`` (``worklist.plan_work``), ``plan``, ``status``, the gallery and the live view all sort
jobs with ``standing`` and name them with ``Standing``, so that no view calls a job done while a
run would fetch it again, and the same state has the same name everywhere.

    journal state        standing                        what a run does
    (no record)/planned  new                              creates its task
    submitting           unconfirmed                      asks again with the same key
    submitted/running    in_flight                        polls it
    succeeded            to_download                      downloads the video
    downloaded           done, or to_download if the      nothing, or downloads it again
                         video is gone or not whole
    failed               failed                           nothing (`wanbatch retry` does)
    any, fields edited   changed                          stops and asks (unless kept)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import replace

from wanbatch.models import LOST_CODE, JobRecord, JobSpec, JobState, fingerprint_of


class Standing(enum.StrEnum):
    """Where a job stands, in the words every view uses."""

    NEW = "new"  # nothing sent yet
    UNCONFIRMED = "unconfirmed"  # a create was sent, its answer is unknown
    IN_FLIGHT = "in_flight"  # a task exists and is rendering
    TO_DOWNLOAD = "to_download"  # rendered; the video is not in the output tree (or not whole)
    DONE = "done"  # the video is in the output tree with its recorded size
    FAILED = "failed"  # failed for good
    CHANGED = "changed"  # its fields were edited since it was submitted


# Short words for a badge or a column.
LABELS: dict[Standing, str] = {
    Standing.NEW: "new",
    Standing.UNCONFIRMED: "answer unknown",
    Standing.IN_FLIGHT: "rendering",
    Standing.TO_DOWNLOAD: "to download",
    Standing.DONE: "done",
    Standing.FAILED: "failed",
    Standing.CHANGED: "changed",
}

# A failed job whose task the server lost (code ``lost``): it may still render, so `retry`
# leaves it alone unless told.
NEXT_RUN_LOST = "`wanbatch retry --include-lost` resubmits it (the server may still render it)"

# What the next run does with a job that stands so.
NEXT_RUN: dict[Standing, str] = {
    Standing.NEW: "a run submits it",
    Standing.UNCONFIRMED: "create sent, answer unknown: a run asks again with the same key",
    Standing.IN_FLIGHT: "a run polls it",
    Standing.TO_DOWNLOAD: "rendered: a run downloads it",
    Standing.DONE: "nothing to do",
    Standing.FAILED: "`wanbatch retry` resubmits it",
    Standing.CHANGED: "a run stops and asks: --resubmit-changed or --keep-changed",
}

MISSING_VIDEO = (
    "video missing from the output tree (or not its recorded size): a run downloads it again"
)

_OF_STATE: dict[JobState, Standing] = {
    JobState.PLANNED: Standing.NEW,
    JobState.SUBMITTING: Standing.UNCONFIRMED,
    JobState.SUBMITTED: Standing.IN_FLIGHT,
    JobState.RUNNING: Standing.IN_FLIGHT,
    JobState.SUCCEEDED: Standing.TO_DOWNLOAD,
    JobState.DOWNLOADED: Standing.DONE,
    JobState.FAILED: Standing.FAILED,
}


def of_state(state: JobState) -> Standing:
    """What the journal alone says (the disk and the manifest not consulted). The live view uses
    it: its run checked both at its start (``worklist.plan_work``) and journaled what it found."""
    return _OF_STATE[state]


def next_run(found: Standing, record: JobRecord | None) -> str:
    """What the next run (or `retry`) does with a job that stands so, told by its record."""
    if found is Standing.FAILED and record is not None and record.code == LOST_CODE:
        return NEXT_RUN_LOST
    return NEXT_RUN[found]


def video_path(job: JobSpec, record: JobRecord | None) -> str:
    """Where ``job``'s video is (relative to the output dir): where it was put, else planned."""
    if record is not None and record.path:
        return record.path
    return job.output_path


def is_changed(job: JobSpec, record: JobRecord | None) -> bool:
    """``job``'s fields differ from those its task was asked for, and the user has not kept the
    old video for these fields (``--keep-changed``)."""
    return (
        record is not None
        and record.state is not JobState.PLANNED
        and record.fingerprint is not None
        and job.fingerprint() not in (record.fingerprint, record.kept_fingerprint)
    )


VideoCheck = Callable[[JobSpec, JobRecord], bool]  # the disk fact: is the video there, whole?


def standing(
    job: JobSpec,
    record: JobRecord | None,
    video_intact: VideoCheck,
    *,
    check_changed: bool = True,
) -> Standing:
    """Where ``job`` stands. ``video_intact`` (asked only of a downloaded job) says whether its
    video is on disk with the recorded size. ``check_changed=False`` when edits were settled
    already (a run, after --resubmit-changed or --keep-changed)."""
    if record is None:
        return Standing.NEW
    if check_changed and is_changed(job, record):
        return Standing.CHANGED
    found = _OF_STATE[record.state]
    if found is Standing.DONE and not video_intact(job, record):
        return Standing.TO_DOWNLOAD
    return found


def video_missing(record: JobRecord | None, found: Standing) -> bool:
    """The journal says downloaded, the disk does not."""
    return (
        record is not None and record.state is JobState.DOWNLOADED and found is Standing.TO_DOWNLOAD
    )


def as_rendered(spec: JobSpec, fields: object, fingerprint: str | None) -> JobSpec | None:
    """``spec`` with ``fields`` (as a sidecar holds them, ``JobSpec.fields()``) when they are
    whole and hash to ``fingerprint``, the one the task was asked for; else None."""
    if not isinstance(fields, dict) or fingerprint is None or fingerprint_of(fields) != fingerprint:
        return None
    model, prompt = fields.get("model"), fields.get("prompt")
    duration, aspect = fields.get("duration"), fields.get("aspect_ratio")
    image, extra = fields.get("image"), fields.get("extra", {})
    if not (isinstance(model, str) and isinstance(prompt, str) and isinstance(aspect, str)):
        return None
    if not isinstance(duration, int) or isinstance(duration, bool):
        return None
    if not (image is None or isinstance(image, str)) or not isinstance(extra, dict):
        return None
    return replace(
        spec,
        model=model,
        prompt=prompt,
        duration=duration,
        aspect_ratio=aspect,
        image=image,
        extra=extra,
    )
