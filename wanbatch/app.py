"""The commands that touch the journal or the API: run, retry, status, plan and report.

``cli.py`` parses argv and calls these; each returns an exit code. Settings are resolved here,
once, with the precedence the README gives: command-line flag > environment > manifest > default.

Over 400 lines, and known to be: five commands, the settings, the rounds of --until-done, the
report's manifests and the sidecar reader grew here by accretion. The issue of the command
layer (one module per command under ``wanbatch/commands/``, one settings builder, a run
session) splits it; until then a new command goes there, not here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import anyio

from wanbatch import logs
from wanbatch.backoff import PollPolicy
from wanbatch.client import (
    ProviderApi,
    VideoFetcher,
    check_base_url,
    fetch_public_json,
    is_loopback,
)
from wanbatch.download import sidecar_path
from wanbatch.errors import DiskError, UsageError, WanbatchError
from wanbatch.gallery import DATA_NAME, GALLERY_NAME, RETRY_NAME, gallery_files, retry_manifest
from wanbatch.interrupts import pause_unless_stopped
from wanbatch.jobstate import (
    MISSING_VIDEO,
    NEXT_RUN,
    Standing,
    VideoCheck,
    as_rendered,
    standing,
    video_missing,
    video_path,
)
from wanbatch.journal import Journal, Replay, read_journal, state_dir, without_userinfo
from wanbatch.manifest import Overrides, load_manifest
from wanbatch.models import (
    BASE_URL_ENV,
    DEFAULT_PROVIDER,
    LOST_CODE,
    EventKind,
    JobEvent,
    JobRecord,
    JobSpec,
    JobState,
    Manifest,
)
from wanbatch.noticerules import JWKS_URLS, SIGNING, SignatureCheck, ed25519_keys
from wanbatch.notices import NoticeReceiver, notice_path, parse_listen
from wanbatch.outtree import atomic_write, read_all
from wanbatch.progress import LiveProgress, PlainProgress, watch
from wanbatch.providers import provider_for
from wanbatch.salvage import adopt_into, adopted_view, describe_adoptions, salvage_journal
from wanbatch.scheduler import FaultHook, Runner, RunOptions, RunSummary
from wanbatch.stops import EXIT_CODES, ROUND_PAUSE_SECONDS, StopReason, pause_before_next_round
from wanbatch.summary import outage_lines

SIMULATOR_BASE = "simulator://local"  # what the journal records for --simulate runs


@dataclass(frozen=True, slots=True)
class CommonOptions:
    """The options every journal command takes."""

    manifest: str
    base_url: str | None = None
    output: str | None = None
    concurrency: int | None = None
    requests_per_second: float | None = None
    model: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    json_logs: bool = False
    verbosity: int = 0


@dataclass(frozen=True, slots=True)
class RunFlags:
    """What only ``run`` and ``retry`` take."""

    simulate: bool = False
    allow_insecure_http: bool = False
    resubmit_changed: bool = False
    keep_changed: bool = False
    yes: bool = False
    poll_interval: float | None = None  # poll every this many seconds (default: planned)
    job_deadline: float | None = None  # seconds from create to rendered before a job is stalled
    max_videos: int | None = None  # cost guard: new tasks this run may create
    max_credits: float | None = None  # cost guard: estimated credits this run may spend
    progress_every: float = 30.0  # seconds between progress lines when not on a terminal
    salvage_journal: bool = False  # repair a damaged journal (kept aside) before running
    include_lost: bool = False  # `retry` also resubmits tasks the server lost (pays again)
    max_outage: float | None = None  # a host down longer stops the run (0: never; None: 6 h)
    until_done: bool = False  # go round again (resume) on what time can cure, until done
    wait_credits: float | None = None  # on 402: wait this long and go round again
    round_pause: float = ROUND_PAUSE_SECONDS  # --until-done: the wait between rounds
    resend_unknown: bool = False  # resend unsettled creates on an API without idempotency keys
    notify_url: str | None = None  # webhook notices: the public URL the provider calls
    listen: str | None = None  # HOST:PORT the notice receiver listens on
    notify_secret_env: str | None = None  # the variable holding the notices' signing secret


def load(options: CommonOptions) -> Manifest:
    overrides = Overrides(
        model=options.model,
        duration=options.duration,
        aspect_ratio=options.aspect_ratio,
        output_dir=options.output,
        concurrency=options.concurrency,
        requests_per_second=options.requests_per_second,
    )
    manifest = load_manifest(options.manifest, overrides)
    if manifest.api.base_url is not None:  # it is copied into retry.yaml, even when overridden
        _refuse_credentials(manifest.api.base_url, manifest.api.key_env)
    return manifest


def resolve_base_url(options: CommonOptions, manifest: Manifest) -> str:
    # WAN_API_BASE_URL is wanapi's: honoured for another provider it would send that
    # provider's key to wanapi's host.
    env = os.environ.get(BASE_URL_ENV) if manifest.api.provider == DEFAULT_PROVIDER else None
    url = options.base_url or env or manifest.api.base_url
    url = url or provider_for(manifest.api).default_base_url
    if url is None:
        raise UsageError(
            f"the {manifest.api.provider} provider has no default address: set api.base_url"
            f" in {manifest.path}, or pass --base-url"
        )
    return _refuse_credentials(url, manifest.api.key_env)


def _refuse_credentials(url: str, key_env: str) -> str:
    """``url``, unless it holds a user name or password: they would be stored (journal, logs,
    retry.yaml), and httpx would send them in place of the key's Authorization header."""
    try:
        credentials = bool(urlsplit(url).netloc.rpartition("@")[0])
    except ValueError:
        raise UsageError(f"the API base URL {without_userinfo(url)!r} is not a URL") from None
    if credentials:
        raise UsageError(
            f"the API base URL {without_userinfo(url)} holds a user name or password (...@);"
            f" remove them: the only credential wanbatch sends is the key from ${key_env}"
        )
    return url


