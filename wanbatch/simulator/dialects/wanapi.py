"""wanapi.io, as its docs describe it: ``POST /v1/video/generations`` and
``GET /v1/video/generations/{id}``; bearer key; ``Idempotency-Key``; errors
``{"error": {"message", "type", "code"}}``; a ``webhook_url`` on create is called with the
task's view when it ends."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wanbatch.simulator.dialects import Reply, Request

if TYPE_CHECKING:
    from wanbatch.simulator.app import SimState, Task

_RATIO = re.compile(r"^[1-9][0-9]{0,4}:[1-9][0-9]{0,4}$")
_KINDS = {
    "auth": ("invalid_request_error", "invalid_api_key"),
    "rate_limited": ("rate_limit_error", "rate_limit_exceeded"),
    "server": ("server_error", "upstream_error"),
    "not_found": ("invalid_request_error", "not_found"),
    "invalid": ("invalid_request_error", "invalid_request"),
    "not_json": ("invalid_request_error", "invalid_json"),
    "credits": ("billing_error", "insufficient_credits"),
}


def error_body(message: str, kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


class WanApiDialect:
    name = "wanapi"
    base_path = "/v1"

    def key_of(self, headers: Mapping[str, str]) -> str:
        auth = headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else ""

    def error(self, status: int, kind: str, message: str, code: str | None = None) -> Reply:
        error_type, default_code = _KINDS.get(kind, ("invalid_request_error", kind))
        return status, error_body(message, error_type, code or default_code), {}

    def route(self, state: SimState, key: str, request: Request) -> Reply:
        path = request.path.rstrip("/")
        if path == "/video/generations" and request.method == "POST":
            return self._create(state, key, request)
        if path.startswith("/video/generations/") and request.method == "GET":
            task = state.task_of(key, path.rsplit("/", 1)[-1])
            if task is None:
                return self.error(404, "not_found", f"No task {path.rsplit('/', 1)[-1]}")
            state.count_poll(task)
            return 200, self.view(state, task), {}
        return self.error(404, "not_found", f"No route {request.method} {request.path}")

    def _create(self, state: SimState, key: str, request: Request) -> Reply:
        try:
            body = json.loads(request.body)
        except ValueError:
            return self.error(400, "not_json", "The body is not JSON")
        if not isinstance(body, dict):
            return self.error(400, "not_json", "The body must be a JSON object")
        idem = request.headers.get("idempotency-key") or None
        state.count_create(str(body.get("prompt", "")), idem)
        problem = _validate(body, state.config.models)
        if problem is not None:
            field, message = problem
            return self.error(400, "invalid", message, f"invalid_{field}")
        if idem and state.config.honour_idempotency:
            existing = state.by_idempotency.get((key, idem))
            if existing is not None:
                known = state.tasks[existing]
                return 200, {"id": existing, "status": state.word(known, time.time())}, {}
        task = state.admit(key, body, idem)  # the whole body: extra fields are kept
        if task is None:
            return self.error(402, "credits", "Insufficient credits: top up your balance")
        webhook = body.get("webhook_url")
        if isinstance(webhook, str):
            state.notify_later(task, webhook, self.notice)
        return 200, {"id": task.id, "status": "queued"}, {}

    def view(self, state: SimState, task: Task) -> dict[str, Any]:
        status = state.word(task, time.time())
        out: dict[str, Any] = {
            "id": task.id,
            "object": "video.generation",
            "status": status,
            "model": task.body.get("model"),
            "prompt": task.body.get("prompt"),
            "duration": task.body.get("duration", 5),
            "aspect_ratio": task.body.get("aspect_ratio", "16:9"),
            "created_at": int(task.created),
        }
        if status == "succeeded":
            out["video_url"] = state.signed_url(task.id)
            out["completed_at"] = int(task.finish)
        elif status == "failed":
            message, code = state.failure(task)
            kind = "content_policy_error" if task.flagged else "generation_error"
            out["error"] = {"message": message, "type": kind, "code": code}
        return out

    def notice(self, state: SimState, task: Task) -> tuple[bytes, dict[str, str]]:
        return json.dumps(self.view(state, task)).encode(), {"content-type": "application/json"}


def _validate(request: dict[str, Any], models: tuple[str, ...]) -> tuple[str, str] | None:
    """(field, message) for the first invalid field, as a provider would answer 400."""
    model = request.get("model")
    if model not in models:
        return "model", f"model: must be one of {', '.join(models)}"
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt", "prompt: must be a non-empty string"
    duration = request.get("duration", 5)
    if isinstance(duration, bool) or not isinstance(duration, int) or not 1 <= duration <= 60:
        return "duration", "duration: must be a whole number of seconds from 1 to 60"
    ratio = request.get("aspect_ratio", "16:9")
    if not isinstance(ratio, str) or not _RATIO.match(ratio):
        return "aspect_ratio", "aspect_ratio: must look like 16:9"
    for name in ("image", "webhook_url"):
        value = request.get(name)
        if value is not None and (
            not isinstance(value, str) or not value.startswith(("http://", "https://"))
        ):
            return name, f"{name}: must be an http(s) URL"
    return None
