"""The wire: the only module that imports httpx.

``WanApi`` speaks the API of wanapi.io (``POST /video/generations``, ``GET /video/generations/{id}``)
and turns every answer into a ``TaskView`` or a wanbatch error; it is the one adapter to replace
for another provider. ``VideoFetcher`` streams videos from the video host with a separate client
that holds no credentials at all, so the key cannot follow a redirect or reach the CDN.

Every httpx exception is translated here (``_map_transport_errors``), ``raise ... from exc``;
messages never contain the key.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from wanbatch import __version__
from wanbatch.backoff import parse_retry_after
from wanbatch.errors import (
    ApiError,
    AuthError,
    CreditsExhaustedError,
    InsecureURLError,
    JobRejectedError,
    NotSentError,
    RateLimitedError,
    TransientApiError,
    TransientDownloadError,
    VideoUrlExpiredError,
)
from wanbatch.models import JobSpec, TaskStatus, TaskView, VideoChunkHeader

USER_AGENT = f"wanbatch/{__version__}"
_SUCCEEDED = {"succeeded", "success", "completed", "complete", "done"}
_FAILED = {"failed", "failure", "error", "errored", "cancelled", "canceled", "rejected"}
_PENDING = {"queued", "pending", "submitted", "waiting", "created"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, allow_insecure_http: bool = False) -> str:
    """The base URL without a trailing slash; plain http:// only to loopback unless allowed."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InsecureURLError(f"the API base URL {base_url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise InsecureURLError(
            f"refusing to send the API key over plain http:// to {parts.hostname}; "
            "use https://, or pass --allow-insecure-http if you really mean it"
        )
    return base_url.rstrip("/")


@contextlib.contextmanager
def _map_transport_errors(what: str, secret: str | None = None) -> Iterator[None]:
    """Translate httpx's transport exceptions into wanbatch errors."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # before any byte was sent
        raise NotSentError(
            f"{what}: could not connect: {_redact(str(exc) or type(exc).__name__, secret)}"
        ) from exc
    except httpx.TimeoutException as exc:
        raise TransientApiError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:  # connect errors, resets, protocol errors
        raise TransientApiError(
            f"{what}: {_redact(str(exc) or type(exc).__name__, secret)}"
        ) from exc


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[key]") if secret else text


def normalise_status(raw: str) -> TaskStatus:
    word = raw.strip().lower()
    if word in _SUCCEEDED:
        return TaskStatus.SUCCEEDED
    if word in _FAILED:
        return TaskStatus.FAILED
    if word in _PENDING:
        return TaskStatus.PENDING
    return TaskStatus.RUNNING  # any other word means "not done yet"


class WanApi:
    """The wanapi.io adapter: create and get tasks. Use ``async with``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        max_connections: int = 8,
        timeout_seconds: float = 30.0,
        allow_insecure_http: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._key = api_key
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,  # a redirect must never carry the key elsewhere
            transport=transport,
            trust_env=False,
        )

    async def __aenter__(self) -> WanApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def create(self, job: JobSpec, idempotency_key: str) -> TaskView:
        body: dict[str, Any] = {
            "model": job.model,
            "prompt": job.prompt,
            "duration": job.duration,
            "aspect_ratio": job.aspect_ratio,
        }
        if job.image is not None:
            body["image"] = job.image
        body.update(job.extra)
        with _map_transport_errors("create", self._key):
            response = await self._http.post(
                "video/generations", json=body, headers={"Idempotency-Key": idempotency_key}
            )
        return self._task_view(response, "create")

    async def get(self, task_id: str) -> TaskView:
        with _map_transport_errors("poll", self._key):
            response = await self._http.get(f"video/generations/{task_id}")
        return self._task_view(response, "poll")

    def _task_view(self, response: httpx.Response, what: str) -> TaskView:
        if response.status_code >= 300:
            raise self._error(response, what)
        payload = _json_object(response)
        if payload is None:
            raise TransientApiError(
                f"{what}: the answer is not a JSON object",
                status=response.status_code,
                request_id=_request_id(response),
            )
        task_id = payload.get("id")
        raw_status = payload.get("status")
        if not isinstance(task_id, str) or not task_id or not isinstance(raw_status, str):
            raise TransientApiError(
                f"{what}: the answer has no task id or status",
                status=response.status_code,
                request_id=_request_id(response),
            )
        video_url = payload.get("video_url")
        error_message, error_code = _error_fields(payload.get("error"))
        return TaskView(
            task_id=task_id,
            status=normalise_status(raw_status),
            raw_status=raw_status,
            video_url=video_url if isinstance(video_url, str) and video_url else None,
            error_message=error_message,
            error_code=error_code,
        )

    def _error(self, response: httpx.Response, what: str) -> ApiError:
        status = response.status_code
        payload = _json_object(response)
        message, code = _error_fields(payload.get("error") if payload else None)
        if message is None:
            text = response.text.strip()[:200]
            message = text or response.reason_phrase or "no message"
        message = _redact(f"{what}: {message}", self._key)
        kwargs: dict[str, Any] = {
            "status": status,
            "request_id": _request_id(response),
            "code": code,
        }
        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        if status == 400 or status == 422:
            return JobRejectedError(message, **kwargs)
        if status == 401 or status == 403:
            return AuthError(message, **kwargs)
        if status == 402:
            return CreditsExhaustedError(message, **kwargs)
        if status == 429:
            return RateLimitedError(message, retry_after_seconds=retry_after, **kwargs)
        if status == 404 and what == "poll":
            return JobRejectedError(message + " (the server does not know this task)", **kwargs)
        if status in (408, 409, 425) or status >= 500:
            return TransientApiError(message, retry_after_seconds=retry_after, **kwargs)
        if 300 <= status < 400:
            return TransientApiError(message + " (unexpected redirect, not followed)", **kwargs)
        return JobRejectedError(message, **kwargs)


