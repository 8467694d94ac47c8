"""Snapshot records of a compacted journal, and when to compact. Pure.

A journal grows by about five events a job; replaying it folds every one through
``lifecycle.apply``. Compaction (``journal.compact_journal``) rewrites the journal as its run
headers followed by one *snapshot* record per job: the job's ``JobRecord`` as the fold left it,
every field that is not its default, under ``"ev":"snapshot"``. Events written after it fold onto
that record exactly as they folded onto the events it replaced, so a replay of the compacted
journal gives the same records, in the same order, as the replay of the journal it came from.

Rules a reader holds a snapshot to (``from_snapshot`` raises ValueError otherwise): each field
has its type; times are within what can be shown; a snapshot is the first record of its job in
the file (``journal.replay_bytes`` checks that).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from wanbatch.models import JobRecord, JobState

SNAPSHOT = "snapshot"  # the "ev" of a snapshot record
# Compact when the events since the last compaction are at least this many ...
MIN_EVENTS = 10_000
# ... and at least this many times the jobs: a replay of the result then reads one record a job
# where it read at least one event a job (and folded it), so it at least halves the work.
EVENTS_PER_JOB = 1.0

_FIELDS = tuple(f.name for f in dataclasses.fields(JobRecord))
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(JobRecord)}
_COUNTS = ("attempt", "intents")
_TIMES = ("submitted_at", "finished_at", "downloaded_at", "intent_at")
_TEXTS = tuple(
    name for name in _FIELDS if name not in {"job_id", "state", "size", *_COUNTS, *_TIMES}
)
_KNOWN = frozenset({"v", "ev", "job", "crc", *_FIELDS[1:]})
_LATEST_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC, as for events
_STATES = {str(state): state for state in JobState}


def should_compact(events: int, jobs: int, *, minimum: int = MIN_EVENTS) -> bool:
    """Whether a journal whose replay read ``events`` events (after its snapshots, if any) about
    ``jobs`` jobs is worth rewriting."""
    return events >= minimum and events >= EVENTS_PER_JOB * jobs


def to_snapshot(record: JobRecord) -> dict[str, Any]:
    """The fields of a snapshot record (``journal`` adds the version and seals it)."""
    out: dict[str, Any] = {"v": 1, "ev": SNAPSHOT, "job": record.job_id}
    for name in _FIELDS[1:]:
        value = getattr(record, name)
        if value != _DEFAULTS[name] or name == "state":
            out[name] = str(value) if name == "state" else value
    return out


def from_snapshot(fields: dict[str, Any]) -> JobRecord:
    """The record a snapshot holds; ValueError when a field is missing or has a wrong type (the
    checksum was right, but the line may have been written by hand)."""
    get = fields.get
    if not _KNOWN.issuperset(fields):
        unknown = sorted(set(fields) - _KNOWN)
        raise ValueError(f"unknown fields in a snapshot: {', '.join(unknown)[:80]}")
    job_id = fields["job"]
    if not isinstance(job_id, str) or "\x00" in job_id:
        raise ValueError("job is not a job id")
    state = _STATES.get(fields["state"])  # KeyError when missing: a damaged record
    if state is None:
        raise ValueError(f"state is not a job state: {str(fields['state'])[:40]}")
    values: dict[str, Any] = {"job_id": job_id, "state": state}
    for name in _TEXTS:
        value = get(name)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"{name} is {type(value).__name__}, not str")
            if "\x00" in value:
                raise ValueError(f"{name} holds a NUL character")
            values[name] = value
    for name in _COUNTS:
        value = get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} is not a count: {str(value)[:40]}")
        values[name] = value
    size = get("size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError(f"size is {type(size).__name__}, not int")
        values["size"] = size
    for name in _TIMES:
        value = get(name)
        if value is not None:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and 0 <= value <= _LATEST_TIME)
            ):
                raise ValueError(f"{name} is not a time: {str(value)[:40]}")
            values[name] = float(value)
    return JobRecord(**values)
