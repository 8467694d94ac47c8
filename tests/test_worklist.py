"""What each job needs next, read from journal records."""

from __future__ import annotations

from wanbatch.models import JobRecord, JobSpec, JobState
from wanbatch.worklist import plan_work


def test_tasks_in_flight_are_resumed_in_the_order_they_were_created() -> None:
    """The server's queue is in creation order; the planner numbers resumed tasks that way."""
    jobs = [JobSpec(name, "p", "wan-2-2", 5, "16:9") for name in ("a", "b", "c")]
    records = {
        "a": JobRecord(job_id="a", state=JobState.SUBMITTED, task_id="t1", submitted_at=30.0),
        "b": JobRecord(job_id="b", state=JobState.RUNNING, task_id="t2", submitted_at=10.0),
        "c": JobRecord(job_id="c", state=JobState.SUBMITTED, task_id="t3", submitted_at=20.0),
    }
    plan = plan_work(jobs, records.__getitem__, lambda job, record: True)
    assert [job.id for job in plan.to_poll] == ["b", "c", "a"]
