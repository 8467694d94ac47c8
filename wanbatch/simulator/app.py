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
from wanbatch.simulator.dialects import Reply, Request, SimDialect, dialect
from wanbatch.simulator.statefile import StateFile
from wanbatch.simulator.video import make_video

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

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
        self._log: StateFile | None = None
        self.dialect: SimDialect = dialect(config.provider)
        self.pending_notices: list[
            tuple[Task, str, Callable[[SimState, Task], tuple[bytes, dict[str, str]]]]
        ] = []
        self._load()

    # --- persistence (so `wanbatch run --simulate` can resume after a restart) --------------

    def _load(self) -> None:
        """Replay the state file's records (see ``statefile``)."""
        if self.state_file is None:
            return
        self._log = StateFile(self.state_file)
        records, afresh = self._log.read()
        for record in records:
            self._apply(record)
        if afresh:
            tasks = [vars(task) for task in self.tasks.values()]
            self._log.rewrite({"tasks": tasks, "credits": self.credits})

    def _apply(self, record: Any) -> None:
        if not isinstance(record, dict):
            raise ValueError(f"a record of the simulator's state is not an object: {record!r:.80}")
        for raw in record.get("tasks", []):
            task = Task(**raw)
            self.tasks[task.id] = task
            if task.idempotency_key:
                self.by_idempotency[(task.key, task.idempotency_key)] = task.id
        self.credits.update(record.get("credits", {}))

    def _append(self, tasks: list[Task], key: str) -> None:
        """One record: ``tasks`` and ``key``'s balance."""
        if self._log is not None:
            records = [vars(task) for task in tasks]
            self._log.append({"tasks": records, "credits": {key: self.credits[key]}})

    def save_credits(self, key: str) -> None:
        """Keep ``key``'s balance (after a top-up) in the state file."""
        self._append([], key)

    def close(self) -> None:
        """Close the state file (the server does this when it stops)."""
        if self._log is not None:
            self._log.close()

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
        self._append([task], key)
        return task

    def flagged_word(self, prompt: str) -> str | None:
        words = re.findall(r"[a-z0-9']+", prompt.lower())
        return next((word for word in self.config.flagged_words if word.lower() in words), None)

    # --- what the dialects share -------------------------------------------------------

    def task_of(self, key: str, task_id: str) -> Task | None:
        """The task ``task_id`` if ``key`` made it."""
        task = self.tasks.get(task_id)
        return task if task is not None and task.key == key else None

    def count_poll(self, task: Task) -> None:
        self.counters["polls_total"] += 1
        self.polls_by_task[task.id] += 1

    def count_create(self, prompt: str, idempotency_key: str | None) -> None:
        self.counters["creates_total"] += 1
        self.creates_by_prompt[prompt]["requests"] += 1
        if idempotency_key:
            self.creates_by_key[idempotency_key]["requests"] += 1

    def admit(self, key: str, body: dict[str, Any], idempotency_key: str | None) -> Task | None:
        """A new task charged to ``key``; None when its credits are spent."""
        if self.credits.get(key, 0) < 1:
            return None
        self.credits[key] -= 1
        task = self.create_task(key, body, idempotency_key)
        if idempotency_key:
            self.by_idempotency[(key, idempotency_key)] = task.id
            self.creates_by_key[idempotency_key]["accepted"] += 1
        self.creates_by_prompt[str(body.get("prompt", ""))]["accepted"] += 1
        self.counters["creates_accepted"] += 1
        return task

    def word(self, task: Task, now: float) -> str:
        """The task's state in neutral words: queued, running, succeeded, failed."""
        return task.status(now)

    def failure(self, task: Task) -> tuple[str, str]:
        """(message, code) of a failed task."""
        if task.flagged:
            return (
                "generation blocked by the content filter: the prompt asks for a real"
                f" person's likeness ({task.flagged!r})",
                "content_filtered",
            )
        return "generation failed: the model could not render this prompt", "generation_failed"

    def notify_later(
        self, task: Task, url: str, notice: Callable[[SimState, Task], tuple[bytes, dict[str, str]]]
    ) -> None:
        """Send ``url`` a notice (``notice``'s body and headers) when ``task`` ends."""
        self.pending_notices.append((task, url, notice))

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


def _error(message: str, kind: str, code: str) -> dict[str, Any]:
    """An admin route's error (the admin routes are the simulator's own, in one form)."""
    return {"error": {"message": message, "type": kind, "code": code}}


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


class ApiApp:
    """The API in the configured provider's dialect, and the ``/_sim`` admin endpoints."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._webhooks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def _notifier(self) -> httpx.AsyncClient:
        """One client for every notice, its connections kept open: a provider's notice system
        does not open a new connection per notice (one did, and several tasks ending together
        queued their notices behind each other's connects)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5)
        return self._client

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
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        answer: Reply | None
        with state.lock:
            speaker = state.dialect
            state.counters["requests_total"] += 1
            key = speaker.key_of(headers)
            if key not in state.credits:
                state.counters["auth_failures"] += 1
                answer = speaker.error(401, "auth", "Invalid or missing API key")
            else:
                answer = self._gate(key)
            if answer is None:
                base = speaker.base_path
                if path == base or path.startswith(base + "/"):
                    request = Request(method, path[len(base) :] or "/", query, headers, body)
                    answer = speaker.route(state, key, request)
                else:
                    answer = speaker.error(404, "not_found", f"No route {method} {path}")
            notices, state.pending_notices = state.pending_notices, []
        for task, url, notice in notices:
            self._schedule_webhook(task, url, notice)
        status, payload, extra = answer
        await _json(send, status, payload, extra)

    def _gate(self, key: str) -> Reply | None:
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
            status, payload, extra = state.dialect.error(429, "rate_limited", "Rate limit exceeded")
            if isinstance(payload, dict) and "retry_after" in payload:  # said in the body
                payload["retry_after"] = max(1, math.ceil(wait))
            return status, payload, {**extra, **headers}
        if state.config.error_rate and state.rng.random() < state.config.error_rate:
            state.counters["server_errors_total"] += 1
            status = state.rng.choice((500, 503))
            return state.dialect.error(status, "server", "Upstream error, retry with backoff")
        return None

    def _schedule_webhook(
        self,
        task: Task,
        url: str,
        notice: Callable[[SimState, Task], tuple[bytes, dict[str, str]]],
    ) -> None:
        async def deliver() -> None:
            await asyncio.sleep(max(0.0, task.finish - time.time()))
            with self.state.lock:
                body, headers = notice(self.state, task)
            try:
                await self._notifier().post(url, content=body, headers=headers)
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
                state.save_credits(key)
                return 200, {"key_credits": state.credits[key]}
            if path == "/_sim/config" and method == "POST":
                try:
                    state.config = state.config.replace(**data)
                except (ValueError, TypeError) as exc:
                    return 400, _error(str(exc), "invalid_request_error", "invalid_knob")
                return 200, asdict(state.config)
        return 404, _error(f"No admin route {method} {path}", "invalid_request_error", "not_found")


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
