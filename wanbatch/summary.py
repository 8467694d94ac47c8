"""What a run did and where it stands: values for the closing lines and the live view. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wanbatch.jobstate import Standing, of_state
from wanbatch.models import JobRecord, JobSpec, JobState
from wanbatch.stops import StopReason, exit_code_for


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Where a run stands, for a progress display. Counts are over the manifest's jobs."""

    total: int
    new: int  # nothing sent yet (``jobstate.Standing``: the words of plan, status, the gallery)
    rendering: int  # submitted, not yet rendered (or the create's answer not yet known)
    downloading: int  # rendered, the video not yet on disk (the views' word: "to download")
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
    outages: tuple[str, ...] = ()  # "API unreachable since 02:13, next try 02:15", one a host


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
    stop_reason: StopReason | None = None
    stop_message: str | None = None
    wall_seconds: float = 0.0
    videos_submitted: int = 0  # tasks this run created
    credits_submitted: float | None = None  # their estimated credits (None: no pricing)
    cap_message: str | None = None  # the cost guard stopped submissions: what it said
    outages: dict[str, int] = field(default_factory=dict)  # host ("api", "video") -> outages
    outage_seconds: dict[str, float] = field(default_factory=dict)  # host -> their total length
    slept_seconds: float = 0.0  # the machine slept this long during the run

    @property
    def exit_code(self) -> int:
        return exit_code_for(
            self.stop_reason,
            work_left=bool(self.left or self.stalled),
            failed=bool(self.failed),
        )


HOSTS = {"api": "API host", "video": "video host"}


def outage_lines(summary: RunSummary) -> list[str]:
    """The closing lines on outages and sleeps: "API host unreachable 2 times, 10 min in all"."""
    lines = []
    for host, times_down in summary.outages.items():
        minutes = summary.outage_seconds.get(host, 0.0) / 60
        times = "once" if times_down == 1 else f"{times_down} times"
        lines.append(f"  {HOSTS.get(host, host)} unreachable {times}, {minutes:.1f} min in all")
    if summary.slept_seconds:
        lines.append(
            f"  the machine slept {summary.slept_seconds / 60:.1f} min; job deadlines did not"
            " count it and video URLs were fetched anew"
        )
    return lines


def progress_snapshot(
    states: Counter[JobState],
    *,
    elapsed_seconds: float,
    finished_this_run: int,
    render_seconds: tuple[float, int],  # (sum, count) of renders seen this run
    recent_failures: tuple[tuple[str, str], ...],
    videos_submitted: int,
    credits_submitted: float | None,
    stopping: str | None,
    outages: tuple[str, ...] = (),
) -> ProgressSnapshot:
    """Where a run stands, from the count of its jobs in each state and its running figures."""
    total = sum(states.values())
    elapsed = max(1e-9, elapsed_seconds)
    rate = finished_this_run / elapsed if finished_this_run else None
    # The journal's states through the one classification (the run settled disk and edits).
    standings: Counter[Standing] = Counter()
    for state, number in states.items():
        standings[of_state(state)] += number
    done, failed = standings[Standing.DONE], standings[Standing.FAILED]
    render_total, render_count = render_seconds
    return ProgressSnapshot(
        total=total,
        new=standings[Standing.NEW],
        rendering=standings[Standing.UNCONFIRMED] + standings[Standing.IN_FLIGHT],
        downloading=standings[Standing.TO_DOWNLOAD],
        done=done,
        failed=failed,
        elapsed_seconds=elapsed,
        finished_this_run=finished_this_run,
        jobs_per_second=rate,
        eta_seconds=(total - done - failed) / rate if rate else None,
        mean_render_seconds=render_total / render_count if render_count else None,
        recent_failures=recent_failures,
        videos_submitted=videos_submitted,
        credits_submitted=credits_submitted,
        stopping=stopping,
        outages=outages,
    )


_UNFINISHED = {
    JobState.PLANNED: "not submitted",
    JobState.SUBMITTING: "create sent, answer unknown",
    JobState.SUBMITTED: "rendering on the server",
    JobState.RUNNING: "rendering on the server",
    JobState.SUCCEEDED: "rendered, not downloaded",
}


def why_unfinished(state: JobState) -> str | None:
    """What is left of a job in ``state`` at the end of a run (None: nothing)."""
    return _UNFINISHED.get(state)


def account_unfinished(
    summary: RunSummary, jobs: Iterable[JobSpec], record_of: Callable[[str], JobRecord]
) -> None:
    """At the end of a run: every job not downloaded, failed or stalled gets its reason in
    ``summary.left``; a job failed before this run is listed in ``summary.failed``."""
    for job in jobs:
        if job.id in summary.left or job.id in summary.failed or job.id in summary.stalled:
            continue
        record = record_of(job.id)
        if record.state is JobState.FAILED:
            summary.failed[job.id] = record.reason or "failed"
            continue
        why = why_unfinished(record.state)
        if why is not None:
            summary.left[job.id] = why
