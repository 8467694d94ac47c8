"""Values that flow through wanbatch: job specs, settings, job states and journal events.

Frozen, slotted dataclasses and enums; no I/O. Built-in defaults live here and nowhere else,
so that the manifest, the command line and the runner agree on them.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) quotes with
from pathlib import Path
from typing import Any

# --- built-in defaults (one place for each) -------------------------------------------------

DEFAULT_BASE_URL = "https://api.wanapi.io/v1"
DEFAULT_KEY_ENV = "WAN_API_KEY"
BASE_URL_ENV = "WAN_API_BASE_URL"
KNOWN_MODELS: tuple[str, ...] = ("wan-2-2", "wan-2-1")
DEFAULT_PROVIDER = "wanapi"  # the API a manifest without api.provider is written for
DEFAULT_MODEL = "wan-2-2"
DEFAULT_DURATION = 5
MAX_DURATION = 60  # seconds of video a single job may ask for
DEFAULT_ASPECT_RATIO = "16:9"
DEFAULT_CONCURRENCY = 8
DEFAULT_DOWNLOADS = 4
DEFAULT_JOB_DEADLINE_SECONDS = 3600.0
DEFAULT_PATH_TEMPLATE = "{id}.mp4"
DEFAULT_OUTPUT_ROOT = "renders"
MAX_JOB_ID_LENGTH = 100
PATH_TEMPLATE_FIELDS: tuple[str, ...] = ("id", "name", "model", "aspect_ratio", "duration", "index")
STATE_DIR_NAME = ".wanbatch"
# What the API host may send us: a whole answer within this many seconds (each read has its
# own, shorter timeout); task ids of at most this many characters; server text kept this long.
DEFAULT_ANSWER_SECONDS = 120.0
MAX_TASK_ID_LENGTH = 128
MAX_SERVER_TEXT = 1000  # an error message from the server
MAX_SERVER_WORD = 100  # a status word, an error code, a request id
LOST_CODE = "lost"  # the code of a failure whose task the server no longer knows


# --- the manifest, validated --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One video to render, after defaults and matrix expansion.

    ``source`` says where the job came from ("campaign.yaml line 14", "prompts.csv row 3") for
    messages. ``output_path`` is relative to the output dir and already checked to stay inside it.
    """

    id: str
    prompt: str
    model: str
    duration: int
    aspect_ratio: str
    image: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0
    output_path: str = ""
    source: str = ""
    # ``fingerprint()``, kept once computed. Not an argument: ``dataclasses.replace`` leaves it
    # out, so a copy with other fields computes its own.
    _fingerprint: str = field(default="", init=False, repr=False, compare=False)

    def fields(self) -> dict[str, Any]:
        """The fields that decide what is rendered, in a provider-neutral form."""
        out: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "duration": self.duration,
            "aspect_ratio": self.aspect_ratio,
        }
        if self.image is not None:
            out["image"] = self.image
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    def knowing(self, fingerprint: str) -> JobSpec:
        """This spec, told its fingerprint by whoever just computed it from these very fields
        (``job_fingerprint``, as the manifest loader does for the derived ids)."""
        object.__setattr__(self, "_fingerprint", fingerprint)
        return self

    def fingerprint(self) -> str:
        """A short stable hash of the rendering fields: a change means a different video."""
        found = self._fingerprint
        if not found:
            found = job_fingerprint(
                self.prompt, self.model, self.duration, self.aspect_ratio, self.image, self.extra
            )
            object.__setattr__(self, "_fingerprint", found)  # a cache: the value never changes
        return found