def _json_object(response: httpx.Response) -> Mapping[str, Any] | None:
    try:
        value = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _error_fields(error: object) -> tuple[str | None, str | None]:
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


def _request_id(response: httpx.Response) -> str | None:
    for name in ("x-request-id", "request-id", "x-amzn-requestid"):
        value: str | None = response.headers.get(name)
        if value:
            return value
    return None


@dataclass(slots=True)
class VideoBody:
    """An open video response: its head and its byte stream."""

    head: VideoChunkHeader
    _response: httpx.Response

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes(1 << 16):
                yield chunk
        except httpx.TimeoutException as exc:
            raise TransientDownloadError("the video download timed out") from exc
        except httpx.TransportError as exc:
            raise TransientDownloadError(
                f"the video download broke off: {type(exc).__name__}"
            ) from exc


class VideoFetcher:
    """Streams videos from the video host. Holds no credentials. Use ``async with``."""

    def __init__(
        self,
        *,
        max_connections: int = 4,
        timeout_seconds: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=max_connections),
            follow_redirects=True,  # safe: this client has no credentials to leak
            transport=transport,
            trust_env=False,
        )

    async def __aenter__(self) -> VideoFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    @contextlib.asynccontextmanager
    async def open(
        self, url: str, *, offset: int = 0, if_range: str | None = None
    ) -> AsyncIterator[VideoBody]:
        """Open ``url`` from byte ``offset``; raises for expired URLs and transient failures."""
        headers: dict[str, str] = {}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
            if if_range:
                headers["If-Range"] = if_range
        try:
            request = self._http.build_request("GET", url, headers=headers)
        except httpx.InvalidURL as exc:
            raise VideoUrlExpiredError(f"the video URL is not usable: {exc}") from exc
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise TransientDownloadError("the video host timed out") from exc
        except (httpx.TransportError, httpx.TooManyRedirects) as exc:
            raise TransientDownloadError(f"the video host failed: {type(exc).__name__}") from exc
        try:
            status = response.status_code
            if status in (401, 403, 404, 410):
                raise VideoUrlExpiredError(f"the video host answered {status}; the URL has expired")
            if status not in (200, 206):
                raise TransientDownloadError(f"the video host answered {status}")
            yield VideoBody(head=_video_head(response), _response=response)
        finally:
            await response.aclose()


def _video_head(response: httpx.Response) -> VideoChunkHeader:
    length = _int_or_none(response.headers.get("Content-Length"))
    range_start: int | None = None
    total: int | None = length if response.status_code == 200 else None
    content_range = response.headers.get("Content-Range", "")
    if response.status_code == 206 and content_range.startswith("bytes "):
        span, _, size = content_range[6:].partition("/")
        start, _, _ = span.partition("-")
        range_start = _int_or_none(start)
        total = _int_or_none(size)
    return VideoChunkHeader(
        status=response.status_code,
        content_length=length,
        range_start=range_start,
        total_length=total,
        etag=response.headers.get("ETag") or response.headers.get("Last-Modified"),
    )


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None
