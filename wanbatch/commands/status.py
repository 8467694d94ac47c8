"""``wanbatch status``: each job's state from the journal and the disk; sends nothing."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from wanbatch.commands import options
from wanbatch.commands.loading import tree_view
from wanbatch.commands.treecheck import tree_orphans
from wanbatch.jobstate import MISSING_VIDEO, NEXT_RUN, Standing, VideoCheck, standing, video_missing
from wanbatch.journal import live_run
from wanbatch.models import JobRecord, JobSpec
from wanbatch.settings import Flags
from wanbatch.words import count

NAME = "status"
HELP = "each job's state from the journal; sends nothing"
DESCRIPTION = (
    "Each job's state, from the journal and the output tree: new, unconfirmed, in_flight,"
    " to_download, done, failed or changed, with its task id or the reason it failed."
)


# ``status --json``: its top-level keys, always all of them, in this order. ``counts`` has every
# state of ``jobstate.Standing`` (in its order, zeros included) over every job chosen;
# ``total`` is their number and ``shown`` the number of ``jobs`` rows (``--state`` filters them).
STATUS_KEYS = ("manifest", "output_dir", "live_run", "counts", "total", "shown", "jobs")


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    options.as_json(parser, "print JSON")
    parser.add_argument(
        "--state",
        dest="states",
        action="append",
        choices=[str(state) for state in Standing],
        metavar="STATE",
        help="only the jobs in this state (repeatable): " + ", ".join(Standing),
    )
    options.job_fields(parser, prices=False)
    options.subsets(parser)


def execute(flags: Flags, out: TextIO) -> int:
    tree = tree_view(flags)
    manifest, intact, records = tree.manifest, tree.intact, tree.replay.records
    wanted = set(flags.states)
    counts: dict[str, int] = {str(state): 0 for state in Standing}
    live = live_run(manifest.output_dir)  # the states may change under us while it runs
    if flags.as_json:
        rows = []
        for job in manifest.jobs:
            row = status_row(job, records.get(job.id), intact)
            counts[row["state"]] += 1
            if not wanted or row["state"] in wanted:
                rows.append(row)
        payload = {
            "manifest": str(manifest.path),
            "output_dir": str(manifest.output_dir),
            "live_run": live,
            "counts": counts,
            "total": len(manifest.jobs),
            "shown": len(rows),
            "jobs": rows,
        }
        print(json.dumps(payload, indent=2), file=out)
        return 0
    # Written a block of lines at a time: a million rows are never held at once.
    width = max([len(job.id) for job in manifest.jobs] + [2])
    shown = 0
    lines = [f"{'id':<{width}}  {'state':<11}  task / detail"]
    for job in manifest.jobs:
        row = status_row(job, records.get(job.id), intact)
        counts[row["state"]] += 1
        if wanted and row["state"] not in wanted:
            continue
        shown += 1
        detail = row.get("note") or row.get("reason") or row.get("task_id") or ""
        lines.append(f"{row['id']:<{width}}  {row['state']:<11}  {detail}")
        if len(lines) >= 4096:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    jobs = count(len(manifest.jobs), "job")
    if wanted:
        jobs = f"{shown} of {jobs} shown (--state {' '.join(sorted(wanted))})"
    lines.append(f"\n{jobs}: {summary}")
    orphaned = sum(
        orphan.id is not None
        for orphan in tree_orphans(tree.whole, tree.journal, flags, files=False)
    )
    if orphaned:
        lines.append(f"{count(orphaned, 'orphaned record')} (see plan)")
    if live is not None:
        lines.append(f"a run is live ({live}): these states are changing")
    out.write("\n".join(lines) + "\n")
    return 0


# Each row of ``status --json``: every key, null where the journal has nothing.
STATUS_ROW_KEYS = (
    "id",
    "state",
    "journal_state",
    "task_id",
    "reason",
    "path",
    "size",
    "sha256",
    "note",
)


def status_row(job: JobSpec, record: JobRecord | None, intact: VideoCheck) -> dict[str, Any]:
    """One job for ``status``: where it stands (``jobstate.standing``, the words of plan and the
    gallery), the journal's own state and fields, and a note on what a run does with it."""
    found = standing(job, record, intact)
    row: dict[str, Any] = dict.fromkeys(STATUS_ROW_KEYS)
    row.update(id=job.id, state=str(found))
    if record is None:
        return row
    row["journal_state"] = str(record.state)
    for name in ("task_id", "reason", "path", "size", "sha256"):
        row[name] = getattr(record, name)
    if video_missing(record, found):
        row["note"] = MISSING_VIDEO
    elif found in (Standing.UNCONFIRMED, Standing.CHANGED):
        row["note"] = NEXT_RUN[found]
    return row
