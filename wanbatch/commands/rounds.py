"""One run, in rounds: each round a session (``session.py``) that runs the scheduler, then the
report and the closing lines (``runend.closing_lines``). With ``--until-done`` (or ``--wait-credits``) as many rounds as
time can cure, each resuming from the journal like a rerun, with one line between rounds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio

from wanbatch.commands.report import write_report
from wanbatch.commands.session import (
    NOTICE_PACE,
    RunSession,
    open_session,
    preflight,
    test_faults,
)
from wanbatch.errors import DiskError
from wanbatch.interrupts import pause_unless_stopped
from wanbatch.journal import read_journal
from wanbatch.models import EventKind, JobEvent, JobState, Manifest
from wanbatch.progress import watch
from wanbatch.providers import provider_for
from wanbatch.runend import RunEnd, closing_lines, whole_run
from wanbatch.salvage import adopt_into, describe_adoptions
from wanbatch.scheduler import Runner, RunOptions, RunSummary
from wanbatch.settings import Flags, Settings
from wanbatch.stops import StopReason, pause_before_next_round
from wanbatch.words import count, plural


@dataclass(frozen=True, slots=True)
class Ended:
    """A run's last round and what its closing lines name."""

    summary: RunSummary
    end: RunEnd


def run_rounds(
    manifest: Manifest,
    settings: Settings,
    flags: Flags,
    *,
    env: Mapping[str, str],
    out: TextIO,
    requeue: list[str] | None = None,
    whole: Manifest | None = None,
) -> Ended:
    """Run until done, or until what stopped the run is not for --until-done to cure.

    ``whole``: the manifest ``manifest`` was chosen from (``--only``/``--where``); the report
    covers all of it, so a subset run keeps every other job's card and failure in retry.yaml."""
    rounds = 1
    earlier = _Earlier()
    before: RunSummary | None = None  # the earlier rounds, as one
    while True:
        ended = run_round(
            manifest,
            settings,
            flags,
            env=env,
            out=out,
            requeue=requeue,
            earlier=earlier,
            rounds=rounds,
            whole=whole,
        )
        summary = ended.summary
        shown = ended.end.shown_from(os.getcwd())
        print("\n".join(closing_lines(shown, summary)), file=out, flush=True)
        earlier = earlier.plus(summary)
        if before is not None:  # what the run returns is the whole run's
            ended = Ended(whole_run(before, summary), ended.end)
        before = ended.summary
        pause = pause_before_next_round(
            summary.exit_code,
            summary.stop_reason,
            capped=summary.cap_message is not None,
            until_done=flags.until_done,
            wait_credits=flags.wait_credits,
            every=settings.round_pause,
        )
        if pause is None:
            return ended
        unknown = _answer_unknown(manifest)
        curable = set(summary.left) | set(summary.stalled)
        if summary.exit_code == 5 and not curable - unknown:
            way_out = (
                "Run again to resend them with the same key."
                if provider_for(manifest.api).capabilities.idempotency_keys
                else "Run again to look for their tasks first (--resend-unknown sends them anyway)."
            )
            print(
                f"wanbatch: round {rounds} ended; the {count(len(unknown), 'job')} left"
                f" {plural(len(unknown), 'has', 'have')} a create whose answer is unknown and"
                f" {plural(len(unknown), 'is', 'are')} not resent by --until-done (it could be"
                f" charged twice). {way_out}",
                file=out,
                flush=True,
            )
            return ended
        left = len(curable)
        why = summary.stop_message or "work left"
        print(
            f"wanbatch: round {rounds} ended with {count(left, 'job')} left ({why});"
            f" resuming in {pause:g} s (--until-done; Ctrl-C to stop)",
            file=out,
            flush=True,
        )
        stopped = anyio.run(pause_unless_stopped, pause)
        if stopped is not None:
            print(f"wanbatch: stopped by {stopped} between rounds; rerun resumes", file=out)
            ended.summary.stop_reason = StopReason.INTERRUPTED
            ended.summary.stop_message = f"stopped by {stopped} between rounds"
            return ended
        rounds += 1
        requeue = None  # already journaled by the first round


