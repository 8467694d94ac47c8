"""Videos onto disk: whole, checked and inside the output tree, or not at all.

A video streams into ``NAME.part`` beside its target, with ``NAME.part.json`` noting the size and
validator (ETag) the server announced. An interrupted download resumes with ``Range`` and
``If-Range``; a 206 is accepted only when it starts where the part ends, and a 200 starts over.
Nothing reaches the ``.part`` before its first bytes show an MP4 (an ``ftyp`` box at bytes 4..8),
so an error page, a JSON body or an empty answer is a failed download, never a video, and a
``.part`` that does not start so is never resumed from or renamed. The length is checked against
the announced size, the bytes are hashed (sha256) as they arrive, a download slower than
``Pace`` allows is cut off (the ``.part`` kept for a resume), the file is fsynced, renamed into
place and the folder fsynced. A complete ``.part`` left by a crash is verified against its
announced size and renamed without fetching it again.

The output tree: the job's folder is made one level at a time below the output folder; a symlink
or a file on the way, a symlinked ``.part`` or ``.part.json``, or a folder that resolves outside
the output folder fails that job (``DiskError`` with ``stops_batch=False``). Files are opened with
``O_NOFOLLOW`` (and ``O_EXCL`` for temporary files). Every ``OSError`` is translated here into a
``DiskError``: a full or read-only disk, or a permission refused, stops the run.

This module knows nothing of HTTP libraries: it reads from any ``VideoSource`` (see ``client.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from wanbatch import outtree
from wanbatch.errors import TransientDownloadError
from wanbatch.models import VideoChunkHeader

_CHUNK = 1 << 16
# Bytes gathered before one write: each write is a hop to a worker thread, and a hop per 64 KiB
# chunk cost a third of the download rate (benchmarks/downloads.py).
_WRITE_BATCH = 1 << 20
_MP4_HEAD = 8  # an MP4 starts with a box: 4 bytes of size, then its type, "ftyp"
# The slowest a download may be (README: Downloads): below this rate, averaged over the window,
# it is cut off as a transient failure and resumes later. A silence is cut off sooner, by the
# client's read timeout (``client.VIDEO_READ_TIMEOUT_SECONDS``).
MIN_BYTES_PER_SECOND = 16 * 1024
THROUGHPUT_WINDOW_SECONDS = 30.0


class VideoBodyLike(Protocol):
    head: VideoChunkHeader

    def chunks(self) -> AsyncIterator[bytes]: ...


class VideoSource(Protocol):
    def open(
        self, url: str, *, offset: int = 0, if_range: str | None = None
    ) -> AbstractAsyncContextManager[VideoBodyLike]: ...


@dataclass(frozen=True, slots=True)
class DownloadResult:
    size: int
    sha256: str
    resumed_from: int  # bytes already on disk when this attempt began
    reused_part: bool  # a complete .part was verified and renamed; nothing was fetched


@dataclass(frozen=True, slots=True)
class Pace:
    """A download's floor: under ``min_bytes_per_second`` over ``window_seconds``, it is cut."""

    min_bytes_per_second: float = MIN_BYTES_PER_SECOND
    window_seconds: float = THROUGHPUT_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic


@dataclass(slots=True)
class Throughput:
    """Checks the rate over consecutive windows of ``pace.window_seconds``. Pure but for the
    injected clock."""

    pace: Pace
    received: int  # bytes at the start of the current window
    since: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.since = self.pace.clock()

    def check(self, received: int) -> None:
        now = self.pace.clock()
        elapsed = now - self.since
        if elapsed < self.pace.window_seconds:
            return
        rate = (received - self.received) / elapsed
        if rate < self.pace.min_bytes_per_second:
            raise TransientDownloadError(
                f"the video download is too slow ({rate:.0f} bytes/s over {elapsed:.1f} s, the"
                f" floor is {self.pace.min_bytes_per_second:.0f}); it will resume"
            )
        self.received, self.since = received, now


def looks_like_mp4(head: bytes) -> bool:
    """The first bytes of a file hold an MP4's ``ftyp`` box."""
    return len(head) >= _MP4_HEAD and head[4:8] == b"ftyp"


class _StartOver(TransientDownloadError):
    """A failed attempt whose ``.part`` must not be resumed from (it is discarded)."""


