"""DashScope (Alibaba Cloud Model Studio), as its docs describe the Wan video API.

``POST /api/v1/services/aigc/video-generation/video-synthesis`` with ``X-DashScope-Async:
enable`` and ``{model, input: {prompt, img_url?}, parameters: {size | resolution, duration}}``
answers ``{request_id, output: {task_id, task_status: "PENDING"}}``; ``GET /api/v1/tasks/{id}``
answers ``{request_id, output: {task_id, task_status, submit_time, ..., video_url | code,
message}, usage}``, with UNKNOWN for a task it does not know; ``GET /api/v1/tasks`` lists tasks
(``start_time``/``end_time`` as ``YYYYMMDDhhmmss``, here read as UTC; ``model_name``,
``status``, ``page_no``, ``page_size``). Errors are ``{request_id, code, message}``: 400
``InvalidParameter``, 400 ``DataInspectionFailed`` (the content filter, at create: it inspects
the input), 400 ``Arrearage`` (no credit), 401 ``InvalidApiKey``, 429 ``Throttling.RateQuota``,
500 ``InternalError``. No idempotency key: every create makes a task. Only the Wan 2.1/2.2
"plus" models, 5 s videos.
"""

from __future__ import annotations

import calendar
import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wanbatch.simulator.dialects import Reply, Request

if TYPE_CHECKING:
    from wanbatch.simulator.app import SimState, Task

CREATE_PATH = "/services/aigc/video-generation/video-synthesis"
_T2V_1080P = ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")
_T2V_720P = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088")
# model -> ("t2v" sizes) or ("i2v" resolutions)
MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "wan2.2-t2v-plus": ("t2v", _T2V_1080P + ("832*480", "480*832", "624*624")),
    "wanx2.1-t2v-plus": ("t2v", _T2V_720P),
    "wan2.2-i2v-plus": ("i2v", ("480P", "1080P")),
    "wanx2.1-i2v-plus": ("i2v", ("720P",)),
}
_WORDS = {"queued": "PENDING", "running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED"}
_KINDS = {
    "auth": "InvalidApiKey",
    "rate_limited": "Throttling.RateQuota",
    "server": "InternalError",
    "not_found": "NotFound",
    "invalid": "InvalidParameter",
    "not_json": "InvalidParameter",
    "credits": "Arrearage",
}


def _request_id() -> str:
    return str(uuid.uuid4())


def _clock(epoch: float) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}"
    )


