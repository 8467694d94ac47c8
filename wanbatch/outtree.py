"""The output tree on disk: folders and files made safely, and every ``OSError`` translated.

Used by ``download.py`` (synchronous; it runs these in worker threads). A job's folder is made one
level at a time below the output folder: a symlink or a file on the way, or a folder resolving
outside the output folder, is refused. Files are opened with ``O_NOFOLLOW`` (and ``O_EXCL`` for
temporary files), so a planted link is never followed and its target never overwritten.

``disk_error`` is the one translation of ``OSError`` into ``DiskError``: a fault of one job's
path (a file or a link in the way) leaves that job; anything else (no space, a read-only disk,
permission refused, an I/O error) would fail every further video too, and stops the run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from wanbatch.errors import DiskError

NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a planted FIFO: no hang
_CHUNK = 1 << 16
_IOV_MAX = 1024  # pieces per writev (Linux's and macOS's limit)
# OSErrors that concern one job's path; any other stops the run.
_PATH_ERRNOS = frozenset(
    {errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}
)


# --- the disk boundary: OSError becomes DiskError ----------------------------------------------


@contextlib.contextmanager
def disk_errors(what: str, path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise disk_error(what, path, exc) from exc


def disk_error(what: str, path: Path, exc: OSError) -> DiskError:
    """The ``DiskError`` for ``exc`` met while trying to ``what`` ``path``. Pure."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ELOOP:
        reason = "a symbolic link is in the way (refused)"
    if exc.errno in _PATH_ERRNOS:
        return DiskError(
            f"cannot {what} {path}: {reason}; this job is left (fix the path and rerun)",
            stops_batch=False,
        )
    return DiskError(
        f"cannot {what} {path}: {reason}; the run stopped, as every further video would fail"
        " too (free space or fix permissions, then rerun to resume)"
    )


def refuse(path: Path, what: str, root: Path) -> DiskError:
    return DiskError(
        f"{path} {what}; videos are written only inside the output folder {root}"
        " (fix it and rerun)",
        stops_batch=False,
    )


def make_folder(root: Path, folder: Path) -> None:
    """Make ``folder`` below ``root`` one level at a time; a symlink or a file on the way, or a
    folder resolving outside ``root``, is refused. ``root`` itself may be a link."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        relative = folder.relative_to(root)
    except ValueError:
        raise refuse(folder, "is outside the output folder", root) from None
    current = root
    for name in relative.parts:
        if name in ("", ".", ".."):
            raise refuse(folder, "is outside the output folder", root)
        current = current / name
        try:
            os.mkdir(current, 0o755)
            continue
        except FileExistsError:
            mode = os.lstat(current).st_mode
        if stat.S_ISLNK(mode):
            raise refuse(current, "is a symbolic link", root)
        if not stat.S_ISDIR(mode):
            raise refuse(current, "is not a folder (a file is in the way)", root)
    resolved, real_root = folder.resolve(), root.resolve()
    if resolved != real_root and real_root not in resolved.parents:
        raise refuse(folder, f"resolves to {resolved}, outside the output folder", root)


def read_all(path: Path, limit: int = -1) -> bytes:
    fd = os.open(path, _READ)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | Sequence[bytes], path: Path) -> None:
    """Every byte wanbatch writes into the output tree goes through here (``path`` names the
    file meant; fault-injection tests replace this to fail as a full disk would). ``data`` is
    bytes, or pieces of them written with one ``writev`` (no copy to join them)."""
    if isinstance(data, bytes):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return
    views = [memoryview(piece) for piece in data if piece]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        done = 0
        while done < len(views) and written >= len(views[done]):
            written -= len(views[done])
            done += 1
        views = views[done:]
        if written:
            views[0] = views[0][written:]


def atomic_write(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Replace ``path`` whole with ``data`` (bytes, or pieces of them written as they come, so
    that a large page is not held twice): written beside it, fsynced, renamed, folder synced."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crash (a link is removed, not followed)
    fd = os.open(tmp, NEW_FILE | os.O_EXCL, 0o644)
    try:
        try:
            for piece in (data,) if isinstance(data, bytes) else data:
                write_all(fd, piece, path)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never its target
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_into(path: Path, hasher: Any) -> None:
    fd = os.open(path, _READ)
    try:
        while chunk := os.read(fd, _CHUNK):
            hasher.update(chunk)
    finally:
        os.close(fd)


def hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    hash_into(path, hasher)
    return hasher.hexdigest()


class BodyWriter:
    """One download's bytes hashed and written in order by a thread of its own, while the event
    loop goes on receiving: the loop hands over a batch of pieces without waiting (``offer``; at
    most ``depth`` batches queued, else ``put`` from a worker thread waits for room), and
    ``finish`` (from a worker thread) writes the rest, fsyncs and closes ``fd``. Each batch's
    writeback is started at once (``POSIX_FADV_DONTNEED``, a hint), so that the fsync at the end
    has little left to wait for. The writer's first ``OSError`` stops its writing and is raised
    by the next ``offer``, ``put`` or ``finish`` (once).

    Why a thread per download rather than a worker-thread hop per batch: the hop and the join
    of a batch on the event loop cost the loop about a tenth of its time (benchmarks/downloads.py,
    BENCHMARKS.md), and the loop is what bounds a download's pace."""

    def __init__(self, fd: int, hasher: Any, path: Path, *, start: int, depth: int = 4) -> None:
        self._fd, self._hasher, self._path = fd, hasher, path
        self._offset = start  # where the next batch lands, for the writeback hint
        self._queue: queue.SimpleQueue[Sequence[bytes] | None] = queue.SimpleQueue()
        self._room = threading.Semaphore(depth)
        self._error: OSError | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name="wanbatch-writer", daemon=True)
        self._thread.start()

    def offer(self, pieces: Sequence[bytes]) -> bool:
        """Queue ``pieces`` if there is room (never blocks); False when the queue is full."""
        self._raise()
        if not self._room.acquire(blocking=False):
            return False
        self._queue.put(pieces)
        return True

    def put(self, pieces: Sequence[bytes]) -> None:
        """Queue ``pieces``, waiting for room (blocks: run it in a worker thread)."""
        self._raise()
        self._room.acquire()
        self._queue.put(pieces)

    def finish(self, pieces: Sequence[bytes]) -> None:
        """Write ``pieces`` after what is queued, fsync and close (blocks: a worker thread)."""
        self._queue.put(pieces)
        self._queue.put(None)
        self._thread.join()
        try:
            self._raise()
            os.fsync(self._fd)
        finally:
            os.close(self._fd)

    def _raise(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def _run(self) -> None:
        while (pieces := self._queue.get()) is not None:
            try:
                if self._error is None and pieces:
                    for piece in pieces:
                        self._hasher.update(piece)  # lets go of the GIL for large pieces
                    write_all(self._fd, pieces, self._path)
                    size = sum(map(len, pieces))
                    _start_writeback(self._fd, self._offset, size)
                    self._offset += size
            except OSError as exc:
                self._error = exc
            finally:
                self._room.release()


def _start_writeback(fd: int, offset: int, size: int) -> None:
    """Ask the kernel to start writing ``size`` bytes at ``offset`` to the disk now (Linux: a
    ``POSIX_FADV_DONTNEED`` starts writeback of dirty pages and waits for none). A hint only:
    the fsync before the rename is what makes the bytes durable."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, offset, size, os.POSIX_FADV_DONTNEED)
