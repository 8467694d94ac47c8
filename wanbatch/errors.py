"""Every error a wanbatch user can meet, in one hierarchy.

This module imports nothing of ours. Third-party exceptions (httpx, OS errors) are translated
into these at one boundary each (``client.py`` for the wire, ``journal.py`` and ``outtree.py``
(for ``download.py``) for the disk), with ``raise ... from exc`` so the cause is kept.

    WanbatchError
    ├── UsageError                 bad flags or environment; nothing was sent (exit 2)
    ├── ManifestError              one or more problems in a manifest; nothing was sent (exit 2)
    ├── InsecureURLError           plain http:// to a host other than loopback (exit 2)
    ├── ManifestChangedError       jobs edited since they were submitted; the user must choose (exit 2)
    ├── UnclaimedVideoError        videos on disk no record or sidecar accounts for (exit 2)
    ├── JournalError               the state journal cannot be trusted or used
    │   ├── JournalCorruptError    a damaged record before the last line (names the line and
    │   │                          `--salvage-journal`; exit 2: the user must choose)
    │   ├── JournalLockedError     another runner holds the output tree (names the holder)
    │   ├── JournalMismatchError   the journal belongs to another API base URL
    │   └── JournalWriteError      append or fsync failed; the run stops, nothing more is sent
    ├── ApiError                   an answer (or no answer) from the API host
    │   ├── TransientApiError      429, 5xx, timeouts, resets, garbled bodies: retry with backoff
    │   │   ├── RateLimitedError   429, carries ``retry_after_seconds`` when the server gave one
    │   │   ├── NotSentError       no connection was made (refused, DNS, TLS): the host never saw
    │   │   │                          it; the host counts as down (an outage, ``outage.py``)
    │   │   ├── AnswerUnknownError a 2xx to a create that names no usable task: not resent
    │   │   └── TaskNotFoundError  404 for a task we created: waited out, then the task is lost
    │   ├── JobRejectedError       400: this job fails with the server's message; the batch goes on
    │   │   └── BadTaskIdError     a task id that cannot be put in a URL: that job fails
    │   ├── AuthError              401: the key was rejected; stop at once (exit 3)
    │   └── CreditsExhaustedError  402: stop submitting, finish what is in flight (exit 4)
    ├── DownloadError              fetching a finished video
    │   ├── VideoUrlExpiredError   403/404/410 (or a web page, not a video): refresh the task's URL
    │   ├── TransientDownloadError short body, reset, 5xx, not an MP4, too slow: resume or retry
    │   │   └── VideoHostUnreachableError  no connection to the video host: an outage of it
    │   └── UnusableVideoUrlError  not an absolute http(s) URL: never fetched, never retried
    └── DiskError                  the output tree cannot be written (``download.py``): a full or
                                   read-only disk stops the run (exit 5); a path problem of one
                                   job (a file in the way, a symlink) leaves that job only

Each ``ApiError`` carries the HTTP status, the server's message, the request id, ``retry_after``
and its ``disposition``: transient, fatal to the job, or fatal to the batch. Messages never hold
the API key: the client redacts before it raises.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """Every exit code wanbatch ends with, named once; ``stops.EXIT_CODES`` says what each means
    (the help epilog, the closing lines and the README's table are read from there)."""

    DONE = 0  # every job rendered and downloaded
    FAILED_JOBS = 1  # finished, but some jobs failed for good
    USAGE = 2  # usage or manifest error, or anything else found before sending: nothing sent
    KEY_REJECTED = 3
    NO_CREDITS = 4
    WORK_LEFT = 5  # stopped with work left; rerun resumes
    INTERNAL = 70  # a bug in wanbatch
    INTERRUPTED = 130


class Disposition(enum.Enum):
    """What an error means for the run."""

    TRANSIENT = "transient"  # retry the same request later
    JOB = "job"  # this job has failed for good; others go on
    BATCH = "batch"  # the whole batch must stop (or stop submitting)


class WanbatchError(Exception):
    """Base of every error wanbatch raises on purpose."""

    exit_code: int = ExitCode.WORK_LEFT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(WanbatchError):
    """Bad flags, a missing key, a missing file: the run never started."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """One problem in a manifest: where it is and what is wrong."""

    file: str  # the manifest; for a flag's value, the flag ("--model wan-3")
    location: str  # the line, "12", printed as file:12:; "" when no line is known
    key: str  # dotted key path such as "jobs[2].duration", or "" for the file itself
    message: str

    def __str__(self) -> str:
        where = ":".join(part for part in (self.file, self.location) if part)
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ManifestError(WanbatchError):
    """A manifest with any problem; all problems found in one pass are listed."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: Sequence[ManifestProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the manifest; nothing was sent:"
        super().__init__("\n".join([head, *(f"  {problem}" for problem in self.problems)]))


class InsecureURLError(WanbatchError):
    """The key would travel over plain http:// to a host other than loopback."""

    exit_code = ExitCode.USAGE


class ManifestChangedError(WanbatchError):
    """Jobs whose fields changed since they were submitted: neither reused nor resubmitted silently."""

    exit_code = ExitCode.USAGE

    def __init__(self, job_ids: Sequence[str], message: str) -> None:
        self.job_ids = tuple(job_ids)
        super().__init__(message)


class UnclaimedVideoError(WanbatchError):
    """Videos on disk that neither the journal nor a sidecar accounts for: creating their jobs
    would pay again and overwrite them, so the run refuses until the user moves them."""

    exit_code = ExitCode.USAGE


class JournalError(WanbatchError):
    """The state journal cannot be used."""

    exit_code = ExitCode.WORK_LEFT


class JournalCorruptError(JournalError):
    """A record before the last line does not parse; the journal is not trusted. A rerun
    cannot resume past it, so the user must choose (exit 2): salvage, or move it aside."""

    exit_code = ExitCode.USAGE

    def __init__(self, path: str, line: int, detail: str) -> None:
        self.path = path
        self.line = line
        super().__init__(
            f"{path}: line {line} is damaged ({detail}); the journal is refused and nothing "
            "was sent. `wanbatch run MANIFEST --salvage-journal` keeps every record that still "
            "makes sense, moves the damaged file aside (it is never deleted), takes task ids "
            "from the videos' sidecars and lists what was lost."
        )


class JournalLockedError(JournalError):
    """Another runner holds the output tree."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is locked by another runner ({holder}); wait for it to finish.")


class JournalMismatchError(JournalError):
    """The journal was written against another API base URL."""

    exit_code = ExitCode.USAGE


class JournalWriteError(JournalError):
    """Appending to or syncing the journal failed; nothing further may be sent."""


class ApiError(WanbatchError):
    """An error answer, or no usable answer, from the API host."""

    disposition: Disposition = Disposition.TRANSIENT

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after_seconds: float | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.request_id = request_id
        self.retry_after_seconds = retry_after_seconds
        self.code = code
        parts = [message]
        if status is not None:
            parts.insert(0, f"HTTP {status}:")
        if request_id:
            parts.append(f"(request id {request_id})")
        super().__init__(" ".join(parts))
        self.server_message = message


class TransientApiError(ApiError):
    """Worth retrying: 429, 5xx, timeouts, resets, garbled answers."""

    disposition = Disposition.TRANSIENT


class RateLimitedError(TransientApiError):
    """429: the host asks us to slow down, perhaps for ``retry_after_seconds``."""


class NotSentError(TransientApiError):
    """No connection to the host was made (refused, unknown name, connect timeout): the request
    certainly did not arrive, so a create that met this made no task."""


class AnswerUnknownError(TransientApiError):
    """A create answered 2xx with no usable task (not JSON, no id, an id that cannot be used):
    the server took the request and may have made a task we cannot name. The create is not
    resent in this run; the job is left with its outcome unknown."""


class TaskNotFoundError(TransientApiError):
    """404 for a task we created: servers may not know a new task at once (eventual
    consistency), so this is waited out for a while before the task is called lost."""


class JobRejectedError(ApiError):
    """400: the server refused this job; retrying the same request cannot help."""

    disposition = Disposition.JOB


class BadTaskIdError(JobRejectedError):
    """A task id that cannot be used in a URL (from an answer or an old journal): that job
    fails with this reason; nothing is sent with it."""


class AuthError(ApiError):
    """401: the key was rejected."""

    disposition = Disposition.BATCH
    exit_code = ExitCode.KEY_REJECTED


class CreditsExhaustedError(ApiError):
    """402: no credits left for new tasks."""

    disposition = Disposition.BATCH
    exit_code = ExitCode.NO_CREDITS


class DownloadError(WanbatchError):
    """Fetching a finished video failed."""


class VideoUrlExpiredError(DownloadError):
    """The video host refused the URL (403/404/410); fetch the task again for a fresh one."""


class TransientDownloadError(DownloadError):
    """A short body, a reset or a 5xx from the video host; resume or retry."""


class VideoHostUnreachableError(TransientDownloadError):
    """No connection to the video host could be made (refused, unknown name, connect timeout,
    TLS): the host is down, not the URL; downloads wait for it (``outage.HostHealth``)."""


class TaskGoneError(DownloadError):
    """Asked again for its video, the provider said the task can never give it (Replicate
    deletes outputs an hour after they finish): the job has failed for good (journaled), so
    ``retry`` renders it again."""


class UnusableVideoUrlError(DownloadError):
    """The task's video URL is not an absolute http(s) URL (``javascript:``, ``file:``, a
    relative path...): it is never fetched and not retried; the job is left with the reason."""


class DiskError(WanbatchError):
    """Writing into the output tree failed (``download.py`` translates ``OSError`` here).

    ``stops_batch``: the disk is full or read-only, or permission is denied, so every further
    download would fail too and the run stops (exit 5). Otherwise the fault is one job's path
    (a file where its folder should be, a symlink refused): that job is left, the batch goes on.
    """

    exit_code = ExitCode.WORK_LEFT

    def __init__(self, message: str, *, stops_batch: bool = True) -> None:
        super().__init__(message)
        self.stops_batch = stops_batch
