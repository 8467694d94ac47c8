"""What the disk proves when the journal does not: adopting sidecars, salvaging a damaged journal.

Pure: the sidecars, the video sizes and the journal's lines are read by ``salvage.py`` and passed
in; what comes out are journal events (``JobEvent``) that fold through ``lifecycle.apply``.

Adoption. A sidecar (``NAME.json`` beside a video) is written after the video is whole and names
the task that rendered it. A job the journal does not know (no record: the journal was deleted or
lost records), or whose create's answer was lost (``submitting`` with the sidecar's own
Idempotency-Key), is adopted from its sidecar without a create:

    sidecar  video on disk, size (and sha256) as recorded   ->  downloaded   (intent, created,
                                                                succeeded, downloaded)
    sidecar  video gone or not the recorded bytes           ->  created: the run asks the task
                                                                for its video again
    sidecar fields differ from the job's                    ->  the same, with the sidecar's
                                                                fingerprint: the changed-job rule
    no usable sidecar, a video on disk, no record           ->  unclaimed: the run refuses rather
                                                                than pay for it again and
                                                                overwrite it
    nothing on disk                                         ->  nothing: the job is new

Every adopted event carries ``reason: "adopted from NAME.json"`` so the journal says where it
came from.

Salvage. Every intact line (its checksum holds) is kept if it folds through the lifecycle. A job
one of whose records was lost may meet an event that cannot follow its last known state; from
there its history is uncertain. It is re-anchored at the newest fact that stands alone in what
follows: a ``created`` (a task id: the job is put on that task, so it is polled, never created
again) or a ``requeued``; the events after that anchor are kept as long as they fold. Without an
anchor the job stays at its last known state (a rerun polls it, downloads it again, or asks again
with the same Idempotency-Key), and the sidecars are then asked as above.

Over 400 lines: adoption and salvage are one subject (both rebuild what the journal lost from
what is left) and share the sidecar and line shapes; each half is small.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wanbatch.lifecycle import IllegalTransition, apply
from wanbatch.models import (
    DEFAULT_PROVIDER,
    EventKind,
    JobEvent,
    JobRecord,
    JobSpec,
    JobState,
    fingerprint_of,
)
from wanbatch.words import count

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_TASK_ID = 256

# --- adoption --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sidecar:
    """The facts of a sidecar that adoption uses."""

    job_id: str
    task_id: str
    fingerprint: str  # of the fields the sidecar says were rendered
    provider: str  # whose task it is (a sidecar from before providers were named: wanapi)
    handle: str | None  # what that provider handed out to find the task again
    idempotency_key: str | None
    size: int
    sha256: str | None
    submitted_at: float | None
    rendered_at: float | None
    downloaded_at: float | None


def parse_sidecar(data: object) -> Sidecar | str:
    """A sidecar's JSON value as a ``Sidecar``, or why it cannot be used."""
    if not isinstance(data, dict):
        return "not a JSON object"
    job_id, task_id, fields = data.get("id"), data.get("task_id"), data.get("fields")
    size, sha256, key = data.get("size"), data.get("sha256"), data.get("idempotency_key")
    if not isinstance(job_id, str):
        return "no job id"
    if not _usable_task_id(task_id):
        return "no usable task id"
    assert isinstance(task_id, str)
    if not isinstance(fields, dict):
        return "no job fields"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "no video size"
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256)):
        return "a malformed sha256"
    if key is not None and not isinstance(key, str):
        return "a malformed idempotency key"
    provider, handle = data.get("provider", DEFAULT_PROVIDER), data.get("handle")
    if not isinstance(provider, str) or (handle is not None and not isinstance(handle, str)):
        return "a malformed provider or handle"
    return Sidecar(
        job_id=job_id,
        task_id=task_id,
        fingerprint=fingerprint_of(fields),
        provider=provider,
        handle=handle,
        idempotency_key=key,
        size=size,
        sha256=sha256,
        submitted_at=_epoch(data.get("submitted_at")),
        rendered_at=_epoch(data.get("rendered_at")),
        downloaded_at=_epoch(data.get("downloaded_at")),
    )


def _usable_task_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_TASK_ID
        and value.isprintable()
        and value.strip() == value
    )


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class Evidence:
    """What is on disk for one job: its sidecar (or why it is unusable) and its video."""

    sidecar: Sidecar | None = None
    sidecar_problem: str | None = None  # a sidecar exists but cannot be used
    video_size: int | None = None  # None: no video at the job's path
    video_sha256: str | None = None  # None: not hashed (``plan`` only compares sizes)


class Verdict(enum.StrEnum):
    NONE = "none"  # nothing to adopt
    DOWNLOADED = "downloaded"  # the video is the sidecar's: done, no request at all
    CREATED = "created"  # the sidecar's task is known; the run polls it for the video
    UNCLAIMED = "unclaimed"  # a video nobody accounts for: refuse rather than overwrite it


