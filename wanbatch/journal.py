"""The resumable state journal: append, fsync, replay, compaction, and the one-runner lock.

(Over 400 lines: the format, the replay, the appends and the compaction must agree on the same
bytes on disk and on the same lock; they are kept in one module for that.)

``<output>/.wanbatch/journal.jsonl`` is append-only JSON Lines, one record a line. Each line ends
with a CRC-32 of the rest (``"crc":"xxxxxxxx"``) so that a flipped byte is caught, not guessed at.
A run writes a ``run`` record first (the API base URL, pid, host, version); every other record is
a ``JobEvent``. Replay folds the job events through ``lifecycle.apply``.

- A torn last line (no newline: the machine died mid-write) is cut off when the journal is
  opened for writing, and ignored when it is only read.
- Any other damaged line is refused with its line number (``JournalCorruptError``, exit 2);
  ``run --salvage-journal`` repairs it (``salvage.py``, under the lock: ``locked``).
- Appends are buffered and written together (group commit); ``durable=True`` returns only after
  the line is written and fsynced. A failed write or fsync breaks the journal for good: every later
  append raises ``JournalWriteError``, so the run stops and nothing further is sent.
- Compaction rewrites the journal as its run headers and one snapshot record per job
  (``compaction.py``), in a new file that is fsynced and renamed over the journal, the folder
  fsynced after: a crash at any point leaves the old journal or the new one, both whole. It runs
  under the lock only, when ``compaction.should_compact`` says so: at open (from the replay), at
  close (from the file), and during a run after a flush (from the records in memory, taken in
  step with the buffer; the write lock is held, so appends wait, then go on into the new file).
  ``Journal.records`` must therefore hold every job of the file: it is what a run compacts.
- ``<output>/.wanbatch/lock`` is held with ``flock`` for the life of a run (the kernel frees it if
  the process dies), and names its holder for whoever finds it taken. A run that ends removes it
  while still holding it, so a finished run leaves nothing that reads as a live one; a runner
  that locked the file as it was being removed sees that and locks the path anew. Whether a run
  is live is the lock, not the file (a killed runner leaves the file): ``live_run``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import os
import socket
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from wanbatch import __version__
from wanbatch.compaction import MIN_EVENTS, SNAPSHOT, from_snapshot, should_compact, to_snapshot
from wanbatch.errors import (
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalMismatchError,
    JournalWriteError,
)
from wanbatch.lifecycle import IllegalTransition, apply
from wanbatch.models import (
    DEFAULT_PROVIDER,
    STATE_DIR_NAME,
    EventKind,
    JobEvent,
    JobRecord,
    JobState,
)
from wanbatch.outtree import fsync_dir
from wanbatch.settings import without_userinfo

JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = "lock"
_LOCK_TRIES = 5  # a lock found held is tried again this often ...
_LOCK_PAUSE = 0.01  # ... this many seconds apart
COMPACT_SUFFIX = ".compact.tmp"  # the new journal, before it is renamed over the old one
FORMAT_VERSION = 1
# The optional fields of JobEvent, in its field order (``decode_event`` passes them so).
_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(JobEvent))[3:]
_decode_json = json.JSONDecoder().decode
_CRC_SUFFIX_LEN = len(',"crc":"00000000"}')


def state_dir(output_dir: Path) -> Path:
    return output_dir / STATE_DIR_NAME


def journal_path(output_dir: Path) -> Path:
    return state_dir(output_dir) / JOURNAL_NAME


# --- encoding -------------------------------------------------------------------------------


def _seal(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    crc = zlib.crc32(body.encode("utf-8")) & 0xFFFFFFFF
    return f'{body[:-1]},"crc":"{crc:08x}"}}\n'.encode()


def encode_event(event: JobEvent) -> bytes:
    record: dict[str, Any] = {"v": FORMAT_VERSION, "at": round(event.at, 3), "ev": str(event.kind)}
    record["job"] = event.job_id
    for name in _EVENT_FIELDS:
        value = getattr(event, name)
        if value is not None:
            record[name] = value
    return _seal(record)


def encode_run_header(base_url: str, manifest: str, provider: str = DEFAULT_PROVIDER) -> bytes:
    return _seal(
        {
            "v": FORMAT_VERSION,
            "at": round(time.time(), 3),
            "ev": "run",
            "provider": provider,
            "base_url": without_userinfo(base_url),
            "manifest": manifest,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "version": __version__,
        }
    )


def unseal(line: bytes) -> dict[str, Any]:
    """Parse one line and check its CRC; raises ValueError with a short reason."""
    if len(line) < _CRC_SUFFIX_LEN or not line.endswith(b'"}'):
        raise ValueError("not a sealed record")
    suffix = line[-_CRC_SUFFIX_LEN:]
    if not suffix.startswith(b',"crc":"'):
        raise ValueError("no checksum")
    body = line[:-_CRC_SUFFIX_LEN] + b"}"
    try:
        expected = int(suffix[8:16], 16)
    except ValueError:
        raise ValueError("bad checksum field") from None
    if zlib.crc32(body) & 0xFFFFFFFF != expected:
        raise ValueError("checksum mismatch")
    try:
        value = _decode_json(body.decode("utf-8"))
    except RecursionError:  # nested past the parser's depth: a damaged line like any other
        raise ValueError("nested too deep") from None
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


_LATEST_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: later times cannot be shown


def decode_event(record: dict[str, Any]) -> JobEvent:
    """A job event from a record; ValueError when a field has a type it cannot have (a record
    whose checksum is right may still have been written by hand)."""
    get = record.get
    values = [get(name) for name in _EVENT_FIELDS]
    for name, value in zip(_EVENT_FIELDS, values, strict=True):
        wanted = (int,) if name == "size" else (str,)
        if value is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
            raise ValueError(f"{name} is {type(value).__name__}, not {wanted[0].__name__}")
        if isinstance(value, str) and "\x00" in value:
            raise ValueError(f"{name} holds a NUL character")
    at = record["at"]
    if isinstance(at, bool) or not isinstance(at, int | float) or not 0 <= at <= _LATEST_TIME:
        raise ValueError(f"at is not a time: {str(at)[:40]}")
    return JobEvent(EventKind(record["ev"]), str(record["job"]), float(at), *values)


# --- replay ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Replay:
    """What a journal says: its base URL, each job's record, and whether the tail was torn."""

    base_url: str | None = None
    provider: str | None = None  # as the first run record names it
    records: dict[str, JobRecord] = field(default_factory=dict)
    manifests: list[str] = field(default_factory=list)  # the manifests runs were given, in order
    runs: int = 0
    events: int = 0  # job events (not snapshots): what a compaction would fold
    snapshots: int = 0
    headers: list[bytes] = field(default_factory=list)  # the run records, as written
    valid_bytes: int = 0  # length of the prefix made of complete records
    torn_tail: bool = False
    # Some job left "planned": a create was sent to ``base_url``, which the tree now keeps.
    pinned: bool = False


