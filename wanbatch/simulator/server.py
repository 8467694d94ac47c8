"""Serving the simulator: three uvicorn listeners (API, CDN, mirror) on one thread of their own.

``SimulatorServer`` starts on free loopback ports in a fraction of a second and works from sync
code (``with``) and async code (``async with``). Its event loop is its own, so a client under
test never shares a loop with the server it is judged by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import uvicorn

from wanbatch.simulator.app import ApiApp, CdnApp, SimState
from wanbatch.simulator.config import SimConfig


def _bind(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _bind_again(host: str, port: int, state_file: Path | None) -> socket.socket:
    """The API's socket; with saved state, on the port it had last time when that is free (a
    provider such as fal hands out absolute URLs on the API's origin, which resumed runs keep)."""
    saved = state_file.with_suffix(".port") if state_file is not None else None
    if port == 0 and saved is not None:
        with contextlib.suppress(OSError, ValueError, OverflowError):  # no FIFO, no large file
            if saved.is_file() and saved.stat().st_size < 16:
                return _bind(host, int(saved.read_text()))
    sock = _bind(host, port)
    if saved is not None:
        with contextlib.suppress(OSError):
            saved.write_text(str(sock.getsockname()[1]))
    return sock


class SimulatorServer:
    """The fake Wan API, its CDN and a third "mirror" origin, on loopback."""

    def __init__(
        self, config: SimConfig | None = None, *, port: int = 0, state_file: Path | None = None
    ):
        self.config = config or SimConfig()
        self.state = SimState(self.config, state_file)
        try:
            self._sockets = [
                _bind_again(self.config.host, port, state_file),
                _bind(self.config.host),
                _bind(self.config.host),
            ]
        except OSError:
            self.state.close()
            raise
        api_port, cdn_port, mirror_port = (sock.getsockname()[1] for sock in self._sockets)
        host = self.config.host
        self.origin = f"http://{host}:{api_port}"
        self.base_url = self.origin + self.state.dialect.base_path
        self.cdn_url = f"http://{host}:{cdn_port}"
        self.mirror_url = f"http://{host}:{mirror_port}"
        self.state.cdn_base = self.cdn_url
        self.state.mirror_base = self.mirror_url
        self.api_key = self.config.api_key
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        apps: list[Callable[..., Any]] = [
            ApiApp(self.state),
            CdnApp(self.state),
            CdnApp(self.state, mirror=True),
        ]
        self._servers = [
            uvicorn.Server(
                uvicorn.Config(
                    app, log_level="critical", access_log=False, lifespan="off", loop="asyncio"
                )
            )
            for app in apps
        ]
        self._thread = threading.Thread(target=self._serve, name="wanbatch-simulator", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the simulator did not start within 10 s")
        return self

    def _serve(self) -> None:
        async def main() -> None:
            tasks = [
                asyncio.create_task(server.serve(sockets=[sock]))
                for server, sock in zip(self._servers, self._sockets, strict=True)
            ]
            # uvicorn exposes `started` as a flag, not an event, so it is polled briefly here.
            while not all(server.started for server in self._servers):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            self._started.set()
            await asyncio.gather(*tasks)

        asyncio.run(main())

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        with self.state.lock:
            self.state.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> SimulatorServer:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await anyio.to_thread.run_sync(self.stop)

    # --- for tests and scripts (also reachable over HTTP under /_sim/) ----------------------

    def stats(self) -> dict[str, Any]:
        with self.state.lock:
            return self.state.stats()

    def set_config(self, **knobs: Any) -> None:
        with self.state.lock:
            self.state.config = self.state.config.replace(**knobs)

    def top_up(self, key: str, credits: int) -> None:
        with self.state.lock:
            self.state.credits[key] = self.state.credits.get(key, 0) + credits

    def admin(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        """Call an admin endpoint over the socket, as an outside script would."""
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"{self.origin}/_sim/{path}", data=data, method="POST" if data else "GET"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def demo_config() -> SimConfig:
    """What `wanbatch run --simulate` uses: renders of about one to three seconds, six at once,
    and a content filter that blocks prompts naming a celebrity (so the demo shows a failure)."""
    return SimConfig(
        generation_seconds=1.5,
        distribution="uniform",
        spread=0.6,
        slots=6,
        flagged_words=("celebrity", "celebrities"),
    )
