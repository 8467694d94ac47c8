"""What the user watches while a run goes: a live view in a terminal, periodic lines elsewhere.

- ``LiveProgress`` (a terminal, not ``-q``, not ``--json-logs``): a rich panel redrawn twice a
  second with counts by state, a bar, throughput, an ETA, the mean render time, credits, the
  latest failures, why submissions stopped and any host that is unreachable. Log lines (downloads, warnings, errors) print
  above it through ``stream``, so the display never hides an error. rich honours ``NO_COLOR``.
- ``PlainProgress`` (output is not a terminal, or ``--json-logs``): a ``run.progress`` log event
  every ``every`` seconds, so it reaches the console as a readable or a JSON line, and the
  structured log.

Both read a ``ProgressSnapshot`` from the runner; neither changes anything.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, TextIO

import anyio
import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from wanbatch import logs
from wanbatch.scheduler import ProgressSnapshot

Snapshot = Callable[[], ProgressSnapshot]

_STATES = (
    ("new", "bright_black"),
    ("rendering", "yellow"),
    ("downloading", "cyan"),
    ("done", "green"),
    ("failed", "red"),
)


def clock(seconds: float | None) -> str:
    """0:01:05 for 65 seconds; "-" when unknown."""
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def fields(snap: ProgressSnapshot) -> dict[str, Any]:
    """The snapshot as flat log fields (the ``run.progress`` event)."""
    out: dict[str, Any] = {
        "done": f"{snap.done}/{snap.total}",
        "new": snap.new,
        "rendering": snap.rendering,
        "downloading": snap.downloading,
        "failed": snap.failed,
        "jobs_per_minute": None
        if snap.jobs_per_second is None
        else round(snap.jobs_per_second * 60, 1),
        "eta": clock(snap.eta_seconds),
        "mean_render_seconds": None
        if snap.mean_render_seconds is None
        else round(snap.mean_render_seconds, 1),
        "elapsed": clock(snap.elapsed_seconds),
    }
    if snap.credits_submitted is not None:
        out["credits_submitted"] = round(snap.credits_submitted, 2)
    if snap.stopping:
        out["stopping"] = snap.stopping
    if snap.outages:
        out["unreachable"] = "; ".join(snap.outages)
    return out


def render(snap: ProgressSnapshot, title: str) -> Group:
    """The live panel for one snapshot."""
    finished = snap.done + snap.failed
    bar = ProgressBar(total=max(1, snap.total), completed=finished, width=40)
    head = Table.grid(padding=(0, 1))
    head.add_row(
        Text(title, style="bold"),
        bar,
        Text(f"{finished}/{snap.total}", style="bold"),
        Text(f"{100 * finished / max(1, snap.total):.0f}%"),
    )
    counts = Text()
    for index, (name, style) in enumerate(_STATES):
        if index:
            counts.append("  ")
        counts.append(f"{name} ", style="dim")
        counts.append(str(getattr(snap, name)), style=f"bold {style}")
    pace = Text(style="dim")
    rate = "-" if snap.jobs_per_second is None else f"{snap.jobs_per_second * 60:.1f}"
    render_time = "-" if snap.mean_render_seconds is None else f"{snap.mean_render_seconds:.1f} s"
    pace.append(
        f"{rate} jobs/min  mean render {render_time}  elapsed {clock(snap.elapsed_seconds)}"
        f"  ETA {clock(snap.eta_seconds)}"
    )
    if snap.credits_submitted is not None:
        pace.append(f"  credits submitted ~{snap.credits_submitted:g}")
    lines: list[Any] = [head, counts, pace]
    if snap.stopping:
        lines.append(Text(f"not submitting more: {snap.stopping}", style="bold yellow"))
    for outage in snap.outages:  # "API unreachable since 02:13, next try 02:15"
        lines.append(Text(outage, style="bold yellow"))
    if snap.recent_failures:
        lines.append(Text("latest failures:", style="bold red"))
        for job_id, reason in snap.recent_failures:
            lines.append(
                Text(f"  x {job_id}: {reason}", style="red", overflow="ellipsis", no_wrap=True)
            )
    return Group(*lines)


class ConsoleStream:
    """A text stream whose lines print above the live view (the log's console output)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            style = "red" if " x " in line[:12] else ("yellow" if " ! " in line[:12] else None)
            self._console.print(Text(line, style=style or ""), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        return None


class LiveProgress:
    """The live view on a terminal."""

    def __init__(self, title: str, *, file: TextIO, refresh_seconds: float = 0.5) -> None:
        self.console = Console(file=file, stderr=True)
        self.stream = ConsoleStream(self.console)
        self._title = title
        self._refresh = refresh_seconds

    async def run(self, snapshot: Snapshot) -> None:
        with Live(
            render(snapshot(), self._title),
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            try:
                while True:
                    await anyio.sleep(self._refresh)
                    live.update(render(snapshot(), self._title), refresh=True)
            finally:
                live.update(render(snapshot(), self._title), refresh=True)


class PlainProgress:
    """A ``run.progress`` event every ``every`` seconds."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._log = structlog.get_logger("wanbatch.progress")

    async def run(self, snapshot: Snapshot) -> None:
        while True:
            await anyio.sleep(self._every)
            self._log.info("run.progress", **fields(snapshot()))


View = LiveProgress | PlainProgress


async def watch(view: View, snapshot: Snapshot, every: float) -> None:
    """Run ``view`` for the whole run. A bug in a view must not end the run: its traceback goes
    to the log (``view.failed``), the console gets one line, and a live view gives way to plain
    ``run.progress`` lines (log lines then print straight to stderr)."""
    try:
        await view.run(snapshot)
    except Exception as exc:  # cancellation (the run's end) is not an Exception: it passes
        logs.plain_console()
        structlog.get_logger("wanbatch.progress").error(
            "view.failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
        )
        if isinstance(view, LiveProgress):
            await watch(PlainProgress(every), snapshot, every)
