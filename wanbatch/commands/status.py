"""``wanbatch status``: each job's state from the journal and the disk; sends nothing."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any, TextIO

from wanbatch.commands import options
from wanbatch.commands.loading import chosen, load, video_check
from wanbatch.jobstate import MISSING_VIDEO, NEXT_RUN, Standing, VideoCheck, standing, video_missing
from wanbatch.journal import read_journal
from wanbatch.models import JobRecord, JobSpec
from wanbatch.salvage import adopted_view
from wanbatch.settings import Flags
from wanbatch.words import count

NAME = "status"
HELP = "each job's state from the journal; sends nothing"
DESCRIPTION = (
    "Each job's state, from the journal and the output tree: new, unconfirmed, in_flight,"
    " to_download, done, failed or changed, with its task id or the reason it failed."
)


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    options.as_json(parser, "print JSON")
    options.job_fields(parser)
    options.subsets(parser)


def execute(flags: Flags, out: TextIO) -> int:
    manifest = chosen(load(flags), flags)
    replay = adopted_view(manifest, read_journal(manifest.output_dir))
    intact = video_check(manifest.output_dir)
    records = replay.records
    if flags.as_json:
        rows = [status_row(job, records.get(job.id), intact) for job in manifest.jobs]
        counts = Counter(row["state"] for row in rows)
        payload = {
            "manifest": str(manifest.path),
            "output_dir": str(manifest.output_dir),
            "counts": dict(counts),
            "jobs": rows,
        }
        print(json.dumps(payload, indent=2), file=out)
        return 0
    # Written a block of lines at a time: a million rows are never held at once.
    width = max([len(job.id) for job in manifest.jobs] + [2])
    tally: Counter[str] = Counter()
    lines = [f"{'id':<{width}}  {'state':<11}  task / detail"]
    for job in manifest.jobs:
        row = status_row(job, records.get(job.id), intact)
        tally[row["state"]] += 1
        detail = row.get("note") or row.get("reason") or row.get("task_id") or ""
        lines.append(f"{row['id']:<{width}}  {row['state']:<11}  {detail}")
        if len(lines) >= 4096:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    summary = ", ".join(f"{count} {state}" for state, count in sorted(tally.items()))
    lines.append(f"\n{count(len(manifest.jobs), 'job')}: {summary}")
    out.write("\n".join(lines) + "\n")
    return 0


def status_row(job: JobSpec, record: JobRecord | None, intact: VideoCheck) -> dict[str, Any]:
    """One job for ``status``: where it stands (``jobstate.standing``, the words of plan and the
    gallery), the journal's own state and fields, and a note on what a run does with it."""
    found = standing(job, record, intact)
    row: dict[str, Any] = {"id": job.id, "state": str(found)}
    if record is None:
        return row
    row["journal_state"] = str(record.state)
    for name in ("task_id", "reason", "path", "size", "sha256"):
        value = getattr(record, name)
        if value is not None:
            row[name] = value
    if video_missing(record, found):
        row["note"] = MISSING_VIDEO
    elif found in (Standing.UNCONFIRMED, Standing.CHANGED):
        row["note"] = NEXT_RUN[found]
    return row
