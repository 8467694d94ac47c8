"""What the user watches while a run goes: a live view in a terminal, periodic lines elsewhere.

- ``LiveProgress`` (a terminal, not ``-q``, not ``--json-logs``): a rich panel redrawn twice a
  second with counts by state, a bar (done green, failed red, nothing red before a failure),
  throughput, an ETA, the mean render time, credits, the latest failures, why submissions
  stopped and any host that is unreachable. It is laid out for the terminal's width at each
  redraw: items move to the next line whole, so no number is split or cut, and a long title
  gives way first. Log lines (downloads, warnings, errors) print above it through ``stream``,
  so the display never hides an error. rich honours ``NO_COLOR``.
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
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.text import Text

from wanbatch import logs
from wanbatch.jobstate import LABELS, Standing
from wanbatch.scheduler import ProgressSnapshot

Snapshot = Callable[[], ProgressSnapshot]

# The counts the view shows: (snapshot field, the state's word, colour). The words are
# jobstate.LABELS, as in plan, status and the gallery ("to download", not "downloading").
_STATES = (
    ("new", LABELS[Standing.NEW], "bright_black"),
    ("rendering", LABELS[Standing.IN_FLIGHT], "yellow"),
    ("downloading", LABELS[Standing.TO_DOWNLOAD], "cyan"),
    ("done", LABELS[Standing.DONE], "green"),
    ("failed", LABELS[Standing.FAILED], "red"),
)
_BAR = 40  # cells of the bar when there is room
_MIN_BAR = 10
_MIN_TITLE = 8


def clock(seconds: float | None) -> str:
    """0:01:05 for 65 seconds; "-" when unknown."""
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def fields(snap: ProgressSnapshot) -> dict[str, Any]:
    """The snapshot as flat log fields (the ``run.progress`` event). A rate not known yet
    (before the first job finishes) is left out: the console line shows no ``None``."""
    out: dict[str, Any] = {"done": f"{snap.done}/{snap.total}"}
    for name, word, _ in _STATES:  # the states' words as field names: to_download=3
        if name != "done":
            out[word.replace(" ", "_")] = getattr(snap, name)
    if snap.jobs_per_second is not None:
        out["jobs_per_minute"] = round(snap.jobs_per_second * 60, 1)
    out["eta"] = clock(snap.eta_seconds)
    if snap.mean_render_seconds is not None:
        out["mean_render_seconds"] = round(snap.mean_render_seconds, 1)
    out["elapsed"] = clock(snap.elapsed_seconds)
    if snap.credits_submitted is not None:
        out["credits_submitted"] = round(snap.credits_submitted, 2)
    if snap.stopping:
        out["stopping"] = snap.stopping
    if snap.outages:
        out["unreachable"] = "; ".join(snap.outages)
    return out


def number(count: int) -> str:
    """123,456: a count as the view shows it."""
    return f"{count:,}"


def amount(value: float) -> str:
    """1,234,567.5 credits; 40 for 40.0. Never an exponent (``:g`` gave 1.23457e+06)."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def percent(finished: int, total: int) -> str:
    """Whole percent, rounded down: 100% only when every job is finished."""
    return f"{100 * finished // total if total else 0}%"