def replay_bytes(data: bytes, path: str) -> Replay:
    """Replay journal bytes; a torn last line is dropped, other damage raises with the line."""
    result = Replay()
    records = result.records
    # The API the tree's tasks live at: that of the last run header before a task was made there
    # (a `created` event, a snapshot with a task id) or may have been (a create whose answer is
    # unknown). Runs before that made nothing: a mistyped address nobody answered, or one that
    # refused every create (a base URL without its /v1: 404s); they do not pin the tree.
    committed = False
    made = False
    offset = 0
    line_number = 0
    size = len(data)
    # One line at a time (not data.split): a 100,000-job journal is 500,000 lines, and holding
    # them all at once as separate objects would add as much memory as the file again.
    while offset < size:
        end = data.find(b"\n", offset)
        line_number += 1
        if end < 0:  # no newline: the last write was cut short
            result.torn_tail = True
            break
        try:
            record = unseal(data[offset:end])
            kind = record.get("ev")
            if kind == SNAPSHOT:
                snapshot = from_snapshot(record)
                if snapshot.job_id in records:
                    raise ValueError(f"a snapshot of job {snapshot.job_id} after its events")
                records[snapshot.job_id] = snapshot
                result.snapshots += 1
                made = made or snapshot.task_id is not None
            elif kind == "run":
                base_url = without_userinfo(str(record["base_url"]))
                committed = committed or made or _unknown_answers(records)
                # (No address yet: the first header was lost, e.g. to salvage; this one was
                # written after the tasks were made, so it names where they live.)
                if not committed or result.base_url is None:
                    result.base_url = base_url
                    # A journal from before providers were named was written for wanapi.
                    result.provider = str(record.get("provider", DEFAULT_PROVIDER))[:100]
                result.runs += 1
                manifest = record.get("manifest")
                if isinstance(manifest, str) and "\x00" in manifest:
                    raise ValueError("the manifest path holds a NUL character")
                if isinstance(manifest, str) and manifest not in result.manifests:
                    result.manifests.append(manifest)
                result.headers.append(data[offset : end + 1])
            else:
                event = decode_event(record)
                job_id = event.job_id
                current = records.get(job_id)
                records[job_id] = apply(current or JobRecord(job_id=job_id), event)
                result.events += 1
                made = made or event.kind is EventKind.CREATED
        except IllegalTransition as exc:
            raise JournalCorruptError(path, line_number, str(exc)) from exc
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise JournalCorruptError(path, line_number, str(exc) or type(exc).__name__) from exc
        offset = end + 1
        result.valid_bytes = offset
    result.pinned = committed or made or _unknown_answers(records)
    return result


