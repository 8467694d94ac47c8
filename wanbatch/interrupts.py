"""Ctrl-C, SIGTERM and SIGHUP: stop cleanly, keep the journal whole, print the summary, exit
130; a second signal leaves now.

SIGHUP (the terminal closed, the ssh session dropped) is a stop like the others: by default it
would kill the process before the summary and the report. Under ``nohup`` (SIGHUP ignored) it is
left ignored. The console it leaves behind is
dropped by ``logs.guarded_console``; the log file and the journal are still written.

A create in flight and its journal line are shielded from the stop for a short grace period
(``RunOptions.stop_grace_seconds``), so a task the server made is not forgotten.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator

import anyio

from wanbatch.runcontext import RunContext
from wanbatch.stops import StopReason


def stop_signals() -> tuple[signal.Signals, ...]:
    """SIGINT, SIGTERM and SIGHUP; not SIGHUP when it is ignored (``nohup``): a run started so
    must outlive its terminal, as the user asked."""
    hangup = () if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else (signal.SIGHUP,)
    return (signal.SIGINT, signal.SIGTERM, *hangup)


class Interrupts:
    def __init__(self, ctx: RunContext, cancel: Callable[[], None]) -> None:
        self.ctx = ctx
        self.cancel = cancel
        self.scope: anyio.CancelScope | None = None  # the run's main scope, once it runs
        self._shields: set[anyio.CancelScope] = set()
        self._signalled = False

    @contextlib.contextmanager
    def shielded(self) -> Iterator[anyio.CancelScope]:
        """Shield a create and its journal line from Ctrl-C, for a short grace period only."""
        scope = anyio.CancelScope(shield=True)
        if self.scope is not None and self.scope.cancel_called:
            scope.deadline = anyio.current_time() + self.ctx.options.stop_grace_seconds
        self._shields.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._shields.discard(scope)

    async def watch(self) -> None:
        with anyio.open_signal_receiver(*stop_signals()) as signals:
            async for signum in signals:
                if self._signalled:
                    os._exit(130)  # second signal: leave now; the journal is already whole
                self._signalled = True
                name = signal.Signals(signum).name
                self.ctx.stops.record(StopReason.INTERRUPTED, f"stopped by {name}")
                self.ctx.log.warning("run.interrupted", signal=name)
                deadline = anyio.current_time() + self.ctx.options.stop_grace_seconds
                for shield in list(self._shields):
                    shield.deadline = min(shield.deadline, deadline)
                self.cancel()


async def pause_unless_stopped(seconds: float) -> str | None:
    """Wait ``seconds`` between two rounds of a run (``--until-done``); the name of the stop
    signal that ended the wait early, or None when it ran its course."""
    with anyio.move_on_after(seconds), anyio.open_signal_receiver(*stop_signals()) as signals:
        async for signum in signals:
            return signal.Signals(signum).name
    return None
