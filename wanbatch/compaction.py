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
_NONE = type(None)


def _allowed(name: str) -> frozenset[type]:
    if name in _COUNTS:
        return frozenset({int})
    if name == "size":
        return frozenset({int, _NONE})
    if name in _TIMES:
        return frozenset({float, int, _NONE})
    return frozenset({str, _NONE})


# Each field after job_id and state: its name, its default, the JSON types it may have.
_SPEC = tuple((name, _DEFAULTS[name], _allowed(name)) for name in _FIELDS[2:])
_NAME_DEFAULTS = tuple((name, default) for name, default, _ in _SPEC)
_TIME_AT = tuple(_FIELDS.index(name) for name in _TIMES)
_COUNT_AT = tuple(_FIELDS.index(name) for name in _COUNTS)
_TEXT_AT = tuple(_FIELDS.index(name) for name in _TEXTS)
_SHAPES: set[tuple[type, ...]] = set()  # the shapes already checked (a journal has a few)


def should_compact(events: int, jobs: int, *, minimum: int = MIN_EVENTS) -> bool:
    """Whether a journal whose replay read ``events`` events (after its snapshots, if any) about
    ``jobs`` jobs is worth rewriting."""
    return events >= minimum and events >= EVENTS_PER_JOB * jobs


def to_snapshot(record: JobRecord, *, live: bool = False) -> dict[str, Any]:
    """The fields of a snapshot record (``journal`` adds the version and seals it). A ``live``
    record (folded in memory from events as they were appended, not as they were written) has
    its times rounded as the events wrote them; a replayed one is written as it is."""
    out: dict[str, Any] = {"v": 1, "ev": SNAPSHOT, "job": record.job_id}
    for name in _FIELDS[1:]:
        value = getattr(record, name)
        if value != _DEFAULTS[name] or name == "state":
            if name == "state":
                value = str(value)
            elif live and name in _TIMES:
                value = round(value, 3)  # as ``journal.encode_event`` writes ``at``
            out[name] = value
    return out


def from_snapshot(fields: dict[str, Any]) -> JobRecord:
    """The record a snapshot holds; ValueError when a field is missing or has a wrong type (the
    checksum was right, but the line may have been written by hand).

    A replay makes a million of these, so the types are checked by the record's shape (the tuple
    of its values' types): a shape is checked field by field once, and then known.
    """
    if not _KNOWN.issuperset(fields):
        unknown = sorted(set(fields) - _KNOWN)
        raise ValueError(f"unknown fields in a snapshot: {', '.join(unknown)[:80]}")
    get = fields.get
    state = fields["state"]  # KeyError when missing: a damaged record
    values: list[Any] = [get("job"), _STATES.get(state) if type(state) is str else None]
    values += [get(name, default) for name, default in _NAME_DEFAULTS]
    shape = tuple(map(type, values))
    if shape not in _SHAPES:
        _check_shape(values, state)
        _SHAPES.add(shape)
    for i in _TIME_AT:
        value = values[i]
        if value is not None:
            if not 0 <= value <= _LATEST_TIME:  # NaN fails too
                raise ValueError(f"{_FIELDS[i]} is not a time: {str(value)[:40]}")
            values[i] = float(value)
    for i in _COUNT_AT:
        if values[i] < 0:
            raise ValueError(f"{_FIELDS[i]} is not a count: {values[i]}")
    for i in _TEXT_AT:
        value = values[i]
        if value is not None and "\x00" in value:
            raise ValueError(f"{_FIELDS[i]} holds a NUL character")
    return JobRecord(*values)


def _check_shape(values: list[Any], state: object) -> None:
    if type(values[0]) is not str:
        raise ValueError("job is not a job id")
    if values[1] is None:
        raise ValueError(f"state is not a job state: {str(state)[:40]}")
    for (name, _, allowed), value in zip(_SPEC, values[2:], strict=True):
        if type(value) not in allowed:
            raise ValueError(f"{name} is {type(value).__name__}, not {allowed_names(allowed)}")


def allowed_names(allowed: frozenset[type]) -> str:
    return " or ".join(sorted("null" if kind is type(None) else kind.__name__ for kind in allowed))
