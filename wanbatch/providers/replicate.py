"""Replicate's predictions API (https://replicate.com/docs/reference/http).

Documented (the HTTP reference; docs/topics/predictions/{lifecycle,rate-limits,data-retention};
changelog 2025-10-16-prediction-deadlines; github:replicate/replicate-python
``replicate/prediction.py``, ``client.py``, ``exceptions.py``, ``webhook.py``):
- base URL ``https://api.replicate.com/v1``; ``Authorization: Bearer KEY``.
- create for an official model: ``POST models/{owner}/{name}/predictions`` with
  ``{"input": {...}, "webhook"?, "webhook_events_filter"?: ["completed"]}``; the answer is the
  prediction ``{id, model, status, input, output, error, data_removed, urls: {get, cancel},
  created_at, ...}``. (``Prefer: wait`` would hold the answer open: not used.)
- poll ``GET predictions/{id}``; cancel ``POST predictions/{id}/cancel``; list
  ``GET predictions`` (100 a page ``{next, previous, results}``, newest first, API and web
  predictions; ``created_after`` narrows it, per the OpenAPI spec the generated SDKs carry).
- statuses ``starting``, ``processing``, ``succeeded``, ``failed``, ``canceled`` (by the user,
  or past its deadline after it started: billed) and ``aborted`` (past its deadline before it
  started: not billed).
- ``output`` is the model's output: for the Wan video models a URL (a list is read too).
- errors are RFC 7807 problem JSON ``{type?, title, detail, status}``.
- rate limits: 600 creates a minute, 3000 other requests a minute; a 429's body reads
  ``{"detail": "Request was throttled. Your rate limit resets in ~30s."}``.
- an API prediction's input, output, output files and logs are removed an hour after it ends:
  ``url_lifetime_seconds`` 3600, so downloads must follow each render closely. Polled after
  that, it is ``succeeded`` with ``data_removed: true`` and no output; this adapter then says
  the output was deleted (``JobRejectedError``, code ``output_deleted``).
- webhooks follow Standard Webhooks: headers ``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``; the body is the prediction; the signing secret is served at
  ``GET webhooks/default/secret`` (``{"key": "whsec_..."}``).
- no idempotency key.

Assumed: a 429 may carry ``retry_after`` (seconds) in its body (read when no ``Retry-After``
header came; else "resets in ~Ns" is read from ``detail``); the Wan 2.1 models' names and
inputs below.

Models (their input schemas on replicate.com): ``wan-2-2`` is ``wan-video/wan-2.2-t2v-fast``
(``num_frames`` 81-100, ``frames_per_second`` 5-24, ``aspect_ratio`` 16:9 or 9:16) or, for a
job with an image, ``wan-video/wan-2.2-i2v-fast`` (the video takes the image's shape);
``wan-2-1`` is ``wavespeedai/wan-2.1-t2v-480p`` / ``wavespeedai/wan-2.1-i2v-480p`` (81 frames,
16:9 or 9:16). At 16 frames a second a job of ``d`` seconds asks ``16 d + 1`` frames: 5 and 6 s
fit Wan 2.2, 5 s Wan 2.1. A 1:1 text-to-video job has no Replicate Wan model and is refused
by ``job_problem`` before anything is sent.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from wanbatch.backoff import parse_retry_after
from wanbatch.errors import AnswerUnknownError, ApiError, JobRejectedError, TransientApiError
from wanbatch.models import JobSpec, TaskStatus, TaskView
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
    succeeded={"succeeded"},
    failed={"failed", "canceled", "aborted"},
    pending={"starting"},
    running={"processing"},
)

FPS = 16  # frames a second asked of every model (the Wan models' default)
OUTPUT_LIFETIME_SECONDS = 3600.0
_RESETS_IN = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Route:
    """One Replicate model and what its inputs take."""

    model: str  # owner/name
    frames: tuple[int, int]  # num_frames it takes (lowest, highest)
    ratios: tuple[str, ...] | None  # aspect_ratio values; None: the image decides the shape
    frames_field: bool = True  # does it take num_frames and frames_per_second?


ROUTES: dict[tuple[str, bool], Route] = {
    ("wan-2-2", False): Route("wan-video/wan-2.2-t2v-fast", (81, 100), ("16:9", "9:16")),
    ("wan-2-2", True): Route("wan-video/wan-2.2-i2v-fast", (81, 100), None),
    ("wan-2-1", False): Route(
        "wavespeedai/wan-2.1-t2v-480p", (81, 81), ("16:9", "9:16"), frames_field=False
    ),
    ("wan-2-1", True): Route("wavespeedai/wan-2.1-i2v-480p", (81, 81), None, frames_field=False),
}


def route_of(job: JobSpec) -> Route | None:
    return ROUTES.get((job.model, job.image is not None))


def frames_for(seconds: int) -> int:
    return FPS * seconds + 1


class ReplicateProvider:
    name = "replicate"
    default_base_url: str | None = "https://api.replicate.com/v1"
    capabilities = Capabilities(
        idempotency_keys=False,
        webhooks=True,
        cancel=True,
        list_tasks=True,
        url_lifetime_seconds=OUTPUT_LIFETIME_SECONDS,
        task_lifetime_seconds=None,  # the prediction stays; its data goes after the hour
    )
    models: Mapping[str, str] = {
        model: found.model for (model, image), found in ROUTES.items() if not image
    }

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def job_problem(self, job: JobSpec) -> str | None:
        found = route_of(job)
        if found is None:
            known = ", ".join(sorted({model for model, _ in ROUTES}))
            return f"replicate serves no model {job.model!r} here (known: {known})"
        if found.ratios is not None and job.aspect_ratio not in found.ratios:
            return (
                f"replicate's {found.model} renders {' or '.join(found.ratios)},"
                f" not {job.aspect_ratio}"
            )
        low, high = found.frames
        if not low <= frames_for(job.duration) <= high:
            fits = [s for s in range(1, 61) if low <= frames_for(s) <= high]
            shown = " or ".join(f"{s} s" for s in fits)
            return f"replicate's {found.model} renders {shown} at {FPS} fps, not {job.duration} s"
        return None

    def create_call(self, job: JobSpec, idempotency_key: str, notify_url: str | None) -> Call:
        found = route_of(job)
        if found is None:  # job_problem refused it at validate time
            raise JobRejectedError(f"replicate serves no model {job.model!r}", code="model")
        body: dict[str, Any] = {"input": model_input(job, found)}
        if notify_url is not None:
            body["webhook"] = notify_url
            body["webhook_events_filter"] = ["completed"]
        owner, name = found.model.split("/")
        return Call("create", "POST", f"models/{owner}/{name}/predictions", json=body)

    def read_created(self, answer: Answer, text: ServerText) -> Created:
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
        return Call("poll", "GET", "predictions/" + quote(task_id, safe=""))

    def cancel_call(self, task_id: str, handle: str | None) -> Call:
        return Call("cancel", "POST", "predictions/" + quote(task_id, safe="") + "/cancel")

    def read_polled(self, answer: Answer, task_id: str, text: ServerText) -> TaskView | Call:
        payload = answer.json_object()
        raw_status = payload.get("status") if payload is not None else None
        if payload is None or not isinstance(raw_status, str) or not raw_status.strip():
            raise TransientApiError(
                "poll: the answer is not a JSON object with a status",
                status=answer.status,
                request_id=header_request_id(answer, text),
            )
        view = self._view(task_id, raw_status, payload, text)
        if view.status is TaskStatus.SUCCEEDED and view.video_url is None and deleted(payload):
            raise JobRejectedError(
                f"replicate deleted the output of prediction {text.shown_id(task_id)}: it keeps"
                " an API prediction's output for 1 hour after it finishes, and that hour passed"
                " before the video was downloaded; nothing is left to fetch, render it again",
                code="output_deleted",
            )
        return view

    def read_result(self, answer: Answer, task_id: str, text: ServerText) -> TaskView:
        raise NotImplementedError("replicate's poll answer carries the output")

    def error(self, answer: Answer, what: str, text: ServerText) -> ApiError:
        payload = answer.json_object() or {}
        detail, title = payload.get("detail"), payload.get("title")
        said = detail if isinstance(detail, str) and detail else title
        asked = None
        if parse_retry_after(answer.headers.get("retry-after"), answer.at) is None:
            asked = body_wait(payload, detail)
        retry_after, note = retry_after_of(answer, asked=asked)
        message = text.message(said) if isinstance(said, str) and said else None
        return http_error(
            answer,
            what,
            f"{what}: {message or body_start(answer, text)}" + note,
            code=text.word(title) if isinstance(title, str) and title else None,
            request_id=header_request_id(answer, text),
            retry_after=retry_after,
        )

    def list_call(self, job: JobSpec, since: float) -> Call:
        after = datetime.datetime.fromtimestamp(since - 60, tz=datetime.UTC)
        return Call(
            "list",
            "GET",
            "predictions",
            params={"created_after": after.isoformat(timespec="seconds").replace("+00:00", "Z")},
        )

    def read_listed(
        self, answer: Answer, job: JobSpec, since: float, text: ServerText
    ) -> list[Created]:
        """The listed predictions of ``job``'s model whose input is the one ``job`` sends,
        newest first (the list asks for those made since ``since``). A list that runs past its
        first page is ``AnswerUnknownError``: the one sought may be on the next."""
        payload = answer.json_object()
        results = payload.get("results") if payload is not None else None
        found = route_of(job)
        if not isinstance(results, list) or found is None:
            raise AnswerUnknownError(
                "list: the answer is not Replicate's list of predictions",
                status=answer.status,
            )
        if payload is not None and payload.get("next"):
            raise AnswerUnknownError(
                "list: more than one page of predictions since the create; not guessing",
                status=answer.status,
            )
        wanted = model_input(job, found)
        matches: list[Created] = []
        for item in results:
            if not isinstance(item, dict) or item.get("input") != wanted:
                continue
            if item.get("model") not in (None, found.model):
                continue
            task_id = item.get("id")
            if not isinstance(task_id, str) or task_id_problem(task_id) is not None:
                continue
            raw_status = item.get("status")
            word = raw_status if isinstance(raw_status, str) else ""
            matches.append(Created(self._view(task_id, word, item, text)))
        return matches

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> Notice | None:
        """The notice's body is the prediction; ``webhook-id`` is the delivery's id."""
        payload = Answer(200, headers, body).json_object()
        task_id = payload.get("id") if payload is not None else None
        if not isinstance(task_id, str) or task_id_problem(task_id) is not None:
            return None
        return Notice(task_id=task_id, delivery_id=headers.get("webhook-id"))

    def _view(
        self, task_id: str, raw_status: str, payload: Mapping[str, Any], text: ServerText
    ) -> TaskView:
        error = payload.get("error")
        message = error if isinstance(error, str) and error else None
        code = None
        word = raw_status.strip().lower()
        if word == "aborted":
            code = "aborted"
            message = (message + ": " if message else "") + (
                "replicate aborted the prediction before it ran (not billed)"
            )
        elif word == "canceled":
            code = "canceled"
            message = message or "the prediction was canceled"
        view = WORDS.view(
            task_id,
            raw_status,
            text,
            video_url=output_url(payload.get("output")),
            error_message=message,
            error_code=code,
        )
        asked = payload.get("input")
        prompt = asked.get("prompt") if isinstance(asked, Mapping) else None
        return replace(view, prompt=prompt) if isinstance(prompt, str) else view


def model_input(job: JobSpec, found: Route) -> dict[str, Any]:
    """The prediction's ``input`` for ``job`` on ``found``'s model."""
    fields: dict[str, Any] = {"prompt": job.prompt}
    if found.frames_field:
        fields["num_frames"] = frames_for(job.duration)
        fields["frames_per_second"] = FPS
    if found.ratios is not None:
        fields["aspect_ratio"] = job.aspect_ratio
    if job.image is not None:
        fields["image"] = job.image
    fields.update(job.extra)
    return fields


def output_url(output: object) -> str | None:
    """The video URL of a prediction's ``output``: a URL, or the first URL of a list."""
    if isinstance(output, str):
        return output or None
    if isinstance(output, list):
        return next((item for item in output if isinstance(item, str) and item), None)
    return None


def deleted(payload: Mapping[str, Any]) -> bool:
    return payload.get("data_removed") is True


def body_wait(payload: Mapping[str, Any], detail: object) -> float | None:
    """The wait a 429's body asks for: ``retry_after``, or "resets in ~30s" in its detail."""
    value = payload.get("retry_after")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool):
        value = None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    match = _RESETS_IN.search(detail) if isinstance(detail, str) else None
    return float(match.group(1)) if match else None
