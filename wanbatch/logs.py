"""Logging, configured once at the entry point.

Every event goes as one JSON line to ``<output>/.wanbatch/log.jsonl`` and, unless quiet, as a
readable line to the console (stderr). With ``--json-logs`` the console gets the JSON lines too.
Modules call ``structlog.get_logger()`` and log stable dotted event names with fields.

The console is only a view: ``guarded_console`` wraps stdout and stderr so that a reader who left
(``wanbatch run ... | head``: EPIPE) or a terminal that went away (EIO) drops what is written to
it, and the run goes on. The log file and the journal are written all the same.

``record_crash`` puts the traceback of an unexpected error into the run's log file (or, for a
command that keeps no log, into a file of its own) so the console gets one line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Protocol, TextIO

import structlog

from wanbatch.words import count

_log_path: Path | None = None  # the log file of this process's run, once configured
_console_logger: TeeLogger | None = None  # the logger configured last (``plain_console``)

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
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except (OSError, ValueError) as exc:  # a full disk: the journal still has it all
                self._drop_file(exc)
        if _LEVELS.get(level, 20) < self._console_level:
            return
        if self._json_console:
            self._write_console(line + "\n")
            return
        readable = _READABLE.get(str(event.get("event")))
        fields = (
            readable(event)
            if readable is not None
            else " ".join(
                f"{key}={plain(value)}"
                for key, value in event.items()
                if key not in _HIDDEN_ON_CONSOLE
            )
        )
        stamp = time.strftime("%H:%M:%S")
        marker = {"warning": "!", "error": "x", "critical": "x"}.get(level, " ")
        if event.get("event") == "job.finished" and event.get("state") == "failed":
            marker = "x"
        self._write_console(f"{stamp} {marker} {event.get('event', '')} {fields}".rstrip() + "\n")

    def _write_console(self, text: str) -> None:
        """A console line; a console that fails (a bug in the live view's stream) is replaced
        by plain stderr, and the line goes there."""
        try:
            self._console.write(text)
        except Exception:  # a view is never worth the run
            if self._console is sys.stderr:
                return
            self._console = sys.stderr
            with contextlib.suppress(Exception):
                self._console.write(text)

    def _drop_file(self, error: BaseException) -> None:
        """Writing the log file failed: stop writing it, say so once, and go on."""
        global _log_path
        handle, self._file = self._file, None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            handle.close()  # type: ignore[union-attr]
        self._write_console(_lost_log_line(_log_path, error))
        _log_path = None  # a crash goes to a file of its own, not to this one

    def __getattr__(self, level: str) -> Any:
        def method(**event: Any) -> None:
            self._emit(level, event)

        return method


def _lost_log_line(path: Path | None, error: BaseException) -> str:
    reason = getattr(error, "strerror", None) or error
    return (
        f"wanbatch: cannot write the log {path}: {reason}; the run goes on without it"
        " (the journal keeps every job's state)\n"
    )


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


def _view_failed(event: Mapping[str, Any]) -> str:
    """``view.failed`` on the console: one line; the traceback stays in the log file."""
    return (
        f"the live view failed ({event.get('error')}); plain progress lines from here on,"
        " the run goes on (the traceback is in the log)"
    )


# How each request kind of ``run.finished`` is counted on the console: (one, many).
_REQUEST_WORDS = {
    "create": ("create", "creates"),
    "poll": ("poll", "polls"),
    "refresh": ("URL refresh", "URL refreshes"),
    "retry": ("retry", "retries"),
    "throttled": ("rate-limited (429)", "rate-limited (429)"),
    "download": ("download", "downloads"),
}


def _run_finished(event: Mapping[str, Any]) -> str:
    """``run.finished`` on the console: "exit 0: 3 downloaded, 0 failed, 0 left; requests: 3
    creates, 5 polls, 3 downloads; 2.4 s" (the log file keeps ``requests`` a mapping)."""
    requests = event.get("requests")
    made = [
        count(number, *_REQUEST_WORDS.get(str(kind), (str(kind), str(kind))))
        for kind, number in (requests.items() if isinstance(requests, Mapping) else ())
        if isinstance(number, int) and number
    ]
    wall = event.get("wall_seconds")
    return (
        f"exit {event.get('exit_code')}: {event.get('downloaded', 0)} downloaded,"
        f" {event.get('failed', 0)} failed, {event.get('left', 0)} left;"
        f" requests: {', '.join(made) or 'none'}"
        + (f"; {wall:.1f} s" if isinstance(wall, int | float) else "")
    )


def plain(value: object) -> str:
    """A field's value on a console line, as words: none for None, true/false, a list as
    ``a,b``, a mapping as ``create:2,poll:7``; never a Python repr."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{key}:{plain(item)}" for key, item in value.items()) or "none"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(plain(item) for item in value) or "none"
    return str(value)


_READABLE: dict[str, Any] = {
    "job.finished": _finished,
    "view.failed": _view_failed,
    "run.finished": _run_finished,
}


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
    global _log_path, _console_logger
    handle: TextIO | None = None
    _log_path = log_path
    if log_path is not None:
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the run
        except OSError as exc:  # a folder in the way: the log is lost, not the run
            (console or sys.stderr).write(_lost_log_line(log_path, exc))
            _log_path = None
    level = {-1: 40, 0: 20}.get(verbosity, 10)
    logger = _console_logger = TeeLogger(handle, console or sys.stderr, level, json_console)
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


def plain_console() -> None:
    """The live view failed: console lines go straight to stderr from now on."""
    if _console_logger is not None:
        _console_logger._console = sys.stderr


def reset() -> None:
    """After a run: drop events instead of writing to the closed log file."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, _as_kwargs],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def forget_log() -> None:
    """A new command begins: a crash from now on is not the last run's."""
    global _log_path
    _log_path = None


class DroppingStream:
    """A console stream that drops output once writing to it fails (a closed pipe, a terminal
    gone, a full disk behind a redirect) or from the start when there is none (a descriptor
    closed before Python started): the console is a view and never stops a run.

    On the first failure the file descriptor is pointed at ``/dev/null``, so that whatever the
    stream still buffers (and the interpreter's flush at exit) goes nowhere instead of failing.
    """

    def __init__(self, stream: TextIO | None) -> None:
        # None: Python was started with the descriptor closed (`2>&-`); there is no console
        self._stream: TextIO = io.StringIO() if stream is None else stream
        self.dropped = stream is None

    def write(self, text: str, /) -> int:
        if not self.dropped:
            try:
                self._stream.write(text)
            except BlockingIOError:  # a non-blocking pipe that is full: lose this, not all
                pass
            except (OSError, ValueError):
                self._drop()
        return len(text)

    def writelines(self, lines: Any, /) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.dropped:
            try:
                self._stream.flush()
            except BlockingIOError:
                pass
            except (OSError, ValueError):
                self._drop()

    def isatty(self) -> bool:
        if self.dropped:
            return False
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def _drop(self) -> None:
        self.dropped = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()  # what was buffered now goes to /dev/null

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer ... of the real stream
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_console() -> Iterator[None]:
    """While it lasts, ``sys.stdout`` and ``sys.stderr`` are ``DroppingStream``s; at its end they
    are flushed (a failure drops what was left) and put back."""
    saved = sys.stdout, sys.stderr
    guards = [
        stream if isinstance(stream, DroppingStream) else DroppingStream(stream) for stream in saved
    ]
    sys.stdout, sys.stderr = guards
    try:
        yield
    finally:
        for guard in guards:
            guard.flush()
        sys.stdout, sys.stderr = saved


def record_crash(error: BaseException) -> Path | None:
    """Write ``error``'s traceback where the user can find it; the path, or None if nowhere.

    A run's crash goes into its log file as a ``run.crashed`` event; a command without a log
    writes ``wanbatch-crash-*.txt`` in the temporary folder.
    """
    text = "".join(traceback.format_exception(error))
    if _log_path is not None:
        event = {
            "event": "run.crashed",
            "level": "critical",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "error": f"{type(error).__name__}: {error}",
            "traceback": text,
        }
        try:
            with open(_log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event, ensure_ascii=False) + "\n")
            return _log_path
        except OSError:
            pass
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="wanbatch-crash-", suffix=".txt", delete=False, encoding="utf-8"
        ) as crash_file:
            crash_file.write(text)
        return Path(crash_file.name)
    except OSError:
        return None