def _no_checkpoint(name: str) -> None:
    return None


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _meta_path(target: Path) -> Path:
    return target.with_name(target.name + ".part.json")


def sidecar_path(target: Path) -> Path:
    return target.with_suffix(".json")


def file_matches(target: Path, size: int | None) -> bool:
    """The video is on disk with the recorded size."""
    try:
        return size is not None and target.stat().st_size == size
    except OSError:
        return False


async def download_video(
    source: VideoSource,
    url: str,
    target: Path,
    *,
    root: Path | None = None,
    checkpoint: Callable[[str], None] | None = None,
    pace: Pace | None = None,
) -> DownloadResult:
    """Fetch ``url`` into ``target`` atomically, resuming a partial download when possible.

    ``root`` is the output folder ``target`` must stay inside (default: its own folder).
    ``checkpoint(name)`` is called at "mid_download" (after the first chunk is on disk) and at
    "before_rename" (the ``.part`` is whole); fault-injection tests use it to crash there.
    """
    mark = checkpoint or _no_checkpoint
    part = part_path(target)
    meta_path = _meta_path(target)
    with outtree.disk_errors("prepare", target):
        meta, offset = await anyio.to_thread.run_sync(
            _prepare, target, part, meta_path, root or target.parent
        )
    announced = meta.get("total") if isinstance(meta.get("total"), int) else None
    if offset and announced is not None and offset == announced:
        with outtree.disk_errors("read", part):
            digest = await anyio.to_thread.run_sync(outtree.hash_file, part)
        await _finalise(part, target, meta_path)
        return DownloadResult(size=offset, sha256=digest, resumed_from=offset, reused_part=True)
    if offset and (announced is None or offset > announced):
        offset = 0  # nothing trustworthy to resume from
    validator = meta.get("etag") if isinstance(meta.get("etag"), str) else None
    hasher = hashlib.sha256()
    try:
        offset, received, total = await _receive(
            source.open(url, offset=offset, if_range=validator if offset else None),
            part,
            meta_path,
            offset,
            hasher,
            mark,
            pace or Pace(),
        )
    except _StartOver:
        await _discard(part, meta_path)
        raise
    if total is not None and received != total:
        raise TransientDownloadError(
            f"the video download stopped at {received} of {total} bytes; it will resume"
        )
    mark("before_rename")
    await _finalise(part, target, meta_path)
    return DownloadResult(
        size=received, sha256=hasher.hexdigest(), resumed_from=offset, reused_part=False
    )


async def _receive(
    opening: AbstractAsyncContextManager[VideoBodyLike],
    part: Path,
    meta_path: Path,
    offset: int,
    hasher: Any,
    mark: Callable[[str], None],
    pace: Pace,
) -> tuple[int, int, int | None]:
    """Stream one answer into ``part``: (where it started, bytes on disk, announced total)."""
    async with opening as body:
        head = body.head
        if head.status == 206:
            if head.range_start != offset:
                raise _StartOver(
                    f"the video host resumed at byte {head.range_start}, not {offset}"
                    " (or sent a compressed part); starting over"
                )
        else:
            offset = 0  # a 200 is the whole file: start over
        throughput = Throughput(pace, offset)
        total = head.total_length
        if total is None and head.content_length is not None:
            total = offset + head.content_length
        if offset:
            with outtree.disk_errors("read", part):
                await anyio.to_thread.run_sync(outtree.hash_into, part, hasher)
        meta = {"etag": head.etag, "total": total}
        fd = await anyio.to_thread.run_sync(_start_part, part, meta_path, meta, bool(offset))
        received = offset
        unchecked: bytearray | None = bytearray() if offset == 0 else None  # held until ftyp
        written = False
        batch: list[bytes] = []
        batched = 0
        try:
            async for chunk in body.chunks():
                if total is not None and received + len(chunk) > total:
                    raise TransientDownloadError("the video host sent more bytes than announced")
                received += len(chunk)
                throughput.check(received)
                if unchecked is not None:
                    unchecked += chunk
                    if len(unchecked) < _MP4_HEAD:
                        continue
                    _require_mp4(bytes(unchecked))
                    chunk, unchecked = bytes(unchecked), None
                if not written:  # the first bytes go to disk at once, so that a resume has them
                    with outtree.disk_errors("write", part):
                        await anyio.to_thread.run_sync(_write, fd, hasher, chunk, part)
                    written = True
                    mark("mid_download")
                    continue
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _WRITE_BATCH:
                    with outtree.disk_errors("write", part):
                        await anyio.to_thread.run_sync(_write, fd, hasher, b"".join(batch), part)
                    batch.clear()
                    batched = 0
        finally:
            # What arrived is kept for a resume, even when the body failed midway.
            with anyio.CancelScope(shield=True), outtree.disk_errors("write", part):
                await anyio.to_thread.run_sync(_write_last, fd, hasher, b"".join(batch), part)
    if unchecked is not None:
        _require_mp4(bytes(unchecked))
    return offset, received, total


