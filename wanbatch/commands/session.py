"""A run session: everything one round of a run holds open, in one exit stack.

``open_session`` enters, in order, the API endpoint (the built-in simulator or the real host and
its key), the journal (after ``--salvage-journal``), the progress view and the log file; leaving
the ``with`` closes them in reverse, whatever happened. ``connect`` opens the async parts of the
same session: the provider's client, the video fetcher and the webhook receiver.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from wanbatch import logs
from wanbatch.client import (
    ProviderApi,
    VideoFetcher,
    check_base_url,
    fetch_public_json,
    is_loopback,
)
from wanbatch.errors import DiskError, UsageError, WanbatchError
from wanbatch.journal import Journal, Replay, state_dir
from wanbatch.models import Manifest
from wanbatch.noticerules import JWKS_URLS, SIGNING, SignatureCheck, ed25519_keys
from wanbatch.notices import NoticeReceiver, notice_path, parse_listen
from wanbatch.progress import LiveProgress, PlainProgress
from wanbatch.providers import provider_for
from wanbatch.runcontext import FaultHook
from wanbatch.salvage import salvage_journal
from wanbatch.scheduler import Runner
from wanbatch.settings import Flags, Settings, api_key

SIMULATOR_BASE = "simulator://local"  # what the journal records for --simulate runs
FAULT_ENV = "WANBATCH_TEST_CRASH_AT"
NOTICE_PACE = 4.0  # while notices arrive, planned polls are this many times further apart

View = LiveProgress | PlainProgress | None


@dataclass(slots=True)
class RunSession:
    """What one round of a run holds open; made by ``open_session``."""

    manifest: Manifest
    settings: Settings
    flags: Flags
    base_url: str
    journal: Journal
    view: View
    _key: str  # the API key: sent to the API host only, never logged (not in the repr)

    def __repr__(self) -> str:
        return f"RunSession({self.manifest.name!r}, {self.base_url!r})"

    def records(self) -> Replay:
        """The run's own records, for the report (replaying the journal again would hold a
        second copy of a 100,000-job batch at the end of the run)."""
        return Replay(records=self.journal.records, manifests=list(self.journal.replay.manifests))

    @asynccontextmanager
    async def connect(self, runner_of: Any) -> AsyncIterator[tuple[Runner, NoticeReceiver | None]]:
        """The provider's client, the video fetcher, the runner (``runner_of(api, videos)``)
        and the notice receiver, open for the round."""
        manifest, settings = self.manifest, self.settings
        provider = provider_for(manifest.api)
        async with AsyncExitStack() as stack:
            api = await stack.enter_async_context(
                ProviderApi(
                    self.base_url,
                    self._key,
                    provider=provider,
                    # never in a fingerprint or an Idempotency-Key
                    notify_url=settings.notices.notify_url if settings.notices else None,
                    max_connections=settings.limits.concurrency,
                    allow_insecure_http=self.flags.allow_insecure_http,
                )
            )
            videos = await stack.enter_async_context(
                VideoFetcher(max_connections=settings.limits.downloads)
            )
            runner: Runner = runner_of(api, videos)
            receiver = await self._receiver(runner)
            yield runner, receiver

    async def _receiver(self, runner: Runner) -> NoticeReceiver | None:
        notices = self.settings.notices
        if notices is None:
            return None
        provider = provider_for(self.manifest.api)
        check = notice_check(provider.name, notices.secret, notices.secret_env)
        jwks_url = JWKS_URLS.get(provider.name)
        local = self.flags.simulate or is_loopback(urlsplit(self.base_url).hostname or "")
        if jwks_url is not None and not local:  # fal's public keys; never for a simulator
            check = await keyed_check(provider.name, jwks_url, runner.ctx.log) or check
        receiver = NoticeReceiver(
            parse_listen(notices.listen),
            notice_path(notices.notify_url),
            provider.read_notice,
            check,
            runner.polls.notice,
        )
        await receiver.open()
        if not check.verifies and SIGNING.get(provider.name) is not None:
            runner.ctx.log.warning(
                "notices.unverified",
                detail=f"{provider.name} signs its notices, but they are not checked in this"
                " run (no --notify-secret-env, or no keys): each costs at most one poll",
            )
        return receiver


def preflight(manifest: Manifest, settings: Settings, flags: Flags, env: Mapping[str, str]) -> None:
    """Every usage error a run can know of before it opens, asks or sends anything: the
    notices' flags, a cap that needs prices, the API's address and the key."""
    provider = provider_for(manifest.api)
    notices = settings.notices
    if notices is not None:
        if not provider.capabilities.webhooks:
            raise UsageError(f"--notify-url: {provider.name} sends no webhook notices")
        notice_check(provider.name, notices.secret, notices.secret_env)
        parse_listen(notices.listen)
        notice_path(notices.notify_url)
    if flags.max_credits is not None and not manifest.pricing:
        raise UsageError(
            f"--max-credits needs prices: {manifest.path} has no `pricing` section"
            " (credits per second of video, per model): add one, or pass --price"
            " MODEL=CREDITS_PER_S; or cap by count with --max-videos N"
        )
    if not flags.simulate:
        check_base_url(_base_url(manifest, settings), allow_insecure_http=flags.allow_insecure_http)
        api_key(manifest, env)


def _base_url(manifest: Manifest, settings: Settings) -> str:
    if settings.base_url is None:
        raise UsageError(
            f"the {manifest.api.provider} provider has no default address: set api.base_url"
            f" in {manifest.path}, or pass --base-url"
        )
    return settings.base_url


@contextmanager
def open_session(
    manifest: Manifest,
    settings: Settings,
    flags: Flags,
    *,
    env: Mapping[str, str],
    out: TextIO,
) -> Iterator[RunSession]:
    """Open a round's session; everything it opened is closed when the ``with`` ends."""
    with ExitStack() as stack:
        base_url, journal_base, key = stack.enter_context(_endpoint(manifest, settings, flags, env))
        salvaged = salvage_journal(manifest.output_dir) if flags.salvage_journal else None
        if salvaged is not None:
            print("\n".join(salvaged.lines()), file=out)
        journal = Journal.open(  # the path resolved: `report` may run from another folder
            manifest.output_dir,
            base_url=journal_base,
            manifest=str(manifest.path.resolve()),
            provider=manifest.api.provider,
        )
        stack.callback(journal.close)
        view = progress_view(manifest, settings, flags)
        log_file = logs.configure(
            state_dir(manifest.output_dir) / "log.jsonl",
            verbosity=flags.verbosity,
            json_console=flags.json_logs,
            console=view.stream if isinstance(view, LiveProgress) else None,
        )
        if log_file is not None:
            stack.callback(log_file.close)
        stack.callback(logs.reset)
        yield RunSession(manifest, settings, flags, base_url, journal, view, key)


def progress_view(manifest: Manifest, settings: Settings, flags: Flags) -> View:
    """The live view on a terminal; periodic lines elsewhere or with --json-logs; none with -q."""
    if flags.verbosity < 0:
        return None
    stream = sys.stderr
    if not flags.json_logs and stream.isatty() and os.environ.get("TERM") != "dumb":
        return LiveProgress(manifest.name, file=stream)
    return PlainProgress(settings.progress_every)


def notice_check(provider: str, secret: str | None, secret_env: str | None) -> SignatureCheck:
    try:
        return SignatureCheck.for_provider(provider, secret)
    except ValueError as exc:  # the message names the secret's form, never the secret
        raise UsageError(f"--notify-secret-env {secret_env}: {exc}") from exc


async def keyed_check(provider: str, url: str, log: Any) -> SignatureCheck | None:
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


def test_faults() -> FaultHook | None:
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


test_faults.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@contextmanager
def _endpoint(
    manifest: Manifest, settings: Settings, flags: Flags, env: Mapping[str, str]
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
        _base_url(manifest, settings), allow_insecure_http=flags.allow_insecure_http
    )
    yield base_url, base_url, api_key(manifest, env)
