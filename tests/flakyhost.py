"""A TCP proxy on loopback that can drop off the network and come back.

``FlakyHost(upstream_port)`` forwards every connection to ``127.0.0.1:upstream_port``.
``down()`` closes its listener (new connections are refused) and resets every established
connection (SO_LINGER 0, so the peer sees a reset, not a polite close); ``up()`` listens on the
same port again. Threads only: it runs beside anyio tests without sharing their loop.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


class FlakyHost:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.host = host
        self.port = 0
        self.connections = 0  # accepted while up
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.is_up = False

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def up(self) -> None:
        with self._lock:
            if self.is_up:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(64)
            self.port = listener.getsockname()[1]
            self._listener = listener
            self.is_up = True
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            self.is_up = False
            listener, self._listener = self._listener, None
            doomed, self._open = self._open, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in doomed:
            _reset(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if not self.is_up:
                    _reset(client)
                    _reset(upstream)
                    continue
                self.connections += 1
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def __enter__(self) -> FlakyHost:
        self.up()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()


def _reset(sock: socket.socket) -> None:
    """Drop a connection: abortive close (RST). The shutdown first wakes a pump thread blocked
    in ``recv`` on it, which would otherwise keep the socket (and the connection) alive."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def flaky(upstream_port: int) -> Iterator[FlakyHost]:
    with FlakyHost(upstream_port) as host:
        yield host
