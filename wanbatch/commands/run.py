"""``wanbatch run``: render every job, resuming from the journal."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from wanbatch.commands import options
from wanbatch.commands.asking import confirm, on_terminal
from wanbatch.commands.finish import check_targets, emit, nothing_sent
from wanbatch.commands.loading import chosen, load, video_check
from wanbatch.commands.treecheck import refuse_shared_tree
from wanbatch.errors import JournalError
from wanbatch.jobstate import Standing, standing
from wanbatch.journal import read_journal
from wanbatch.models import JobSpec, Manifest
from wanbatch.runend import summary_record
from wanbatch.salvage import adopted_view
from wanbatch.settings import Flags, Settings, build_settings
from wanbatch.words import count

NAME = "run"
HELP = "render every job; running it again resumes"
DESCRIPTION = (
    "Render every job of the manifest: submit, poll, download into the output tree, then write"
    " the gallery. Running it again resumes from the journal; nothing done is paid for twice."
)


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    options.job_fields(parser)
    options.subsets(parser)
    options.run_flags(parser)
    options.salvage(parser)
    options.console(parser)


def execute(flags: Flags, out: TextIO) -> int:
    # The run stack (anyio, httpx, rich, the scheduler) is imported when a run starts, not
    # when the parser is built: the commands that only read start without it.
    from wanbatch.commands.rounds import run_rounds
    from wanbatch.commands.session import preflight

    env = os.environ
    check_targets(flags)
    whole = load(flags)
    manifest = chosen(whole, flags)
    settings = build_settings(flags, env, manifest)
    text = sys.stderr if flags.as_json else out  # --json: stdout holds the JSON alone
    preflight(manifest, settings, flags, env)
    refuse_shared_tree(manifest, flags, lambda: whole)  # another manifest's tree
    if not _go_ahead(manifest, settings, flags):
        print("Nothing was sent.", file=text)
        return nothing_sent(manifest, None, "the question was answered no", flags, out)
    ended = run_rounds(manifest, settings, flags, env=env, out=text, whole=whole)
    emit(summary_record(ended.end, ended.summary), flags, out)
    return ended.summary.exit_code


def _go_ahead(manifest: Manifest, settings: Settings, flags: Flags) -> bool:
    """Ask on a terminal before a large submission; True when there is nothing to ask."""
    if flags.yes or flags.simulate or not on_terminal():
        return True
    new = to_submit(manifest)
    credits = manifest.estimate_credits(new)
    if credits is not None:
        if credits <= settings.confirm_credits:
            return True
        size = f"about {credits:g} credits"
    elif len(new) <= settings.confirm_videos:
        return True
    else:
        size = "credits unknown (no prices)"
    seconds = sum(job.duration for job in new)
    return confirm(
        f"{count(len(new), 'new job')} will be submitted ({seconds} s of video, {size})."
        " Go ahead? [y/N] ",
        what="run",
    )


def to_submit(manifest: Manifest) -> tuple[JobSpec, ...]:
    """The jobs a run would create a task for (``plan``'s "new"); every job when the journal
    cannot be read (the run may be about to salvage it): the most it could submit."""
    try:
        replay = adopted_view(manifest, read_journal(manifest.output_dir))
    except JournalError:
        return manifest.jobs
    intact = video_check(manifest.output_dir)
    return tuple(
        job
        for job in manifest.jobs
        if standing(job, replay.records.get(job.id), intact) is Standing.NEW
    )
