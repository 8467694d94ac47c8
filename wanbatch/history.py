"""One job's history, for ``wanbatch show``: which job a name means, and the record and lines
that tell its story. Pure: the journal's records and the log's lines are read by the caller.

The story: the job's fields (what the manifest asks), where it stands (``jobstate.standing``, in
the words of every view, and what the next run does), every journal record of it in the order
written (its events; a compacted journal keeps one snapshot in place of those before it), and the
log lines that name it, newest last.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import time
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from wanbatch.compaction import SNAPSHOT
from wanbatch.errors import UsageError
from wanbatch.jobstate import LABELS, MISSING_VIDEO, Standing, next_run, video_missing
from wanbatch.models import JobRecord, JobSpec

LOG_LINES = 50  # the newest log lines shown for a job
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(JobRecord))[1:]  # all but job_id
_SHOWN_FIELDS = ("prompt", "model", "duration", "aspect_ratio", "image")
# Event fields shown on a line, in this order (``at``, ``ev`` and ``job`` are the line's own).
_EVENT_ORDER = (
    "task_id", "reason", "code", "path", "size", "sha256", "video_url", "handle",
    "idempotency_key", "fingerprint",
)  # fmt: skip


def pick(jobs: Sequence[JobSpec], name: str) -> JobSpec:
    """The job ``name`` means: its id, or a shell glob that matches exactly one id."""
    for job in jobs:
        if job.id == name:
            return job
    matching = [job for job in jobs if fnmatchcase(job.id, name)]
    if len(matching) == 1:
        return matching[0]
    if matching:
        shown = ", ".join(job.id for job in matching[:5]) + (" ..." if len(matching) > 5 else "")
        raise UsageError(
            f"{name} matches {len(matching)} jobs ({shown}); `show` tells one job: name its id"
        )
    near = difflib.get_close_matches(name, [job.id for job in jobs], n=3)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    raise UsageError(
        f"no job {name} in the manifest{hint} (`wanbatch validate MANIFEST --list` lists the ids)"
    )


def story(
    job: JobSpec,
    record: JobRecord | None,
    found: Standing,
    journal: Iterable[tuple[int, dict[str, Any]]],
    log_lines: Sequence[dict[str, Any]],
    log_total: int,
    log_path: str,
) -> dict[str, Any]:
    """Everything ``show`` tells of ``job``, as one JSON-ready object with stable keys."""
    events: list[dict[str, Any]] = []
    for run, written in journal:
        events.append({"run": run, **written})
    told = MISSING_VIDEO if video_missing(record, found) else next_run(found, record)
    fields: dict[str, Any] | None = None
    if record is not None:  # every field, defaults too: the keys are the same for every job
        fields = {name: getattr(record, name) for name in _RECORD_FIELDS}
        fields["state"] = str(record.state)
    return {
        "id": job.id,
        "source": job.source,
        "fields": job.fields(),
        "output_path": job.output_path,
        "standing": str(found),
        "label": LABELS[found],
        "next_run": told,
        "record": fields,
        "events": events,
        "log": {
            "path": log_path,
            "total": log_total,
            "left_out": max(0, log_total - len(log_lines)),
            "lines": list(log_lines),
        },
    }


def render(told: dict[str, Any]) -> list[str]:
    """``story``'s object as the lines ``show`` prints."""
    source = f"  ({told['source']})" if told["source"] else ""
    lines = [f"{told['id']}{source}"]
    fields = told["fields"]
    for name in _SHOWN_FIELDS:
        if name in fields:
            value = f"{fields[name]} s" if name == "duration" else fields[name]
            lines.append(f"  {name:<13} {value}")
    for key, value in fields.get("extra", {}).items():
        lines.append(f"  {'extra.' + key:<13} {json.dumps(value, ensure_ascii=False)}")
    lines.append(f"  {'output':<13} {told['output_path']}")
    lines.append("")
    label = "" if told["label"] == told["standing"] else f" ({told['label']})"
    lines.append(f"stands: {told['standing']}{label}: {told['next_run']}")
    record = told["record"]
    if record is not None:
        named = ("task_id", "reason", "path", "size")
        shown = {k: record[k] for k in named if record[k] is not None}
        shown["attempt"] = record["attempt"] + 1
        lines.append("  " + "  ".join(f"{k}={_text(v)}" for k, v in shown.items()))
    lines.append("")
    events = told["events"]
    if not events:
        lines.append("journal: nothing recorded yet (no run has sent it)")
    else:
        lines.append(f"journal: {_count(len(events), 'record')} (times UTC)")
        lines += [_event_line(event) for event in events]
    lines.append("")
    log = told["log"]
    if not log["total"]:
        lines.append(f"log {log['path']}: no line names it")
    else:
        more = f"; {log['left_out']} older left out" if log["left_out"] else ""
        lines.append(f"log {log['path']}: {_count(log['total'], 'line')} name it{more}")
        lines += [_log_line(line) for line in log["lines"]]
    return lines


def _event_line(event: dict[str, Any]) -> str:
    if event.get("ev") == SNAPSHOT:
        details = "  ".join(
            f"{key}={_when(value) if key.endswith('_at') else _text(_short(key, value))}"
            for key, value in event.items()
            if key not in ("ev", "job", "run") and value is not None
        )
        return f"  (compacted: the records before, folded into one)  snapshot  {details}"
    details = "  ".join(
        f"{key}={_text(_short(key, event[key]))}"
        for key in _EVENT_ORDER
        if event.get(key) is not None
    )
    return f"  {_when(event.get('at'))}  {event.get('ev')}  {details}".rstrip()


def _short(key: str, value: object) -> object:
    """A signed video URL without its query (the signature): ``--json`` has it whole."""
    if key == "video_url" and isinstance(value, str) and "?" in value:
        return value.partition("?")[0] + "?..."
    return value


def _log_line(line: dict[str, Any]) -> str:
    hidden = ("timestamp", "level", "event", "job", "job_id")
    details = " ".join(f"{k}={_text(v)}" for k, v in line.items() if k not in hidden)
    stamp = str(line.get("timestamp", ""))
    return f"  {stamp}  {line.get('level', '')}  {line.get('event', '')}  {details}".rstrip()


def _when(at: object) -> str:
    if isinstance(at, bool) or not isinstance(at, int | float):
        return "(no time)"
    whole = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
    return f"{whole}.{int(round(at % 1 * 1000)) % 1000:03d}"


def _text(value: object) -> str:
    if isinstance(value, str):
        plain = value and " " not in value and '"' not in value
        return value if plain else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)


def _count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"
