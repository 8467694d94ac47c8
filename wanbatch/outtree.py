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
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from wanbatch.errors import DiskError

NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a planted FIFO: no hang
_CHUNK = 1 << 16
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


def write_all(fd: int, data: bytes, path: Path) -> None:
    """Every byte wanbatch writes into the output tree goes through here (``path`` names the
    file meant; fault-injection tests replace this to fail as a full disk would)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing the file's dirty pages to the disk now (Linux: a
    ``POSIX_FADV_DONTNEED`` starts their writeback and waits for none), so that the fsync before
    the rename finds little left to write. A hint only: that fsync makes the bytes durable."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