@dataclass(frozen=True, slots=True)
class Adoption:
    job_id: str
    verdict: Verdict
    events: tuple[JobEvent, ...] = ()
    note: str = ""


def may_adopt(record: JobRecord | None) -> bool:
    """Jobs whose disk evidence is asked: unknown to the journal, or a create's answer lost."""
    return record is None or record.state is JobState.SUBMITTING


def adopt(
    job: JobSpec,
    record: JobRecord | None,
    evidence: Evidence,
    *,
    sidecar_name: str,
    now: float,
    provider: str = DEFAULT_PROVIDER,
) -> Adoption:
    """The events that adopt ``job`` from ``evidence`` (see the module's table)."""
    if not may_adopt(record):
        return Adoption(job.id, Verdict.NONE)
    sidecar, problem = evidence.sidecar, evidence.sidecar_problem
    if sidecar is not None and sidecar.job_id != job.id:
        problem = f"it belongs to job {sidecar.job_id!r}"
        sidecar = None
    if sidecar is None:
        if record is None and evidence.video_size is not None:
            why = f" ({sidecar_name}: {problem})" if problem else f" (no {sidecar_name})"
            return Adoption(
                job.id,
                Verdict.UNCLAIMED,
                note=f"{job.output_path} is on disk but no journal record or sidecar says "
                f"which task rendered it{why}",
            )
        return Adoption(job.id, Verdict.NONE)
    if record is not None and record.idempotency_key != sidecar.idempotency_key:
        return Adoption(job.id, Verdict.NONE)  # the sidecar is from another attempt
    whole = _video_is_the_sidecars(sidecar, evidence)
    if sidecar.provider != provider and not whole:
        return Adoption(job.id, Verdict.NONE)  # its task is another API's: not polled here
    reason = f"adopted from {sidecar_name}"
    events: list[JobEvent] = []
    if record is None:
        events.append(
            JobEvent(
                EventKind.INTENT,
                job.id,
                _at(sidecar.submitted_at, now),
                idempotency_key=sidecar.idempotency_key,
                fingerprint=sidecar.fingerprint,
                reason=reason,
            )
        )
    events.append(
        JobEvent(
            EventKind.CREATED,
            job.id,
            _at(sidecar.submitted_at, now),
            task_id=sidecar.task_id,
            handle=sidecar.handle,
            reason=reason,
        )
    )
    if not whole:
        what = "gone" if evidence.video_size is None else "not the recorded bytes"
        return Adoption(
            job.id,
            Verdict.CREATED,
            tuple(events),
            note=f"task {sidecar.task_id}, video {what}",
        )
    events.append(
        JobEvent(EventKind.SUCCEEDED, job.id, _at(sidecar.rendered_at, now), reason=reason)
    )
    events.append(
        JobEvent(
            EventKind.DOWNLOADED,
            job.id,
            _at(sidecar.downloaded_at, now),
            path=job.output_path,
            size=sidecar.size,
            sha256=evidence.video_sha256 or sidecar.sha256,
            reason=reason,
        )
    )
    return Adoption(job.id, Verdict.DOWNLOADED, tuple(events), note=f"task {sidecar.task_id}")


def _video_is_the_sidecars(sidecar: Sidecar, evidence: Evidence) -> bool:
    if evidence.video_size is None or evidence.video_size != sidecar.size:
        return False
    if evidence.video_sha256 is None or sidecar.sha256 is None:
        return True
    return evidence.video_sha256 == sidecar.sha256


def _at(value: float | None, now: float) -> float:
    return value if value is not None else now


def adopted_records(
    records: Mapping[str, JobRecord], adoptions: Iterable[Adoption]
) -> dict[str, JobRecord]:
    """``records`` with the adoptions folded in (for views that must not write: ``plan``)."""
    out = dict(records)
    for adoption in adoptions:
        for event in adoption.events:
            out[event.job_id] = apply(out.get(event.job_id) or JobRecord(event.job_id), event)
    return out


# --- salvage -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One complete journal line, as read: a run header, a job event, or damage."""

    number: int
    raw: bytes  # with its newline
    event: JobEvent | None = None  # None: a run header, a snapshot, or damaged
    snapshot: JobRecord | None = None  # a compacted job's record (``compaction.py``)
    problem: str | None = None  # why the line cannot be read
    job_hint: str | None = None  # for a damaged line: the job it seems to name (not trusted)


@dataclass(slots=True)
class SalvagePlan:
    """What to write instead of a damaged journal, and what was lost."""

    read: int = 0  # complete lines read
    output: list[bytes | JobEvent] = field(default_factory=list)  # raw lines, or new events
    lost: list[tuple[int, str, str | None]] = field(default_factory=list)  # line, why, job?
    dropped: dict[str, list[int]] = field(default_factory=dict)  # job -> intact lines not kept
    uncertain: dict[str, str] = field(default_factory=dict)  # job -> what salvage did with it


