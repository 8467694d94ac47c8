"""``wanbatch retry``: requeue the failed jobs (after asking), then run."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from wanbatch.commands import options
from wanbatch.commands.asking import confirm
from wanbatch.commands.finish import check_targets, emit, nothing_sent
from wanbatch.commands.loading import chosen, load
from wanbatch.commands.treecheck import refuse_shared_tree
from wanbatch.journal import read_journal
from wanbatch.models import LOST_CODE, JobState
from wanbatch.runend import summary_record
from wanbatch.settings import Flags, build_settings
from wanbatch.words import count, natural_key

NAME = "retry"
HELP = "resubmit the jobs that failed (costs credits; asks first)"
DESCRIPTION = (
    "Submit the jobs that failed for good again, then run as `wanbatch run` does. It says what"
    " it will resubmit and what that costs, and asks first (--yes: do not ask). Tasks the"
    " server lost are left alone unless --include-lost."
)


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    parser.add_argument(
        "--include-lost",
        action="store_true",
        help="also resubmit tasks the server lost (404 for minutes); each is paid again",
    )
    options.job_fields(parser)
    options.subsets(parser)
    options.run_flags(parser)
    options.console(parser)


def execute(flags: Flags, out: TextIO) -> int:
    # The run stack (anyio, httpx, rich, the scheduler) is imported when a run starts, not
    # when the parser is built: the commands that only read start without it.
    from wanbatch.commands.rounds import run_rounds
    from wanbatch.commands.session import preflight

    check_targets(flags)
    whole = load(flags)
    manifest = chosen(whole, flags)
    text = sys.stderr if flags.as_json else out
    replay = read_journal(manifest.output_dir)
    failed = [
        job
        for job in manifest.jobs
        if (record := replay.records.get(job.id)) and record.state is JobState.FAILED
    ]
    lost = [job for job in failed if replay.records[job.id].code == LOST_CODE]
    if lost and not flags.include_lost:
        lost_ids = {job.id for job in lost}  # a set: 50,000 lost tasks must not be quadratic
        failed = [job for job in failed if job.id not in lost_ids]
        print(
            f"{count(len(lost), 'lost task')} not resubmitted (the server may still render"
            " them; pass --include-lost to create them anew and pay again):"
            f" {', '.join(sorted((j.id for j in lost), key=natural_key))}",
            file=text,
        )
    if not failed:
        print("No failed jobs to retry.", file=text)
        return nothing_sent(manifest, replay, "no failed jobs to retry", flags, out)
    credits = manifest.estimate_credits(tuple(failed))
    cost = f", about {credits:g} credits" if credits is not None else ""
    ids = sorted((job.id for job in failed), key=natural_key)
    print(
        f"{count(len(failed), 'failed job')} will be submitted again"
        f" ({sum(j.duration for j in failed)} s of video{cost}): {', '.join(ids[:10])}"
        + (" ..." if len(ids) > 10 else ""),
        file=text,
    )
    settings = build_settings(flags, os.environ, manifest)
    preflight(manifest, settings, flags, os.environ)
    refuse_shared_tree(manifest, flags, lambda: whole)  # another manifest's tree
    if not flags.yes and not confirm(
        f"Resubmit {count(len(failed), 'failed job')}? [y/N] ", what="retry"
    ):
        print("Nothing was sent.", file=text)
        return nothing_sent(manifest, replay, "the question was answered no", flags, out)
    ended = run_rounds(
        manifest,
        settings,
        flags,
        env=os.environ,
        out=text,
        requeue=[job.id for job in failed],
        whole=whole,
    )
    emit(summary_record(ended.end, ended.summary), flags, out)
    return ended.summary.exit_code
