"""The fake Wan API and its CDN as plain ASGI apps, over one shared ``SimState``.

Task status is derived from the clock on each request: at creation a task is given its start
(when a render slot frees up) and its finish time, so no background loop is needed except for
webhooks. Wall-clock time is used so that a saved state (``state_file``) survives a restart.

Over 400 lines: the API, the admin routes and the CDN share ``SimState`` and its lock, and the
lock's rule (never held across an ``await``) is easiest to keep in view in one file.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import heapq
import hmac
import json
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from wanbatch.simulator.config import SimConfig
from wanbatch.simulator.video import make_video

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_RATIO = re.compile(r"^[1-9][0-9]{0,4}:[1-9][0-9]{0,4}$")
# A request counts as "inside the window" only if it arrives at least this long after the 429
# that opened the window (earlier ones were already on the wire) and this long before its end.
_WINDOW_TOLERANCE = 0.05


@dataclass
class Task:
    id: str
    key: str
    body: dict[str, Any]
    created: float
    start: float
    finish: float
    fails: bool
    idempotency_key: str | None = None
    flagged: str | None = None  # the flagged word that makes it fail, if any
    webhook_delivered: bool = False

    def status(self, now: float) -> str:
        if now < self.start:
            return "queued"
        if now < self.finish:
            return "running"
        return "failed" if self.fails or self.flagged else "succeeded"


class SimState:
    """Tasks, balances, buckets and counters, shared by the API and CDN listeners."""

    def __init__(self, config: SimConfig, state_file: Path | None = None) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.secret = hashlib.sha256(f"cdn-{config.seed}-{time.time_ns()}".encode()).digest()
        self.rng = random.Random(config.seed)
        self.tasks: dict[str, Task] = {}
        self.by_idempotency: dict[tuple[str, str], str] = {}
        self.slot_free: list[float] = [0.0] * max(1, config.slots)
        self.credits: dict[str, int] = {config.api_key: config.credits}
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self.blocked: dict[str, tuple[float, float]] = {}  # key -> (429 sent at, wait until)
        self.truncated: set[str] = set()
        self.counters: Counter[str] = Counter()
        self.creates_by_key: dict[str, Counter[str]] = defaultdict(Counter)
        self.creates_by_prompt: dict[str, Counter[str]] = defaultdict(Counter)
        self.polls_by_task: Counter[str] = Counter()
        self.render_total = 0.0  # seconds of rendering asked of the farm, for makespan bounds
        self.render_max = 0.0
        self.cdn_base = ""
        self.mirror_base = ""
        self.state_file = state_file
        self._load()

    # --- persistence (so `wanbatch run --simulate` can resume after a restart) --------------

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text())
        for raw in data.get("tasks", []):
            task = Task(**raw)
            self.tasks[task.id] = task
            if task.idempotency_key:
                self.by_idempotency[(task.key, task.idempotency_key)] = task.id
        self.credits.update(data.get("credits", {}))

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {"tasks": [asdict(task) for task in self.tasks.values()], "credits": self.credits}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state_file)

    # --- the render farm ------------------------------------------------------------------

    def render_seconds(self) -> float:
        config = self.config
        mean = config.generation_seconds
        if config.distribution == "uniform":
            seconds = mean * (1 + config.spread * (2 * self.rng.random() - 1))
        elif config.distribution == "lognormal":
            sigma = config.spread
            seconds = self.rng.lognormvariate(math.log(max(mean, 1e-9)) - sigma * sigma / 2, sigma)
        else:
            seconds = mean
        return max(0.0, seconds * config.time_scale)

    def create_task(self, key: str, body: dict[str, Any], idempotency_key: str | None) -> Task:
        now = time.time()
        start = max(now, heapq.heappop(self.slot_free))
        render = self.render_seconds()
        finish = start + render
        self.render_total += render
        self.render_max = max(self.render_max, render)
        heapq.heappush(self.slot_free, finish)
        task = Task(
            id=f"gen_{hashlib.sha256(f'{now}-{len(self.tasks)}-{self.rng.random()}'.encode()).hexdigest()[:12]}",
            key=key,
            body=body,
            created=now,
            start=start,
            finish=finish,
            fails=self.rng.random() < self.config.failure_rate,
            idempotency_key=idempotency_key,
            flagged=self.flagged_word(str(body.get("prompt", ""))),
        )
        self.tasks[task.id] = task
        self._save()
        return task

    def flagged_word(self, prompt: str) -> str | None:
        words = re.findall(r"[a-z0-9']+", prompt.lower())
        return next((word for word in self.config.flagged_words if word.lower() in words), None)

    def view(self, task: Task) -> dict[str, Any]:
        now = time.time()
        status = task.status(now)
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
            out["video_url"] = self.signed_url(task.id)
            out["completed_at"] = int(task.finish)
        elif status == "failed" and task.flagged:
            out["error"] = {
                "message": (
                    "generation blocked by the content filter: the prompt asks for a real"
                    f" person's likeness ({task.flagged!r})"
                ),
                "type": "content_policy_error",
                "code": "content_filtered",
            }
        elif status == "failed":
            out["error"] = {
                "message": "generation failed: the model could not render this prompt",
                "type": "generation_error",
                "code": "generation_failed",
            }
        return out

    def signed_url(self, task_id: str) -> str:
        expires = time.time() + self.config.url_ttl_seconds
        return f"{self.cdn_base}/v/{task_id}.mp4?exp={expires:.3f}&sig={self.signature(task_id, f'{expires:.3f}')}"

    def signature(self, task_id: str, expires: str) -> str:
        return hmac.new(self.secret, f"{task_id}:{expires}".encode(), "sha256").hexdigest()[:32]

    def video(self, task: Task) -> bytes:
        return make_video(str(task.body.get("prompt", "")), task.id, self.config.video_size)

    # --- rate limit -----------------------------------------------------------------------

    def take_token(self, key: str, now: float) -> float | None:
        """None if the request may go; otherwise the seconds the client should wait."""
        config = self.config
        if config.rate_limit_rps <= 0:
            return None
        tokens, updated = self.buckets.get(key, (config.rate_limit_burst, now))
        tokens = min(config.rate_limit_burst, tokens + (now - updated) * config.rate_limit_rps)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return None
        self.buckets[key] = (tokens, now)
        return (1.0 - tokens) / config.rate_limit_rps

    def block(self, key: str, now: float, until: float) -> None:
        """Remember that ``key`` was asked at ``now`` to wait until ``until``."""
        opened, current = self.blocked.get(key, (now, 0.0))
        if until > current:
            self.blocked[key] = (now if now >= current else opened, until)

    def stats(self) -> dict[str, Any]:
        return {
            **{name: self.counters[name] for name in _COUNTERS},
            "tasks_created": len(self.tasks),
            "creates_by_idempotency_key": {k: dict(v) for k, v in self.creates_by_key.items()},
            "creates_by_prompt": {k: dict(v) for k, v in self.creates_by_prompt.items()},
            "polls_by_task": dict(self.polls_by_task),
            "credits": dict(self.credits),
            "render_seconds_total": round(self.render_total, 6),
            "render_seconds_max": round(self.render_max, 6),
            "slots": self.config.slots,
        }


_COUNTERS = (
    "requests_total",
    "creates_total",
    "creates_accepted",
    "polls_total",
    "rate_limited_total",
    "requests_inside_wait_window",
    "server_errors_total",
    "auth_failures",
    "cdn_requests_total",
    "cdn_requests_with_authorization",
    "cdn_range_requests",
    "cdn_expired",
    "cdn_truncated",
    "cdn_redirects",
    "webhook_deliveries",
    "webhook_failures",
)


# --- ASGI plumbing --------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
    }


async def _respond(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    merged = {"content-length": str(len(body)), **(headers or {})}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in merged.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    request_id = f"req_{random.getrandbits(48):012x}"
    merged = {"content-type": "application/json", "x-request-id": request_id, **(headers or {})}
    await _respond(send, status, json.dumps(payload).encode(), merged)


def _error(message: str, kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


class ApiApp:
    """``/v1/video/generations`` and the ``/_sim`` admin endpoints."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._webhooks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/_sim/"):
            await self._admin(method, path, body, send)
            return
        state = self.state
        headers = _headers(scope)
        answer: tuple[int, dict[str, Any], dict[str, str]] | None
        with state.lock:
            state.counters["requests_total"] += 1
            auth = headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if key not in state.credits:
                state.counters["auth_failures"] += 1
                answer = (
                    401,
                    _error(
                        "Invalid or missing API key", "invalid_request_error", "invalid_api_key"
                    ),
                    {},
                )
            else:
                answer = self._gate(key)
            if answer is None:
                answer = self._route(method, path, key, headers, body)
        status, payload, extra = answer
        await _json(send, status, payload, extra)

    def _gate(self, key: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Rate limit and injected server errors; None lets the request through."""
        state = self.state
        now = time.time()
        opened, until = state.blocked.get(key, (0.0, 0.0))
        if opened + _WINDOW_TOLERANCE < now < until - _WINDOW_TOLERANCE:
            state.counters["requests_inside_wait_window"] += 1
        wait = state.take_token(key, now)
        if wait is not None:
            state.counters["rate_limited_total"] += 1
            headers: dict[str, str] = {}
            fmt = state.config.retry_after_format
            if fmt == "seconds":
                seconds = max(1, math.ceil(wait))
                headers["retry-after"] = str(seconds)
                state.block(key, now, now + seconds)
            elif fmt == "http-date":
                until = math.ceil(now + wait)
                headers["retry-after"] = email.utils.formatdate(until, usegmt=True)
                state.block(key, now, float(until))
            return (
                429,
                _error("Rate limit exceeded", "rate_limit_error", "rate_limit_exceeded"),
                headers,
            )
        if state.config.error_rate and state.rng.random() < state.config.error_rate:
            state.counters["server_errors_total"] += 1
            status = state.rng.choice((500, 503))
            return (
                status,
                _error("Upstream error, retry with backoff", "server_error", f"upstream_{status}"),
                {},
            )
        return None

    def _route(
        self, method: str, path: str, key: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if path.rstrip("/") == "/v1/video/generations" and method == "POST":
            return self._create(key, headers, body)
        if path.startswith("/v1/video/generations/") and method == "GET":
            task_id = path.rsplit("/", 1)[-1]
            task = self.state.tasks.get(task_id)
            if task is None or task.key != key:
                return 404, _error(f"No task {task_id}", "invalid_request_error", "not_found"), {}
            self.state.counters["polls_total"] += 1
            self.state.polls_by_task[task_id] += 1
            return 200, self.state.view(task), {}
        return 404, _error(f"No route {method} {path}", "invalid_request_error", "not_found"), {}

    def _create(
        self, key: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        state = self.state
        state.counters["creates_total"] += 1
        idem = headers.get("idempotency-key")
        try:
            request = json.loads(body)
        except ValueError:
            return 400, _error("The body is not JSON", "invalid_request_error", "invalid_json"), {}
        if not isinstance(request, dict):
            return (
                400,
                _error("The body must be a JSON object", "invalid_request_error", "invalid_json"),
                {},
            )
        problem = _validate(request, state.config.models)
        prompt = str(request.get("prompt", ""))
        state.creates_by_prompt[prompt]["requests"] += 1
        if idem:
            state.creates_by_key[idem]["requests"] += 1
        if problem is not None:
            field, message = problem
            return 400, _error(message, "invalid_request_error", f"invalid_{field}"), {}
        if idem and state.config.honour_idempotency:
            existing = state.by_idempotency.get((key, idem))
            if existing is not None:
                return (
                    200,
                    {"id": existing, "status": state.tasks[existing].status(time.time())},
                    {},
                )
        if state.credits.get(key, 0) < 1:
            return (
                402,
                _error(
                    "Insufficient credits: top up your balance",
                    "billing_error",
                    "insufficient_credits",
                ),
                {},
            )
        state.credits[key] -= 1
        task = state.create_task(key, request, idem)
        if idem:
            state.by_idempotency[(key, idem)] = task.id
            state.creates_by_key[idem]["accepted"] += 1
        state.creates_by_prompt[prompt]["accepted"] += 1
        state.counters["creates_accepted"] += 1
        webhook = request.get("webhook_url")
        if isinstance(webhook, str):
            self._schedule_webhook(task, webhook)
        return 200, {"id": task.id, "status": "queued"}, {}

    def _schedule_webhook(self, task: Task, url: str) -> None:
        async def deliver() -> None:
            await asyncio.sleep(max(0.0, task.finish - time.time()))
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    await client.post(url, json=self.state.view(task))
                self.state.counters["webhook_deliveries"] += 1
            except httpx.HTTPError:
                self.state.counters["webhook_failures"] += 1

        job = asyncio.get_running_loop().create_task(deliver())
        self._webhooks.add(job)
        job.add_done_callback(self._webhooks.discard)

    async def _admin(self, method: str, path: str, body: bytes, send: Send) -> None:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            await _json(
                send, 400, _error("The body is not JSON", "invalid_request_error", "invalid_json")
            )
            return
        answer = self._admin_answer(method, path, data)
        await _json(send, *answer)

    def _admin_answer(self, method: str, path: str, data: Any) -> tuple[int, Any]:
        """The admin route's status and payload, decided under the state lock (never held
        across an ``await``)."""
        state = self.state
        with state.lock:
            if path == "/_sim/stats" and method == "GET":
                return 200, state.stats()
            if path == "/_sim/credits" and method == "POST":
                key = str(data.get("key", state.config.api_key))
                state.credits[key] = state.credits.get(key, 0) + int(data.get("credits", 0))
                state._save()
                return 200, {"key_credits": state.credits[key]}
            if path == "/_sim/config" and method == "POST":
                try:
                    state.config = state.config.replace(**data)
                except (ValueError, TypeError) as exc:
                    return 400, _error(str(exc), "invalid_request_error", "invalid_knob")
                return 200, asdict(state.config)
        return 404, _error(f"No admin route {method} {path}", "invalid_request_error", "not_found")


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


class CdnApp:
    """The video host: signed URLs, Range, optional truncation and cross-origin redirects."""

    def __init__(self, state: SimState, *, mirror: bool = False) -> None:
        self.state = state
        self.mirror = mirror

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        state = self.state
        headers = _headers(scope)
        query = parse_qs(scope.get("query_string", b"").decode())
        match = re.fullmatch(r"/v/(gen_[0-9a-f]+)\.mp4", scope["path"])
        with state.lock:
            state.counters["cdn_requests_total"] += 1
            if "authorization" in headers:
                state.counters["cdn_requests_with_authorization"] += 1
            if "range" in headers:
                state.counters["cdn_range_requests"] += 1
            task = state.tasks.get(match.group(1)) if match else None
            expires = query.get("exp", [""])[0]
            signature = query.get("sig", [""])[0]
            valid = (
                task is not None
                and task.status(time.time()) == "succeeded"
                and hmac.compare_digest(signature, state.signature(task.id, expires))
            )
            expired = valid and float(expires) < time.time()
            if expired:
                state.counters["cdn_expired"] += 1
            redirect = valid and not expired and state.config.redirect_downloads and not self.mirror
            if redirect:
                state.counters["cdn_redirects"] += 1
            truncate = (
                valid
                and not expired
                and not redirect
                and task is not None
                and "range" not in headers
                and state.config.truncate_first_download
                and task.id not in state.truncated
            )
            if truncate and task is not None:
                state.truncated.add(task.id)
                state.counters["cdn_truncated"] += 1
        if not valid or task is None:
            await _respond(send, 404 if task is None else 403, b"not found or bad signature")
            return
        if expired:
            await _respond(send, 403, b"this signed URL has expired")
            return
        if redirect:
            location = f"{state.mirror_base}{scope['path']}?{scope['query_string'].decode()}"
            await _respond(send, 302, b"", {"location": location})
            return
        data = state.video(task)
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        base = {"content-type": "video/mp4", "accept-ranges": "bytes", "etag": etag}
        wanted = headers.get("range", "")
        range_match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
        if_range = headers.get("if-range")
        if range_match and (if_range is None or if_range == etag):
            start = int(range_match.group(1))
            end = int(range_match.group(2)) if range_match.group(2) else len(data) - 1
            if start >= len(data):
                await _respond(send, 416, b"", {"content-range": f"bytes */{len(data)}"})
                return
            end = min(end, len(data) - 1)
            part = data[start : end + 1]
            await _respond(
                send, 206, part, {**base, "content-range": f"bytes {start}-{end}/{len(data)}"}
            )
            return
        if truncate:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (k.encode(), v.encode())
                        for k, v in {**base, "content-length": str(len(data))}.items()
                    ],
                }
            )
            await send(
                {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
            )
            raise ConnectionAbortedError("simulated cut-off download")
        await _respond(send, 200, data, base)