@dataclass(frozen=True, slots=True)
class _Earlier:
    """What the earlier rounds of one run created: the run's caps count them too."""

    videos: int = 0
    credits: float = 0.0

    def plus(self, summary: RunSummary) -> _Earlier:
        return _Earlier(
            self.videos + summary.videos_submitted,
            self.credits + (summary.credits_submitted or 0.0),
        )


def _answer_unknown(manifest: Manifest) -> set[str]:
    """The jobs whose create was sent and whose answer is unknown (journal: submitting)."""
    records = read_journal(manifest.output_dir).records
    return {
        job.id
        for job in manifest.jobs
        if (record := records.get(job.id)) is not None and record.state is JobState.SUBMITTING
    }


def run_round(
    manifest: Manifest,
    settings: Settings,
    flags: Flags,
    *,
    env: Mapping[str, str],
    out: TextIO,
    requeue: list[str] | None = None,
    earlier: _Earlier | None = None,
    rounds: int = 1,
    whole: Manifest | None = None,
) -> Ended:
    """One round: a session, the scheduler, then the report and the closing lines."""
    provider = provider_for(manifest.api)
    preflight(manifest, settings, flags, env)  # before anything is opened
    with open_session(manifest, settings, flags, env=env, out=out) as session:
        try:
            adopted = adopt_into(session.journal, manifest)  # sidecars the journal lacks
            if adopted:
                print("\n".join(describe_adoptions(adopted)), file=out)
            options = RunOptions(
                limits=settings.limits,
                poll=settings.poll,
                max_outage=settings.max_outage,
                resubmit_changed=flags.resubmit_changed,
                keep_changed=flags.keep_changed,
                handle_signals=True,
                faults=test_faults(),
                max_videos=flags.max_videos,
                max_credits=flags.max_credits,
                reached_before=rounds > 1,  # a later round: a refusal is an outage
                resend_unknown=rounds == 1,  # a later round nobody asked for does not resend
                force_resend=flags.resend_unknown,
                earlier_videos=earlier.videos if earlier else 0,
                earlier_credits=earlier.credits if earlier else 0.0,
                notice_pace=NOTICE_PACE if settings.notices is not None else None,
            )
            summary = anyio.run(_run_async, session, options, requeue)
        finally:
            final = session.records()
    written: tuple[Path, Path | None] | None = None
    try:
        written = write_report(whole or manifest, final)  # the whole tree, even for a subset
        del final
    except DiskError as exc:  # the videos and the journal are safe; say so and go on
        print(f"wanbatch: {exc}", file=sys.stderr)
    end = RunEnd(
        name=manifest.name,
        manifest=str(manifest.path),
        output_dir=str(manifest.output_dir),
        idempotent=provider.capabilities.idempotency_keys,
        report=str(written[0]) if written else None,
        retry_manifest=str(written[1]) if written and written[1] else None,
    )
    return Ended(summary, end)


async def _run_async(
    session: RunSession, options: RunOptions, requeue: list[str] | None
) -> RunSummary:
    manifest, journal = session.manifest, session.journal
    by_id = {job.id: job for job in manifest.jobs}
    for job_id in requeue or []:
        await journal.append(
            JobEvent(
                kind=EventKind.REQUEUED,
                job_id=job_id,
                at=time.time(),
                fingerprint=by_id[job_id].fingerprint(),
            ),
            durable=False,
        )
    await journal.flush()

    def runner_of(api: object, videos: object) -> Runner:
        return Runner(manifest, journal, api, videos, options=options)  # type: ignore[arg-type]

    async with session.connect(runner_of) as (runner, receiver):
        view = session.view
        if view is None and receiver is None:
            return await runner.run()
        async with anyio.create_task_group() as group:
            if receiver is not None:
                group.start_soon(receiver.serve)
            if view is not None:
                group.start_soon(watch, view, runner.snapshot, session.settings.progress_every)
            summary = await runner.run()
            group.cancel_scope.cancel()
        if receiver is not None:
            runner.ctx.log.info("notices.heard", **dict(receiver.counts))
        return summary


__all__ = ["Ended", "run_round", "run_rounds"]