def bar(snap: ProgressSnapshot, width: int) -> Text:
    """The bar: done in green, failed in red, the rest a thin grey line. Nothing red until a
    job has failed (rich's default bar colour shows as bright red on a 16-colour terminal)."""
    total = max(1, snap.total)
    finished = min(total, snap.done + snap.failed)
    done_cells = min(width, snap.done * width // total)
    finished_cells = finished * width // total
    failed_cells = finished_cells - done_cells
    if snap.failed and not failed_cells and finished_cells < width:
        failed_cells = 1  # a failure is always visible
    rest = max(0, width - done_cells - failed_cells)
    out = Text()
    out.append("━" * done_cells, style="green")
    out.append("━" * failed_cells, style="red")
    out.append("─" * rest, style="bright_black")
    return out


def pack(items: list[Text], width: int, gap: int = 2) -> list[Text]:
    """``items`` on as few lines of ``width`` cells as will hold them, never one split."""
    lines: list[Text] = []
    for item in items:
        if lines and lines[-1].cell_len + gap + item.cell_len <= width:
            lines[-1].append(" " * gap)
            lines[-1].append_text(item)
        else:
            lines.append(item.copy())
    return lines


def head(snap: ProgressSnapshot, title: str, width: int) -> list[Text]:
    """Title, bar, "123,456/1,000,000 12%": the numbers whole; the title cut, or on a line of
    its own, before the bar gets narrower than ``_MIN_BAR``."""
    finished = snap.done + snap.failed
    numbers = Text(f"{number(finished)}/{number(snap.total)}", style="bold")
    numbers.append(f" {percent(finished, snap.total)}")
    room = width - numbers.cell_len - 1  # for the title, the bar and the space between them
    name = Text(title, style="bold", no_wrap=True, overflow="ellipsis")
    lines: list[Text] = []
    if name.cell_len + 1 + _MIN_BAR <= room:
        bar_width = min(_BAR, room - name.cell_len - 1)
    elif room - 1 - _MIN_BAR >= _MIN_TITLE:
        name.truncate(room - 1 - _MIN_BAR, overflow="ellipsis")
        bar_width = _MIN_BAR
    else:  # too narrow for both: the title above
        name.truncate(width, overflow="ellipsis")
        lines.append(name)
        name, bar_width = Text(), min(_BAR, room)
    line = name.copy()
    if bar_width > 0:
        if line.plain:
            line.append(" ")
        line.append_text(bar(snap, bar_width))
    if line.plain:
        line.append(" ")
    line.append_text(numbers)
    return [*lines, line]


def counts(snap: ProgressSnapshot) -> list[Text]:
    """ "new 800,000", "rendering 70,000", "to download 12"...: a state's colour only when it
    holds jobs."""
    items = []
    for name, word, style in _STATES:
        value = getattr(snap, name)
        item = Text(f"{word} ", style="dim")
        item.append(number(value), style=f"bold {style}" if value else "dim")
        items.append(item)
    return items


def pace(snap: ProgressSnapshot) -> list[Text]:
    rate = "-" if snap.jobs_per_second is None else f"{snap.jobs_per_second * 60:,.1f}"
    render_time = "-" if snap.mean_render_seconds is None else f"{snap.mean_render_seconds:.1f} s"
    words = [
        f"{rate} jobs/min",
        f"mean render {render_time}",
        f"elapsed {clock(snap.elapsed_seconds)}",
        f"ETA {clock(snap.eta_seconds)}",
    ]
    if snap.credits_submitted is not None:
        words.append(f"credits submitted ~{amount(snap.credits_submitted)}")
    return [Text(word, style="dim") for word in words]


def lines(snap: ProgressSnapshot, title: str, width: int) -> list[Text]:
    """The live panel for one snapshot, laid out for ``width`` cells."""
    out = [*head(snap, title, width), *pack(counts(snap), width), *pack(pace(snap), width)]
    if snap.stopping:  # free text wraps at spaces, so its numbers stay whole
        out.append(Text(f"not submitting more: {snap.stopping}", style="bold yellow"))
    for outage in snap.outages:  # "API unreachable since 02:13, next try 02:15"
        out.append(Text(outage, style="bold yellow"))
    if snap.recent_failures:
        out.append(Text("latest failures:", style="bold red"))
        for job_id, reason in snap.recent_failures:
            out.append(
                Text(f"  x {job_id}: {reason}", style="red", overflow="ellipsis", no_wrap=True)
            )
    return out


class _View:
    """A snapshot's panel, laid out anew for the console's width at each refresh."""

    def __init__(self, snap: ProgressSnapshot, title: str) -> None:
        self._snap, self._title = snap, title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Group(*lines(self._snap, self._title, options.max_width))


def render(snap: ProgressSnapshot, title: str) -> _View:
    """The live panel for one snapshot."""
    return _View(snap, title)


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
