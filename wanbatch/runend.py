"""The end of a run: its closing lines and its summary record (``run --json``,
``--summary-json``, ``--on-finish``), and a run of several rounds told as one. Pure.

The figures come from ``summary.RunSummary``; what is said beside them (the manifest, where the
files are, whether the provider dedupes a resent create) from ``RunEnd``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from wanbatch.stops import EXIT_CODES
from wanbatch.summary import HOSTS, RunSummary, outage_lines
from wanbatch.words import count, natural_key, plural


def whole_run(first: RunSummary, later: RunSummary) -> RunSummary:
    """Two rounds of one run (``--until-done``) as one: what both did, where the later ended.

    Work and requests add up; the jobs' standing (failed, stalled, left) and why the run
    stopped are the later round's; "already there" is what was there before the first."""
    credits = (
        None
        if first.credits_submitted is None and later.credits_submitted is None
        else (first.credits_submitted or 0.0) + (later.credits_submitted or 0.0)
    )
    outages = Counter(first.outages) + Counter(later.outages)
    seconds = Counter(first.outage_seconds) + Counter(later.outage_seconds)
    return RunSummary(
        total=later.total,
        downloaded=[*first.downloaded, *later.downloaded],
        already_done=first.already_done,
        failed=dict(later.failed),
        stalled=list(later.stalled),
        left=dict(later.left),
        possible_duplicates=list(
            dict.fromkeys([*first.possible_duplicates, *later.possible_duplicates])
        ),
        requests=first.requests + later.requests,
        stop_reason=later.stop_reason,
        stop_message=later.stop_message,
        wall_seconds=first.wall_seconds + later.wall_seconds,
        videos_submitted=first.videos_submitted + later.videos_submitted,
        credits_submitted=credits,
        cap_message=later.cap_message,
        outages=dict(outages),
        outage_seconds=dict(seconds),
        slept_seconds=first.slept_seconds + later.slept_seconds,
    )


@dataclass(frozen=True, slots=True)
class RunEnd:
    """What the closing lines and the summary record say beside the ``RunSummary``."""

    name: str
    manifest: str
    output_dir: str
    idempotent: bool  # the provider dedupes a resent create by its key
    report: str | None = None  # the gallery, when it was written
    retry_manifest: str | None = None  # retry.yaml, when jobs failed

    def shown_from(self, folder: str) -> RunEnd:
        """The paths as a person reads them from ``folder`` (the working directory): relative
        when inside it, else whole. The summary record keeps them whole."""
        return RunEnd(
            self.name,
            _shown(self.manifest, folder),
            _shown(self.output_dir, folder),
            self.idempotent,
            None if self.report is None else _shown(self.report, folder),
            None if self.retry_manifest is None else _shown(self.retry_manifest, folder),
        )


def _shown(path: str, folder: str) -> str:
    inside = PurePath(path).is_relative_to(folder) and PurePath(path) != PurePath(folder)
    return str(PurePath(path).relative_to(folder)) if inside else path


def closing_lines(end: RunEnd, summary: RunSummary) -> list[str]:
    """The closing lines of a run: outcomes, failures with reasons, where the files are."""
    done = summary.already_done + len(summary.downloaded)
    lines = [
        "",
        f"wanbatch: {end.name}: {done}/{summary.total} {plural(summary.total, 'video')} in"
        f" {end.output_dir} ({len(summary.downloaded)} downloaded now,"
        f" {summary.already_done} already there)",
    ]
    if summary.failed:
        them = plural(len(summary.failed), "it", "them")
        lines.append(
            f"  failed for good: {len(summary.failed)} (`wanbatch retry` resubmits {them})"
        )
        lines += _failure_lines(summary.failed)
    if summary.stalled:
        stalled = sorted(summary.stalled, key=natural_key)
        lines.append(
            f"  stalled past the deadline: {len(stalled)}: {', '.join(stalled)}"
            " (the next run asks again; wait longer with --job-deadline S)"
        )
    if summary.left:
        lines.append(f"  not finished: {len(summary.left)} (run again to resume)")
        reasons = Counter(summary.left.values())
        lines += [f"    {count} x {reason}" for reason, count in reasons.most_common(5)]
    if summary.possible_duplicates:
        why = (
            "same Idempotency-Key; may be paid twice if the server ignores it"
            if end.idempotent
            else "--resend-unknown; may be paid twice"
        )
        lines.append(
            f"  created again after an unknown outcome ({why}):"
            f" {', '.join(sorted(summary.possible_duplicates, key=natural_key))}"
        )
    requests = summary.requests
    lines.append(
        f"  requests: {count(requests['create'], 'create')}, {count(requests['poll'], 'poll')},"
        f" {count(requests['refresh'], 'URL refresh', 'URL refreshes')},"
        f" {count(requests['retry'], 'retry', 'retries')},"
        f" {requests['throttled']} rate-limited (429); {count(requests['download'], 'download')}"
    )
    submitted = f"  submitted this run: {count(summary.videos_submitted, 'new task')}"
    if summary.credits_submitted is not None:
        submitted += f", about {summary.credits_submitted:g} credits (estimated from prices)"
    lines.append(submitted)
    if summary.cap_message:
        lines.append(
            f"  cost guard: {summary.cap_message}; in-flight jobs were finished, nothing more"
            " was submitted (rerun with a higher cap to go on)"
        )
    lines += outage_lines(summary)
    lines.append(f"  wall time: {summary.wall_seconds:.1f} s")
    if end.report is not None:
        lines.append(f"  gallery: {end.report}")
    if end.retry_manifest is not None:
        lines.append(
            f"  failed jobs as a manifest: {end.retry_manifest}"
            f" (`wanbatch retry {end.retry_manifest}`)"
        )
    if summary.stop_message:
        lines.append(f"  stopped: {summary.stop_message}")
    lines.append(f"  exit code {summary.exit_code}: {EXIT_CODES[summary.exit_code]}")
    return lines


