"""fal's queue API, as its docs describe it (fal.ai/docs, model-apis/inference/queue, errors,
request-errors, webhooks; the Wan endpoints' model pages).

``POST /{endpoint}`` with ``Authorization: Key KEY`` and the model's input answers ``{request_id,
gateway_request_id, status_url, response_url, cancel_url}``; the URLs live under the *app* id
(``/{owner}/{app}/requests/{id}/status``, ``.../{id}`` and ``.../{id}/cancel``), which drops the
endpoint's sub-path. Status: IN_QUEUE (``queue_position``), IN_PROGRESS, COMPLETED. As the docs
warn, a failed generation shows only when the result is fetched: a content-filtered prompt
answers 422 with a ``content_policy_violation`` detail, any other failure 500 with ``error_type``
``runner_server_error``. A spent balance is 403 "User is locked. Reason: Exhausted balance".
``?fal_webhook=URL`` is POSTed ``{request_id, gateway_request_id, status: OK | ERROR, payload,
error}`` when the request ends. Validation errors are 422 ``{"detail": [{loc, msg, type}]}``.
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

# endpoint -> (needs an image, (lowest, highest num_frames), (lowest, highest fps), ratios)
ENDPOINTS: dict[str, tuple[bool, tuple[int, int], tuple[int, int], tuple[str, ...]]] = {
    "fal-ai/wan/v2.2-a14b/text-to-video": (False, (17, 161), (4, 60), ("16:9", "9:16", "1:1")),
    "fal-ai/wan/v2.2-a14b/image-to-video": (
        True, (17, 161), (4, 60), ("auto", "16:9", "9:16", "1:1"),
    ),
    "fal-ai/wan-t2v": (False, (81, 100), (5, 24), ("16:9", "9:16")),
    "fal-ai/wan-i2v": (True, (81, 100), (5, 24), ("auto", "16:9", "9:16")),
}  # fmt: skip
RESOLUTIONS = ("480p", "580p", "720p")
_REQUEST = re.compile(r"^/([^/]+)/([^/]+)/requests/([^/]+)(/status|/cancel)?$")
_BALANCE = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)
_ENDPOINT_KEY = "_fal_endpoint"  # kept beside the input in the task's body


class FalDialect:
    name = "fal"
    base_path = ""  # the queue host's root: https://queue.fal.run/{endpoint}

    def __init__(self) -> None:
        self.cancelled: set[str] = set()

    def key_of(self, headers: Mapping[str, str]) -> str:
        auth = headers.get("authorization", "")
        return auth[4:].strip() if auth.lower().startswith("key ") else ""

    def error(self, status: int, kind: str, message: str) -> Reply:
        if kind == "credits":
            return 403, {"detail": _BALANCE}, {}
        if kind in ("invalid", "not_json"):
            kind = "json_invalid" if kind == "not_json" else "value_error"
            return status, {"detail": [{"loc": ["body"], "msg": message, "type": kind}]}, {}
        return status, {"detail": message}, {}  # auth, rate limit, the gateway's 5xx, 404

    def route(self, state: SimState, key: str, request: Request) -> Reply:
        path = request.path.rstrip("/")
        match = _REQUEST.match(path)
        if match is None:
            if request.method == "POST" and path.lstrip("/") in ENDPOINTS:
                return self._submit(state, key, request, path.lstrip("/"))
            return self.error(404, "not_found", f"Application {path.lstrip('/')!r} not found")
        owner, app, request_id, tail = match.groups()
        task = state.task_of(key, request_id)
        if task is None or _app(task) != f"{owner}/{app}":
            return self.error(404, "not_found", f"Request {request_id} not found")
        if tail == "/status" and request.method == "GET":
            state.count_poll(task)
            return 200, self.status(state, task, _origin(request)), {}
        if tail is None and request.method == "GET":
            return self.result(state, task)
        if tail == "/cancel" and request.method == "PUT":
            if state.word(task, time.time()) != "queued" or task.id in self.cancelled:
                return 400, {"status": "ALREADY_COMPLETED"}, {}
            self.cancelled.add(task.id)
            return 202, {"status": "CANCELLATION_REQUESTED"}, {}
        return self.error(405, "not_found", f"Method {request.method} not allowed")

    def _submit(self, state: SimState, key: str, request: Request, endpoint: str) -> Reply:
        try:
            body = json.loads(request.body)
        except ValueError:
            return self.error(422, "not_json", "The body is not valid JSON")
        if not isinstance(body, dict):
            return self.error(422, "not_json", "The body must be a JSON object")
        state.count_create(str(body.get("prompt", "")), None)
        problem = _validate(body, endpoint)
        if problem is not None:
            field, message = problem
            return (
                422,
                {"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]},
                {},
            )
        task = state.admit(key, {**body, _ENDPOINT_KEY: endpoint}, None)
        if task is None:
            return self.error(403, "credits", "")
        webhook = request.query.get("fal_webhook")
        if webhook:
            state.notify_later(task, webhook, self.notice)
        urls = _urls(_origin(request), task)
        return 200, {"request_id": task.id, "gateway_request_id": task.id, **urls}, {}

    def status(self, state: SimState, task: Task, origin: str) -> dict[str, Any]:
        now = time.time()
        word = "failed" if task.id in self.cancelled else state.word(task, now)
        out: dict[str, Any] = {"request_id": task.id, **_urls(origin, task), "logs": None}
        if word == "queued":
            ahead = sum(1 for t in state.tasks.values() if now < t.start and t.start < task.start)
            out.update(status="IN_QUEUE", queue_position=ahead)
        elif word == "running":
            out["status"] = "IN_PROGRESS"
        else:  # succeeded or failed alike: the result tells which
            out.update(status="COMPLETED", metrics={"inference_time": task.finish - task.start})
        return out

    def result(self, state: SimState, task: Task) -> Reply:
        if task.id in self.cancelled:
            return 499, {"detail": "Request was cancelled", "error_type": "client_cancelled"}, {}
        word = state.word(task, time.time())
        if word in ("queued", "running"):
            return 400, {"detail": "Request is still in progress"}, {}
        if word == "succeeded":
            url = state.signed_url(task.id)
            video = {"url": url, "content_type": "video/mp4", "file_name": f"{task.id}.mp4"}
            return 200, {"video": video, "seed": 42, "prompt": task.body.get("prompt", "")}, {}
        message, _ = state.failure(task)
        if task.flagged:
            detail = {
                "loc": ["body", "prompt"],
                "msg": message,
                "type": "content_policy_violation",
                "url": "https://docs.fal.ai/errors#content_policy_violation",
            }
            return 422, {"detail": [detail]}, {"x-fal-retryable": "false"}
        error = {"detail": message, "error_type": "runner_server_error"}
        return 500, error, {"x-fal-error-type": "runner_server_error"}

    def notice(self, state: SimState, task: Task) -> tuple[bytes, dict[str, str]]:
        status, payload, _ = self.result(state, task)
        body: dict[str, Any] = {
            "request_id": task.id,
            "gateway_request_id": task.id,
            "status": "OK" if status == 200 else "ERROR",
            "payload": payload,
        }
        if status != 200:
            body["error"] = f"Invalid status code: {status}"
        headers = {"content-type": "application/json", "x-fal-webhook-request-id": task.id}
        return json.dumps(body).encode(), headers


def _origin(request: Request) -> str:
    return "http://" + request.headers.get("host", "127.0.0.1")


def _app(task: Task) -> str:
    return "/".join(str(task.body.get(_ENDPOINT_KEY, "")).split("/")[:2])


def _urls(origin: str, task: Task) -> dict[str, str]:
    base = f"{origin}/{_app(task)}/requests/{task.id}"
    return {"status_url": base + "/status", "response_url": base, "cancel_url": base + "/cancel"}


def _validate(body: dict[str, Any], endpoint: str) -> tuple[str, str] | None:
    """(field, message) for the first input the endpoint refuses."""
    image, frames, fps, ratios = ENDPOINTS[endpoint]
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt", "Field required: a non-empty prompt"
    for field, (low, high), default in (
        ("num_frames", frames, frames[0]),
        ("frames_per_second", fps, 16),
    ):
        value = body.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return field, f"Input should be an integer from {low} to {high}"
    if body.get("aspect_ratio", ratios[0]) not in ratios:
        return "aspect_ratio", f"Input should be {', '.join(repr(r) for r in ratios)}"
    if body.get("resolution", "720p") not in RESOLUTIONS:
        return "resolution", f"Input should be {', '.join(repr(r) for r in RESOLUTIONS)}"
    url = body.get("image_url")
    if image and url is None:
        return "image_url", "Field required"
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        return "image_url", "Input should be a valid URL"
    return None
