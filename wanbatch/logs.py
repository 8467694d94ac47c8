"""Logging, configured once at the entry point.

Every event goes as one JSON line to ``<output>/.wanbatch/log.jsonl`` and, unless quiet, as a
readable line to the console (stderr). With ``--json-logs`` the console gets the JSON lines too.
Modules call ``structlog.get_logger()`` and log stable dotted event names with fields.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, Protocol, TextIO

import structlog

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_HIDDEN_ON_CONSOLE = {"timestamp", "level", "event", "logger"}


class Sink(Protocol):
    """Where console lines go: a text stream, or the live view's stream (lines above it)."""

    def write(self, text: str, /) -> int: ...


class TeeLogger:
    """A structlog logger that writes each event to a JSON file and to the console."""

    def __init__(self, file: TextIO | None, console: Sink, console_level: int, json_console: bool):
        self._file = file
        self._console = console
        self._console_level = console_level
        self._json_console = json_console

    def _emit(self, level: str, event: dict[str, Any]) -> None:
        line = json.dumps(event, default=str, ensure_ascii=False)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        if _LEVELS.get(level, 20) < self._console_level:
            return
        if self._json_console:
            self._console.write(line + "\n")
            return
        readable = _READABLE.get(str(event.get("event")))
        fields = (
            readable(event)
            if readable is not None
            else " ".join(
                f"{key}={value}" for key, value in event.items() if key not in _HIDDEN_ON_CONSOLE
            )
        )
        stamp = time.strftime("%H:%M:%S")
        marker = {"warning": "!", "error": "x", "critical": "x"}.get(level, " ")
        if event.get("event") == "job.finished" and event.get("state") == "failed":
            marker = "x"
        self._console.write(f"{stamp} {marker} {event.get('event', '')} {fields}".rstrip() + "\n")

    def __getattr__(self, level: str) -> Any:
        def method(**event: Any) -> None:
            self._emit(level, event)

        return method


def _finished(event: Mapping[str, Any]) -> str:
    """``job.finished`` on the console: the job, where its video is or why it failed."""
    job, state = event.get("job"), event.get("state")
    render = event.get("render_seconds")
    rendered = f"render {render:.1f} s" if isinstance(render, int | float) else "render -"
    if state == "failed":
        code = f" ({event['code']})" if event.get("code") else ""
        return f"{job} failed: {event.get('reason')}{code}"
    size = event.get("size")
    kb = f"{size / 1024:.1f} KB" if isinstance(size, int) else "?"
    return f"{job} {state} -> {event.get('path')} ({kb}, {rendered})"


_READABLE: dict[str, Any] = {"job.finished": _finished}


def configure(
    log_path: Path | None,
    *,
    verbosity: int = 0,
    json_console: bool = False,
    console: Sink | None = None,
) -> TextIO | None:
    """Route structlog to ``log_path`` and the console; returns the open file (close it at exit).

    ``verbosity``: -1 quiet (errors only), 0 milestones (info), 1 and more: debug.
    """
    handle: TextIO | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the whole run
    level = {-1: 40, 0: 20}.get(verbosity, 10)
    logger = TeeLogger(handle, console or sys.stderr, level, json_console)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _as_kwargs,
        ],
        logger_factory=lambda *args: logger,
        cache_logger_on_first_use=False,
    )
    return handle


def _as_kwargs(logger: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """The last processor: hand the event on as keyword arguments to ``TeeLogger``."""
    return event


def reset() -> None:
    """After a run: drop events instead of writing to the closed log file."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, _as_kwargs],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
