"""DashScope (Alibaba Cloud Model Studio): Wan through Alibaba's own asynchronous task API.

Documented (Alibaba Cloud Model Studio, "Wan - text-to-video API reference" and "image-to-video
API reference", https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference;
"Status codes", .../model-studio/developer-reference/error-code; "Manage asynchronous tasks",
.../model-studio/manage-asynchronous-tasks; and the SDK github:dashscope/dashscope-sdk-python,
``dashscope/client/base_api.py``, ``dashscope/common/constants.py``, ``dashscope/aigc/
video_synthesis.py``):

- Base URLs, one per region, each with its own keys (a key works in its region only):
  Singapore ``https://dashscope-intl.aliyuncs.com/api/v1`` (the default here), Virginia
  ``https://dashscope-us.aliyuncs.com/api/v1``, Beijing ``https://dashscope.aliyuncs.com/api/v1``
  (the SDK's own default, ``dashscope/common/env.py``).
- Create: ``POST {base}/services/aigc/video-generation/video-synthesis`` with ``Authorization:
  Bearer KEY`` and ``X-DashScope-Async: enable``; body ``{model, input: {prompt, negative_prompt?,
  img_url?}, parameters: {size "W*H" (text-to-video) or resolution "720P" (image-to-video),
  duration, seed?, prompt_extend?, watermark?}}``; answer ``{request_id, output: {task_id,
  task_status}}``. No idempotency header: "Do not create duplicate tasks" is the docs' advice.
- Poll: ``GET {base}/tasks/{task_id}`` (20 requests a second per account); ``output.task_status`` PENDING / RUNNING / SUCCEEDED /
  FAILED / CANCELED / UNKNOWN (the SDK's ``TaskStatus`` adds SUSPENDED); ``output.video_url`` on
  success; ``output.code``/``output.message`` on failure; ``output.orig_prompt``. The task id and the video URL live
  24 hours.
- Errors ``{request_id, code, message}``: 400 ``InvalidParameter``, 400 ``DataInspectionFailed``
  (content moderation), 400 ``Arrearage`` (the account is overdue), 401 ``InvalidApiKey``, 429
  ``Throttling`` and ``Throttling.*``, 500 ``InternalError``.
- List: ``GET {base}/tasks`` with ``start_time``/``end_time`` (``YYYYMMDDhhmmss``),
  ``model_name``, ``status``, ``page_no``, ``page_size`` (the SDK's ``list``).

Assumed (not found in the docs): the list answer's form, ``{data: [{task_id, status,
model_name, gmt_create (epoch milliseconds)}], total, page_no, page_size}``, which carries no
prompt; the time zone of ``start_time`` (so the window asked for runs from 12 h before to 36 h after, and the tasks are
then chosen by ``gmt_create``); ``Throttling.AllocationQuota`` is a rate limit unless its message
speaks of a *free* quota, which is spent (then, like ``Arrearage`` and ``AllocationQuota.*``,
credits are exhausted); UNKNOWN means the server no longer knows the task (expired or never
made), so it is treated like a 404.

Matching a listed task to a job: the list names no prompt, so ``read_listed`` gives every task
of the job's model created since the create's intent (less a minute for skewed clocks); the
submit stage rules out the tasks other jobs hold, then asks each one left for the prompt it was
made from (``output.orig_prompt`` of ``GET /tasks/{id}``, documented in the video API's query
answer; ``TaskView.prompt``), and adopts the one task with the job's prompt when no other
unsettled job has that prompt. Otherwise the job stays "answer unknown" rather than guessing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from wanbatch.errors import AnswerUnknownError, ApiError, TaskNotFoundError, TransientApiError
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
    dig,
    header_request_id,
    http_error,
    not_json,
    retry_after_of,
    task_id_problem,
    usable_task_id,
)

DAY = 24 * 3600.0
WORDS = StatusWords(
    succeeded={"SUCCEEDED"},
    failed={"FAILED", "CANCELED"},
    pending={"PENDING", "SUSPENDED"},
    running={"RUNNING"},
)
GONE = "UNKNOWN"  # the server does not know the task (expired after 24 h, or never made)

# wanbatch model -> (text-to-video model, image-to-video model, resolution tier, sizes by ratio)
_SIZES_1080P = {
    "16:9": "1920*1080",
    "9:16": "1080*1920",
    "1:1": "1440*1440",
    "4:3": "1632*1248",
    "3:4": "1248*1632",
}
_SIZES_720P = {
    "16:9": "1280*720",
    "9:16": "720*1280",
    "1:1": "960*960",
    "4:3": "1088*832",
    "3:4": "832*1088",
}
MODELS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "wan-2-2": ("wan2.2-t2v-plus", "wan2.2-i2v-plus", "1080P", _SIZES_1080P),
    "wan-2-1": ("wanx2.1-t2v-plus", "wanx2.1-i2v-plus", "720P", _SIZES_720P),
}
DURATIONS = (5,)  # seconds: the only length these models render
LIST_PAGE = 100


class DashScopeProvider:
    name = "dashscope"
    default_base_url: str | None = "https://dashscope-intl.aliyuncs.com/api/v1"
    capabilities = Capabilities(
        idempotency_keys=False,
        webhooks=False,
        cancel=True,  # POST /tasks/{id}/cancel, for PENDING tasks only
        list_tasks=True,
        url_lifetime_seconds=DAY,
        task_lifetime_seconds=DAY,
    )
    models: Mapping[str, str] = {name: spec[0] for name, spec in MODELS.items()}

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def job_problem(self, job: JobSpec) -> str | None:
        spec = MODELS.get(job.model)
        if spec is None:
            return f"DashScope has no model for {job.model!r}; known: {', '.join(MODELS)}"
        model = spec[1] if job.image is not None else spec[0]
        if job.duration not in DURATIONS:
            return f"{model} renders {_seconds(DURATIONS)} videos only, not {job.duration} s"
        if job.image is None and job.aspect_ratio not in spec[3]:
            return f"{model} takes the aspect ratios {', '.join(spec[3])}, not {job.aspect_ratio}"
        return None

    def create_call(self, job: JobSpec, idempotency_key: str, notify_url: str | None) -> Call:
        """The idempotency key is not sent: DashScope has no such header (see the submit stage
        for how a create whose answer was lost is settled). ``extra`` goes into
        ``parameters`` (seed, prompt_extend, watermark...), but ``negative_prompt`` into
        ``input``."""
        _, _, tier, sizes = MODELS[job.model]
        extra = dict(job.extra)
        inputs: dict[str, Any] = {"prompt": job.prompt}
        if "negative_prompt" in extra:
            inputs["negative_prompt"] = extra.pop("negative_prompt")
        parameters: dict[str, Any] = {"duration": job.duration}
        if job.image is not None:
            inputs["img_url"] = job.image
            parameters["resolution"] = tier  # the video takes the image's aspect ratio
        else:
            parameters["size"] = sizes[job.aspect_ratio]
        parameters.update(extra)
        body = {"model": _model_of(job), "input": inputs, "parameters": parameters}
        return Call(
            "create",
            "POST",
            "services/aigc/video-generation/video-synthesis",
            json=body,
            headers={"X-DashScope-Async": "enable"},
        )

    def read_created(self, answer: Answer, text: ServerText) -> Created:
        payload = answer.json_object()
        request_id = _request_id(payload, answer, text)
        if payload is None:
            raise not_json(answer, request_id)
        task_id = usable_task_id(dig(payload, "output.task_id"), answer, text, request_id)
        raw = dig(payload, "output.task_status")
        return Created(WORDS.view(task_id, raw if isinstance(raw, str) else "", text))

    def poll_call(self, task_id: str, handle: str | None) -> Call:
        return Call("poll", "GET", "tasks/" + quote(task_id, safe=""))

    def read_polled(self, answer: Answer, task_id: str, text: ServerText) -> TaskView | Call:
        payload = answer.json_object()
        output = payload.get("output") if payload is not None else None
        raw = output.get("task_status") if isinstance(output, dict) else None
        if not isinstance(output, dict) or not isinstance(raw, str) or not raw.strip():
            raise TransientApiError(
                "poll: the answer is not a JSON object with output.task_status",
                status=answer.status,
                request_id=_request_id(payload, answer, text),
            )
        if raw.strip().upper() == GONE:
            raise TaskNotFoundError(
                "poll: DashScope answers UNKNOWN: it does not know this task (a task is kept"
                " 24 hours)",
                status=answer.status,
                request_id=_request_id(payload, answer, text),
                code=GONE,
            )
        view = WORDS.view(
            task_id,
            raw,
            text,
            video_url=output.get("video_url"),
            error_message=output.get("message"),
            error_code=output.get("code"),
        )
        prompt = output.get("orig_prompt")  # compared with the job's, never kept
        return replace(view, prompt=prompt) if isinstance(prompt, str) else view

    def read_result(self, answer: Answer, task_id: str, text: ServerText) -> TaskView:
        raise NotImplementedError("DashScope's poll answer carries the result")

    def error(self, answer: Answer, what: str, text: ServerText) -> ApiError:
        payload = answer.json_object()
        code = payload.get("code") if payload is not None else None
        message = payload.get("message") if payload is not None else None
        code = code if isinstance(code, str) else None
        retry_after, note = retry_after_of(answer)
        shown = text.message(message) if message is not None else body_start(answer, text)
        throttled = code is not None and code.startswith("Throttling")
        free_spent = code == "Throttling.AllocationQuota" and "free" in str(message).lower()
        return http_error(
            answer,
            what,
            f"{what}: {shown}{_hint(code)}{note}",
            code=text.word(code),
            request_id=_request_id(payload, answer, text),
            retry_after=retry_after,
            rate_limited=throttled and not free_spent,
            quota_spent=free_spent
            or code == "Arrearage"
            or (code is not None and code.startswith("AllocationQuota")),
            rejected=code == "DataInspectionFailed" and what == "create",
        )

    def list_call(self, job: JobSpec, since: float) -> Call:
        """Tasks of the job's model from half a day before ``since`` to a day and a half after
        (the time zone of the list's times is not documented; a task lives a day);
        ``read_listed`` then chooses by ``gmt_create``."""
        return Call(
            "list",
            "GET",
            "tasks",
            params={
                "start_time": _stamp(since - DAY / 2),
                "end_time": _stamp(since + DAY * 1.5),  # a task lives a day
                "model_name": _model_of(job),
                "page_no": "1",
                "page_size": str(LIST_PAGE),
            },
        )

    def read_listed(
        self, answer: Answer, job: JobSpec, since: float, text: ServerText
    ) -> list[Created]:
        """The listed tasks of the job's model created since ``since`` (and of its prompt,
        should the list ever show one); ``AnswerUnknownError`` when the list runs past one
        page, so that the job's task may be on another."""
        payload = answer.json_object()
        request_id = _request_id(payload, answer, text)
        items = payload.get("data") if payload is not None else None
        if payload is None or not isinstance(items, list):
            raise TransientApiError(
                "list: the answer is not a JSON object with a data list",
                status=answer.status,
                request_id=request_id,
            )
        total = payload.get("total")
        if isinstance(total, int) and total > len(items):
            raise AnswerUnknownError(
                f"list: {total} tasks of {_model_of(job)} around the create's time, more than"
                " one page: whether one is this job's cannot be settled from the list",
                status=answer.status,
                request_id=request_id,
            )
        model = _model_of(job)
        after_ms = since * 1000  # the caller has taken off a margin for skewed clocks
        found = []
        for item in items:
            if _candidate(item, model, after_ms, job.prompt):
                raw = item.get("status")
                word = raw if isinstance(raw, str) else ""
                found.append(Created(WORDS.view(str(item["task_id"]), word, text)))
        return found

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> Notice | None:
        raise NotImplementedError("DashScope's video API sends no webhook notices")