def _unknown_answers(records: dict[str, JobRecord]) -> bool:
    """Some create was sent and its answer is unknown: a task may exist."""
    return any(one.state is JobState.SUBMITTING for one in records.values())


def read_journal(output_dir: Path) -> Replay:
    """Read a journal without locking or changing it (for ``status`` and ``plan``)."""
    path = journal_path(output_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Replay()
    except OSError as exc:  # a folder where the journal (or a file where a folder) should be
        raise JournalError(
            f"cannot read the journal {path}: {exc.strerror or exc}. Nothing was sent or"
            f" changed; make {output_dir} a folder that holds a journal file, and rerun."
        ) from exc
    return replay_bytes(data, str(path))


def job_history(output_dir: Path, job_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every record of ``job_id`` in the journal, in the order written, for ``show``: each as
    ``(runs, fields)``, ``runs`` the run records before it (1: written by the first run) and
    ``fields`` the line's own (an event, or the snapshot a compaction left), without its
    version and checksum. Read a line at a time, without locking or changing anything; a torn
    last line is ignored, and a damaged line of the job raises ``JournalCorruptError``."""
    path = journal_path(output_dir)
    needle = b'"job":' + json.dumps(job_id, ensure_ascii=False).encode()
    runs = 0
    try:
        handle = open(path, "rb")  # noqa: SIM115 -- closed below; a missing journal is no history
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break  # torn: the last write was cut short
            line = line[:-1]
            if b'"ev":"run"' in line:
                runs += 1
                continue
            if needle not in line:
                continue
            try:
                record = unseal(line)
            except ValueError as exc:
                raise JournalCorruptError(str(path), number, str(exc)) from exc
            if record.get("job") != job_id:
                continue
            record.pop("v", None)
            record.pop("crc", None)
            yield runs, record


# --- compaction -------------------------------------------------------------------------------

COMPACT_MIN_EVENTS = MIN_EVENTS  # read at each call: tests lower it


def encode_snapshot(record: JobRecord, *, live: bool = False) -> bytes:
    return _seal(to_snapshot(record, live=live))


def _encode_live_snapshot(record: JobRecord) -> bytes:
    return _seal(to_snapshot(record, live=True))


def compacted(replay: Replay) -> Iterator[bytes]:
    """The compacted journal's lines: the run records as written, then a snapshot a job (in the
    order the jobs first appear, so that the replay's records come out in the same order)."""
    yield from replay.headers
    for record in replay.records.values():
        yield encode_snapshot(record)


def _swap_in(path: Path, lines: Iterable[bytes]) -> bool:
    """Write ``lines`` (the compacted journal) beside ``path``, fsync it, rename it over ``path``, fsync the
    folder; the caller holds the lock. False (the new file removed, the journal untouched) when
    it could not be written; an OSError once renamed (the folder's fsync) is raised: appends
    must not go on into a file whose name may not survive a crash."""
    tmp = path.with_name(path.name + COMPACT_SUFFIX)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            chunk: list[bytes] = []
            size = 0
            for line in lines:
                chunk.append(line)
                size += len(line)
                if size >= 1 << 20:
                    _write_all(fd, b"".join(chunk))
                    chunk.clear()
                    size = 0
            _write_all(fd, b"".join(chunk))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    fsync_dir(path.parent)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def compact_journal(output_dir: Path, *, minimum: int = 0) -> bool:
    """Compact the journal now, under the lock, when it holds at least ``minimum`` events (and
    one a job); True if it was rewritten. A damaged journal raises ``JournalCorruptError``."""
    path = journal_path(output_dir)
    with locked(output_dir):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        replay = replay_bytes(data, str(path))
        if not should_compact(replay.events, len(replay.records), minimum=minimum):
            return False
        return _swap_in(path, compacted(replay))


# --- the writable journal --------------------------------------------------------------------


class Journal:
    """An open, locked journal for one run. Use ``Journal.open(...)`` and ``close()``."""

    def __init__(self, output_dir: Path, replay: Replay, fd: int, lock_fd: int) -> None:
        self.output_dir = output_dir
        self.path = journal_path(output_dir)
        self.replay = replay
        # The live records start as the replay's own dict (not a copy: a 100,000-job journal
        # would be held twice for the whole run).
        self.records: dict[str, JobRecord] = replay.records
        self._fd = fd
        self._lock_fd = lock_fd
        self._buffer: list[bytes] = []
        self._write_lock = anyio.Lock()
        self._broken: JournalWriteError | None = None
        # Events after the snapshots (what a compaction folds): appended minus the mark.
        self._appended = replay.events
        self._compacted_mark = 0
        self._headers = list(replay.headers)  # the run records, for a compaction during the run
        self.fsync = os.fsync  # replaceable by fault-injection tests

    @classmethod
    def open(
        cls,
        output_dir: Path,
        *,
        base_url: str,
        manifest: str,
        provider: str = DEFAULT_PROVIDER,
    ) -> Journal:
        """Lock the output tree, replay the journal, cut a torn tail, write a ``run`` record."""
        directory = state_dir(output_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _open_error(directory / JOURNAL_NAME, exc) from exc
        try:
            lock_fd = _acquire_lock(directory / LOCK_NAME)
        except OSError as exc:
            raise _open_error(directory / LOCK_NAME, exc, what="the lock file") from exc
        try:
            path = directory / JOURNAL_NAME
            try:
                data = path.read_bytes() if path.exists() else b""
            except OSError as exc:
                raise _open_error(path, exc) from exc
            replay = replay_bytes(data, str(path))
            base_url = without_userinfo(base_url)
            if replay.pinned and replay.base_url is not None and replay.base_url != base_url:
                raise JournalMismatchError(
                    f"{path} was written against {replay.base_url}, not {base_url}. "
                    "Resuming against another API would lose track of the tasks already paid "
                    f"for. Use --base-url {replay.base_url}, or a different --output folder."
                )
            if replay.pinned and replay.provider is not None and replay.provider != provider:
                raise JournalMismatchError(
                    f"{path} was written for the provider {replay.provider!r}, not"
                    f" {provider!r}. Its task ids mean nothing to another provider: resuming"
                    " there would pay for every unfinished task again. Set api.provider:"
                    f" {replay.provider} to finish this run, or use a different --output folder."
                )
            try:
                with contextlib.suppress(FileNotFoundError):  # a compaction's, cut short
                    os.unlink(path.with_name(path.name + COMPACT_SUFFIX))
                swapped = should_compact(
                    replay.events, len(replay.records), minimum=COMPACT_MIN_EVENTS
                ) and _swap_in(path, compacted(replay))
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                if replay.torn_tail and not swapped:
                    os.ftruncate(fd, replay.valid_bytes)
            except OSError as exc:
                raise _open_error(path, exc) from exc
            journal = cls(output_dir, replay, fd, lock_fd)
            if swapped:
                journal._compacted_mark = journal._appended
            header = encode_run_header(base_url, manifest, provider)
            journal._write_now(header)
            journal._headers.append(header)
            return journal
        except BaseException:
            release_lock(lock_fd, directory / LOCK_NAME)
            raise

    def record(self, job_id: str) -> JobRecord:
        return self.records.get(job_id) or JobRecord(job_id=job_id)

    def append_now(self, events: list[JobEvent]) -> None:
        """Apply and journal ``events`` at once, fsynced, before a run starts (no event loop)."""
        if self._broken is not None:
            raise self._broken
        if not events:
            return
        folded: dict[str, JobRecord] = {}
        for event in events:
            job_id = event.job_id
            folded[job_id] = apply(folded.get(job_id) or self.record(job_id), event)
        self._write_now(b"".join(map(encode_event, events)))
        self.records.update(folded)
        self._appended += len(events)

    async def append(self, event: JobEvent, *, durable: bool = True) -> JobRecord:
        """Apply ``event`` and journal it; with ``durable``, return once it is fsynced."""
        if self._broken is not None:
            raise self._broken
        new = apply(self.record(event.job_id), event)
        self._buffer.append(encode_event(event))
        self.records[event.job_id] = new
        self._appended += 1
        if durable:
            await self.flush()
        return new

    async def flush(self) -> None:
        """Write and fsync every buffered line (lines buffered meanwhile ride along)."""
        async with self._write_lock:
            if self._broken is not None:
                raise self._broken
            if not self._buffer:
                return
            data = b"".join(self._buffer)
            self._buffer.clear()
            # Once ``data`` is written, the file folds to exactly these records: taken now, in
            # step with the buffer, so that events appended meanwhile follow the snapshots.
            frozen = None
            if should_compact(
                self._appended - self._compacted_mark, len(self.records), minimum=COMPACT_MIN_EVENTS
            ):
                frozen = list(self.records.values())
                mark = self._appended
            # Shielded: the lines have left the buffer, so a stop arriving now (a rejected key,
            # Ctrl-C) must not drop them on the way to the disk.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._write_now, data)
                if frozen is not None:
                    await anyio.to_thread.run_sync(self._compact_live, frozen, mark)

    def _compact_live(self, records: list[JobRecord], mark: int) -> None:
        """Compact during a run, under the write lock (nothing is being written), from the
        records in memory: they are the fold of the same events (times rounded as written), so
        the file is not read again. Appends go on into the new file."""
        self._compacted_mark = mark  # a failure waits as long as a success would
        lines = itertools.chain(self._headers, map(_encode_live_snapshot, records))
        try:
            if not _swap_in(self.path, lines):
                return  # the journal is whole and still the one open
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:  # renamed, but not durable or not reopened: stop appending
            self._broken = JournalWriteError(
                f"cannot compact the journal {self.path}: {exc.strerror or exc}. The run"
                " stopped so that no task goes unrecorded; check the disk and rerun."
            )
            raise self._broken from exc
        os.close(self._fd)
        self._fd = fd

    def _write_now(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self.fsync(self._fd)
        except OSError as exc:
            self._broken = JournalWriteError(
                f"cannot write the journal {self.path}: {exc.strerror or exc}. "
                "The run stopped so that no task goes unrecorded; free the disk and rerun."
            )
            raise self._broken from exc

    def close(self) -> None:
        """Write what is buffered (best effort), compact the journal if it has grown enough
        (``compaction.should_compact``), and release the file and the lock."""
        try:
            if self._buffer and self._broken is None:
                data = b"".join(self._buffer)
                self._buffer.clear()
                with contextlib.suppress(Exception):
                    self._write_now(data)
        finally:
            try:
                os.close(self._fd)
                due = self._broken is None and should_compact(
                    self._appended - self._compacted_mark,
                    len(self.records),
                    minimum=COMPACT_MIN_EVENTS,
                )
                # The file is the truth now: the records are freed for what follows (and before
                # a compaction replays the file, so that it does not hold them twice).
                self.records = {}
                self.replay.records = self.records
                if due:
                    self._compact()
            finally:
                release_lock(self._lock_fd, self.path.with_name(LOCK_NAME))

    def _compact(self) -> None:
        """Compact from the file, the truth (not from memory), still under the lock. A failure
        leaves the journal whole, and it is compacted on a later open or close."""
        with contextlib.suppress(OSError, JournalError):  # an optimisation: nothing follows it
            data = self.path.read_bytes()
            replay = replay_bytes(data, str(self.path))
            if not replay.torn_tail:
                _swap_in(self.path, compacted(replay))


@contextlib.contextmanager
def locked(output_dir: Path) -> Iterator[None]:
    """Hold the output tree's lock (for work on the journal outside a run, e.g. salvage)."""
    directory = state_dir(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    fd = _acquire_lock(directory / LOCK_NAME)
    try:
        yield
    finally:
        release_lock(fd, directory / LOCK_NAME)


def _open_error(path: Path, exc: OSError, what: str = "the journal") -> JournalWriteError:
    return JournalWriteError(
        f"cannot open {what} {path}: {exc.strerror or exc}. Nothing was sent; make the"
        " output folder writable and rerun."
    )


def _acquire_lock(path: Path) -> int:
    """Lock ``path`` (made if missing) and write the holder into it; JournalLockedError, naming
    the holder, if another runner has it. Taken for an instant by ``live_run``'s look, it is
    tried again a few times before that; and a file removed by a runner that just finished
    (``release_lock``) between our open and our lock is let go and the path opened anew."""
    for attempt in itertools.count():
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if attempt < _LOCK_TRIES:
                time.sleep(_LOCK_PAUSE)  # perhaps only a look by `live_run`
                continue
            raise JournalLockedError(str(path.parent.parent), holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed by the runner that held it: the path is free, or someone's
    holder_text = (
        f"pid {os.getpid()} on {socket.gethostname()} since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())}"
    )
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder_text.encode(), 0)
    return fd


def release_lock(fd: int, path: Path) -> None:
    """Remove the lock file, still holding it (so a finished run leaves nothing that reads as
    a live one), then let go. A runner that opened the file before it was removed finds, once
    it holds the lock, that the path no longer names its file, and tries again."""
    try:
        with contextlib.suppress(OSError):
            if _same_file(fd, path):
                os.unlink(path)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it into the file."""
    holder = b""
    with contextlib.suppress(OSError):
        holder = os.pread(fd, 4096, 0)
    return holder.decode("utf-8", "replace").strip() or "unknown holder"


def _same_file(fd: int, path: Path) -> bool:
    try:
        held, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def live_run(output_dir: Path) -> str | None:
    """The holder of the output tree's lock ("pid 4242 on host since ...") while a run (or a
    salvage) holds it; None otherwise, also for a lock file a killed runner left behind.
    Changes nothing; for ``status`` and ``plan``. It tries a shared lock for an instant; a
    runner that meets it then tries again (``_acquire_lock``)."""
    try:
        fd = os.open(state_dir(output_dir) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # no lock file (no run yet, or the last one finished), or not a file
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        except OSError:
            return None
        return None  # free: the lock closes with the file
    finally:
        os.close(fd)
