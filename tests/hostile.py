"""A rude HTTP server on loopback, for answers the simulator is too polite to give.

Each request is answered by a script: a function of the request line that returns raw bytes to
send (and whether to then hang or hang up). It speaks just enough HTTP/1.1 for httpx.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import anyio
import anyio.abc
import anyio.from_thread
from anyio.abc import SocketStream


@dataclass
class Answer:
    raw: bytes
    stall_seconds: float = 0.0  # wait this long after sending (a stalled response)
    delay_seconds: float = 0.0  # wait this long before answering (a slow server)


def http_response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    merged = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    lines += [f"{name}: {value}" for name, value in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_response(status: int, body: str, headers: dict[str, str] | None = None) -> bytes:
    return http_response(
        status, body.encode(), {"Content-Type": "application/json", **(headers or {})}
    )


@dataclass
class Hostile:
    """A server whose answers come from ``script(method, path, headers) -> Answer``."""

    script: Callable[[str, str, dict[str, str]], Answer]
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(5):
                method, path, headers, _ = await read_request(stream)
                self.requests.append((method, path, headers))
                answer = self.script(method, path, headers)
                if answer.delay_seconds:
                    await anyio.sleep(answer.delay_seconds)
                await stream.send(answer.raw)
            if answer.stall_seconds:
                await anyio.sleep(answer.stall_seconds)


async def read_request(stream: SocketStream) -> tuple[str, str, dict[str, str], bytes]:
    """One HTTP/1.1 request from ``stream``: method, target, lower-case headers and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    while len(body) < int(headers.get("content-length", "0")):
        body += await stream.receive()
    return method, target, headers, body


@contextlib.contextmanager
def serve(script: Callable[[str, str, dict[str, str]], Answer]) -> Iterator[Hostile]:
    """Run a hostile server on its own event loop in a thread for the duration of the block."""
    server = Hostile(script)
    with anyio.from_thread.start_blocking_portal() as portal:

        async def listen() -> anyio.abc.SocketListener:
            return await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

        listener = portal.call(listen)
        server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        serving = portal.start_task_soon(listener.serve, server._handle)
        try:
            yield server
        finally:
            serving.cancel()
            portal.call(listener.aclose)


@contextlib.contextmanager
def trickling(head: bytes, body: bytes, every: float) -> Iterator[int]:
    """A server that reads a request, sends ``head`` at once and then ``body`` one byte every
    ``every`` seconds (each byte within any read timeout, the whole never in time); yields its
    port."""

    async def handle(stream: SocketStream) -> None:
        async with stream:
            data = b""
            with anyio.move_on_after(10):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                await stream.send(head)
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    for index in range(len(body)):
                        await stream.send(body[index : index + 1])
                        await anyio.sleep(every)

    with anyio.from_thread.start_blocking_portal() as portal:

        async def listen() -> anyio.abc.SocketListener:
            return await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

        listener = portal.call(listen)
        serving = portal.start_task_soon(listener.serve, handle)
        try:
            yield listener.extra(anyio.abc.SocketAttribute.local_port)
        finally:
            serving.cancel()
            portal.call(listener.aclose)