def resolve_api_key(manifest: Manifest) -> str:
    name = manifest.api.key_env
    key = os.environ.get(name, "").strip()
    if not key:
        raise UsageError(
            f"no API key: set the environment variable {name} (the manifest's api.key_env), "
            "or try the built-in simulator with --simulate"
        )
    if not all("!" <= char <= "~" for char in key):  # never echoed: it would leak the key
        raise UsageError(
            f"the API key in {name} holds a character an HTTP header cannot carry (a space, a"
            " control character or a non-ASCII letter); copy it again. Nothing was sent."
        )
    return key


# --- run and retry --------------------------------------------------------------------------


def run(options: CommonOptions, flags: RunFlags, *, out: TextIO | None = None) -> int:
    """``wanbatch run``: render every job, resuming from the journal."""
    out = out or sys.stdout
    manifest = load(options)
    return _run_manifest(manifest, options, flags, out=out)


def retry(options: CommonOptions, flags: RunFlags, *, out: TextIO | None = None) -> int:
    """``wanbatch retry``: requeue the failed jobs (after asking), then run."""
    out = out or sys.stdout
    manifest = load(options)
    replay = read_journal(manifest.output_dir)
    failed = [
        job
        for job in manifest.jobs
        if (record := replay.records.get(job.id)) and record.state is JobState.FAILED
    ]
    lost = [job for job in failed if replay.records[job.id].code == LOST_CODE]
    if lost and not flags.include_lost:
        failed = [job for job in failed if job not in lost]
        print(
            f"{len(lost)} lost task(s) not resubmitted (the server may still render them; pass"
            f" --include-lost to create them anew and pay again): {', '.join(j.id for j in lost)}",
            file=out,
        )
    if not failed:
        print("No failed jobs to retry.", file=out)
        return 0
    credits = manifest.estimate_credits(tuple(failed))
    cost = f", about {credits:g} credits" if credits is not None else ""
    print(
        f"{len(failed)} failed job(s) will be submitted again ({sum(j.duration for j in failed)} "
        f"s of video{cost}): {', '.join(job.id for job in failed[:10])}"
        + (" ..." if len(failed) > 10 else ""),
        file=out,
    )
    if not flags.yes and not _confirm("Resubmit them? [y/N] "):
        print("Nothing was sent. Pass --yes to skip this question.", file=out)
        return 2
    return _run_manifest(manifest, options, flags, out=out, requeue=[job.id for job in failed])


