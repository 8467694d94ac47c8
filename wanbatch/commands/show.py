"""``wanbatch show MANIFEST JOB``: one job's history from the journal and the log; sends nothing.

The journal and the log are read without locking (as ``status`` reads them), a line at a time:
only the job's own records and the newest ``history.LOG_LINES`` log lines that name it are kept.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
from pathlib import Path
from typing import Any, TextIO

from wanbatch import history
from wanbatch.commands import options
from wanbatch.commands.loading import load, video_check
from wanbatch.jobstate import standing
from wanbatch.journal import job_history, read_journal, state_dir
from wanbatch.salvage import adopted_view
from wanbatch.settings import Flags

NAME = "show"
HELP = "one job's history: its fields, where it stands, its journal and log lines"
DESCRIPTION = (
    "One job's history: its fields, where it stands and what the next run does with it, every"
    " journal record of it in order with its time (a compacted journal keeps one snapshot in"
    " place of the records before it), and the newest log lines that name it"
    f" (at most {history.LOG_LINES}). JOB is a job id, or a glob that matches exactly one."
    " Sends nothing, changes nothing."
)
LOG_NAME = "log.jsonl"


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    parser.add_argument("job", metavar="JOB", help="the job's id (or a glob matching only it)")
    options.as_json(parser, "print the job's history as one JSON object")
    options.job_fields(parser, prices=False)


def execute(flags: Flags, out: TextIO) -> int:
    manifest = load(flags)
    job = history.pick(manifest.jobs, flags.job or "")
    record = adopted_view(manifest, read_journal(manifest.output_dir)).records.get(job.id)
    found = standing(job, record, video_check(manifest.output_dir))
    log_path = state_dir(manifest.output_dir) / LOG_NAME
    lines, total = log_lines(log_path, job.id, history.LOG_LINES)
    told = history.story(
        job,
        record,
        found,
        job_history(manifest.output_dir, job.id),
        lines,
        total,
        str(log_path),
    )
    if flags.as_json:
        print(json.dumps(told, indent=2, ensure_ascii=False), file=out)
    else:
        out.write("\n".join(history.render(told)) + "\n")
    return 0


def log_lines(path: Path, job_id: str, keep: int) -> tuple[list[dict[str, Any]], int]:
    """The newest ``keep`` lines of the log that name ``job_id`` (its ``job`` or ``job_id``
    field), oldest first, and how many name it in all. A line that is not JSON is passed over
    (a log cut short by a crash); no log is no line."""
    needle = json.dumps(job_id, ensure_ascii=False).encode()
    kept: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
    total = 0
    try:
        with open(path, "rb", opener=_no_follow) as handle:
            for raw in handle:
                if needle not in raw:
                    continue
                try:
                    line = json.loads(raw)
                except (ValueError, RecursionError):
                    continue
                if isinstance(line, dict) and job_id in (line.get("job"), line.get("job_id")):
                    total += 1
                    kept.append(line)
    except OSError:  # no log (no run yet), or not a file: what was read stands
        pass
    return list(kept), total


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