def fingerprint_of(fields: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``fields``, first 16 hex digits."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def job_fingerprint(
    prompt: str,
    model: str,
    duration: int,
    aspect_ratio: str,
    image: str | None,
    extra: Mapping[str, Any],
) -> str:
    """``fingerprint_of`` the fields of a job (``JobSpec.fields``). Without ``extra`` the
    canonical JSON is put together here, byte for byte what ``json.dumps`` makes (keys sorted,
    the same string quoting): a million jobs hash in a second, not six."""
    if (
        extra
        or type(duration) is not int
        or type(prompt) is not str
        or type(model) is not str
        or type(aspect_ratio) is not str
        or (image is not None and type(image) is not str)
    ):
        fields: dict[str, Any] = {
            "model": model, "prompt": prompt, "duration": duration, "aspect_ratio": aspect_ratio
        }  # fmt: skip
        if image is not None:
            fields["image"] = image
        if extra:
            fields["extra"] = dict(extra)
        return fingerprint_of(fields)
    image_part = "" if image is None else f',"image":{encode_basestring(image)}'
    canonical = (
        f'{{"aspect_ratio":{encode_basestring(aspect_ratio)},"duration":{duration}'
        f'{image_part},"model":{encode_basestring(model)},"prompt":{encode_basestring(prompt)}}}'
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


# The gateway provider (``api.gateway``; providers/gateway.py says what each key means). Its
# defaults are OpenAI's Videos API, with the video URL where Together's answer holds it.
GATEWAY_CLASSES: tuple[str, ...] = ("succeeded", "failed", "pending", "running")
GATEWAY_FIELDS: tuple[str, ...] = (
    "model", "prompt", "duration", "seconds", "aspect_ratio", "size", "width", "height", "image",
)  # fmt: skip
GATEWAY_STATUSES: Mapping[str, tuple[str, ...]] = {
    "succeeded": ("completed", "succeeded"),
    "failed": ("failed", "cancelled", "canceled", "expired"),
    "pending": ("queued", "pending"),
    "running": ("in_progress", "processing", "running"),
}
GATEWAY_BODY: Mapping[str, Any] = {
    "model": "{model}",
    "prompt": "{prompt}",
    "seconds": "{seconds}",
    "size": "{size}",
    "image": "{image}",
}
GATEWAY_SIZES: Mapping[str, str] = {
    "16:9": "1280x720", "9:16": "720x1280", "1:1": "720x720", "4:3": "960x720", "3:4": "720x960",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class GatewayDescription:
    """An OpenAI-style video API as ``api.gateway`` describes it; paths into its JSON are
    dotted (``data.id``, ``unsigned_urls.0``)."""

    create_method: str = "POST"
    create_path: str = "videos"  # relative to the base URL
    get_method: str = "GET"
    get_path: str = "videos/{id}"
    id: str = "id"
    status: str = "status"
    video_url: str = "outputs.video_url"
    error_message: str | None = "error.message"
    error_code: str | None = "error.code"
    statuses: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(GATEWAY_STATUSES))
    body: Mapping[str, Any] = field(default_factory=lambda: dict(GATEWAY_BODY))
    sizes: Mapping[str, str] = field(default_factory=lambda: dict(GATEWAY_SIZES))
    models: Mapping[str, str] = field(default_factory=dict)  # wanbatch's name -> the gateway's
    headers: Mapping[str, str] = field(default_factory=dict)  # values may hold ${ENV_VAR}
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"  # "": the bare key (Azure's api-key header)
    idempotency_keys: bool = False  # it honours Idempotency-Key
    webhook: str | None = None  # where in the create's body the notify URL goes


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where and how to reach the API, as the manifest says (flags and env may override)."""

    provider: str = DEFAULT_PROVIDER  # which API's wire format (``wanbatch.providers``)
    base_url: str | None = None  # None: take the environment or the provider's default
    key_env: str = DEFAULT_KEY_ENV
    models: tuple[str, ...] = KNOWN_MODELS
    gateway: GatewayDescription | None = None  # api.gateway, for provider "gateway"


@dataclass(frozen=True, slots=True)
class Limits:
    """Admission limits for a run."""

    concurrency: int = DEFAULT_CONCURRENCY  # tasks submitted and not yet finished
    # All requests to the API host, a hard ceiling; None: found by probing (ratelimit.py).
    requests_per_second: float | None = None
    downloads: int = DEFAULT_DOWNLOADS
    job_deadline_seconds: float = DEFAULT_JOB_DEADLINE_SECONDS  # from create to finished
    # On an API without idempotency keys, how long after a lost create its task list is given
    # to show the task before "not listed" is believed and the create is sent again.
    list_grace_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest: every job expanded, every path resolved."""

    path: Path
    name: str
    api: ApiSettings
    limits: Limits
    output_dir: Path
    path_template: str
    pricing: Mapping[str, float]
    jobs: tuple[JobSpec, ...]

    @property
    def total_seconds(self) -> int:
        return sum(job.duration for job in self.jobs)

    def estimate_credits(self, jobs: tuple[JobSpec, ...] | None = None) -> float | None:
        """Credits for ``jobs`` (default: all) at the manifest's prices; None without pricing."""
        if not self.pricing:
            return None
        chosen = self.jobs if jobs is None else jobs
        return float(sum(self.pricing.get(job.model, 0.0) * job.duration for job in chosen))


# --- job lifecycle ------------------------------------------------------------------------


class JobState(enum.StrEnum):
    """Where a job stands. See ``lifecycle.py`` for the moves between states."""

    PLANNED = "planned"  # nothing sent yet
    SUBMITTING = "submitting"  # intent recorded, the create's answer not yet on disk
    SUBMITTED = "submitted"  # task id on disk, not seen running yet
    RUNNING = "running"  # the server is rendering it
    SUCCEEDED = "succeeded"  # rendered, video not yet on disk
    DOWNLOADED = "downloaded"  # the video is in the output tree
    FAILED = "failed"  # rejected or failed generation; only `wanbatch retry` resubmits

    @property
    def has_task(self) -> bool:
        return self in (JobState.SUBMITTED, JobState.RUNNING, JobState.SUCCEEDED)

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.DOWNLOADED, JobState.FAILED)


