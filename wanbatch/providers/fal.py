"""fal (fal.ai), through its queue API: ``https://queue.fal.run``.

Documented (https://fal.ai/docs/documentation/model-apis/inference/queue, the Queue API's
OpenAPI at https://fal.ai/docs/api-reference/inference-api/openapi/queue.json, and fal's Python
client, github:fal-ai/fal ``projects/fal_client/src/fal_client/client.py``):

- ``POST {base}/{endpoint}`` with ``Authorization: Key KEY`` and the model's input as the JSON
  body answers ``{request_id, status_url, response_url, cancel_url}``. The URLs are kept in the
  journal (``Created.handle``, compact JSON): they are built from the *app* id, which drops the
  endpoint's sub-path (``fal-ai/wan/v2.2-a14b/text-to-video`` is polled under ``fal-ai/wan``),
  so they cannot be rebuilt from the endpoint alone.
- ``GET {status_url}``: ``status`` IN_QUEUE (with ``queue_position``), IN_PROGRESS or COMPLETED;
  a COMPLETED status may carry ``error`` and ``error_type`` (``fal_client.Completed``) and names
  its ``response_url`` (fal's status schema; ``read_polled`` is not handed the journal's handle,
  so the result is fetched from the URL the status names, on the same host rule). ``GET {response_url}`` is the result: the video at ``video.url``. A
  failure may show only there: 4xx with a ``detail`` list of typed errors (422
  ``content_policy_violation``; https://fal.ai/docs/documentation/model-apis/errors) or a request
  error ``{detail, error_type}`` (also in ``X-Fal-Error-Type``; ``runner_server_error`` 500, ...;
  https://fal.ai/docs/documentation/model-apis/request-errors). ``PUT {cancel_url}`` cancels.
- ``?fal_webhook=URL`` on the submit: fal POSTs ``{request_id, gateway_request_id, status: OK |
  ERROR, payload, error}`` when the request ends (https://docs.fal.ai/model-endpoints/webhooks).
- A spent balance is 403 ``{"detail": "User is locked. Reason: Exhausted balance. Top up ..."}``
  (or ``Reason: TOP_UP``), seen in github:fal-ai/fal issues #1112, #1147, #1163.
- No idempotency key and no way to list queue requests: an unanswered submit cannot be settled.
- Wan inputs (fal's model pages, e.g. fal.ai/models/fal-ai/wan/v2.2-a14b/image-to-video/llms.txt):
  Wan 2.2 A14B ``num_frames`` 17-161, ``frames_per_second`` 4-60 (default 16), ``aspect_ratio``
  16:9, 9:16, 1:1 (image-to-video also ``auto``), ``image_url`` for image-to-video; Wan 2.1
  (``fal-ai/wan-t2v``, ``fal-ai/wan-i2v``) ``num_frames`` 81-100, ``frames_per_second`` 5-24,
  aspect ratios 16:9 and 9:16.

Assumed: a duration of D seconds is ``num_frames`` 16*D+1 at 16 frames a second (fal's default
81 frames is its 5 s video); a result-time 5xx that names an ``error_type`` is the request's final
outcome (fal has already retried it), while a 5xx without one is the gateway's and is retried;
how long fal keeps requests and result files is not documented here (both None).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wanbatch.errors import AnswerUnknownError, ApiError, JobRejectedError, TransientApiError
from wanbatch.models import MAX_SERVER_WORD, JobSpec, TaskStatus, TaskView
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

WORDS = StatusWords(
    succeeded={"completed"},  # the result, fetched next, decides
    failed=set(),
    pending={"in_queue"},
    running={"in_progress"},
)

FPS = 16  # frames a second asked for; num_frames = FPS * duration + 1
MAX_URL = 2048  # a handed-out URL longer than this is not kept


@dataclass(frozen=True, slots=True)
class Family:
    """The rules one Wan version's fal endpoints share."""

    text: str  # the text-to-video endpoint
    image: str  # the image-to-video endpoint
    frames: tuple[int, int]  # num_frames, lowest and highest
    ratios: tuple[str, ...]

    def durations(self) -> range:
        low, high = self.frames
        return range(-(-(low - 1) // FPS), (high - 1) // FPS + 1)


FAMILIES: dict[str, Family] = {
    "wan-2-2": Family(
        "fal-ai/wan/v2.2-a14b/text-to-video",
        "fal-ai/wan/v2.2-a14b/image-to-video",
        (17, 161),
        ("16:9", "9:16", "1:1"),
    ),
    "wan-2-1": Family("fal-ai/wan-t2v", "fal-ai/wan-i2v", (81, 100), ("16:9", "9:16")),
}


class FalProvider:
    name = "fal"
    default_base_url: str | None = "https://queue.fal.run"
    capabilities = Capabilities(
        idempotency_keys=False,
        webhooks=True,
        cancel=True,  # ``cancel_call``; the Provider protocol has no cancel yet
        list_tasks=False,
        url_lifetime_seconds=None,
        task_lifetime_seconds=None,
        error_answer_may_create=False,  # assumed: no list to settle by, so a 5xx is a refusal
    )
    models: Mapping[str, str] = {name: family.text for name, family in FAMILIES.items()}

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Key {key}"}

    def endpoint(self, job: JobSpec) -> str:
        family = FAMILIES[job.model]
        return family.image if job.image is not None else family.text

    def job_problem(self, job: JobSpec) -> str | None:
        family = FAMILIES.get(job.model)
        if family is None:
            return f"fal has no Wan endpoint for model {job.model!r} (it has {', '.join(FAMILIES)})"
        if job.aspect_ratio not in family.ratios:
            return (
                f"{job.model} on fal takes aspect ratios {', '.join(family.ratios)},"
                f" not {job.aspect_ratio}"
            )
        spans = family.durations()
        if job.duration not in spans:
            return (
                f"{job.model} on fal renders {spans.start} to {spans.stop - 1} s"
                f" ({family.frames[0]}-{family.frames[1]} frames at {FPS} a second),"
                f" not {job.duration} s"
            )
        return None

    def create_call(self, job: JobSpec, idempotency_key: str, notify_url: str | None) -> Call:
        """fal takes no idempotency key: ``idempotency_key`` is not sent."""
        body: dict[str, Any] = {
            "prompt": job.prompt,
            "num_frames": FPS * job.duration + 1,
            "frames_per_second": FPS,
            "aspect_ratio": job.aspect_ratio,
        }
        if job.image is not None:
            body["image_url"] = job.image
        body.update(job.extra)
        params = {"fal_webhook": notify_url} if notify_url is not None else {}
        return Call("create", "POST", self.endpoint(job), json=body, params=params)

    def read_created(self, answer: Answer, text: ServerText) -> Created:
        payload = answer.json_object()
        request_id = header_request_id(answer, text)
        if payload is None:
            raise not_json(answer, request_id)
        task_id = usable_task_id(payload.get("request_id"), answer, text, request_id)
        urls = {name: payload.get(name) for name in ("status_url", "response_url", "cancel_url")}
        bad = [name for name, url in urls.items() if not _usable_url(url)]
        if bad:
            raise AnswerUnknownError(
                f"create: the answer names request {text.shown_id(task_id)} but no usable"
                f" {', '.join(bad)}, so it cannot be followed",
                status=answer.status,
                request_id=request_id,
            )
        handle = json.dumps(urls, separators=(",", ":"))
        return Created(WORDS.view(task_id, "", text), handle=text.redact(handle))

    def poll_call(self, task_id: str, handle: str | None) -> Call:
        return Call("poll", "GET", self._url(task_id, handle, "status_url"), absolute=True)

    def cancel_call(self, task_id: str, handle: str | None) -> Call:
        """``PUT {cancel_url}``: 202 CANCELLATION_REQUESTED, or 400 ALREADY_COMPLETED."""
        return Call("cancel", "PUT", self._url(task_id, handle, "cancel_url"), absolute=True)

    def read_polled(self, answer: Answer, task_id: str, text: ServerText) -> TaskView | Call:
        payload = answer.json_object()
        raw = payload.get("status") if payload is not None else None
        if payload is None or not isinstance(raw, str) or not raw.strip():
            raise TransientApiError(
                "poll: the answer is not a JSON object with a status",
                status=answer.status,
                request_id=header_request_id(answer, text),
            )
        if WORDS.status(raw) is not TaskStatus.SUCCEEDED:
            return WORDS.view(task_id, raw, text)
        error = payload.get("error")
        if error:  # fal says so on the status: no need to fetch the result
            return _failed(task_id, raw, text, error, payload.get("error_type"))
        response_url = payload.get("response_url")
        if not _usable_url(response_url):
            raise TransientApiError(
                "poll: the request is COMPLETED but its status names no usable response_url",
                status=answer.status,
                request_id=header_request_id(answer, text),
            )
        return Call("result", "GET", str(response_url), absolute=True)

    def read_result(self, answer: Answer, task_id: str, text: ServerText) -> TaskView:
        """A 2xx result: the video at ``video.url``, or a failure when it names none."""
        payload = answer.json_object()
        if payload is None:
            raise TransientApiError(
                "result: the answer is not a JSON object",
                status=answer.status,
                request_id=header_request_id(answer, text),
            )
        video = payload.get("video")
        url = video.get("url") if isinstance(video, Mapping) else None
        if not isinstance(url, str) or not url.strip():
            return _failed(task_id, "COMPLETED", text, "the result names no video", "no_video")
        return WORDS.view(task_id, "COMPLETED", text, video_url=url)

    def error(self, answer: Answer, what: str, text: ServerText) -> ApiError:
        payload = answer.json_object()
        message, code = error_fields(payload)
        code = code or answer.headers.get("x-fal-error-type") or None
        retry_after, note = retry_after_of(answer)
        shown = text.message(message) if message is not None else body_start(answer, text)
        spent = answer.status in (402, 403) and _billing(message)
        # A result's error is the request's outcome: a 4xx, or a 5xx that names an error type
        # (fal retried it already). A 5xx with none is the gateway's: ask again.
        final = what == "result" and (
            answer.status in (400, 409, 410, 422) or (answer.status >= 500 and code is not None)
        )
        return http_error(
            answer,
            what,
            f"{what}: {shown}{note}",
            code=text.word(code),
            request_id=header_request_id(answer, text),
            retry_after=retry_after,
            quota_spent=spent,
            rejected=final,
        )

    def list_call(self, job: JobSpec, since: float) -> Call:
        raise NotImplementedError("fal's queue API lists no requests")

    def read_listed(
        self, answer: Answer, job: JobSpec, since: float, text: ServerText
    ) -> list[Created]:
        raise NotImplementedError("fal's queue API lists no requests")

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> Notice | None:
        """``{request_id, gateway_request_id, status, payload, error}``; a repeat of the same
        request's notice has the same request id, which is its delivery id."""
        payload = Answer(200, headers, body).json_object()
        task_id = payload.get("request_id") if payload is not None else None
        if not isinstance(task_id, str) or task_id_problem(task_id) is not None:
            return None
        return Notice(task_id=task_id, delivery_id=task_id)

    def _url(self, task_id: str, handle: str | None, name: str) -> str:
        try:
            urls = json.loads(handle) if handle else None
        except ValueError:
            urls = None
        url = urls.get(name) if isinstance(urls, dict) else None
        if not _usable_url(url):
            raise JobRejectedError(
                f"request {task_id} has no usable {name} in the journal (fal's URLs are not"
                " derivable from the request id)",
                code="no_handle",
            )
        return str(url)


def _usable_url(url: object) -> bool:
    return (
        isinstance(url, str)
        and url.startswith(("https://", "http://"))
        and len(url) <= MAX_URL
        and url.isprintable()
        and " " not in url
    )


def _billing(message: str | None) -> bool:
    lowered = (message or "").lower()
    return "exhausted balance" in lowered or "top_up" in lowered or "top up" in lowered


def _failed(task_id: str, raw: str, text: ServerText, message: object, code: object) -> TaskView:
    return TaskView(
        task_id=task_id,
        status=TaskStatus.FAILED,
        raw_status=text.clean(raw, MAX_SERVER_WORD),
        error_message=text.message(message),
        error_code=text.word(code),
    )


def error_fields(payload: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(message, code) of a fal error body: ``{detail: str, error_type}`` (a request error) or
    ``{detail: [{loc, msg, type}, ...]}`` (a model's validation or content error)."""
    if payload is None:
        return None, None
    detail = payload.get("detail")
    code = payload.get("error_type")
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, Mapping):
            where = first.get("loc")
            field = ".".join(str(p) for p in where[1:]) if isinstance(where, list) else ""
            msg = str(first.get("msg", ""))
            more = f" (+{len(detail) - 1} more)" if len(detail) > 1 else ""
            message = f"{field}: {msg}{more}" if field else msg + more
            return message, str(first["type"]) if first.get("type") else None
        return str(first), None
    if detail is not None:
        return str(detail), str(code) if code else None
    return None, str(code) if code else None