def _confirm(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _run_manifest(
    manifest: Manifest,
    options: CommonOptions,
    flags: RunFlags,
    *,
    out: TextIO,
    requeue: list[str] | None = None,
) -> int:
    """One run; with ``--until-done`` (or ``--wait-credits``) as many rounds as time can cure,
    each resuming from the journal like a rerun, with one line between rounds."""
    rounds = 1
    earlier = _Earlier()
    while True:
        summary = _run_round(
            manifest, options, flags, out=out, requeue=requeue, earlier=earlier, rounds=rounds
        )
        earlier = earlier.plus(summary)
        pause = pause_before_next_round(
            summary.exit_code,
            summary.stop_reason,
            capped=summary.cap_message is not None,
            until_done=flags.until_done,
            wait_credits=flags.wait_credits,
            every=flags.round_pause,
        )
        if pause is None:
            return summary.exit_code
        unknown = _answer_unknown(manifest)
        curable = set(summary.left) | set(summary.stalled)
        if summary.exit_code == 5 and not curable - unknown:
            way_out = (
                "Run again to resend them with the same key."
                if provider_for(manifest.api).capabilities.idempotency_keys
                else "Run again to look for their tasks first (--resend-unknown sends them anyway)."
            )
            print(
                f"wanbatch: round {rounds} ended; the {len(unknown)} job(s) left have a create"
                " whose answer is unknown and are not resent by --until-done (it could be"
                f" charged twice). {way_out}",
                file=out,
                flush=True,
            )
            return summary.exit_code
        left = len(curable)
        why = summary.stop_message or "work left"
        print(
            f"wanbatch: round {rounds} ended with {left} job(s) left ({why});"
            f" resuming in {pause:g} s (--until-done; Ctrl-C to stop)",
            file=out,
            flush=True,
        )
        stopped = anyio.run(pause_unless_stopped, pause)
        if stopped is not None:
            print(f"wanbatch: stopped by {stopped} between rounds; rerun resumes", file=out)
            return StopReason.INTERRUPTED.exit_code
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


def _run_round(
    manifest: Manifest,
    options: CommonOptions,
    flags: RunFlags,
    *,
    out: TextIO,
    requeue: list[str] | None = None,
    earlier: _Earlier | None = None,
    rounds: int = 1,
) -> RunSummary:
    if flags.job_deadline is not None:
        limits = dataclasses.replace(manifest.limits, job_deadline_seconds=flags.job_deadline)
        manifest = dataclasses.replace(manifest, limits=limits)
    provider = provider_for(manifest.api)
    notice_settings(flags, provider.name, provider.capabilities.webhooks)  # before anything
    if flags.max_credits is not None and not manifest.pricing:
        raise UsageError(
            f"--max-credits needs prices: {manifest.path} has no `pricing` section "
            "(credits per second of video, per model)"
        )
    with _api_endpoint(options, manifest, flags) as (base_url, journal_base, api_key):
        salvaged = salvage_journal(manifest.output_dir) if flags.salvage_journal else None
        if salvaged is not None:
            print("\n".join(salvaged.lines()), file=out)
        journal = Journal.open(  # the path resolved: `report` may run from another folder
            manifest.output_dir,
            base_url=journal_base,
            manifest=str(manifest.path.resolve()),
            provider=manifest.api.provider,
        )
        view = _progress_view(manifest, options, flags)
        log_file = logs.configure(
            state_dir(manifest.output_dir) / "log.jsonl",
            verbosity=options.verbosity,
            json_console=options.json_logs,
            console=view.stream if isinstance(view, LiveProgress) else None,
        )
        try:
            adopted = adopt_into(journal, manifest)  # sidecars of jobs the journal lacks
            if adopted:
                print("\n".join(describe_adoptions(adopted)), file=out)
            run_options = RunOptions(
                resubmit_changed=flags.resubmit_changed,
                keep_changed=flags.keep_changed,
                handle_signals=True,
                faults=_test_faults(),
                max_videos=flags.max_videos,
                max_credits=flags.max_credits,
                reached_before=rounds > 1,  # a later round: a refusal is an outage
                resend_unknown=rounds == 1,  # a later round nobody asked for does not resend
                force_resend=flags.resend_unknown,
                earlier_videos=earlier.videos if earlier else 0,
                earlier_credits=earlier.credits if earlier else 0.0,
            )
            if flags.max_outage is not None:
                run_options = dataclasses.replace(run_options, max_outage=flags.max_outage)
            if flags.notify_url is not None:
                run_options = dataclasses.replace(run_options, notice_pace=NOTICE_PACE)
            if flags.poll_interval is not None:
                # A user who sets the interval gets that interval, not the planner.
                interval = flags.poll_interval
                run_options = dataclasses.replace(
                    run_options,
                    poll=PollPolicy(initial_seconds=interval, factor=1.0, cap_seconds=interval),
                )
            summary = anyio.run(
                _run_async, manifest, journal, base_url, api_key, flags, run_options, requeue, view
            )
        finally:
            # The report is made from the run's own records: replaying the journal again would
            # hold a second copy of a 100,000-job batch at the end of the run.
            final = Replay(records=journal.records, manifests=list(journal.replay.manifests))
            journal.close()
            logs.reset()
            if log_file is not None:
                log_file.close()
    written: tuple[Path, Path | None] | None = None
    try:
        written = write_report(manifest, final)
        del final
    except DiskError as exc:  # the videos and the journal are safe; say so and go on
        print(f"wanbatch: {exc}", file=sys.stderr)
    print_summary(manifest, summary, out=out, report=written)
    return summary


def _progress_view(
    manifest: Manifest, options: CommonOptions, flags: RunFlags
) -> LiveProgress | PlainProgress | None:
    """The live view on a terminal; periodic lines elsewhere or with --json-logs; none with -q."""
    if options.verbosity < 0:
        return None
    stream = sys.stderr
    if not options.json_logs and stream.isatty() and os.environ.get("TERM") != "dumb":
        return LiveProgress(manifest.name, file=stream)
    return PlainProgress(flags.progress_every)


async def _run_async(
    manifest: Manifest,
    journal: Journal,
    base_url: str,
    api_key: str,
    flags: RunFlags,
    run_options: RunOptions,
    requeue: list[str] | None,
    view: LiveProgress | PlainProgress | None = None,
) -> RunSummary:
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
    provider = provider_for(manifest.api)
    notices = notice_settings(flags, provider.name, provider.capabilities.webhooks)
    async with (
        ProviderApi(
            base_url,
            api_key,
            provider=provider,
            notify_url=flags.notify_url,  # never in a fingerprint or an Idempotency-Key
            max_connections=manifest.limits.concurrency,
            allow_insecure_http=flags.allow_insecure_http,
        ) as api,
        VideoFetcher(max_connections=manifest.limits.downloads) as videos,
    ):
        runner = Runner(manifest, journal, api, videos, options=run_options)
        receiver = None
        if notices is not None:
            listen, path, check = notices
            jwks_url = JWKS_URLS.get(provider.name)
            local = flags.simulate or is_loopback(urlsplit(base_url).hostname or "")
            if jwks_url is not None and not local:  # fal's public keys; never for a simulator
                check = await _keyed_check(provider.name, jwks_url, runner.ctx.log) or check
            receiver = NoticeReceiver(
                listen, path, provider.read_notice, check, runner.polls.notice
            )
            await receiver.open()
            if not check.verifies and SIGNING.get(provider.name) is not None:
                runner.ctx.log.warning(
                    "notices.unverified",
                    detail=f"{provider.name} signs its notices, but they are not checked in this"
                    " run (no --notify-secret-env, or no keys): each costs at most one poll",
                )
        if view is None and receiver is None:
            return await runner.run()
        async with anyio.create_task_group() as group:
            if receiver is not None:
                group.start_soon(receiver.serve)
            if view is not None:
                group.start_soon(watch, view, runner.snapshot, flags.progress_every)
            summary = await runner.run()
            group.cancel_scope.cancel()
        if receiver is not None:
            runner.ctx.log.info("notices.heard", **dict(receiver.counts))
        return summary


NOTICE_PACE = 4.0  # while notices arrive, planned polls are this many times further apart


async def _keyed_check(provider: str, url: str, log: Any) -> SignatureCheck | None:
    """The check of ``provider``'s notices by its public keys at ``url``; None (and a warning)
    when they cannot be had: the notices are then hints, at most one poll each."""
    try:
        keys = ed25519_keys(await fetch_public_json(url))
    except WanbatchError as exc:
        log.warning("notices.keys_unavailable", url=url, error=str(exc))
        return None
    if not keys:
        log.warning("notices.keys_unavailable", url=url, error="no Ed25519 key in the answer")
        return None
    return SignatureCheck.for_provider(provider, None, keys)


def notice_settings(
    flags: RunFlags, provider: str, webhooks: bool
) -> tuple[tuple[str, int], str, SignatureCheck] | None:
    """(listen address, path, signature check) for ``--notify-url``, or None without it."""
    if flags.notify_url is None and flags.listen is None:
        return None
    if flags.notify_url is None or flags.listen is None:
        raise UsageError("webhook notices need both --notify-url PUBLIC_URL and --listen HOST:PORT")
    if not webhooks:
        raise UsageError(f"--notify-url: {provider} sends no webhook notices")
    secret = None
    if flags.notify_secret_env is not None:
        secret = os.environ.get(flags.notify_secret_env)
        if not secret:
            raise UsageError(f"--notify-secret-env: ${flags.notify_secret_env} is not set")
    try:
        check = SignatureCheck.for_provider(provider, secret)
    except ValueError as exc:  # the message names the secret's form, never the secret
        raise UsageError(f"--notify-secret-env {flags.notify_secret_env}: {exc}") from exc
    return parse_listen(flags.listen), notice_path(flags.notify_url), check


FAULT_ENV = "WANBATCH_TEST_CRASH_AT"


def _test_faults() -> FaultHook | None:
    """Test-only crash points, from ``WANBATCH_TEST_CRASH_AT=point[:n]``: die at the n-th visit.

    The fault-campaign tests set it on a subprocess; it is never set in normal runs.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    point, _, count = spec.partition(":")
    remaining = [int(count) if count.isdigit() else 1]

    def hook(at_point: str, job_id: str) -> None:
        if at_point != point:
            return
        remaining[0] -= 1
        if remaining[0] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


@contextmanager
def _api_endpoint(
    options: CommonOptions, manifest: Manifest, flags: RunFlags
) -> Iterator[tuple[str, str, str]]:
    """(base URL, the base URL the journal records, key): the simulator's or the real API's."""
    if flags.simulate:
        from wanbatch.simulator import SimulatorServer, demo_config

        # The simulator keeps its tasks beside the journal, so an interrupted --simulate run
        # resumes against the same tasks after a restart, as it would against the real API.
        state = state_dir(manifest.output_dir) / "simulator-state.json"
        try:
            state.parent.mkdir(parents=True, exist_ok=True)
            config = demo_config().replace(provider=manifest.api.provider)
            sim = SimulatorServer(config, state_file=state).start()
        except OSError as exc:  # a file in the way, a folder where its state file should be
            raise DiskError(f"cannot start the simulator in {state.parent}: {exc}") from exc
        except (ValueError, TypeError, KeyError, RecursionError) as exc:  # saved tasks damaged
            raise UsageError(
                f"the simulator's saved tasks {state} are damaged ({type(exc).__name__});"
                " nothing was sent. Move the file aside to start the simulator afresh."
            ) from exc
        try:
            yield sim.base_url, SIMULATOR_BASE, sim.api_key
        finally:
            sim.stop()
        return
    base_url = check_base_url(
        resolve_base_url(options, manifest), allow_insecure_http=flags.allow_insecure_http
    )
    yield base_url, base_url, resolve_api_key(manifest)


# --- reporting --------------------------------------------------------------------------------


def print_summary(
    manifest: Manifest,
    summary: RunSummary,
    *,
    out: TextIO,
    report: tuple[Path, Path | None] | None = None,
) -> None:
    """The closing lines of a run: outcomes, failures with reasons, where the files are."""
    done = summary.already_done + len(summary.downloaded)
    lines = [
        "",
        f"wanbatch: {manifest.name}: {done}/{summary.total} videos in {manifest.output_dir}"
        f" ({len(summary.downloaded)} downloaded now, {summary.already_done} already there)",
    ]
    if summary.failed:
        lines.append(f"  failed for good: {len(summary.failed)} (`wanbatch retry` resubmits them)")
        lines += [f"    {job_id}: {reason}" for job_id, reason in sorted(summary.failed.items())]
    if summary.stalled:
        lines.append(
            f"  stalled past the deadline: {len(summary.stalled)}: {', '.join(summary.stalled)}"
            " (the next run asks again; wait longer with --job-deadline S)"
        )
    if summary.left:
        lines.append(f"  not finished: {len(summary.left)} (run again to resume)")
        reasons = Counter(summary.left.values())
        lines += [f"    {count} x {reason}" for reason, count in reasons.most_common(5)]
    if summary.possible_duplicates:
        why = (
            "same Idempotency-Key; may be paid twice if the server ignores it"
            if provider_for(manifest.api).capabilities.idempotency_keys
            else "--resend-unknown; may be paid twice"
        )
        lines.append(
            f"  created again after an unknown outcome ({why}):"
            f" {', '.join(summary.possible_duplicates)}"
        )
    requests = summary.requests
    lines.append(
        f"  requests: {requests['create']} creates, {requests['poll']} polls,"
        f" {requests['refresh']} URL refreshes, {requests['retry']} retries,"
        f" {requests['throttled']} rate-limited (429); {requests['download']} downloads"
    )
    submitted = f"  submitted this run: {summary.videos_submitted} new task(s)"
    if summary.credits_submitted is not None:
        submitted += f", about {summary.credits_submitted:g} credits (estimated from `pricing`)"
    lines.append(submitted)
    if summary.cap_message:
        lines.append(
            f"  cost guard: {summary.cap_message}; in-flight jobs were finished, nothing more"
            " was submitted (rerun with a higher cap to go on)"
        )
    lines += outage_lines(summary)
    lines.append(f"  wall time: {summary.wall_seconds:.1f} s")
    if report is not None:
        html, retry_file = report
        lines.append(f"  gallery: {html}")
        if retry_file is not None:
            lines.append(
                f"  failed jobs as a manifest: {retry_file} (`wanbatch retry {retry_file}`)"
            )
    if summary.stop_message:
        lines.append(f"  stopped: {summary.stop_message}")
    lines.append(f"  exit code {summary.exit_code}: {EXIT_CODES[summary.exit_code]}")
    print("\n".join(lines), file=out)


# --- report -----------------------------------------------------------------------------------


def report(options: CommonOptions, *, out: TextIO | None = None) -> int:
    """``wanbatch report``: write report.html (and retry.yaml) from the journal; sends nothing."""
    out = out or sys.stdout
    manifest = load(options)
    html, retry_file = write_report(manifest)
    print(f"gallery: {html}", file=out)
    if retry_file is not None:
        print(f"failed jobs as a manifest: {retry_file} (`wanbatch retry {retry_file}`)", file=out)
    else:
        print("no failed jobs: no retry.yaml", file=out)
    return 0


def write_report(manifest: Manifest, replay: Replay | None = None) -> tuple[Path, Path | None]:
    """Write ``report.html`` into the output tree, and ``retry.yaml`` when jobs failed.

    ``replay`` is what the journal says (read from disk when not given). Both files are replaced
    whole (written beside, then renamed). A stale retry.yaml is removed when nothing failed.
    A file that cannot be written is a ``DiskError`` naming it.
    """
    try:
        return _write_report(manifest, replay)
    except OSError as exc:  # a folder in the way, a full or read-only disk
        where = f" ({exc.filename})" if exc.filename else ""
        raise DiskError(
            f"could not write the report in {manifest.output_dir}: {exc.strerror or exc}{where};"
            " the videos and the journal are untouched"
        ) from exc


def _write_report(manifest: Manifest, replay: Replay | None) -> tuple[Path, Path | None]:
    if replay is None:
        replay = read_journal(manifest.output_dir)
    sources, missing = _sources(manifest, replay.manifests)
    for note in missing:
        print(f"wanbatch: {note}", file=sys.stderr)
    whole = _whole_batch(manifest, sources)
    folder = manifest.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / GALLERY_NAME
    intact = video_check(folder)
    asked = _asked_for(whole, sources, replay.records)
    gallery = gallery_files(
        whole, replay.records, generated_at=time.time(), video_intact=intact, rendered=asked
    )
    data_file = folder / DATA_NAME
    if gallery.data is not None:  # first, so that the page never names a data file not there
        atomic_write(data_file, (line.encode("utf-8") for line in gallery.data))
    atomic_write(html, (line.encode("utf-8") for line in gallery.page))
    if gallery.data is None:
        data_file.unlink(missing_ok=True)  # a large run's, now stale
    retry_text = retry_manifest(whole, replay.records, asked)
    retry_file = folder / RETRY_NAME
    if retry_text is None:
        retry_file.unlink(missing_ok=True)
        return html, None
    atomic_write(retry_file, retry_text.encode("utf-8"))
    return html, retry_file


def _sources(manifest: Manifest, recorded: list[str]) -> tuple[list[Manifest], list[str]]:
    """The manifests earlier runs used (the first one first, e.g. the campaign before its
    retry.yaml), then ``manifest`` if it is not among them; and a note for each earlier
    manifest that was moved or no longer loads, which is left out."""
    sources: list[Manifest] = []
    missing: list[str] = []
    for text in recorded:
        found = _recorded_manifest(text, manifest)
        if isinstance(found, str):
            missing.append(
                f"the gallery leaves out the jobs of {text}, which an earlier run in "
                f"{manifest.output_dir} used: {found}"
            )
        else:
            sources.append(found)
    if manifest not in sources:
        sources.append(manifest)
    return sources, missing


def _whole_batch(manifest: Manifest, sources: list[Manifest]) -> Manifest:
    """Every job of the output tree: the jobs of ``sources``, the first manifest's first."""
    jobs: dict[str, JobSpec] = {}
    for source in sources:
        for job in source.jobs:
            jobs.setdefault(job.id, job)
    first = sources[0]
    return dataclasses.replace(
        first,
        output_dir=manifest.output_dir,
        pricing=first.pricing or manifest.pricing,
        jobs=tuple(jobs.values()),
    )


def _recorded_manifest(text: str, manifest: Manifest) -> Manifest | str:
    """The manifest a run header names, or why it cannot be had.

    Journals name it by absolute path; older ones kept it as typed, relative to a folder no
    longer known: it is looked for from the working directory, the output dir and each folder
    above it, and a copy whose output dir is this one wins over one that merely exists.
    """
    path = Path(text)
    bases = [Path.cwd(), manifest.output_dir, *manifest.output_dir.parents]
    candidates = [path] if path.is_absolute() else [base / path for base in bases]
    elsewhere: Manifest | None = None
    reason = "the file is not there any more"
    for candidate in dict.fromkeys(candidate.resolve() for candidate in candidates):
        if candidate == manifest.path.resolve():
            return manifest
        if not candidate.is_file():
            continue
        try:
            loaded = load_manifest(candidate)
        except WanbatchError:
            reason = f"{candidate} no longer loads (`wanbatch validate` says why)"
            continue
        if loaded.output_dir == manifest.output_dir:
            return loaded
        elsewhere = elsewhere or loaded
    return elsewhere if elsewhere is not None else reason


def video_check(output_dir: Path) -> VideoCheck:
    """The disk fact the views ask (as the run does): is a job's video there, whole.
    (``download.file_matches`` on a string path: no ``Path`` built for each of 100,000 jobs.)"""
    root = str(output_dir)

    def intact(job: JobSpec, record: JobRecord) -> bool:
        if record.size is None:
            return False
        try:
            return os.stat(os.path.join(root, video_path(job, record))).st_size == record.size
        except OSError:
            return False

    return intact


def _asked_for(
    whole: Manifest, sources: list[Manifest], records: dict[str, JobRecord]
) -> dict[str, JobSpec | None]:
    """For each job whose task was asked for other fields than ``whole`` holds (a retry.yaml
    edited, --keep-changed): those fields, from the manifest of the tree with that fingerprint,
    else from the video's sidecar; None where neither has them."""
    asked: dict[str, JobSpec | None] = {}
    by_fingerprint: dict[tuple[str, str], JobSpec] | None = None
    for job in whole.jobs:
        record = records.get(job.id)
        if record is None or record.state is JobState.PLANNED or record.fingerprint is None:
            continue
        if record.fingerprint == job.fingerprint():
            continue
        if by_fingerprint is None:  # built only when some job was edited
            by_fingerprint = {
                (other.id, other.fingerprint()): other
                for source in sources
                for other in source.jobs
            }
        found = by_fingerprint.get((job.id, record.fingerprint))
        if found is None:
            found = as_rendered(job, _sidecar_fields(whole, job, record), record.fingerprint)
        asked[job.id] = found
    return asked


def _sidecar_fields(manifest: Manifest, job: JobSpec, record: JobRecord) -> object:
    try:
        # as adoption reads sidecars: not through a link, never waiting on a planted FIFO
        data = json.loads(read_all(sidecar_path(manifest.output_dir / video_path(job, record))))
    except (OSError, ValueError, RecursionError):
        return None
    return data.get("fields") if isinstance(data, dict) else None


# --- status -----------------------------------------------------------------------------------


def status(options: CommonOptions, *, as_json: bool = False, out: TextIO | None = None) -> int:
    """``wanbatch status``: each job's state from the journal; sends nothing."""
    out = out or sys.stdout
    manifest = load(options)
    replay = adopted_view(manifest, read_journal(manifest.output_dir))
    intact = video_check(manifest.output_dir)
    records = replay.records
    if as_json:
        rows = [_status_row(job, records.get(job.id), intact) for job in manifest.jobs]
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
        row = _status_row(job, records.get(job.id), intact)
        tally[row["state"]] += 1
        detail = row.get("note") or row.get("reason") or row.get("task_id") or ""
        lines.append(f"{row['id']:<{width}}  {row['state']:<11}  {detail}")
        if len(lines) >= 4096:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    summary = ", ".join(f"{count} {state}" for state, count in sorted(tally.items()))
    lines.append(f"\n{len(manifest.jobs)} jobs: {summary}")
    out.write("\n".join(lines) + "\n")
    return 0


def _status_row(job: JobSpec, record: JobRecord | None, intact: VideoCheck) -> dict[str, Any]:
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


# --- plan -------------------------------------------------------------------------------------


_PLAN_LABELS: dict[str, str] = {  # the groups of ``plan``: ``jobstate.Standing``, in this order
    Standing.NEW: "new (a run submits them)",
    Standing.CHANGED: "changed since submitted (a run stops and asks: --resubmit-changed or --keep-changed)",
    Standing.UNCONFIRMED: "create sent, answer unknown (a run asks again with the same key)",
    Standing.IN_FLIGHT: "in flight (a run polls them)",
    Standing.TO_DOWNLOAD: "rendered, to download (a run downloads them; also videos gone from disk)",
    Standing.DONE: "done",
    Standing.FAILED: "failed (`wanbatch retry` resubmits them)",
}


def plan(options: CommonOptions, *, as_json: bool = False, out: TextIO | None = None) -> int:
    """``wanbatch plan``: the manifest against the journal, and what a run would submit."""
    out = out or sys.stdout
    manifest = load(options)
    replay = adopted_view(manifest, read_journal(manifest.output_dir))
    intact = video_check(manifest.output_dir)
    groups: dict[str, list[str]] = {name: [] for name in _PLAN_LABELS}
    submit = []
    for job in manifest.jobs:
        found = standing(job, replay.records.get(job.id), intact)
        groups[found].append(job.id)
        if found is Standing.NEW:
            submit.append(job)
    # Failed jobs whose task the server lost: `retry` leaves them alone unless --include-lost.
    lost = [
        job_id for job_id in groups[Standing.FAILED] if replay.records[job_id].code == LOST_CODE
    ]
    credits = manifest.estimate_credits(tuple(submit))
    seconds = sum(job.duration for job in submit)
    if as_json:
        payload = {
            "manifest": str(manifest.path),
            "output_dir": str(manifest.output_dir),
            "counts": {name: len(ids) for name, ids in groups.items()},
            "jobs": groups,
            "lost": lost,
            "to_submit": {"jobs": len(submit), "seconds": seconds, "credits": credits},
        }
        print(json.dumps(payload, indent=2), file=out)
        return 0
    print(f"{manifest.path} against {manifest.output_dir}:", file=out)
    for name, ids in groups.items():
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        print(f"  {len(ids):>6}  {_PLAN_LABELS[name]}" + (f": {shown}" if ids else ""), file=out)
        if name is Standing.FAILED and lost:
            shown = ", ".join(lost[:5]) + (" ..." if len(lost) > 5 else "")
            print(
                f"  {'':>6}  of which {len(lost)} lost by the server (`wanbatch retry` leaves"
                f" them alone unless --include-lost): {shown}",
                file=out,
            )
    cost = f", about {credits:g} credits" if credits is not None else ""
    print(f"A run would submit {len(submit)} job(s): {seconds} s of video{cost}.", file=out)
    lifetime = provider_for(manifest.api).capabilities.url_lifetime_seconds
    if lifetime is not None:  # the provider deletes a finished video soon after
        shown = f"{lifetime / 3600:g} h" if lifetime >= 3600 else f"{lifetime / 60:g} min"
        print(
            f"{manifest.api.provider} deletes outputs {shown} after they finish:"
            " downloads follow each render as it ends.",
            file=out,
        )
    return 0