class DashScopeDialect:
    name = "dashscope"
    base_path = "/api/v1"

    def key_of(self, headers: Mapping[str, str]) -> str:
        auth = headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else ""

    def error(self, status: int, kind: str, message: str, code: str | None = None) -> Reply:
        return status, self.error_body(code or _KINDS.get(kind, kind), message), {}

    def error_body(self, code: str, message: str) -> dict[str, Any]:
        return {"request_id": _request_id(), "code": code, "message": message}

    def route(self, state: SimState, key: str, request: Request) -> Reply:
        path = request.path.rstrip("/")
        if path == CREATE_PATH and request.method == "POST":
            return self._create(state, key, request)
        if path == "/tasks" and request.method == "GET":
            return self._list(state, key, request.query)
        if path.startswith("/tasks/") and request.method == "GET":
            task_id = path[len("/tasks/") :]
            task = state.task_of(key, task_id)
            if task is None:  # DashScope does not say 404: it does not know the task
                output = {"task_id": task_id, "task_status": "UNKNOWN"}
                return 200, {"request_id": _request_id(), "output": output}, {}
            state.count_poll(task)
            return 200, self.view(state, task), {}
        return self.error(404, "not_found", f"No route {request.method} {request.path}")

    def _create(self, state: SimState, key: str, request: Request) -> Reply:
        if request.headers.get("x-dashscope-async", "").lower() != "enable":
            return self.error(
                403, "access", "current user api does not support synchronous calls", "AccessDenied"
            )
        try:
            body = json.loads(request.body)
        except ValueError:
            return self.error(400, "not_json", "The body is not JSON")
        if not isinstance(body, dict):
            return self.error(400, "not_json", "The body must be a JSON object")
        inputs = body.get("input") if isinstance(body.get("input"), dict) else {}
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        assert isinstance(inputs, dict) and isinstance(parameters, dict)
        prompt = inputs.get("prompt")
        state.count_create(str(prompt or ""), None)
        problem = _validate(body.get("model"), inputs, parameters)
        if problem is not None:
            return self.error(400, "invalid", problem)
        flagged = state.flagged_word(str(prompt))
        if flagged is not None:
            return self.error(
                400,
                "invalid",
                "Input data may contain inappropriate content.",
                "DataInspectionFailed",
            )
        flat = {
            "prompt": prompt,
            "model": body["model"],
            "duration": parameters.get("duration", 5),
            "size": parameters.get("size") or parameters.get("resolution"),
        }
        if inputs.get("img_url"):
            flat["image"] = inputs["img_url"]
        task = state.admit(key, flat, None)
        if task is None:
            return self.error(
                400, "credits", "Access denied, please make sure your account is in good standing."
            )
        output = {"task_id": task.id, "task_status": "PENDING"}
        return 200, {"request_id": _request_id(), "output": output}, {}

    def view(self, state: SimState, task: Task) -> dict[str, Any]:
        word = state.word(task, time.time())
        status = _WORDS.get(word, word.upper())
        output: dict[str, Any] = {
            "task_id": task.id,
            "task_status": status,
            "submit_time": _clock(task.created),
            "orig_prompt": task.body.get("prompt"),
        }
        if word != "queued":
            output["scheduled_time"] = _clock(task.start)
        if word in ("succeeded", "failed"):
            output["end_time"] = _clock(task.finish)
        if word == "succeeded":
            output["video_url"] = state.signed_url(task.id)
        elif word == "failed":
            message, code = state.failure(task)
            output["code"] = "DataInspectionFailed" if task.flagged else "InternalError.Algo"
            output["message"] = message if code else "failed"
        usage = {"video_duration": task.body.get("duration"), "video_ratio": task.body.get("size")}
        payload = {"request_id": _request_id(), "output": output}
        if word == "succeeded":
            payload["usage"] = {**usage, "video_count": 1}
        return payload

    def _list(self, state: SimState, key: str, query: Mapping[str, str]) -> Reply:
        try:
            start = _epoch(query.get("start_time"), 0.0)
            end = _epoch(query.get("end_time"), float("inf"))
            page_no = max(1, int(query.get("page_no", "1")))
            page_size = min(100, max(1, int(query.get("page_size", "10"))))
        except ValueError:
            return self.error(400, "invalid", "start_time/end_time: YYYYMMDDhhmmss; page: numbers")
        now = time.time()
        chosen = []
        for task in sorted(state.tasks.values(), key=lambda t: t.created, reverse=True):
            if task.key != key or not start <= task.created <= end:
                continue
            if query.get("model_name") not in (None, task.body.get("model")):
                continue
            status = _WORDS.get(state.word(task, now), "UNKNOWN")
            if query.get("status") not in (None, status):
                continue
            chosen.append(
                {
                    "task_id": task.id,
                    "status": status,
                    "model_name": task.body.get("model"),
                    "gmt_create": int(task.created * 1000),
                    "region": "ap-southeast-1",
                    "request_id": _request_id(),
                }
            )
        page = chosen[(page_no - 1) * page_size : page_no * page_size]
        payload = {
            "request_id": _request_id(),
            "data": page,
            "total": len(chosen),
            "page_no": page_no,
            "page_size": page_size,
        }
        return 200, payload, {}


def _epoch(stamp: str | None, default: float) -> float:
    if stamp is None:
        return default
    if len(stamp) != 14 or not stamp.isdigit():
        raise ValueError(stamp)
    return float(calendar.timegm(time.strptime(stamp, "%Y%m%d%H%M%S")))


def _validate(model: object, inputs: dict[str, Any], parameters: dict[str, Any]) -> str | None:
    """The message of the first invalid field, as DashScope answers 400 InvalidParameter."""
    if not isinstance(model, str) or model not in MODELS:
        return f"Model not exist: {model!r}; this simulator serves {', '.join(MODELS)}"
    kind, allowed = MODELS[model]
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "input.prompt must be a non-empty string"
    duration = parameters.get("duration", 5)
    if duration != 5 or isinstance(duration, bool):
        return f"parameters.duration: {model} renders 5 s videos only"
    if kind == "t2v":
        size = parameters.get("size", allowed[0])
        if size not in allowed:
            return f"parameters.size must be one of {', '.join(allowed)}"
        return None
    image = inputs.get("img_url")
    if not isinstance(image, str) or not image.startswith(("http://", "https://")):
        return "input.img_url: an http(s) URL is required for image-to-video"
    if parameters.get("resolution", allowed[-1]) not in allowed:
        return f"parameters.resolution must be one of {', '.join(allowed)}"
    return None