def _require_mp4(head: bytes) -> None:
    if not looks_like_mp4(head):
        shown = "no bytes" if not head else f"{len(head)} bytes starting {head[:16]!r}"
        raise _StartOver(f"the video host sent {shown}, not an MP4; nothing was kept")


async def write_sidecar(target: Path, data: dict[str, Any]) -> Path:
    """Write ``NAME.json`` beside the video atomically."""
    path = sidecar_path(target)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    with outtree.disk_errors("write", path):
        await anyio.to_thread.run_sync(outtree.atomic_write, path, text.encode("utf-8"))
    return path


# --- file operations, each run in a worker thread (the output tree's rules: outtree.py) -------


def _prepare(target: Path, part: Path, meta_path: Path, root: Path) -> tuple[dict[str, Any], int]:
    """In one worker-thread hop: the folder made, the .part's metadata and usable size."""
    outtree.make_folder(root, target.parent)
    for path in (part, meta_path):
        if path.is_symlink():
            raise outtree.refuse(path, "is a symbolic link", root)
    value: Any = {}
    with contextlib.suppress(OSError, ValueError, RecursionError):  # unreadable: start afresh
        value = json.loads(outtree.read_all(meta_path))
    try:
        status = os.lstat(part)
    except FileNotFoundError:
        return (value if isinstance(value, dict) else {}), 0
    if not stat.S_ISREG(status.st_mode):
        raise outtree.refuse(part, "is not a regular file", root)
    offset = status.st_size
    if offset and not looks_like_mp4(outtree.read_all(part, _MP4_HEAD)):
        offset = 0  # bad bytes (an older version kept whatever came): never resumed from
    return (value if isinstance(value, dict) else {}), offset


def _start_part(part: Path, meta_path: Path, meta: dict[str, Any], append: bool) -> int:
    """In one worker-thread hop: the note of the answer written, the ``.part`` opened (its old
    bytes dropped first unless ``append``)."""
    with outtree.disk_errors("write", meta_path):
        if not append:  # the old bytes go before the note names a new size: a crash
            # between the two must not leave old bytes of the size the note announces
            part.unlink(missing_ok=True)
        _write_meta(meta_path, meta)
    with outtree.disk_errors("open", part):
        return os.open(part, outtree.NEW_FILE | (os.O_APPEND if append else os.O_TRUNC), 0o644)


def _write(fd: int, hasher: Any, data: bytes, path: Path) -> None:
    """Hash and write one batch, in a worker thread: hashlib lets go of the GIL for large
    buffers, so the event loop goes on receiving meanwhile."""
    hasher.update(data)
    outtree.write_all(fd, data, path)
    outtree.start_writeback(fd)


def _write_last(fd: int, hasher: Any, data: bytes, path: Path) -> None:
    try:
        if data:
            _write(fd, hasher, data, path)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    fd = os.open(path, outtree.NEW_FILE | os.O_TRUNC, 0o644)
    try:
        outtree.write_all(fd, json.dumps(meta).encode(), path)
    finally:
        os.close(fd)


async def _finalise(part: Path, target: Path, meta_path: Path) -> None:
    def finish() -> None:
        os.replace(part, target)
        with contextlib.suppress(FileNotFoundError):
            meta_path.unlink()
        outtree.fsync_dir(target.parent)

    with outtree.disk_errors("move into place", target):
        await anyio.to_thread.run_sync(finish)


async def _discard(part: Path, meta_path: Path) -> None:
    def discard() -> None:
        for path in (part, meta_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    with outtree.disk_errors("remove", part):
        await anyio.to_thread.run_sync(discard)
