"""Where a job stands: one classification for run, plan, status, the gallery and the live view."""

from __future__ import annotations

from collections import Counter

import pytest

from wanbatch.jobstate import Standing, as_rendered, is_changed, of_state, standing, video_missing
from wanbatch.lifecycle import apply
from wanbatch.models import EventKind, JobEvent, JobRecord, JobSpec, JobState, fingerprint_of
from wanbatch.summary import progress_snapshot
from wanbatch.worklist import changed_jobs, plan_work

JOB = JobSpec("a", "a prompt", "wan-2-2", 5, "16:9", output_path="a.mp4")
EDITED = JobSpec("a", "an edited prompt", "wan-2-2", 5, "16:9", output_path="a.mp4")


def record(state: JobState, **fields: object) -> JobRecord:
    return JobRecord(job_id="a", state=state, fingerprint=JOB.fingerprint(), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "intact", "expected"),
    [
        (JobState.PLANNED, True, Standing.NEW),
        (JobState.SUBMITTING, True, Standing.UNCONFIRMED),
        (JobState.SUBMITTED, True, Standing.IN_FLIGHT),
        (JobState.RUNNING, True, Standing.IN_FLIGHT),
        (JobState.SUCCEEDED, True, Standing.TO_DOWNLOAD),
        (JobState.DOWNLOADED, True, Standing.DONE),
        (JobState.DOWNLOADED, False, Standing.TO_DOWNLOAD),
        (JobState.FAILED, False, Standing.FAILED),
    ],
)
def test_each_state_and_the_disk_give_one_standing(
    state: JobState, intact: bool, expected: Standing
) -> None:
    rec = record(state)
    assert standing(JOB, rec, lambda job, r: intact) is expected
    # The run sorts jobs by the same rule.
    plan = plan_work([JOB], lambda _: rec, lambda job, r: intact)
    sorted_as = {
        Standing.NEW: plan.to_create,
        Standing.UNCONFIRMED: plan.to_create,
        Standing.IN_FLIGHT: plan.to_poll,
        Standing.TO_DOWNLOAD: plan.to_download,
    }
    if expected in sorted_as:
        assert sorted_as[expected] == [JOB]
    elif expected is Standing.DONE:
        assert plan.already_done == 1
    else:
        assert list(plan.failed) == ["a"]
    assert plan.missing_videos == (["a"] if video_missing(rec, expected) else [])


def test_the_disk_is_asked_only_of_a_downloaded_job() -> None:
    asked: list[str] = []

    def check(job: JobSpec, rec: JobRecord) -> bool:
        asked.append(job.id)
        return True

    for state in JobState:
        standing(JOB, record(state), check)
    assert asked == ["a"]
    assert standing(JOB, None, check) is Standing.NEW


def test_an_edit_is_changed_until_kept_and_a_further_edit_is_changed_again() -> None:
    rec = record(JobState.DOWNLOADED)
    assert standing(EDITED, rec, lambda j, r: True) is Standing.CHANGED
    assert changed_jobs([EDITED], {"a": rec}) == [EDITED]
    kept = apply(rec, JobEvent(EventKind.KEPT, "a", 1.0, fingerprint=EDITED.fingerprint()))
    assert kept.state is JobState.DOWNLOADED and kept.fingerprint == JOB.fingerprint()
    assert not is_changed(EDITED, kept) and changed_jobs([EDITED], {"a": kept}) == []
    assert standing(EDITED, kept, lambda j, r: True) is Standing.DONE
    again = JobSpec("a", "yet another prompt", "wan-2-2", 5, "16:9")
    assert is_changed(again, kept)
    # A new create forgets what was kept: the new task renders the manifest's fields.
    requeued = apply(kept, JobEvent(EventKind.REQUEUED, "a", 2.0, fingerprint=again.fingerprint()))
    assert requeued.kept_fingerprint is None


def test_the_live_view_counts_with_the_same_words() -> None:
    states = Counter(
        {
            JobState.PLANNED: 1,
            JobState.SUBMITTING: 2,
            JobState.RUNNING: 3,
            JobState.SUCCEEDED: 4,
            JobState.DOWNLOADED: 5,
            JobState.FAILED: 6,
        }
    )
    snap = progress_snapshot(
        states,
        elapsed_seconds=1.0,
        finished_this_run=0,
        render_seconds=(0.0, 0),
        recent_failures=(),
        videos_submitted=0,
        credits_submitted=None,
        stopping=None,
    )
    by_standing: Counter[Standing] = Counter()
    for state, count in states.items():
        by_standing[of_state(state)] += count
    assert (snap.new, snap.downloading, snap.done, snap.failed) == (1, 4, 5, 6)
    assert snap.rendering == by_standing[Standing.UNCONFIRMED] + by_standing[Standing.IN_FLIGHT]


def test_sidecar_fields_are_taken_only_when_whole_and_of_the_asked_fingerprint() -> None:
    fields = JOB.fields()
    shown = as_rendered(EDITED, fields, JOB.fingerprint())
    assert shown is not None and shown.prompt == "a prompt" and shown.output_path == "a.mp4"
    assert as_rendered(EDITED, fields, EDITED.fingerprint()) is None  # not what was asked
    assert as_rendered(EDITED, {**fields, "duration": "5"}, None) is None
    bad = {**fields, "duration": True}
    assert as_rendered(EDITED, bad, fingerprint_of(bad)) is None
    assert as_rendered(EDITED, ["not", "a", "dict"], JOB.fingerprint()) is None