def _seconds(values: tuple[int, ...]) -> str:
    return " or ".join(f"{value} s" for value in values)


def _stamp(epoch: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(max(0.0, epoch)))


def _hint(code: str | None) -> str:
    if code == "InvalidApiKey":
        return " (DashScope keys are per region: use the base URL of the key's region)"
    return ""


def _request_id(payload: Mapping[str, Any] | None, answer: Answer, text: ServerText) -> str | None:
    value = payload.get("request_id") if payload is not None else None
    return text.word(value) if isinstance(value, str) and value else header_request_id(answer, text)


def _model_of(job: JobSpec) -> str:
    t2v, i2v, _, _ = MODELS[job.model]
    return i2v if job.image is not None else t2v


def _candidate(item: object, model: str, after_ms: float, prompt: str) -> bool:
    """A listed task that may be this job's: its model, made after ``after_ms``, and (where
    the list shows one) its prompt."""
    if not isinstance(item, dict):
        return False
    task_id, created = item.get("task_id"), item.get("gmt_create")
    if not isinstance(task_id, str) or task_id_problem(task_id) is not None:
        return False
    if item.get("model_name", model) != model:
        return False
    if isinstance(created, (int, float)) and not isinstance(created, bool) and created < after_ms:
        return False  # made before the create was sent (one listed without a time stays in)
    listed_prompt = item.get("orig_prompt", item.get("prompt"))
    return listed_prompt is None or listed_prompt == prompt


__all__ = ["DashScopeProvider"]