SUMMARY_KEYS = (
    "name",
    "manifest",
    "output_dir",
    "exit_code",
    "exit_meaning",
    "counts",
    "failed",
    "stalled",
    "left",
    "possible_duplicates",
    "videos_submitted",
    "credits_submitted",
    "requests",
    "cost_cap",
    "stop_reason",
    "stopped",
    "outages",
    "slept_seconds",
    "wall_seconds",
    "report",
    "retry_manifest",
)
COUNT_KEYS = ("total", "done", "downloaded_now", "already_done", "failed", "stalled", "left")
FAILURES_LISTED = 20  # above this many, failures are grouped by reason


def _failure_lines(failed: dict[str, str]) -> list[str]:
    """Each failure with its reason; above ``FAILURES_LISTED``, one line a reason (the most
    common first) with its count and its first ids: 300 jobs failed for one cause read as one."""
    ids = sorted(failed, key=natural_key)
    if len(ids) <= FAILURES_LISTED:
        return [f"    {job_id}: {failed[job_id]}" for job_id in ids]
    by_reason: dict[str, list[str]] = {}
    for job_id in ids:
        by_reason.setdefault(failed[job_id], []).append(job_id)
    lines = []
    for reason, named in sorted(by_reason.items(), key=lambda item: -len(item[1]))[:10]:
        more = f" and {len(named) - 3} more" if len(named) > 3 else ""
        lines.append(f"    {len(named)} x {reason} ({', '.join(named[:3])}{more})")
    if len(by_reason) > 10:
        lines.append(
            f"    ... and {len(by_reason) - 10} other reasons (`wanbatch status --state failed`)"
        )
    return lines


REQUEST_KINDS = ("create", "poll", "refresh", "retry", "throttled", "download")
OUTAGE_HOSTS = tuple(HOSTS)  # "api", "video"


def summary_record(end: RunEnd, summary: RunSummary) -> dict[str, Any]:
    """The run's summary as JSON (``run --json``, ``--summary-json``, ``--on-finish``).

    Every key is always there, in this order (``SUMMARY_KEYS``), with 0, null or [] where there
    is nothing; id lists are sorted naturally (``shot-5`` before ``shot-13``):

    - ``name``, ``manifest``, ``output_dir``: the batch's name, the manifest, the output tree
    - ``exit_code`` (0-5, as the process exits) and ``exit_meaning`` (its words)
    - ``counts``: ``total`` jobs, ``done`` (``downloaded_now`` + ``already_done``), ``failed``,
      ``stalled``, ``left`` (``COUNT_KEYS``)
    - ``failed``: ``[{"id", "reason"}]``, failed for good (this run or before)
    - ``stalled``: ids past ``--job-deadline``; ``left``: ``[{"id", "reason"}]`` not finished
    - ``possible_duplicates``: ids created again after an unknown answer (may be paid twice)
    - ``videos_submitted``: tasks this run created; ``credits_submitted``: their estimated
      credits (null without prices)
    - ``requests``: ``create``, ``poll``, ``refresh``, ``retry``, ``throttled``, ``download``
      (``REQUEST_KINDS``)
    - ``cost_cap``: what the cost guard said when it stopped submissions (null: it did not)
    - ``stop_reason``, ``stopped``: why the run stopped early, as a word and in words (null)
    - ``outages``: ``{"api": {"count", "seconds"}, "video": {...}}`` (``OUTAGE_HOSTS``), zeros
      when the host was never unreachable
    - ``slept_seconds``, ``wall_seconds``
    - ``report``: the gallery's path; ``retry_manifest``: retry.yaml's, when jobs failed (null)
    """
    return {
        "name": end.name,
        "manifest": end.manifest,
        "output_dir": end.output_dir,
        "exit_code": summary.exit_code,
        "exit_meaning": EXIT_CODES[summary.exit_code],
        "counts": {
            "total": summary.total,
            "done": summary.already_done + len(summary.downloaded),
            "downloaded_now": len(summary.downloaded),
            "already_done": summary.already_done,
            "failed": len(summary.failed),
            "stalled": len(summary.stalled),
            "left": len(summary.left),
        },
        "failed": [
            {"id": job_id, "reason": summary.failed[job_id]}
            for job_id in sorted(summary.failed, key=natural_key)
        ],
        "stalled": sorted(summary.stalled, key=natural_key),
        "left": [
            {"id": job_id, "reason": summary.left[job_id]}
            for job_id in sorted(summary.left, key=natural_key)
        ],
        "possible_duplicates": sorted(summary.possible_duplicates, key=natural_key),
        "videos_submitted": summary.videos_submitted,
        "credits_submitted": summary.credits_submitted,
        "requests": {kind: summary.requests.get(kind, 0) for kind in REQUEST_KINDS},
        "cost_cap": summary.cap_message,
        "stop_reason": None if summary.stop_reason is None else str(summary.stop_reason),
        "stopped": summary.stop_message,
        "outages": {
            host: {
                "count": summary.outages.get(host, 0),
                "seconds": round(summary.outage_seconds.get(host, 0.0), 3),
            }
            for host in (*OUTAGE_HOSTS, *sorted(set(summary.outages) - set(OUTAGE_HOSTS)))
        },
        "slept_seconds": round(summary.slept_seconds, 3),
        "wall_seconds": round(summary.wall_seconds, 3),
        "report": end.report,
        "retry_manifest": end.retry_manifest,
    }
