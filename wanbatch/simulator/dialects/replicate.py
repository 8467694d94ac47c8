"""Replicate's predictions API, as its HTTP reference and topic pages describe it.

- ``POST /v1/models/{owner}/{name}/predictions`` with ``{"input": {...}, "webhook"?,
  "webhook_events_filter"?}`` answers 201 with the prediction; ``GET /v1/predictions/{id}``;
  ``POST /v1/predictions/{id}/cancel``; ``GET /v1/predictions`` (newest first, 100 a page,
  ``{next, previous, results}``); ``GET /v1/webhooks/default/secret`` (``{"key": "whsec_..."}``).
- ``Authorization: Bearer KEY``. Errors are problem JSON ``{title, detail, status}``; invalid
  input is 422 with ``invalid_fields``; a 429 says ``Request was throttled`` and, here, the
  wait in ``retry_after`` (the gate fills it in); spent credit is 402.
- statuses ``starting`` (queued), ``processing``, ``succeeded``, ``failed``, ``canceled``.
- a finished prediction's input, output and files are removed ``output_lifetime_seconds`` after
  it ends (one hour on Replicate): then ``data_removed`` is true, ``output`` null, and the video
  URLs handed out stop working.
- webhooks are signed per Standard Webhooks with the ``webhook_secret`` knob (``whsec_`` and
  base64): ``webhook-signature: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))``.

The models and the inputs they check are those of their replicate.com schemas (Wan 2.2 fast:
``num_frames`` 81-100, ``frames_per_second`` 5-24, ``aspect_ratio`` 16:9 or 9:16); inputs a model
does not name are let through, as Replicate does with extra fields.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wanbatch.simulator.dialects import Reply, Request

if TYPE_CHECKING:
    from wanbatch.simulator.app import SimState, Task

_T2V_22 = {"frames": (81, 100), "ratios": ("16:9", "9:16"), "image": False}
_I2V_22 = {"frames": (81, 100), "ratios": None, "image": True}
MODELS: dict[str, dict[str, Any]] = {
    "wan-video/wan-2.2-t2v-fast": _T2V_22,
    "wan-video/wan-2.2-i2v-fast": _I2V_22,
    "wavespeedai/wan-2.1-t2v-480p": {"frames": None, "ratios": ("16:9", "9:16"), "image": False},
    "wavespeedai/wan-2.1-i2v-480p": {"frames": None, "ratios": None, "image": True},
}
_TITLES = {
    "auth": "Unauthenticated",
    "rate_limited": "Request was throttled",
    "server": "Internal Server Error",
    "not_found": "Not found",
    "invalid": "Input validation failed",
    "not_json": "Invalid JSON",
    "credits": "Insufficient credit",
}
_WORDS = {"queued": "starting", "running": "processing"}
PAGE = 100


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` for ``body`` under ``secret``."""
    key = base64.b64decode(secret.split("_", 1)[-1])
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class ReplicateDialect:
    name = "replicate"
    base_path = "/v1"

    def __init__(self) -> None:
        self.canceled: dict[str, float] = {}  # prediction id -> when it was canceled

    def key_of(self, headers: Mapping[str, str]) -> str:
        auth = headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else ""

    def error(self, status: int, kind: str, message: str) -> Reply:
        payload: dict[str, Any] = {
            "title": _TITLES.get(kind, "Error"),
            "detail": message,
            "status": status,
        }
        if kind == "rate_limited":
            payload["detail"] = "Request was throttled."
            payload["retry_after"] = None  # the simulator's gate puts the wait here
        return status, payload, {}

    def route(self, state: SimState, key: str, request: Request) -> Reply:
        path, method = request.path.rstrip("/"), request.method
        parts = path.strip("/").split("/")
        if (
            method == "POST"
            and len(parts) == 4
            and parts[0] == "models"
            and parts[3] == ("predictions")
        ):
            return self._create(state, key, f"{parts[1]}/{parts[2]}", request)
        if method == "GET" and path == "/predictions":
            return self._list(state, key, request)
        if method == "GET" and path == "/webhooks/default/secret":
            return 200, {"key": state.config.webhook_secret}, {}
        if parts[0] == "predictions" and len(parts) in (2, 3):
            task = state.task_of(key, parts[1])
            if task is None:
                return self.error(404, "not_found", "The requested resource could not be found.")
            if method == "GET" and len(parts) == 2:
                state.count_poll(task)
                return 200, self.view(state, task), {}
            if method == "POST" and len(parts) == 3 and parts[2] == "cancel":
                now = time.time()
                if now < task.finish and task.id not in self.canceled:
                    self.canceled[task.id] = now
                return 200, self.view(state, task), {}
        return self.error(404, "not_found", f"No route {method} {request.path}")

    def _create(self, state: SimState, key: str, model: str, request: Request) -> Reply:
        try:
            body = json.loads(request.body)
        except ValueError:
            return self.error(400, "not_json", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self.error(400, "not_json", "The request body must be a JSON object.")
        given = body.get("input")
        fields = given if isinstance(given, dict) else {}
        state.count_create(str(fields.get("prompt", "")), None)
        schema = MODELS.get(model)
        if schema is None:
            return self.error(404, "not_found", "The requested resource could not be found.")
        problems = _check(fields, schema, body)
        if problems:
            status, payload, extra = self.error(422, "invalid", "- " + "\n- ".join(problems))
            payload["invalid_fields"] = [
                {"type": "invalid", "field": p.split(":")[0], "description": p} for p in problems
            ]
            return status, payload, extra
        stored = {
            "prompt": fields["prompt"],
            "model": model,
            "input": fields,
            "api_base": f"http://{request.headers.get('host', '')}{self.base_path}",
        }
        task = state.admit(key, stored, None)
        if task is None:
            return self.error(402, "credits", "You have insufficient credit to run this model.")
        webhook = body.get("webhook")
        events = body.get("webhook_events_filter", ["start", "output", "logs", "completed"])
        if isinstance(webhook, str) and "completed" in events:
            state.notify_later(task, webhook, self.notice)
        return 201, self.view(state, task), {}

    def _list(self, state: SimState, key: str, request: Request) -> Reply:
        after = _parse_time(request.query.get("created_after"))
        mine = [
            task
            for task in state.tasks.values()
            if task.key == key and (after is None or task.created >= after)
        ]
        mine.sort(key=lambda task: task.created, reverse=True)
        start = int(request.query.get("cursor", "0") or 0)
        page = mine[start : start + PAGE]
        base = str(page[0].body.get("api_base", "")) if page else ""
        more = start + PAGE < len(mine)
        return (
            200,
            {
                "next": f"{base}/predictions?cursor={start + PAGE}" if more else None,
                "previous": None,
                "results": [self.view(state, task) for task in page],
            },
            {},
        )

    def view(self, state: SimState, task: Task) -> dict[str, Any]:
        now = time.time()
        canceled = self.canceled.get(task.id)
        word = state.word(task, now)
        status = "canceled" if canceled is not None else _WORDS.get(word, word)
        ended = canceled if canceled is not None else task.finish
        done = status in ("succeeded", "failed", "canceled")
        removed = done and now >= ended + state.config.output_lifetime_seconds
        base = str(task.body.get("api_base", ""))
        out: dict[str, Any] = {
            "id": task.id,
            "model": task.body.get("model"),
            "version": "hidden",
            "input": {} if removed else task.body.get("input", {}),
            "logs": None if removed else "",
            "output": None,
            "data_removed": removed,
            "error": None,
            "status": status,
            "source": "api",
            "created_at": _iso(task.created),
            "urls": {
                "get": f"{base}/predictions/{task.id}",
                "cancel": f"{base}/predictions/{task.id}/cancel",
            },
        }
        if now >= task.start:
            out["started_at"] = _iso(task.start)
        if done:
            out["completed_at"] = _iso(ended)
            out["metrics"] = {"predict_time": round(max(0.0, ended - task.start), 3)}
        if status == "succeeded" and not removed:
            expires = min(
                now + state.config.url_ttl_seconds, ended + state.config.output_lifetime_seconds
            )
            stamp = f"{expires:.3f}"
            out["output"] = (
                f"{state.cdn_base}/v/{task.id}.mp4?exp={stamp}"
                f"&sig={state.signature(task.id, stamp)}"
            )
        elif status == "failed":
            out["error"] = state.failure(task)[0]
        return out

    def notice(self, state: SimState, task: Task) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(self.view(state, task)).encode()
        message_id = (
            "msg_" + hashlib.sha256(f"{task.id}-{time.time_ns()}".encode()).hexdigest()[:24]
        )
        timestamp = str(int(time.time()))
        return body, {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign(state.config.webhook_secret, message_id, timestamp, body),
        }


def _check(
    fields: Mapping[str, Any], schema: Mapping[str, Any], body: Mapping[str, Any]
) -> list[str]:
    """The input's problems, as Replicate's 422 lists them."""
    problems = []
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append("input.prompt: prompt is required")
    frames = schema["frames"]
    if frames is not None and "num_frames" in fields:
        value = fields["num_frames"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (frames[0] <= value <= frames[1])
        ):
            problems.append(f"input.num_frames: must be from {frames[0]} to {frames[1]}")
    fps = fields.get("frames_per_second", 16)
    if isinstance(fps, bool) or not isinstance(fps, int) or not 5 <= fps <= 24:
        problems.append("input.frames_per_second: must be from 5 to 24")
    ratios = schema["ratios"]
    if ratios is not None and fields.get("aspect_ratio", ratios[0]) not in ratios:
        problems.append(f"input.aspect_ratio: must be one of {', '.join(ratios)}")
    image = fields.get("image")
    if schema["image"] and not (isinstance(image, str) and image.startswith(("http", "data:"))):
        problems.append("input.image: an image URL is required")
    webhook = body.get("webhook")
    if webhook is not None and not (
        isinstance(webhook, str) and webhook.startswith(("http://", "https://"))
    ):
        problems.append("webhook: must be an http(s) URL")
    return problems


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
