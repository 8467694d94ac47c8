"""Why a run stops, and what each ending's exit code is. Pure.

One table (``EXIT_CODES``) gives every exit code its meaning; the end-of-run summary, the CLI's
help epilog and the README's table are read from it. ``StopController`` keeps the one reason a
run stopped for (the first that matters; a broken journal outranks everything) and whether new
tasks may still be created.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from wanbatch.errors import ExitCode


class StopReason(enum.StrEnum):
    """A reason the whole run stopped (or stopped creating tasks)."""

    AUTH = "auth"  # the key was rejected
    CREDITS = "credits"  # the server said the credits ran out (402)
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM or SIGHUP
    JOURNAL = "journal"  # the journal cannot be written or trusted
    DISK = "disk"  # the output tree cannot be written (full, read-only, permission refused)
    UNREACHABLE = "unreachable"  # a host stayed unreachable longer than --max-outage
    CONFIG = "config"  # the very first request found nobody at the API base URL

    @property
    def exit_code(self) -> int:
        return _REASON_EXIT[self]


# exit code -> what it means; the single source for the summary, --help and the README.
EXIT_CODES: dict[int, str] = {
    ExitCode.DONE: "every job rendered and downloaded",
    ExitCode.FAILED_JOBS: "finished, but some jobs failed for good",
    ExitCode.USAGE: "usage or manifest error, changed jobs, a damaged journal, unclaimed videos, insecure URL,"
    " missing key, or no API host at the base URL (its first request refused): nothing was sent",
    ExitCode.KEY_REJECTED: "the key was rejected; nothing more was sent",
    ExitCode.NO_CREDITS: "credits ran out; in-flight jobs were finished; top up and rerun",
    ExitCode.WORK_LEFT: "stopped with work left (a cost cap, retries used up, stalled jobs, a host unreachable"
    " past --max-outage, a disk or folder fault, the journal or the output tree locked);"
    " rerun resumes",
    ExitCode.INTERNAL: "internal error (a bug in wanbatch): a one-line reason, the traceback in the log or a"
    " file it names; the journal is kept, rerun resumes",
    ExitCode.INTERRUPTED: "interrupted; rerun resumes",
}

INTERNAL_ERROR = ExitCode.INTERNAL  # an exception wanbatch did not expect reached the top

# When several errors end a command at once (a task group's exception group), the one reported
# is a journal error if there is one (it outranks all, as in StopController), else the first of
# these exit codes: a rejected key, credits out, work left, usage.
_SEVERITY = (
    ExitCode.KEY_REJECTED,
    ExitCode.NO_CREDITS,
    ExitCode.WORK_LEFT,
    ExitCode.USAGE,
    ExitCode.FAILED_JOBS,
)


def severity(exit_code: int, *, journal: bool = False) -> tuple[bool, int]:
    """How much an error outranks others (higher: reported first); ``journal``: the journal
    cannot be used or trusted."""
    rank = len(_SEVERITY) - _SEVERITY.index(exit_code) if exit_code in _SEVERITY else 0
    return journal, rank


_REASON_EXIT = {
    StopReason.AUTH: ExitCode.KEY_REJECTED,
    StopReason.CREDITS: ExitCode.NO_CREDITS,
    StopReason.INTERRUPTED: ExitCode.INTERRUPTED,
    StopReason.JOURNAL: ExitCode.WORK_LEFT,
    StopReason.DISK: ExitCode.WORK_LEFT,
    StopReason.UNREACHABLE: ExitCode.WORK_LEFT,
    StopReason.CONFIG: ExitCode.USAGE,
}


def exit_code_for(reason: StopReason | None, *, work_left: bool, failed: bool) -> int:
    """The exit code of a run that stopped for ``reason`` (None: it ran to its end)."""
    if reason is not None and reason is not StopReason.JOURNAL:
        return reason.exit_code
    if reason is StopReason.JOURNAL or work_left:
        return ExitCode.WORK_LEFT
    return ExitCode.FAILED_JOBS if failed else ExitCode.DONE


@dataclass(slots=True)
class StopController:
    """The run's stop state. ``cancel`` (injected) ends the run's task group at once."""

    cancel: Callable[[], None] = lambda: None
    reason: StopReason | None = None
    message: str | None = None
    submitting: bool = True  # may new tasks be created?
    cap_message: str | None = None  # the cost guard's words, when it stopped submissions
    history: list[tuple[StopReason, str]] = field(default_factory=list)

    def record(self, reason: StopReason, message: str) -> None:
        """Note a stop; the first reason stands, except that credits yield to any other and a
        broken journal outranks all."""
        self.history.append((reason, message))
        if self.reason in (None, StopReason.CREDITS) or reason is StopReason.JOURNAL:
            self.reason = reason
            self.message = message

    def halt(self, reason: StopReason, message: str) -> None:
        """Stop everything now."""
        self.record(reason, message)
        self.submitting = False
        self.cancel()

    def stop_submitting(self, reason: StopReason, message: str) -> None:
        """Create nothing more; finish what is in flight (402)."""
        self.submitting = False
        if self.reason is None:
            self.record(reason, message)

    def cap_reached(self, message: str) -> bool:
        """The cost guard stopped submissions; True the first time (to announce it)."""
        self.submitting = False
        if self.cap_message is None:
            self.cap_message = message
            return True
        return False

    @property
    def why_not_submitting(self) -> str | None:
        if self.submitting:
            return None
        return self.cap_message or self.message


ROUND_PAUSE_SECONDS = 60.0  # ``--until-done``: the wait before the run goes round again


def pause_before_next_round(
    exit_code: int,
    reason: StopReason | None,
    *,
    capped: bool,
    until_done: bool,
    wait_credits: float | None,
    every: float = ROUND_PAUSE_SECONDS,
) -> float | None:
    """``--until-done``: seconds to wait before resuming again, or None to end here.

    What time can cure goes round again: work left (an outage past ``--max-outage``, retries
    used up, a long Retry-After, stalled jobs) and, with ``--wait-credits``, credits that ran
    out. A user's cap, a rejected key, a broken journal or disk, an interrupt or a finished
    batch end the run."""
    if capped:
        return None
    if exit_code == 4:
        return wait_credits
    if not until_done or exit_code != 5:
        return None
    if reason in (StopReason.DISK, StopReason.JOURNAL):
        return None
    return every