def salvage_lines(lines: Iterable[Line]) -> SalvagePlan:
    """Keep every line that folds; re-anchor jobs whose history broke (see the module doc)."""
    plan = SalvagePlan()
    records: dict[str, JobRecord] = {}
    broken: dict[str, list[Line]] = {}
    for line in lines:
        plan.read += 1
        event = line.event
        if line.problem is not None:
            plan.lost.append((line.number, line.problem, line.job_hint))
            continue
        if line.snapshot is not None:  # the first record of its job, as compaction writes it
            job_id = line.snapshot.job_id
            if job_id in records or job_id in broken:
                plan.lost.append((line.number, "a snapshot after the job's events", job_id))
            else:
                records[job_id] = line.snapshot
                plan.output.append(line.raw)
            continue
        if event is None:  # a run header
            plan.output.append(line.raw)
            continue
        job_id = event.job_id
        if job_id in broken:
            broken[job_id].append(line)
            continue
        try:
            records[job_id] = apply(records.get(job_id) or JobRecord(job_id), event)
        except IllegalTransition:
            broken[job_id] = [line]
            continue
        plan.output.append(line.raw)
    for job_id, tail in broken.items():
        _reanchor(plan, records.get(job_id) or JobRecord(job_id), tail)
    for _, _, hint in plan.lost:
        if hint is not None and hint not in plan.uncertain:
            plan.uncertain[hint] = "a record of it was lost; kept at its last known state"
    return plan


def _reanchor(plan: SalvagePlan, record: JobRecord, tail: list[Line]) -> None:
    job_id = record.job_id
    anchor = max(
        (
            i
            for i, line in enumerate(tail)
            if _kind(line) in (EventKind.CREATED, EventKind.REQUEUED)
        ),
        default=None,
    )
    if anchor is None:
        plan.dropped[job_id] = [line.number for line in tail]
        plan.uncertain[job_id] = (
            f"a record of it was lost; kept at its last known state ({record.state}), "
            f"lines {_numbers(tail)} dropped"
        )
        return
    first = tail[anchor]
    assert first.event is not None
    if first.event.kind is EventKind.CREATED:
        key, fingerprint = record.idempotency_key, record.fingerprint
        for line in tail[:anchor]:
            if line.event is not None and line.event.kind is EventKind.INTENT:
                key, fingerprint = line.event.idempotency_key, line.event.fingerprint
        reason = f"salvaged: re-anchored at task {first.event.task_id}"
        at = first.event.at
        synthetic: list[JobEvent] = []
        if record.state not in (JobState.PLANNED, JobState.SUBMITTING):
            synthetic.append(
                JobEvent(EventKind.REQUEUED, job_id, at, fingerprint=fingerprint, reason=reason)
            )
        synthetic.append(
            JobEvent(
                EventKind.INTENT,
                job_id,
                at,
                idempotency_key=key,
                fingerprint=fingerprint,
                reason=reason,
            )
        )
        for event in synthetic:
            record = apply(record, event)
            plan.output.append(event)
        told = f"re-anchored at task {first.event.task_id}"
        if fingerprint is None:
            told += " (the fields it was asked with are unknown: an edit to it goes unnoticed)"
    else:
        told = "re-anchored at its last requeue"
    dropped = [line.number for line in tail[:anchor]]
    for line in tail[anchor:]:
        assert line.event is not None
        try:
            record = apply(record, line.event)
        except IllegalTransition:
            dropped.append(line.number)
            continue
        plan.output.append(line.raw)
    if dropped:
        plan.dropped[job_id] = dropped
        told += f", lines {', '.join(map(str, dropped))} dropped"
    plan.uncertain[job_id] = f"a record of it was lost; {told} (now {record.state})"


def _kind(line: Line) -> EventKind | None:
    return line.event.kind if line.event is not None else None


def _numbers(lines: list[Line]) -> str:
    return ", ".join(str(line.number) for line in lines)


def describe_salvage(plan: SalvagePlan) -> list[str]:
    """Lines for the console: what was lost and which jobs are uncertain."""
    kept = sum(1 for item in plan.output if isinstance(item, bytes))
    added = len(plan.output) - kept
    dropped = sum(len(lines) for lines in plan.dropped.values())
    out = [
        f"kept {kept} of {count(plan.read, 'line')}; lost {len(plan.lost)} damaged and {dropped} that "
        f"no longer follow; added {count(added, 'record')} marked `salvaged`"
    ]
    for number, problem, hint in plan.lost:
        seems = f" (apparently about {hint})" if hint else ""
        out.append(f"  line {number} damaged: {problem}{seems}")
    if plan.uncertain:
        out.append("  jobs whose state is uncertain:")
    for job_id, what in sorted(plan.uncertain.items()):
        out.append(f"    {job_id}: {what}")
    return out


def job_hint(raw: bytes) -> str | None:
    """The job a damaged line seems to name, for the report only."""
    found = re.search(rb'"job":"([^"\\]{1,200})"', raw)
    if found is None:
        return None
    hint = found.group(1).decode("utf-8", "replace")
    return hint if hint.isprintable() else None  # it is printed: no control characters
