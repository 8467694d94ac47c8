"""The wire: the only module that imports httpx.

``WanApi`` speaks the API of wanapi.io (``POST /video/generations``, ``GET /video/generations/{id}``)
and turns every answer into a ``TaskView`` or a wanbatch error; it is the one adapter to replace
for another provider. ``VideoFetcher`` streams videos from the video host with a separate client
that holds no credentials at all, so the key cannot follow a redirect or reach the CDN.

Every httpx exception is translated here (``_map_transport_errors``), ``raise ... from exc``;
messages never contain the key. Every answer from the API host is checked here, once: a task
id must follow ``TASK_ID_RULE`` before it is used (and it is always escaped into the URL);
every piece of server text (error messages and codes, status words, request ids) passes through
``_server_text``, which redacts the key, neutralises control characters and caps the length;
a whole answer must arrive within ``answer_seconds``, however slowly its bytes trickle in.

Over 400 lines on purpose: this is the one module allowed to import httpx, so both adapters (the
API and the video host, with the rules that read a video answer's head) live here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx

from wanbatch import __version__
from wanbatch.backoff import cap_retry_after, parse_retry_after
from wanbatch.errors import (
    AnswerUnknownError,
    ApiError,
    AuthError,
    BadTaskIdError,
    CreditsExhaustedError,
    DownloadError,
    InsecureURLError,
    JobRejectedError,
    NotSentError,
    RateLimitedError,
    TaskNotFoundError,
    TransientApiError,
    TransientDownloadError,
    UnusableVideoUrlError,
    VideoHostUnreachableError,
    VideoUrlExpiredError,
)
from wanbatch.models import (
    DEFAULT_ANSWER_SECONDS,
    MAX_SERVER_TEXT,
    MAX_SERVER_WORD,
    MAX_TASK_ID_LENGTH,
    JobSpec,
    TaskStatus,
    TaskView,
    VideoChunkHeader,
)

USER_AGENT = f"wanbatch/{__version__}"
# Status words, compared lower-case with "-" and " " read as "_". A word in none of these sets is
# taken as "not done yet" (a new non-final state must not fail paid work) and marked
# ``unrecognised_status`` so the run warns once per word and `status` shows it.
_SUCCEEDED = {"succeeded", "success", "completed", "complete", "done"}
_FAILED = {
    "failed", "failure", "error", "errored", "cancelled", "canceled", "rejected",
    "expired", "timeout", "timed_out", "timedout", "aborted", "deleted", "killed", "terminated",
}  # fmt: skip
_PENDING = {"queued", "pending", "submitted", "waiting", "created"}
_RUNNING = {
    "running", "processing", "in_progress", "started", "generating", "rendering", "active",
}  # fmt: skip
# A usable task id: 1 to MAX_TASK_ID_LENGTH characters, letters, digits and "._:~-", starting
# with a letter or a digit (so never "." or ".."). Anything else is refused before it is used.
TASK_ID_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]*")


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
    if parts.scheme not in ("http", "https") or not parts.hostname or not _connectable(base_url):
        raise InsecureURLError(f"the API base URL {base_url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise InsecureURLError(
            f"refusing to send the API key over plain http:// to {parts.hostname}; "
            "use https://, or pass --allow-insecure-http if you really mean it"
        )
    return base_url.rstrip("/")


def _connectable(url: str) -> bool:
    """Can httpx connect to ``url``'s host and port? Its port is within 0-65535 and its host
    is a name IDNA accepts (``xn--`` with nothing after it is not): httpx would otherwise fail
    only when it connects, with errors that are not its own."""
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError when out of range
        return bool(httpx.URL(url).host)
    except (ValueError, httpx.InvalidURL):  # IDNA errors are ValueErrors
        return False


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
    except httpx.InvalidURL as exc:  # nothing was sent; resending the same URL cannot help
        raise JobRejectedError(
            f"{what}: the request URL is not valid: {_redact(str(exc), secret)}",
            code="invalid_url",
        ) from exc
    except (httpx.DecodingError, ValueError) as exc:
        # A body that does not decode as its Content-Encoding says, or a redirect (never
        # followed, but httpx reads its Location) to a host IDNA refuses: a garbled answer.
        raise TransientApiError(
            f"{what}: the answer cannot be read ({type(exc).__name__})"
        ) from exc


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[key]") if secret else text


def _server_text(text: str, secret: str | None, limit: int) -> str:
    """Server text as wanbatch keeps it: the key redacted, control characters (terminal
    escapes, newlines) made spaces, at most ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in _redact(text, secret))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_id_problem(task_id: str) -> str | None:
    """Why ``task_id`` cannot be used in a URL (see ``TASK_ID_RULE``), or None."""
    if not task_id:
        return "it is empty"
    if len(task_id) > MAX_TASK_ID_LENGTH:
        return f"longer than {MAX_TASK_ID_LENGTH} characters"
    if not TASK_ID_RULE.fullmatch(task_id):
        return "only letters, digits and ._:~- are allowed, starting with a letter or digit"
    return None


