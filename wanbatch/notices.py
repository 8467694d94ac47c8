"""The webhook receiver: a small HTTP/1.1 listener that lives in the run's task group.

Each notice is checked (``noticerules.SignatureCheck``), read by the provider's adapter
(``read_notice`` -> a task id), dropped if its delivery id was seen before, and handed to
``on_task``, which wakes that task's poll when the task belongs to this run (the poll stage's
``notice``). The answer (2xx, or 4xx for what is refused) goes back at once: no polling work is
done while the sender waits. A notice is never trusted: the confirming poll is the truth.

Bounds: a body over ``MAX_NOTICE_BYTES`` is refused unread (413); a connection has
``READ_SECONDS`` to send its request; at most ``MAX_CONNECTIONS`` are served at once (more are
closed unanswered); only ``POST`` on the callback URL's path is taken. What was heard is
counted in ``counts`` (received, woken, coalesced, late, unknown, repeated, refused, ...).

Why h11 by hand rather than uvicorn: ``uvicorn.Server.serve`` installs its own SIGINT/SIGTERM
handlers while it serves, which would take Ctrl-C away from the run's interrupt watcher, and its
lower-level pieces are private. anyio's TCP listener and h11 (installed with uvicorn) serve in
the run's own task group, and every cap is in plain sight here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11
import structlog

from wanbatch.errors import UsageError
from wanbatch.noticerules import MAX_NOTICE_BYTES, DeliveryLog, SignatureCheck
from wanbatch.providers.base import Notice

READ_SECONDS = 10.0  # a connection's time to send its whole request
MAX_CONNECTIONS = 64  # served at once; more are closed unanswered
MAX_HEAD_BYTES = 16 * 1024

ReadNotice = Callable[[Mapping[str, str], bytes], Notice | None]
OnTask = Callable[[str], str]  # a task id -> what became of it ("woken", "late", ...)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as (host, port), or ``UsageError``."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: give HOST:PORT, such as 0.0.0.0:8080")
    return host, int(port)


def notice_path(notify_url: str) -> str:
    """The path the receiver takes notices on: the public URL's (``UsageError`` if it is not
    an http(s) URL)."""
    parts = urlsplit(notify_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--notify-url {notify_url!r}: give the public http(s) URL the provider can reach"
        )
    if parts.username or parts.password:
        raise UsageError("--notify-url: a URL with a user name or password is refused")
    return parts.path or "/"


class NoticeReceiver:
    """Takes webhook notices on ``listen`` and hands each task id to ``on_task``."""

    def __init__(
        self,
        listen: tuple[str, int],
        path: str,
        read_notice: ReadNotice,
        check: SignatureCheck,
        on_task: OnTask,
    ) -> None:
        self.listen = listen
        self.path = path
        self._read_notice = read_notice
        self._check = check
        self._on_task = on_task
        self._deliveries = DeliveryLog()
        self._open = 0
        self._warned: set[str] = set()
        self._listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None
        self.port: int | None = None
        self.counts: Counter[str] = Counter()
        self.log: Any = structlog.get_logger("wanbatch.notices")

    async def open(self) -> int:
        """Bind the listening socket (``UsageError`` if it cannot be); the port bound."""
        host, port = self.listen
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        except OSError as exc:
            raise UsageError(
                f"--listen {host}:{port}: cannot listen there ({exc.strerror or exc})"
            ) from exc
        self._listener = listener
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        return self.port

    async def serve(self) -> None:
        """Serve until cancelled (``open`` first)."""
        assert self._listener is not None, "open() the receiver first"
        async with self._listener:
            await self._listener.serve(self._connection)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            if self._open >= MAX_CONNECTIONS:
                self.counts["busy"] += 1
                return
            self._open += 1
            try:
                with anyio.move_on_after(READ_SECONDS):
                    await self._exchange(stream)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # the sender went away: nothing to answer
            except h11.ProtocolError:
                self.counts["malformed"] += 1
            except Exception as exc:  # one sender's request must never end the run
                self.counts["broken"] += 1
                self._warn_once("notice.broken", error=type(exc).__name__)
            finally:
                self._open -= 1

    async def _exchange(self, stream: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        request = await _next_event(conn, stream)
        if not isinstance(request, h11.Request):
            return
        if request.target.split(b"?", 1)[0].decode("latin-1") != self.path:
            await _respond(conn, stream, 404)
            return
        if request.method != b"POST":
            await _respond(conn, stream, 405, [(b"allow", b"POST")])
            return
        length = dict(request.headers).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_NOTICE_BYTES:
            self.counts["too_large"] += 1
            await _respond(conn, stream, 413)
            return
        if conn.they_are_waiting_for_100_continue:  # curl asks so for a body over 1 KiB
            await stream.send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        while True:
            event = await _next_event(conn, stream)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_NOTICE_BYTES:  # a chunked body past the cap
                    self.counts["too_large"] += 1
                    await _respond(conn, stream, 413)
                    return
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in request.headers
        }
        status = self.take(headers, bytes(body))
        await _respond(conn, stream, status)

    def take(self, headers: Mapping[str, str], body: bytes) -> int:
        """One whole notice: its answer's status. Never waits: the poll it may wake runs in
        its own task."""
        counts = self.counts
        counts["received"] += 1
        try:
            problem = self._check.problem(headers, body)
        except Exception as exc:  # a checker's bug must not end the run: refuse the notice
            problem = f"the signature could not be checked ({type(exc).__name__})"
        if problem is not None:
            counts["refused"] += 1
            self._warn_once("notice.refused", reason=problem)
            return 401
        try:
            notice = self._read_notice(headers, body)
        except Exception as exc:  # an adapter's bug must not end the run
            counts["unreadable"] += 1
            self._warn_once("notice.unreadable", error=type(exc).__name__)
            return 400
        if notice is None:
            counts["unreadable"] += 1
            self._warn_once("notice.unreadable", error="no task named")
            return 400
        # A delivery id is worth deduping by only when the notice was verified: unverified,
        # it is the sender's word, and a forged one would make the real notice a "repeat".
        if self._check.verifies and self._deliveries.repeat(notice.delivery_id):
            counts["repeated"] += 1
            return 200
        outcome = self._on_task(notice.task_id)
        counts[outcome] += 1
        self.log.debug("notice.heard", task_id=notice.task_id, outcome=outcome)
        return 200

    def _warn_once(self, event: str, **fields: str) -> None:
        if event not in self._warned:
            self._warned.add(event)
            self.log.warning(event, **fields, detail="later ones are counted, not logged")


async def _next_event(conn: h11.Connection, stream: anyio.abc.SocketStream) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(65536)
        except anyio.EndOfStream:
            data = b""
        conn.receive_data(data)


async def _respond(
    conn: h11.Connection,
    stream: anyio.abc.SocketStream,
    status: int,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    head = [(b"content-length", b"0"), (b"connection", b"close"), *(headers or [])]
    await stream.send(conn.send(h11.Response(status_code=status, headers=head)))
    await stream.send(conn.send(h11.EndOfMessage()))
