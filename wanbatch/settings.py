"""Settings: every value a command runs with, decided in one place. Pure.

The command line gives ``Flags`` (what the user typed; ``None`` where a flag was not given). The
manifest is loaded with the flags that change what the jobs are (``overrides``: model, duration,
aspect ratio, output folder, prices, ignored columns). Everything else a run needs is decided
here, by ``build_settings``, with one precedence:

    command-line flag  >  environment variable  >  manifest  >  default

The environment and the manifest are passed in, so the rule is a table test away. Nothing is
put back into the manifest: the run reads ``Settings.limits``, not ``manifest.limits`` (which
stays what the file says, and is what retry.yaml copies).

The API key is read by ``api_key`` only when a command will send something; it is never part of
``Settings`` (which is logged and compared in tests).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from wanbatch.backoff import PollPolicy
from wanbatch.errors import UsageError
from wanbatch.manifest import Overrides
from wanbatch.models import BASE_URL_ENV, DEFAULT_PROVIDER, Limits, Manifest
from wanbatch.outage import MAX_OUTAGE_SECONDS
from wanbatch.providers import provider_for
from wanbatch.stops import ROUND_PAUSE_SECONDS

T = TypeVar("T")

PROGRESS_EVERY_SECONDS = 30.0  # progress lines when not on a terminal
# ``run`` asks on a terminal before submitting more than this (``commands/asking.py``).
CONFIRM_CREDITS = 1000.0  # estimated credits, when the jobs have prices
CONFIRM_VIDEOS = 100  # new videos, when they have none
CONFIRM_ENV = "WANBATCH_CONFIRM_CREDITS"


@dataclass(frozen=True, slots=True)
class Flags:
    """What the command line said, for any command; ``None`` (or False) where it said nothing."""

    manifest: str = ""  # every command but `completion` names one
    shell: str | None = None  # completion SHELL
    job: str | None = None  # show JOB
    # What the jobs are (given to the manifest loader: ``overrides``).
    output: str | None = None
    model: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    prices: tuple[tuple[str, float], ...] = ()  # --price MODEL=CREDITS_PER_S
    ignore_columns: tuple[str, ...] = ()  # --ignore-columns
    # Which jobs a command looks at.
    only: tuple[str, ...] = ()  # --only ID_OR_GLOB
    where: tuple[tuple[str, str], ...] = ()  # --where FIELD=VALUE
    states: tuple[str, ...] = ()  # status --state
    listing: bool = False  # validate --list
    # Where and how fast.
    base_url: str | None = None
    concurrency: int | None = None
    requests_per_second: float | None = None
    job_deadline: float | None = None
    poll_interval: float | None = None
    max_outage: float | None = None
    # The console.
    json_logs: bool = False
    verbosity: int = 0
    progress_every: float | None = None
    as_json: bool = False  # --json: the command's result as JSON on stdout
    summary_json: str | None = None  # --summary-json FILE
    on_finish: str | None = None  # --on-finish CMD
    # What a run may do.
    simulate: bool = False
    allow_insecure_http: bool = False
    resubmit_changed: bool = False
    keep_changed: bool = False
    yes: bool = False
    max_videos: int | None = None
    max_credits: float | None = None
    salvage_journal: bool = False
    include_lost: bool = False
    until_done: bool = False
    wait_credits: float | None = None
    round_pause: float | None = None  # between --until-done rounds (tests shorten it)
    resend_unknown: bool = False
    notify_url: str | None = None
    listen: str | None = None
    notify_secret_env: str | None = None


def overrides(flags: Flags) -> Overrides:
    """The flags the manifest is loaded with: they change what the jobs are."""
    return Overrides(
        model=flags.model,
        duration=flags.duration,
        aspect_ratio=flags.aspect_ratio,
        output_dir=flags.output,
        pricing=dict(flags.prices),
        ignore_columns=flags.ignore_columns,
    )


@dataclass(frozen=True, slots=True)
class Notices:
    """Webhook notices: where the receiver listens, the URL the provider calls, the secret."""

    notify_url: str
    listen: str
    secret: str | None = dataclasses.field(default=None, repr=False)
    secret_env: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a command runs with beyond the manifest's jobs, each value decided once."""

    provider: str
    base_url: str | None  # None: --simulate, or the provider has no default and none was given
    limits: Limits
    poll: PollPolicy | None  # a fixed interval (--poll-interval); None: planned
    max_outage: float
    progress_every: float
    round_pause: float
    notices: Notices | None
    confirm_credits: float = CONFIRM_CREDITS
    confirm_videos: int = CONFIRM_VIDEOS