def _shown_id(task_id: str, secret: str | None) -> str:
    shown = repr(_redact(task_id[:40], secret))
    return shown + (f" (+{len(task_id) - 40} more characters)" if len(task_id) > 40 else "")


def _word(raw: str) -> str:
    return raw.strip().lower().replace("-", "_").replace(" ", "_")


def normalise_status(raw: str) -> TaskStatus:
    word = _word(raw)
    if word in _SUCCEEDED:
        return TaskStatus.SUCCEEDED
    if word in _FAILED:
        return TaskStatus.FAILED
    if word in _PENDING:
        return TaskStatus.PENDING
    return TaskStatus.RUNNING  # any other word means "not done yet"


def recognised_status(raw: str) -> bool:
    """Whether ``raw`` is a status word this adapter knows (the others count as running)."""
    word = _word(raw)
    return any(word in known for known in (_SUCCEEDED, _FAILED, _PENDING, _RUNNING))


class WanApi:
    """The wanapi.io adapter: create and get tasks. Use ``async with``.

    ``timeout_seconds`` bounds each connect and each read; ``answer_seconds`` bounds a whole
    request and its answer (a server trickling one byte a second never trips a read timeout).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        max_connections: int = 8,
        timeout_seconds: float = 30.0,
        answer_seconds: float = DEFAULT_ANSWER_SECONDS,
        allow_insecure_http: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._key = api_key
        self._answer_seconds = answer_seconds
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
        response = await self._request(
            "create",
            "POST",
            "video/generations",
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return self._created(response)

    async def get(self, task_id: str) -> TaskView:
        problem = task_id_problem(task_id)
        if problem is not None:
            raise BadTaskIdError(
                f"the task id {_shown_id(task_id, self._key)} cannot be used: {problem};"
                " nothing was sent with it",
                code="bad_task_id",
            )
        response = await self._request(
            "poll", "GET", "video/generations/" + quote(task_id, safe="")
        )
        return self._polled(response, task_id)

    async def _request(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request and its whole answer, within ``answer_seconds``."""
        try:
            with _map_transport_errors(what, self._key), anyio.fail_after(self._answer_seconds):
                return await self._http.request(method, url, **kwargs)
        except TimeoutError as exc:
            raise TransientApiError(
                f"{what}: no whole answer within {self._answer_seconds:g} s"
            ) from exc

    def _created(self, response: httpx.Response) -> TaskView:
        """A create's answer. A 2xx that names no usable task may still have made one: that is
        ``AnswerUnknownError``, which the submit stage does not resend."""
        if response.status_code >= 300:
            raise self._error(response, "create")
        payload = _json_object(response)
        request_id = self._request_id(response)
        if payload is None:
            raise AnswerUnknownError(
                "create: the answer is not a JSON object, so any task it made has no known id",
                status=response.status_code,
                request_id=request_id,
            )
        raw_id = payload.get("id")
        task_id = (
            raw_id
            if isinstance(raw_id, str)
            else str(raw_id)
            if isinstance(raw_id, int) and not isinstance(raw_id, bool)
            else None
        )
        problem = "missing or not a string" if task_id is None else task_id_problem(task_id)
        if task_id is None or problem is not None:
            shown = "" if task_id is None else " " + _shown_id(task_id, self._key)
            raise AnswerUnknownError(
                f"create: the answer's task id{shown} is not usable ({problem}),"
                " so any task it made has no known id",
                status=response.status_code,
                request_id=request_id,
            )
        raw_status = payload.get("status")
        return self._view(task_id, raw_status if isinstance(raw_status, str) else "", payload)

    def _polled(self, response: httpx.Response, task_id: str) -> TaskView:
        if response.status_code >= 300:
            raise self._error(response, "poll")
        payload = _json_object(response)
        raw_status = payload.get("status") if payload is not None else None
        if payload is None or not isinstance(raw_status, str) or not raw_status.strip():
            raise TransientApiError(
                "poll: the answer is not a JSON object with a status",
                status=response.status_code,
                request_id=self._request_id(response),
            )
        return self._view(task_id, raw_status, payload)

    def _view(self, task_id: str, raw_status: str, payload: Mapping[str, Any]) -> TaskView:
        video_url = payload.get("video_url")
        error_message, error_code = _error_fields(payload.get("error"))
        status = normalise_status(raw_status) if raw_status else TaskStatus.PENDING
        return TaskView(
            task_id=task_id,
            status=status,
            raw_status=_server_text(raw_status, self._key, MAX_SERVER_WORD),
            video_url=_redact(video_url, self._key)
            if isinstance(video_url, str) and video_url
            else None,
            error_message=self._text(error_message, MAX_SERVER_TEXT),
            error_code=self._text(error_code, MAX_SERVER_WORD),
            unrecognised_status=bool(raw_status) and not recognised_status(raw_status),
        )

    def _text(self, text: str | None, limit: int) -> str | None:
        return None if text is None else _server_text(text, self._key, limit)

    def _request_id(self, response: httpx.Response) -> str | None:
        return self._text(_request_id(response), MAX_SERVER_WORD)

    def _error(self, response: httpx.Response, what: str) -> ApiError:
        status = response.status_code
        payload = _json_object(response)
        message, code = _error_fields(payload.get("error") if payload else None)
        if message is None:  # a body that is not an error object: its start (after redaction)
            text = _server_text(response.text.strip(), self._key, 200)
            message = text or response.reason_phrase or "no message"
        message = f"{what}: {self._text(message, MAX_SERVER_TEXT)}"
        asked = parse_retry_after(response.headers.get("Retry-After"), time.time())
        retry_after = cap_retry_after(asked)
        if asked is not None and retry_after is not None and retry_after < asked:
            message += (
                f" (the server asked to wait {asked:.0f} s; wanbatch waits {retry_after:g} s,"
                " its longest wait, and then asks again)"
            )
        kwargs: dict[str, Any] = {
            "status": status,
            "request_id": self._request_id(response),
            "code": self._text(code, MAX_SERVER_WORD),
        }
        if status == 400 or status == 422:
            return JobRejectedError(message, **kwargs)
        if status == 401 or status == 403:
            return AuthError(message, **kwargs)
        if status == 402:
            return CreditsExhaustedError(message, **kwargs)
        if status == 429:
            return RateLimitedError(message, retry_after_seconds=retry_after, **kwargs)
        if status == 404 and what == "poll":
            return TaskNotFoundError(message + " (the server does not know this task)", **kwargs)
        if status in (408, 409, 425) or status >= 500:
            return TransientApiError(message, retry_after_seconds=retry_after, **kwargs)
        if 300 <= status < 400:
            return TransientApiError(message + " (unexpected redirect, not followed)", **kwargs)
        return JobRejectedError(message, **kwargs)


