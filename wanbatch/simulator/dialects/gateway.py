"""An OpenAI-style video gateway, as OpenAI's Videos API docs describe it, with the video URL
in the JSON where Together's answer puts it.

``POST /v1/videos`` with JSON ``{model, prompt, seconds, size, image?}`` (``seconds`` is text,
as OpenAI's docs give it; ``size`` is ``WIDTHxHEIGHT``) answers the video object
``{id, object: "video", model, status: "queued", progress, created_at, seconds, size}``;
``GET /v1/videos/{id}`` answers it again with status ``queued`` / ``in_progress`` /
``completed`` / ``failed``, ``outputs.video_url`` once completed and ``error: {code, message}``
once failed. The key comes as ``Authorization: Bearer KEY`` (or Azure's ``api-key: KEY``).
Errors are ``{"error": {"message", "type", "param", "code"}}``; a spent quota is OpenAI's 429
``insufficient_quota``. An ``Idempotency-Key`` is honoured when the simulator's knob says so.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wanbatch.simulator.dialects import Reply, Request

if TYPE_CHECKING:
    from wanbatch.simulator.app import SimState, Task

_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
_WORDS = {"queued": "queued", "running": "in_progress", "succeeded": "completed"}
_KINDS = {
    "auth": ("invalid_request_error", "invalid_api_key"),
    "rate_limited": ("requests", "rate_limit_exceeded"),
    "server": ("server_error", "server_error"),
    "not_found": ("invalid_request_error", "not_found"),
    "invalid": ("invalid_request_error", "invalid_value"),
    "not_json": ("invalid_request_error", "invalid_json"),
    "credits": ("insufficient_quota", "insufficient_quota"),
}


class GatewayDialect:
    name = "gateway"
    base_path = "/v1"

    def key_of(self, headers: Mapping[str, str]) -> str:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return headers.get("api-key", "").strip()

    def error(self, status: int, kind: str, message: str, param: str | None = None) -> Reply:
        error_type, code = _KINDS.get(kind, ("invalid_request_error", kind))
        if kind == "credits":
            status = 429  # OpenAI: "You exceeded your current quota" comes as a 429
        body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
        return status, body, {}

    def route(self, state: SimState, key: str, request: Request) -> Reply:
        path = request.path.rstrip("/")
        if path == "/videos" and request.method == "POST":
            return self._create(state, key, request)
        if path.startswith("/videos/") and path.count("/") == 2 and request.method == "GET":
            task_id = path.rsplit("/", 1)[-1]
            task = state.task_of(key, task_id)
            if task is None:
                return self.error(404, "not_found", f"Video with id '{task_id}' not found.")
            state.count_poll(task)
            return 200, self.video(state, task), {}
        return self.error(404, "not_found", f"Invalid URL ({request.method} {request.path})")

    def _create(self, state: SimState, key: str, request: Request) -> Reply:
        try:
            body = json.loads(request.body)
        except ValueError:
            return self.error(400, "not_json", "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self.error(400, "not_json", "The body must be a JSON object.")
        idem = request.headers.get("idempotency-key") or None
        state.count_create(str(body.get("prompt", "")), idem)
        problem = _invalid(body, state.config.models)
        if problem is not None:
            return self.error(400, "invalid", problem[1], problem[0])
        if idem and state.config.honour_idempotency:
            existing = state.by_idempotency.get((key, idem))
            if existing is not None:
                return 200, self.video(state, state.tasks[existing]), {}
        task = state.admit(key, body, idem)
        if task is None:
            return self.error(429, "credits", "You exceeded your current quota.")
        return 200, self.video(state, task), {}

    def video(self, state: SimState, task: Task) -> dict[str, Any]:
        word = state.word(task, time.time())
        out: dict[str, Any] = {
            "id": task.id,
            "object": "video",
            "model": task.body.get("model"),
            "status": _WORDS.get(word, word),
            "progress": 100 if word in ("succeeded", "failed") else 0,
            "created_at": int(task.created),
            "completed_at": None,
            "prompt": task.body.get("prompt"),
            "seconds": task.body.get("seconds", "4"),
            "size": task.body.get("size", "720x1280"),
            "error": None,
        }
        if word == "succeeded":
            out["completed_at"] = int(task.finish)
            out["outputs"] = {"video_url": state.signed_url(task.id), "cost": 0}
        elif word == "failed":
            message, code = state.failure(task)
            out["error"] = {"code": code, "message": message}
        return out


def _invalid(body: dict[str, Any], models: tuple[str, ...]) -> tuple[str, str] | None:
    """(param, message) for the first invalid field, as the API answers 400."""
    if body.get("model") not in models:
        return "model", f"Invalid value for 'model': must be one of {', '.join(models)}."
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt", "Missing required parameter: 'prompt'."
    seconds = body.get("seconds", "4")
    if not isinstance(seconds, str) or not seconds.isdigit() or not 1 <= int(seconds) <= 60:
        return "seconds", "Invalid type for 'seconds': expected text such as '8'."
    size = body.get("size", "720x1280")
    if not isinstance(size, str) or not _SIZE.match(size):
        return "size", "Invalid value for 'size': expected WIDTHxHEIGHT such as '1280x720'."
    image = body.get("image")
    if image is not None and (
        not isinstance(image, str) or not image.startswith(("http://", "https://"))
    ):
        return "image", "Invalid value for 'image': expected an http(s) URL."
    return None