def build_settings(flags: Flags, env: Mapping[str, str], manifest: Manifest) -> Settings:
    """The settings of one command: flag > environment > manifest > default."""
    limits = manifest.limits
    limits = dataclasses.replace(
        limits,
        concurrency=_first(flags.concurrency, limits.concurrency),
        requests_per_second=_first(flags.requests_per_second, limits.requests_per_second),
        job_deadline_seconds=_first(flags.job_deadline, limits.job_deadline_seconds),
    )
    poll = None
    if flags.poll_interval is not None:  # a user who sets the interval gets that interval
        poll = PollPolicy(
            initial_seconds=flags.poll_interval, factor=1.0, cap_seconds=flags.poll_interval
        )
    return Settings(
        provider=manifest.api.provider,
        base_url=None if flags.simulate else base_url(flags, env, manifest),
        limits=limits,
        poll=poll,
        max_outage=_first(flags.max_outage, MAX_OUTAGE_SECONDS),
        progress_every=_first(flags.progress_every, PROGRESS_EVERY_SECONDS),
        round_pause=_first(flags.round_pause, ROUND_PAUSE_SECONDS),
        notices=notices(flags, env),
        confirm_credits=CONFIRM_CREDITS if flags.yes or flags.simulate else _confirm_credits(env),
    )


def _confirm_credits(env: Mapping[str, str]) -> float:
    text = env.get(CONFIRM_ENV, "").strip()
    if not text:
        return CONFIRM_CREDITS
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"${CONFIRM_ENV}={text!r} is not a number of credits") from None
    if not value >= 0:
        raise UsageError(f"${CONFIRM_ENV}={text!r} must be 0 or more")
    return value


def base_url(flags: Flags, env: Mapping[str, str], manifest: Manifest) -> str | None:
    """--base-url > WAN_API_BASE_URL (wanapi manifests only) > api.base_url > the provider's
    own address. WAN_API_BASE_URL is wanapi's: honoured for another provider it would send that
    provider's key to wanapi's host."""
    from_env = env.get(BASE_URL_ENV) if manifest.api.provider == DEFAULT_PROVIDER else None
    url = flags.base_url or from_env or manifest.api.base_url
    url = url or provider_for(manifest.api).default_base_url
    return None if url is None else refuse_credentials(url, manifest.api.key_env)


def refuse_credentials(url: str, key_env: str) -> str:
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


def without_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part: what the journal records and compares."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rpartition("@")[2]
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def api_key(manifest: Manifest, env: Mapping[str, str]) -> str:
    """The key from the variable the manifest names; a clear error (never the key) otherwise."""
    name = manifest.api.key_env
    key = env.get(name, "").strip()
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


def notices(flags: Flags, env: Mapping[str, str]) -> Notices | None:
    """--notify-url with --listen (both or neither), and the secret from --notify-secret-env."""
    if flags.notify_url is None and flags.listen is None:
        return None
    if flags.notify_url is None or flags.listen is None:
        raise UsageError("webhook notices need both --notify-url PUBLIC_URL and --listen HOST:PORT")
    secret = None
    if flags.notify_secret_env is not None:
        secret = env.get(flags.notify_secret_env)
        if not secret:
            raise UsageError(f"--notify-secret-env: ${flags.notify_secret_env} is not set")
    return Notices(flags.notify_url, flags.listen, secret, flags.notify_secret_env)


def _first(flag: T | None, otherwise: T) -> T:
    return otherwise if flag is None else flag