def _json_object(response: httpx.Response) -> Mapping[str, Any] | None:
    try:
        value = json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
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


# The video host. These rules read only a response's head; ``download.py`` checks the bytes.
VIDEO_READ_TIMEOUT_SECONDS = 30.0  # the longest silence while a video streams in
VIDEO_TIMEOUT_SECONDS = 60.0  # connecting, and waiting for the answer's head
_URL_SHOWN = 80  # characters of a refused URL that an error message shows
# Answers that are a page or a document, never a video (an error page served with 200).
_NOT_VIDEO_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def check_video_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL, else ``UnusableVideoUrlError`` naming it.

    Plain ``http://`` to any host is allowed: this client holds no credentials to expose, and
    the bytes are checked (MP4 signature, length) and hashed into the sidecar.
    """
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        if usable:
            usable = _connectable(url)  # control characters, bad ports, bad hosts
    except (ValueError, httpx.InvalidURL):
        usable = False
    if not usable:
        raise UnusableVideoUrlError(
            f"the video URL {shorten_url(url)} is not an absolute http(s) URL; it was not fetched"
        )
    return url


def shorten_url(url: str) -> str:
    """``url`` quoted for a message: control characters escaped, at most ``_URL_SHOWN`` shown."""
    shown = url[:_URL_SHOWN] + ("..." if len(url) > _URL_SHOWN else "")
    return repr(shown)


def video_answer_problem(
    status: int, *, asked_range: bool, content_type: str | None, length: int | None
) -> DownloadError | None:
    """What is wrong with a 200/206 head from the video host, before any byte is read."""
    if status == 206 and not asked_range:
        return TransientDownloadError(
            "the video host answered 206 (a part) to a request for the whole video"
        )
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media.startswith(_NOT_VIDEO_TYPES) or media.endswith(("+json", "+xml", "/html")):
        return VideoUrlExpiredError(
            f"the video host answered {status} with {media}, not a video;"
            " asking the task for a fresh URL"
        )
    if length == 0:
        return TransientDownloadError(f"the video host answered {status} with an empty body")
    return None


@dataclass(slots=True)
class VideoBody:
    """An open video response: its head and its byte stream.

    An answer with a ``Content-Encoding`` (we ask for ``identity``; a CDN may compress anyway)
    is decoded here; its head then announces no length and no validator, since those describe
    the encoded bytes, so it is neither checked against ``Content-Length`` nor resumed with
    ``Range``. Its encoded length is checked here instead, to catch a cut body.
    """

    head: VideoChunkHeader
    _response: httpx.Response
    _encoded_length: int | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        response = self._response
        try:
            # Each read as it arrives (no re-chunking), so that a trickle is seen and timed.
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.TimeoutException as exc:
            raise TransientDownloadError("the video download timed out") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransientDownloadError(
                f"the video download broke off: {type(exc).__name__}"
            ) from exc
        expected, got = self._encoded_length, response.num_bytes_downloaded
        # ``got`` is 0 for a body httpx held whole before we read it (nothing could be cut);
        # an empty body fails the MP4 check in download.py anyway.
        if expected is not None and got and got != expected:
            raise TransientDownloadError(
                f"the compressed video stopped at {got} of {expected} bytes; it will start over"
            )


class VideoFetcher:
    """Streams videos from the video host. Holds no credentials. Use ``async with``."""

    def __init__(
        self,
        *,
        max_connections: int = 4,
        timeout_seconds: float = VIDEO_TIMEOUT_SECONDS,
        read_timeout_seconds: float = VIDEO_READ_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            # identity: a compressed body's Content-Length is not the video's, nor its ranges.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(timeout_seconds, read=read_timeout_seconds),
            limits=httpx.Limits(max_connections=max_connections),
            follow_redirects=True,  # safe: this client has no credentials to leak
            transport=transport,
            trust_env=False,
            event_hooks={"request": [_refuse_unconnectable]},  # each redirect's target too
        )

    async def __aenter__(self) -> VideoFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    @contextlib.asynccontextmanager
    async def open(
        self, url: str, *, offset: int = 0, if_range: str | None = None
    ) -> AsyncIterator[VideoBody]:
        """Open ``url`` from byte ``offset``; raises for unusable or expired URLs, answers that
        are not a video, and transient failures."""
        headers: dict[str, str] = {}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
            if if_range:
                headers["If-Range"] = if_range
        request = self._http.build_request("GET", check_video_url(url), headers=headers)
        try:
            response = await self._http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nobody there: an outage
            raise VideoHostUnreachableError(
                f"could not connect to the video host: {type(exc).__name__}"
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransientDownloadError("the video host timed out") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, ValueError) as exc:
            # a redirect to file:, to a host IDNA refuses, to port 99999
            raise UnusableVideoUrlError(
                f"the video host redirected {shorten_url(url)} to a URL that is not an"
                " absolute http(s) URL"
            ) from exc
        except (httpx.TransportError, httpx.TooManyRedirects) as exc:
            raise TransientDownloadError(f"the video host failed: {type(exc).__name__}") from exc
        try:
            status = response.status_code
            if status in (401, 403, 404, 410):
                raise VideoUrlExpiredError(f"the video host answered {status}; the URL has expired")
            if status not in (200, 206):
                raise TransientDownloadError(f"the video host answered {status}")
            head = _video_head(response)
            problem = video_answer_problem(
                status,
                asked_range=offset > 0,
                content_type=response.headers.get("Content-Type"),
                length=head.content_length,
            )
            if problem is not None:
                raise problem
            body = VideoBody(head=head, _response=response)
            if _encoded(response):  # lengths and ranges are of the encoded bytes: none apply
                body = VideoBody(VideoChunkHeader(status, None, None, None, None), response)
                body._encoded_length = head.content_length
            yield body
        finally:
            await response.aclose()


async def _refuse_unconnectable(request: httpx.Request) -> None:
    """Before each request (a redirect's too): a port past 65535 or a host IDNA refuses would
    fail deep in the connect (as an exception group), so it is refused here."""
    if not _connectable(str(request.url)):
        raise httpx.InvalidURL(f"cannot connect to {shorten_url(str(request.url))}")


def _encoded(response: httpx.Response) -> bool:
    coding = response.headers.get("Content-Encoding", "").strip().lower()
    return coding not in ("", "identity")


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
    if not (text.isascii() and text.isdigit()) or len(text) > 30:  # past any real length
        return None
    return int(text)