class EventKind(enum.StrEnum):
    """Kinds of journal records about one job. ``lifecycle.apply`` gives each its meaning."""

    INTENT = "intent"  # a create is about to be sent (idempotency key, fingerprint, attempt)
    NOT_CREATED = "not_created"  # the server refused the create (401/402/429): nothing was made
    CREATED = "created"  # the server answered with a task id
    RUNNING = "running"  # the server said it is rendering
    SUCCEEDED = "succeeded"  # rendered; carries the video URL (refreshed URLs repeat it)
    FAILED = "failed"  # rejected (400) or failed generation; carries the reason
    DOWNLOADED = "downloaded"  # the video is in place (path, size, sha256)
    REQUEUED = "requeued"  # `wanbatch retry` or --resubmit-changed: render it anew
    KEPT = "kept"  # --keep-changed: the video stands for the manifest's new fields (fingerprint)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One journal record about one job. Optional fields are set by the kinds that use them."""

    kind: EventKind
    job_id: str
    at: float  # wall-clock seconds since the epoch
    idempotency_key: str | None = None
    fingerprint: str | None = None
    task_id: str | None = None
    video_url: str | None = None
    reason: str | None = None
    code: str | None = None
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    handle: str | None = None  # what the provider handed out to find the task (fal's URLs)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's state as the journal tells it: the fold of its events through ``apply``."""

    job_id: str
    state: JobState = JobState.PLANNED
    attempt: int = 0  # how many times it was (re)queued; part of the idempotency key
    idempotency_key: str | None = None
    fingerprint: str | None = None
    task_id: str | None = None
    video_url: str | None = None
    reason: str | None = None
    code: str | None = None
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    intents: int = 0  # intents recorded for the current attempt; >1 means a resubmission
    kept_fingerprint: str | None = None  # --keep-changed accepted this manifest fingerprint
    submitted_at: float | None = None  # when the server answered the create
    finished_at: float | None = None  # when it was first seen rendered (or failed)
    downloaded_at: float | None = None  # when the video was put in place
    handle: str | None = None  # the provider's own way back to the task, beside its id
    intent_at: float | None = None  # the first intent of this attempt: no task of it is older


class TaskStatus(enum.StrEnum):
    """A provider's task status, normalised by its adapter."""

    PENDING = "pending"  # accepted, not yet seen rendering (queued, submitted, ...)
    RUNNING = "running"  # any other status that is not final
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TaskView:
    """What the provider says about one task, in wanbatch's words."""

    task_id: str
    status: TaskStatus
    raw_status: str = ""
    video_url: str | None = None
    error_message: str | None = None
    error_code: str | None = None
    unrecognised_status: bool = False  # a status word the adapter does not know (taken as running)
    # The prompt the task was made from, where the API says: compared (never kept) to tell
    # whose a listed task is when a create went unanswered on an API without idempotency keys.
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class VideoChunkHeader:
    """The head of a video response: what the body will be."""

    status: int
    content_length: int | None  # bytes in this body
    range_start: int | None  # for 206: where the body starts in the file
    total_length: int | None  # the whole file's size, when known
    etag: str | None
