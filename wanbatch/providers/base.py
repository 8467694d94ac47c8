"""What every provider adapter is: pure translation between wanbatch and one API's wire format.

An adapter never does I/O. It says which request to send (a ``Call``) and reads what came back
(an ``Answer``: status, headers, body bytes) into a ``TaskView`` or a wanbatch error. The one
module that speaks HTTP (``client.py``) sends the calls; so the httpx boundary stays in one
place and every adapter is tested on bytes alone, then end to end against its simulator dialect.

Server text (messages, codes, status words) always passes through ``ServerText`` before it is
kept: it redacts the key, neutralises control characters and caps the length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from wanbatch.backoff import cap_retry_after, parse_retry_after
from wanbatch.errors import (
    AnswerUnknownError,
    ApiError,
    AuthError,
    CreditsExhaustedError,
    JobRejectedError,
    RateLimitedError,
    TaskNotFoundError,
    TransientApiError,
)
from wanbatch.models import (
    MAX_SERVER_TEXT,
    MAX_SERVER_WORD,
    MAX_TASK_ID_LENGTH,
    JobSpec,
    TaskStatus,
    TaskView,
)

# A usable task id: 1 to MAX_TASK_ID_LENGTH characters, letters, digits and "._:~-", starting
# with a letter or a digit (so never "." or ".."). Anything else is refused before it is used.
TASK_ID_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]*")


@dataclass(frozen=True, slots=True)
class Call:
    """One request to the API host. ``url`` is relative to the base URL unless ``absolute``
    (a URL the API itself handed out, such as fal's ``status_url``; the client sends the key
    with it only when it is on the base URL's own host)."""

    what: str  # "create", "poll", "result", "cancel", "list": named in errors and the log
    method: str
    url: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    absolute: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """One whole answer from the API host; header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str = ""
    at: float = 0.0  # the wall clock when it arrived (for a Retry-After given as a date)

    def json_object(self) -> Mapping[str, Any] | None:
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: the task, and what the API handed out to find it again (``handle``,
    kept in the journal as the adapter wrote it; None when the task id is enough)."""

    view: TaskView
    handle: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """A webhook notice as the provider sent it: which task, and the delivery's own id (to
    drop repeats). Only a hint: the task is then polled, and the poll is the truth."""

    task_id: str
    delivery_id: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an API offers and how long its results live; the runner and the plan read these."""

    idempotency_keys: bool  # a resent create with the same key makes no second task
    webhooks: bool  # the create can name a URL to notify when the task ends
    cancel: bool
    list_tasks: bool  # tasks can be listed, to find one whose create went unanswered
    url_lifetime_seconds: float | None  # a finished video's URL (None: not documented)
    task_lifetime_seconds: float | None  # how long the API remembers a task
    # Whether a create answered 5xx by the API itself may still have made a task. True is the
    # cautious reading (the outcome is unknown: resent with the same key, or looked for in the
    # task list). An API that can do neither takes its own 5xx as "nothing made" (False), or
    # every 5xx would leave its job to a person. A lost answer (timeout, reset), a 502 or 504
    # (a proxy's answer) and a redirect stay unknown whatever this says.
    error_answer_may_create: bool = True


class ServerText:
    """Makes server text safe to keep: the key (and any other credential sent, such as a
    gateway's organisation token) redacted, control characters (terminal escapes, newlines)
    made spaces, capped in length."""

    def __init__(self, secret: str | None, *others: str) -> None:
        self._secret = secret
        # longest first, so a credential holding another is redacted whole
        self._others = sorted({o for o in others if len(o) >= 6 and o != secret}, key=len)[::-1]

    def redact(self, text: str) -> str:
        text = text.replace(self._secret, "[key]") if self._secret else text
        for other in self._others:
            text = text.replace(other, "[credential]")
        return text

    def clean(self, text: str, limit: int = MAX_SERVER_TEXT) -> str:
        text = "".join(ch if ch.isprintable() else " " for ch in self.redact(text))
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def word(self, text: object) -> str | None:
        return None if text is None else self.clean(str(text), MAX_SERVER_WORD)

    def message(self, text: object) -> str | None:
        return None if text is None else self.clean(str(text), MAX_SERVER_TEXT)

    def shown_id(self, task_id: str) -> str:
        shown = repr(self.redact(task_id[:40]))
        return shown + (f" (+{len(task_id) - 40} more characters)" if len(task_id) > 40 else "")


class Provider(Protocol):
    """One API's wire format. Every method is pure."""

    name: str
    default_base_url: str | None
    capabilities: Capabilities
    models: Mapping[str, str]  # wanbatch model name -> the provider's, for the plain case

    def auth_headers(self, key: str) -> dict[str, str]: ...

    def job_problem(self, job: JobSpec) -> str | None:
        """Why this API cannot render ``job`` as asked (a model it lacks, a duration it does
        not take), checked before anything is sent; None when it can."""

    def create_call(self, job: JobSpec, idempotency_key: str, notify_url: str | None) -> Call: ...

    def read_created(self, answer: Answer, text: ServerText) -> Created: ...

    def poll_call(self, task_id: str, handle: str | None) -> Call: ...

    def read_polled(self, answer: Answer, task_id: str, text: ServerText) -> TaskView | Call:
        """The task's state, or a further call to make (fal: a finished task's result)."""

    def read_result(self, answer: Answer, task_id: str, text: ServerText) -> TaskView: ...

    def error(self, answer: Answer, what: str, text: ServerText) -> ApiError: ...

    def list_call(self, job: JobSpec, since: float) -> Call:
        """Where ``capabilities.list_tasks``: the call that lists tasks made since ``since``
        (epoch seconds), to find the one a create went unanswered for."""

    def read_listed(
        self, answer: Answer, job: JobSpec, since: float, text: ServerText
    ) -> list[Created]:
        """The listed tasks that may be the one ``job``'s create made since ``since`` (its
        model, made since then, its prompt where the list shows one), from a ``list_call``
        answer; the caller rules out those other jobs hold. ``AnswerUnknownError`` when the
        list cannot be complete (more than one page)."""

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> Notice | None:
        """Where ``capabilities.webhooks``: the task a webhook notice is about (its signature
        is checked elsewhere); None for a body that names no task."""


# --- rules most adapters share ------------------------------------------------------------


def task_id_problem(task_id: str) -> str | None:
    """Why ``task_id`` cannot be used in a URL (see ``TASK_ID_RULE``), or None."""
    if not task_id:
        return "it is empty"
    if len(task_id) > MAX_TASK_ID_LENGTH:
        return f"longer than {MAX_TASK_ID_LENGTH} characters"
    if not TASK_ID_RULE.fullmatch(task_id):
        return "only letters, digits and ._:~- are allowed, starting with a letter or digit"
    return None


def usable_task_id(raw: object, answer: Answer, text: ServerText, request_id: str | None) -> str:
    """The task id a create's 2xx answer names, or ``AnswerUnknownError``: a task may have been
    made that wanbatch cannot find again, so the create is never resent blindly."""
    task_id = (
        raw
        if isinstance(raw, str)
        else str(raw)
        if isinstance(raw, int) and not isinstance(raw, bool)
        else None
    )
    problem = "missing or not a string" if task_id is None else task_id_problem(task_id)
    if task_id is None or problem is not None:
        shown = "" if task_id is None else " " + text.shown_id(task_id)
        raise AnswerUnknownError(
            f"create: the answer's task id{shown} is not usable ({problem}),"
            " so any task it made has no known id",
            status=answer.status,
            request_id=request_id,
        )
    return task_id


def not_json(answer: Answer, request_id: str | None) -> AnswerUnknownError:
    return AnswerUnknownError(
        "create: the answer is not a JSON object, so any task it made has no known id",
        status=answer.status,
        request_id=request_id,
    )


def header_request_id(answer: Answer, text: ServerText) -> str | None:
    for name in ("x-request-id", "request-id", "x-amzn-requestid"):
        value = answer.headers.get(name)
        if value:
            return text.word(value)
    return None


def dig(payload: object, path: str) -> object:
    """``payload["a"]["b"]`` for ``path`` "a.b"; None where a step is missing."""
    for step in path.split(".") if path else ():
        if not isinstance(payload, Mapping):
            return None
        payload = payload.get(step)
    return payload


def http_error(
    answer: Answer,
    what: str,
    message: str,
    *,
    code: str | None,
    request_id: str | None,
    retry_after: float | None,
    rate_limited: bool = False,
    quota_spent: bool = False,
    rejected: bool = False,
) -> ApiError:
    """The wanbatch error for a non-2xx answer, by its HTTP status unless the adapter read the
    body as saying more (``rate_limited``: a throttling code under another status;
    ``quota_spent``: the account's quota or credit is used up; ``rejected``: this job can never
    succeed as asked)."""
    status = answer.status
    kwargs: dict[str, Any] = {"status": status, "request_id": request_id, "code": code}
    if rejected:
        return JobRejectedError(message, **kwargs)
    if quota_spent:
        return CreditsExhaustedError(message, **kwargs)
    if rate_limited or status == 429:
        return RateLimitedError(message, retry_after_seconds=retry_after, **kwargs)
    if status == 400 or status == 422:
        return JobRejectedError(message, **kwargs)
    if status == 401 or status == 403:
        return AuthError(message, **kwargs)
    if status == 402:
        return CreditsExhaustedError(message, **kwargs)
    if status == 404 and what != "create":
        return TaskNotFoundError(message + " (the server does not know this task)", **kwargs)
    if status in (408, 409, 425) or status >= 500:
        return TransientApiError(message, retry_after_seconds=retry_after, **kwargs)
    if 300 <= status < 400:
        return TransientApiError(message + " (unexpected redirect, not followed)", **kwargs)
    return JobRejectedError(message, **kwargs)


def retry_after_of(answer: Answer, asked: float | None = None) -> tuple[float | None, str]:
    """The wait an answer asks for (its ``Retry-After`` header, or ``asked`` when the API says
    it in the body), capped at wanbatch's longest wait, and a note for the message when the
    cap shortened it."""
    if asked is None:
        asked = parse_retry_after(answer.headers.get("retry-after"), answer.at)
    wait = cap_retry_after(asked)
    if asked is not None and wait is not None and wait < asked:
        return wait, (
            f" (the server asked to wait {asked:.0f} s; wanbatch waits {wait:g} s,"
            " its longest wait, and then asks again)"
        )
    return wait, ""


def body_start(answer: Answer, text: ServerText) -> str:
    """A message for an error answer whose body is not the API's error object."""
    return text.clean(answer.text().strip(), 200) or answer.reason or "no message"


class StatusWords:
    """A provider's status words, in four classes; matched case-insensitively.

    A word in none of them is "unrecognised": the task is taken as still running (a new
    non-final state must not fail paid work), and the run warns about the word by name.
    """

    def __init__(
        self,
        *,
        succeeded: set[str],
        failed: set[str],
        pending: set[str],
        running: set[str],
    ) -> None:
        self.succeeded = {_word(w) for w in succeeded}
        self.failed = {_word(w) for w in failed}
        self.pending = {_word(w) for w in pending}
        self.running = {_word(w) for w in running}

    def known(self, raw: str) -> bool:
        word = _word(raw)
        return any(
            word in words for words in (self.succeeded, self.failed, self.pending, self.running)
        )

    def status(self, raw: str) -> TaskStatus:
        word = _word(raw)
        if word in self.succeeded:
            return TaskStatus.SUCCEEDED
        if word in self.failed:
            return TaskStatus.FAILED
        if word in self.pending:
            return TaskStatus.PENDING
        return TaskStatus.RUNNING  # a running word, or one not known: not done yet

    def view(
        self,
        task_id: str,
        raw_status: str,
        text: ServerText,
        *,
        video_url: object = None,
        error_message: object = None,
        error_code: object = None,
    ) -> TaskView:
        """The ``TaskView`` for a task in ``raw_status`` (an empty word: just accepted)."""
        return TaskView(
            task_id=task_id,
            status=self.status(raw_status) if raw_status else TaskStatus.PENDING,
            raw_status=text.clean(raw_status, MAX_SERVER_WORD),
            video_url=text.redact(video_url) if isinstance(video_url, str) and video_url else None,
            error_message=text.message(error_message),
            error_code=text.word(error_code),
            unrecognised_status=bool(raw_status) and not self.known(raw_status),
        )


def _word(raw: str) -> str:
    return raw.strip().lower().replace("-", "_").replace(" ", "_")


__all__ = [
    "MAX_SERVER_WORD",
    "TASK_ID_RULE",
    "Answer",
    "Call",
    "Capabilities",
    "Created",
    "Provider",
    "ServerText",
    "StatusWords",
]
