"""wanapi.io, the default provider: an OpenAI-style video API.

``POST {base}/video/generations`` with ``{model, prompt, duration, aspect_ratio, image?}`` and an
``Idempotency-Key`` header answers ``{id, status}``; ``GET {base}/video/generations/{id}`` until
``succeeded`` (with ``video_url``) or ``failed`` (with ``error: {message, type, code}``). Errors
are ``{error: {message, type, code}}`` with 400/401/402/429 (+ ``Retry-After``)/500/503. A create
may name a ``webhook_url``. Video URLs are signed and expire (the seed docs give no lifetime).

Its status words are a generous set, since the docs name only some of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from wanbatch.errors import ApiError, TransientApiError
from wanbatch.models import JobSpec, TaskView
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
    succeeded={"succeeded", "success", "completed", "complete", "done"},
    failed={
        "failed", "failure", "error", "errored", "cancelled", "canceled", "rejected",
        "expired", "timeout", "timed_out", "timedout", "aborted", "deleted", "killed",
        "terminated",
    },
    pending={"queued", "pending", "submitted", "waiting", "created"},
    running={
        "running", "processing", "in_progress", "started", "generating", "rendering", "active",
    },
)  # fmt: skip


class WanApiProvider:
    name = "wanapi"
    default_base_url: str | None = "https://api.wanapi.io/v1"
    capabilities = Capabilities(
        idempotency_keys=True,
        webhooks=True,
        cancel=False,
        list_tasks=False,
        url_lifetime_seconds=None,
        task_lifetime_seconds=None,
    )
    models: Mapping[str, str] = {}  # the manifest's model names are the API's

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def job_problem(self, job: JobSpec) -> str | None:
        return None  # the manifest's own rules are this API's

    def create_call(self, job: JobSpec, idempotency_key: str, notify_url: str | None) -> Call:
        body: dict[str, Any] = {
            "model": job.model,
            "prompt": job.prompt,
            "duration": job.duration,
            "aspect_ratio": job.aspect_ratio,
        }
        if job.image is not None:
            body["image"] = job.image
        body.update(job.extra)
        if notify_url is not None:
            body["webhook_url"] = notify_url
        return Call(
            "create",
            "POST",
            "video/generations",
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )

    def read_created(self, answer: Answer, text: ServerText) -> Created:
        """A 2xx that names no usable task may still have made one: ``AnswerUnknownError``,
        which the submit stage does not resend."""
        payload = answer.json_object()
        request_id = header_request_id(answer, text)
        if payload is None:
            raise not_json(answer, request_id)
        task_id = usable_task_id(payload.get("id"), answer, text, request_id)
        raw_status = payload.get("status")
        return Created(
            self._view(task_id, raw_status if isinstance(raw_status, str) else "", payload, text)
        )

    def poll_call(self, task_id: str, handle: str | None) -> Call:
        return Call("poll", "GET", "video/generations/" + quote(task_id, safe=""))

    def read_polled(self, answer: Answer, task_id: str, text: ServerText) -> TaskView | Call:
        payload = answer.json_object()
        raw_status = payload.get("status") if payload is not None else None
        if payload is None or not isinstance(raw_status, str) or not raw_status.strip():
            raise TransientApiError(
                "poll: the answer is not a JSON object with a status",
                status=answer.status,
                request_id=header_request_id(answer, text),
            )
        return self._view(task_id, raw_status, payload, text)

    def read_result(self, answer: Answer, task_id: str, text: ServerText) -> TaskView:
        raise NotImplementedError("wanapi's poll answer carries the result")

    def error(self, answer: Answer, what: str, text: ServerText) -> ApiError:
        payload = answer.json_object()
        message, code = error_fields(payload.get("error") if payload else None)
        retry_after, note = retry_after_of(answer)
        return http_error(
            answer,
            what,
            f"{what}: {text.message(message) if message is not None else body_start(answer, text)}"
            + note,
            code=text.word(code),
            request_id=header_request_id(answer, text),
            retry_after=retry_after,
        )

    def list_call(self, job: JobSpec, since: float) -> Call:
        raise NotImplementedError("wanapi lists no tasks; its Idempotency-Key makes resends safe")

    def read_listed(
        self, answer: Answer, job: JobSpec, since: float, text: ServerText
    ) -> list[Created]:
        raise NotImplementedError("wanapi lists no tasks")

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> Notice | None:
        """The notice is the task's view, as a poll would answer it (the docs give no more)."""
        payload = Answer(200, headers, body).json_object()
        task_id = payload.get("id") if payload is not None else None
        if not isinstance(task_id, str) or task_id_problem(task_id) is not None:
            return None
        return Notice(task_id=task_id, delivery_id=headers.get("webhook-id"))

    def _view(
        self, task_id: str, raw_status: str, payload: Mapping[str, Any], text: ServerText
    ) -> TaskView:
        message, code = error_fields(payload.get("error"))
        return WORDS.view(
            task_id,
            raw_status,
            text,
            video_url=payload.get("video_url"),
            error_message=message,
            error_code=code,
        )


def error_fields(error: object) -> tuple[str | None, str | None]:
    """(message, code) of an OpenAI-style ``error`` (an object, or a bare string)."""
    if isinstance(error, str):
        return error, None
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code") or error.get("type")
        return (
            str(message) if message is not None else None,
            str(code) if code is not None else None,
        )
    return None, None
