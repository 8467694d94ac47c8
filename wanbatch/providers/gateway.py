"""The gateway provider: any OpenAI-style video API, described in the manifest.

``api.provider: gateway`` with ``api.base_url`` (required: there is no default address) and an
optional ``api.gateway`` mapping. Every key has a default, and the defaults are OpenAI's Videos
API (``POST {base}/videos``, ``GET {base}/videos/{id}``, statuses ``queued`` /
``in_progress`` / ``completed`` / ``failed``, errors ``{"error": {"message", "code"}}``,
``seconds`` as text and ``size`` as ``WxH``), with the video URL at ``outputs.video_url``,
where Together's answer puts it (OpenAI's own answer holds no URL):

    create           "POST videos": method (POST or PUT, default POST) and path
    get              "videos/{id}": method (GET or POST, default GET) and a path with {id}
    id, status       where the task id and the status word are in the JSON (dotted paths:
    video_url          ``data.id``, ``output.video_url``, ``unsigned_urls.0``)
    error_message    where a failed task's (or an error answer's) message and code are;
    error_code         null: the API gives none
    statuses         the status words of each class: succeeded, failed, pending, running. A
                     word in no class is shown to the user by name (and taken as running)
    body             the create's JSON: dotted path -> value. ``{model}``, ``{prompt}``,
                     ``{duration}`` (a number), ``{seconds}`` (the duration as text),
                     ``{aspect_ratio}``, ``{size}``, ``{width}``, ``{height}`` (from
                     ``sizes``), ``{image}`` (the entry is left out for a job without one).
                     A value that is one placeholder keeps its type; with other text around it
                     it is text; without placeholders it is sent as written. A job's ``extra``
                     is merged in at the top level.
    sizes            aspect ratio -> "WxH", for {size}/{width}/{height}
    models           wanbatch's model name -> the gateway's (default: sent as it is)
    headers          extra headers; values may name environment variables, ``${GATEWAY_ORG}``
                     (credentials never go in the manifest)
    auth_header      the key's header (default Authorization)
    auth_scheme      its prefix (default Bearer; "" sends the bare key, as Azure's api-key)
    idempotency_keys true when it honours Idempotency-Key (default false: an unanswered
                     create is never resent blindly)
    webhook          where the notify URL goes in the create's body (default: none)

Documented (the docs at developers.openai.com/api/docs/guides/video-generation and the
reference at learn.microsoft.com/azure/foundry/reference/rest/video-generation-get-video):
paths, status words, the error object, ``seconds``/``size``; OpenAI answers a spent quota with
429 ``insufficient_quota``. OpenRouter (openrouter.ai/docs/api_reference/videos) uses the same
paths with ``pending`` / ``in_progress`` / ``completed`` / ``failed`` / ``cancelled`` /
``expired``; Together (docs.together.ai/reference/get-videos-id) puts the URL at
``outputs.video_url``. Assumed: a JSON body (OpenAI also takes multipart) and the image as a
URL field named ``image``; a webhook notice is the task's view, as a poll answers it.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from wanbatch.errors import AnswerUnknownError, ApiError, TransientApiError, UsageError
from wanbatch.models import GATEWAY_CLASSES, GatewayDescription, JobSpec, TaskStatus, TaskView
from wanbatch.providers.base import (
    Answer,
    Call,
    Capabilities,
    Created,
    Notice,
    ServerText,
    StatusWords,
    body_start,
    header_request_id,
    http_error,
    not_json,
    retry_after_of,
    task_id_problem,
    usable_task_id,
)

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Error codes that say the account's quota or credit is spent, whatever the HTTP status.
QUOTA_CODES = frozenset({"insufficient_quota", "insufficient_credits", "insufficient_balance"})


def as_manifest(description: GatewayDescription) -> dict[str, Any]:
    """``description`` as ``api.gateway`` writes it (its keys that differ from the defaults),
    for the retry manifest."""
    default = GatewayDescription()
    out: dict[str, Any] = {}
    for key, method, path in (
        ("create", "create_method", "create_path"),
        ("get", "get_method", "get_path"),
    ):
        if (getattr(description, method), getattr(description, path)) != (
            getattr(default, method),
            getattr(default, path),
        ):
            out[key] = f"{getattr(description, method)} {getattr(description, path)}"
    for key in (
        "id", "status", "video_url", "error_message", "error_code", "auth_header", "auth_scheme",
        "idempotency_keys", "webhook",
    ):  # fmt: skip
        if getattr(description, key) != getattr(default, key):
            out[key] = getattr(description, key)
    for key in ("statuses", "body", "sizes", "models", "headers"):
        value = getattr(description, key)
        if value != getattr(default, key):
            out[key] = {name: list(v) if isinstance(v, tuple) else v for name, v in value.items()}
    return out


def dig_path(payload: object, path: str) -> object:
    """The value at dotted ``path``; a step of digits indexes a list. None where missing."""
    for step in path.split("."):
        if isinstance(payload, Mapping):
            payload = payload.get(step)
        elif isinstance(payload, list) and step.isdigit() and int(step) < len(payload):
            payload = payload[int(step)]
        else:
            return None
    return payload


def placeholders(value: str) -> list[str]:
    """The field names a body value fills in (``string.Formatter`` syntax)."""
    return [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]


class GatewayProvider:
    name = "gateway"
    default_base_url: str | None = None  # api.base_url is required

    def __init__(
        self, description: GatewayDescription, environ: Mapping[str, str] | None = None
    ) -> None:
        self.description = description
        self._environ = environ
        self.models: Mapping[str, str] = dict(description.models)
        self.words = StatusWords(
            **{name: set(description.statuses.get(name, ())) for name in GATEWAY_CLASSES}
        )
        self.capabilities = Capabilities(
            idempotency_keys=description.idempotency_keys,
            webhooks=description.webhook is not None,
            cancel=False,
            list_tasks=False,
            url_lifetime_seconds=None,
            task_lifetime_seconds=None,
            # assumed: without keys or a list to settle by, a 5xx answer is a refusal
            error_answer_may_create=description.idempotency_keys,
        )

    def auth_headers(self, key: str) -> dict[str, str]:
        """The key's header and the described extra headers, ``${VAR}`` filled in from the
        environment (``UsageError`` naming the variable when it is not set)."""
        described = self.description
        environ = os.environ if self._environ is None else self._environ
        headers = {}
        for name, value in described.headers.items():
            missing = [var for var in ENV_REF.findall(value) if var not in environ]
            if missing:
                raise UsageError(
                    f"api.gateway.headers.{name} names ${{{missing[0]}}}, which is not set in"
                    " the environment; nothing was sent"
                )
            headers[name] = ENV_REF.sub(lambda match: environ[match.group(1)], value)
        scheme = described.auth_scheme
        headers[described.auth_header] = f"{scheme} {key}" if scheme else key
        return headers

    def job_problem(self, job: JobSpec) -> str | None:
        used = {name for value in self.description.body.values() for name in _names(value)}
        if job.image is not None and "image" not in used:
            return "api.gateway.body has no {image} entry, so a first frame cannot be sent"
        if used & {"size", "width", "height"} and job.aspect_ratio not in self.description.sizes:
            known = ", ".join(self.description.sizes) or "none"
            return (
                f"aspect ratio {job.aspect_ratio} has no size in api.gateway.sizes (known: {known})"
            )
        return None

    def create_call(self, job: JobSpec, idempotency_key: str, notify_url: str | None) -> Call:
        values = self._values(job)
        body: dict[str, Any] = {}
        for path, template in self.description.body.items():
            if "image" in _names(template) and job.image is None:
                continue
            _put(body, path, _fill(template, values))
        body.update(job.extra)
        if notify_url is not None and self.description.webhook is not None:
            _put(body, self.description.webhook, notify_url)
        headers = {"Idempotency-Key": idempotency_key} if self.description.idempotency_keys else {}
        path, params = _split_query(self.description.create_path)
        return Call(
            "create",
            self.description.create_method,
            path,
            json=body,
            headers=headers,
            params=params,
        )

    def read_created(self, answer: Answer, text: ServerText) -> Created:
        payload = answer.json_object()
        request_id = header_request_id(answer, text)
        if payload is None:
            raise not_json(answer, request_id)
        where = self.description.id
        raw_id = dig_path(payload, where)
        if raw_id is None:
            raise AnswerUnknownError(
                f"create: the answer has no task id at {where!r} (api.gateway.id); its keys:"
                f" {_keys(payload, text)}. Any task it made has no known id",
                status=answer.status,
                request_id=request_id,
            )
        task_id = usable_task_id(raw_id, answer, text, request_id)
        raw_status = dig_path(payload, self.description.status)
        view = self._view(task_id, raw_status if isinstance(raw_status, str) else "", payload, text)
        return Created(view)

    def poll_call(self, task_id: str, handle: str | None) -> Call:
        template, params = _split_query(self.description.get_path)
        quoted = quote(task_id, safe="")
        path = template.replace("{id}", quoted)
        filled = {name: value.replace("{id}", task_id) for name, value in params.items()}
        return Call("poll", self.description.get_method, path, params=filled)

    def read_polled(self, answer: Answer, task_id: str, text: ServerText) -> TaskView | Call:
        payload = answer.json_object()
        request_id = header_request_id(answer, text)
        if payload is None:
            raise TransientApiError(
                "poll: the answer is not a JSON object", status=answer.status, request_id=request_id
            )
        where = self.description.status
        raw_status = dig_path(payload, where)
        if not isinstance(raw_status, str | int) or not str(raw_status).strip():
            raise TransientApiError(
                f"poll: the answer has no status word at {where!r} (api.gateway.status); its"
                f" keys: {_keys(payload, text)}",
                status=answer.status,
                request_id=request_id,
            )
        view = self._view(task_id, str(raw_status), payload, text)
        if view.status is TaskStatus.SUCCEEDED and view.video_url is None:
            raise TransientApiError(
                f"poll: the task is {view.raw_status!r} but there is no video URL at"
                f" {self.description.video_url!r} (api.gateway.video_url); its keys:"
                f" {_keys(payload, text)}",
                status=answer.status,
                request_id=request_id,
            )
        return view

    def read_result(self, answer: Answer, task_id: str, text: ServerText) -> TaskView:
        raise NotImplementedError("a gateway's poll answer carries the result")

    def error(self, answer: Answer, what: str, text: ServerText) -> ApiError:
        payload = answer.json_object()
        message, code = self._error_fields(payload) if payload is not None else (None, None)
        retry_after, note = retry_after_of(answer)
        shown = text.message(message) if message is not None else body_start(answer, text)
        return http_error(
            answer,
            what,
            f"{what}: {shown}{note}",
            code=text.word(code),
            request_id=header_request_id(answer, text),
            retry_after=retry_after,
            quota_spent=code is not None and str(code).lower() in QUOTA_CODES,
        )

    def list_call(self, job: JobSpec, since: float) -> Call:
        raise NotImplementedError("a gateway lists no tasks")

    def read_listed(
        self, answer: Answer, job: JobSpec, since: float, text: ServerText
    ) -> list[Created]:
        raise NotImplementedError("a gateway lists no tasks")

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> Notice | None:
        """Assumed: the notice is the task's view, its id where a poll answer has it."""
        payload = Answer(200, headers, body).json_object()
        task_id = dig_path(payload, self.description.id) if payload is not None else None
        if not isinstance(task_id, str) or task_id_problem(task_id) is not None:
            return None
        return Notice(task_id=task_id, delivery_id=headers.get("webhook-id"))

    # --- helpers -------------------------------------------------------------------------

    def _values(self, job: JobSpec) -> dict[str, Any]:
        size = self.description.sizes.get(job.aspect_ratio, "")
        width, _, height = size.partition("x")
        return {
            "model": self.models.get(job.model, job.model),
            "prompt": job.prompt,
            "duration": job.duration,
            "seconds": str(job.duration),
            "aspect_ratio": job.aspect_ratio,
            "size": size,
            "width": int(width) if width.isdigit() else width,
            "height": int(height) if height.isdigit() else height,
            "image": job.image,
        }

    def _error_fields(self, payload: Mapping[str, Any]) -> tuple[object, object]:
        described = self.description
        message = dig_path(payload, described.error_message) if described.error_message else None
        code = dig_path(payload, described.error_code) if described.error_code else None
        if message is None and described.error_message:  # a bare string where the object was
            outer = dig_path(payload, described.error_message.partition(".")[0])
            message = outer if isinstance(outer, str) else None
        return (
            message if isinstance(message, str | int | float) else None,
            code if isinstance(code, str | int) and not isinstance(code, bool) else None,
        )

    def _view(
        self, task_id: str, raw_status: str, payload: Mapping[str, Any], text: ServerText
    ) -> TaskView:
        message, code = self._error_fields(payload)
        url = dig_path(payload, self.description.video_url)
        return self.words.view(
            task_id, raw_status, text, video_url=url, error_message=message, error_code=code
        )


def _names(value: object) -> list[str]:
    return placeholders(value) if isinstance(value, str) else []


def _fill(template: object, values: Mapping[str, Any]) -> object:
    """A body value: one placeholder keeps the field's type, other text makes text."""
    if not isinstance(template, str):
        return template
    names = placeholders(template)
    if len(names) == 1 and template == "{" + names[0] + "}":
        return values[names[0]]
    return template.format(**{name: values[name] for name in names}) if names else template


def _put(body: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    for step in parents:
        body = body.setdefault(step, {})
    body[last] = value


def _split_query(path: str) -> tuple[str, dict[str, str]]:
    """``"queue/status?request_id={id}"`` -> the path and its query parameters."""
    path, _, query = path.partition("?")
    params: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        params[name] = value
    return path, params


def _keys(payload: Mapping[str, Any], text: ServerText) -> str:
    names = [text.clean(str(name), 40) for name in list(payload)[:12]]
    return ", ".join(names) + (", ..." if len(payload) > 12 else "") if names else "none"
