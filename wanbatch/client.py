"""The wire: the only module that imports httpx.

``ProviderApi`` sends the calls a provider adapter (``wanbatch.providers``) describes and hands
it back each whole answer; the adapter turns it into a ``TaskView`` or a wanbatch error. So one
module speaks HTTP for every provider. ``VideoFetcher`` streams videos from the video host with
a separate client that holds no credentials at all, so the key cannot follow a redirect or
reach the CDN.

Every httpx exception is translated here (``_map_transport_errors``), ``raise ... from exc``;
messages never contain the key. A task id must follow ``TASK_ID_RULE`` before it is used in a
URL; a URL the API handed out (fal's) gets the key only when it is on the API host; a whole
answer must arrive within ``answer_seconds``, however slowly its bytes trickle in. The
adapters pass all server text through ``ServerText`` (the key redacted, control characters
neutralised, the length capped).

Over 400 lines on purpose: this is the one module allowed to import httpx, so both clients (the
API and the video host, with the rules that read a video answer's head) live here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from wanbatch import __version__
from wanbatch.errors import (
    BadTaskIdError,
    DownloadError,
    InsecureURLError,
    JobRejectedError,
    NotSentError,
    TransientApiError,
    TransientDownloadError,
    UnusableVideoUrlError,
    VideoHostUnreachableError,
    VideoUrlExpiredError,
)
from wanbatch.models import DEFAULT_ANSWER_SECONDS, JobSpec, TaskView, VideoChunkHeader
from wanbatch.providers import DEFAULT_PROVIDER, PROVIDERS
from wanbatch.providers.base import Answer, Call, Created, Provider, ServerText, task_id_problem

USER_AGENT = f"wanbatch/{__version__}"


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
            f"{what}: could not connect: {_redact(str(exc) or type(exc).__name__, secret)}",
            code=connect_failure(exc),
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


def connect_failure(exc: BaseException) -> str:
    """Why a connection was not made, from the causes under httpx's error: ``name_not_resolved``
    (DNS), ``connection_refused`` (nothing listens at the port), ``connect_timeout``, or
    ``connect_failed`` (TLS, unreachable network...). The ``code`` of the ``NotSentError``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    found: set[str] = set()
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, socket.gaierror):
            found.add("name_not_resolved")
        elif isinstance(error, ConnectionRefusedError):
            found.add("connection_refused")
        elif isinstance(error, httpx.ConnectTimeout | TimeoutError):
            found.add("connect_timeout")
        todo.extend(e for e in (error.__cause__, error.__context__) if e is not None)
        if isinstance(error, BaseExceptionGroup):
            todo.extend(error.exceptions)
    for code in ("name_not_resolved", "connection_refused", "connect_timeout"):
        if code in found:
            return code
    return "connect_failed"


async def fetch_public_json(url: str, *, timeout_seconds: float = 10.0) -> object:
    """A small public JSON document (a provider's webhook signing keys), fetched with no key and
    no redirect followed; ``TransientApiError`` when it cannot be had."""
    what = f"fetching {shorten_url(url)}"
    async with httpx.AsyncClient(timeout=timeout_seconds, trust_env=False) as http:
        with _map_transport_errors(what):
            answer = await http.get(check_base_url(url))
    if answer.status_code != 200 or len(answer.content) > 256 * 1024:
        raise TransientApiError(f"{what}: HTTP {answer.status_code}", status=answer.status_code)
    try:
        return answer.json()
    except (ValueError, RecursionError) as exc:
        raise TransientApiError(f"{what}: the answer is not JSON") from exc


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[key]") if secret else text


class ProviderApi:
    """Create and get tasks on one provider's API, its wire format given by ``provider``.
    Use ``async with``.

    ``timeout_seconds`` bounds each connect and each read; ``answer_seconds`` bounds a whole
    request and its answer (a server trickling one byte a second never trips a read timeout).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        provider: Provider | None = None,
        notify_url: str | None = None,
        max_connections: int = 8,
        timeout_seconds: float = 30.0,
        answer_seconds: float = DEFAULT_ANSWER_SECONDS,
        allow_insecure_http: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self.provider: Provider = provider or PROVIDERS[DEFAULT_PROVIDER]
        self._notify_url = notify_url
        self._key = api_key
        sent = self.provider.auth_headers(api_key)
        # every value sent with the key (a gateway's described headers) is redacted too
        values = [part for v in sent.values() for part in (v, v.partition(" ")[2]) if part]
        self._text = ServerText(api_key, *values)
        self._answer_seconds = answer_seconds
        self._origin = _origin(self.base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={**sent, "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,  # a redirect must never carry the key elsewhere
            transport=transport,
            trust_env=False,
        )

    async def __aenter__(self) -> ProviderApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def create(self, job: JobSpec, idempotency_key: str) -> Created:
        call = self.provider.create_call(job, idempotency_key, self._notify_url)
        answer = await self._send(call)
        if answer.status >= 300:
            raise self.provider.error(answer, "create", self._text)
        return self.provider.read_created(answer, self._text)

    async def get(self, task_id: str, handle: str | None = None) -> TaskView:
        problem = task_id_problem(task_id)
        if problem is not None:
            raise BadTaskIdError(
                f"the task id {self._text.shown_id(task_id)} cannot be used: {problem};"
                " nothing was sent with it",
                code="bad_task_id",
            )
        call = self.provider.poll_call(task_id, handle)
        answer = await self._send(call)
        if answer.status >= 300:
            raise self.provider.error(answer, call.what, self._text)
        read = self.provider.read_polled(answer, task_id, self._text)
        if isinstance(read, TaskView):
            return read
        answer = await self._send(read)  # the provider asks for a further call: the result
        if answer.status >= 300:
            raise self.provider.error(answer, read.what, self._text)
        return self.provider.read_result(answer, task_id, self._text)

    async def find(self, job: JobSpec, since: float) -> list[Created]:
        """The tasks that may be the one ``job``'s create made since ``since``, from the
        provider's task list (only where ``capabilities.list_tasks``): how an unanswered create
        is settled before any resend on an API without idempotency keys."""
        call = self.provider.list_call(job, since)
        answer = await self._send(call)
        if answer.status >= 300:
            raise self.provider.error(answer, call.what, self._text)
        return self.provider.read_listed(answer, job, since, self._text)

    async def _send(self, call: Call) -> Answer:
        """One request and its whole answer, within ``answer_seconds``."""
        url = call.url
        if call.absolute and _origin(url) != self._origin:
            raise JobRejectedError(
                f"{call.what}: the API handed out {shorten_url(url)}, which is not on the API"
                f" host {self._origin}; the key is not sent there",
                code="foreign_url",
            )
        kwargs: dict[str, Any] = {"headers": dict(call.headers)}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.params:
            kwargs["params"] = dict(call.params)
        try:
            with (
                _map_transport_errors(call.what, self._key),
                anyio.fail_after(self._answer_seconds),
            ):
                response = await self._http.request(call.method, url, **kwargs)
        except TimeoutError as exc:
            raise TransientApiError(
                f"{call.what}: no whole answer within {self._answer_seconds:g} s"
            ) from exc
        return Answer(
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=response.content,
            reason=response.reason_phrase,
            at=time.time(),
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


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
