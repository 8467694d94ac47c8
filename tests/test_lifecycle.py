"""The transition table and replay."""

from __future__ import annotations

import pytest

from wanbatch.lifecycle import TRANSITIONS, IllegalTransition, apply, replay
from wanbatch.models import EventKind, JobEvent, JobRecord, JobState


def ev(kind: EventKind, **fields: object) -> JobEvent:
    return JobEvent(kind=kind, job_id="a", at=1.0, **fields)  # type: ignore[arg-type]


def test_happy_path_folds_to_downloaded() -> None:
    """intent, created, running, succeeded, downloaded end in DOWNLOADED with every field kept."""
    events = [
        ev(EventKind.INTENT, idempotency_key="k", fingerprint="f"),
        ev(EventKind.CREATED, task_id="gen_1"),
        ev(EventKind.RUNNING),
        ev(EventKind.SUCCEEDED, video_url="https://cdn/x.mp4"),
        ev(EventKind.DOWNLOADED, path="a.mp4", size=10, sha256="ab"),
    ]
    record = replay(events)["a"]
    assert record.state is JobState.DOWNLOADED
    assert (record.task_id, record.idempotency_key, record.size) == ("gen_1", "k", 10)
    assert record.video_url == "https://cdn/x.mp4"


def test_illegal_move_raises() -> None:
    """A job cannot be created before its intent is recorded."""
    with pytest.raises(IllegalTransition):
        apply(JobRecord(job_id="a"), ev(EventKind.CREATED, task_id="gen_1"))


def test_downloaded_cannot_go_back_to_running() -> None:
    """Once downloaded, a RUNNING event is illegal."""
    record = JobRecord(job_id="a", state=JobState.DOWNLOADED)
    with pytest.raises(IllegalTransition):
        apply(record, ev(EventKind.RUNNING))


def test_second_intent_counts_a_resubmission() -> None:
    """An intent after an unknown outcome keeps the state and counts the intents."""
    record = apply(JobRecord(job_id="a"), ev(EventKind.INTENT, idempotency_key="k"))
    record = apply(record, ev(EventKind.INTENT, idempotency_key="k"))
    assert record.state is JobState.SUBMITTING and record.intents == 2


def test_requeue_starts_a_new_attempt() -> None:
    """A requeued failed job is planned again with the attempt counter raised."""
    record = replay(
        [
            ev(EventKind.INTENT, idempotency_key="k"),
            ev(EventKind.FAILED, reason="bad prompt"),
            ev(EventKind.REQUEUED),
        ]
    )["a"]
    assert record.state is JobState.PLANNED and record.attempt == 1 and record.reason is None


def test_not_created_returns_to_planned() -> None:
    """A create the server refused (402) leaves the job planned, not unknown."""
    record = replay([ev(EventKind.INTENT, idempotency_key="k"), ev(EventKind.NOT_CREATED)])["a"]
    assert record.state is JobState.PLANNED


def test_every_state_is_reachable_and_requeue_is_total() -> None:
    """Each state appears as a target of some transition, and requeue is legal from each."""
    targets = set(TRANSITIONS.values())
    assert set(JobState) <= targets | {JobState.PLANNED}
    for state in JobState:
        assert (state, EventKind.REQUEUED) in TRANSITIONS


def test_an_unknown_status_word_is_kept_while_running_and_cleared_on_success() -> None:
    """A `running` event may carry the server's unknown status word (for `status`); a later
    `running` without one clears it, and so does success."""
    events = [
        ev(EventKind.INTENT, idempotency_key="k", fingerprint="f"),
        ev(EventKind.CREATED, task_id="gen_1"),
        ev(EventKind.RUNNING, reason="the server says 'dreaming'"),
    ]
    assert replay(events)["a"].reason == "the server says 'dreaming'"
    assert replay([*events, ev(EventKind.RUNNING)])["a"].reason is None
    rendered = replay([*events, ev(EventKind.SUCCEEDED, video_url="https://cdn/x.mp4")])["a"]
    assert rendered.state is JobState.SUCCEEDED and rendered.reason is None
