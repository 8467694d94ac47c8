"""Videos onto disk, whole or not at all.

A video streams into ``NAME.part`` beside its target, with ``NAME.part.json`` noting the size and
validator (ETag) the server announced. An interrupted download resumes with ``Range`` and
``If-Range``; a 206 is accepted only when it starts where the part ends, and a 200 starts over.
The length is checked against the announced size, the bytes are hashed (sha256) as they arrive,
the file is fsynced, renamed into place and the folder fsynced. A complete ``.part`` left by a
crash is verified against its announced size and renamed without fetching it again.

This module knows nothing of HTTP libraries: it reads from any ``VideoSource`` (see ``client.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import aiofiles
import anyio

from wanbatch.errors import TransientDownloadError
from wanbatch.models import VideoChunkHeader

_CHUNK = 1 << 16
# Bytes gathered before one write: each write is a hop to a worker thread, and a hop per 64 KiB
# chunk cost a third of the download rate (benchmarks/downloads.py).
_WRITE_BATCH = 1 << 20


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
    checkpoint: Callable[[str], None] | None = None,
) -> DownloadResult:
    """Fetch ``url`` into ``target`` atomically, resuming a partial download when possible.

    ``checkpoint(name)`` is called at "mid_download" (after the first chunk is on disk) and at
    "before_rename" (the ``.part`` is whole); fault-injection tests use it to crash there.
    """
    mark = checkpoint or _no_checkpoint
    part = part_path(target)
    meta_path = _meta_path(target)
    meta, offset = await anyio.to_thread.run_sync(_prepare, target, part, meta_path)
    announced = meta.get("total") if isinstance(meta.get("total"), int) else None
    if offset and announced is not None and offset == announced:
        digest = await _hash_file(part)
        await _finalise(part, target, meta_path)
        return DownloadResult(size=offset, sha256=digest, resumed_from=offset, reused_part=True)
    if offset and (announced is None or offset > announced):
        offset = 0  # nothing trustworthy to resume from
    validator = meta.get("etag") if isinstance(meta.get("etag"), str) else None

    async with source.open(url, offset=offset, if_range=validator if offset else None) as body:
        head = body.head
        if head.status == 206:
            if head.range_start != offset:
                await _discard(part, meta_path)
                raise TransientDownloadError(
                    f"the video host resumed at byte {head.range_start}, not {offset}; starting over"
                )
        else:
            offset = 0  # a 200 is the whole file: start over
        total = head.total_length
        if total is None and head.content_length is not None:
            total = offset + head.content_length
        await _write_meta(meta_path, {"etag": head.etag, "total": total})
        hasher = hashlib.sha256()
        if offset:
            await _hash_into(part, hasher)
        received = offset
        out = await anyio.to_thread.run_sync(open, part, "ab" if offset else "wb")
        batch: list[bytes] = []
        batched = 0
        try:
            async for chunk in body.chunks():
                if total is not None and received + len(chunk) > total:
                    raise TransientDownloadError("the video host sent more bytes than announced")
                first = received == offset
                received += len(chunk)
                if first:  # the first bytes go to disk at once, so that a resume has them
                    await anyio.to_thread.run_sync(_write, out, hasher, chunk)
                    mark("mid_download")
                    continue
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _WRITE_BATCH:
                    await anyio.to_thread.run_sync(_write, out, hasher, b"".join(batch))
                    batch.clear()
                    batched = 0
        finally:
            # What arrived is kept for a resume, even when the body failed midway.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_write_last, out, hasher, b"".join(batch))
    if total is not None and received != total:
        raise TransientDownloadError(
            f"the video download stopped at {received} of {total} bytes; it will resume"
        )
    mark("before_rename")
    await _finalise(part, target, meta_path)
    return DownloadResult(
        size=received, sha256=hasher.hexdigest(), resumed_from=offset, reused_part=False
    )


async def write_sidecar(target: Path, data: dict[str, Any]) -> Path:
    """Write ``NAME.json`` beside the video atomically."""
    path = sidecar_path(target)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    await anyio.to_thread.run_sync(_atomic_write, path, text.encode("utf-8"))
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _finalise(part: Path, target: Path, meta_path: Path) -> None:
    def finish() -> None:
        os.replace(part, target)
        with contextlib.suppress(FileNotFoundError):
            meta_path.unlink()
        _fsync_dir(target.parent)

    await anyio.to_thread.run_sync(finish)


async def _discard(part: Path, meta_path: Path) -> None:
    def discard() -> None:
        for path in (part, meta_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    await anyio.to_thread.run_sync(discard)


def _write(out: BinaryIO, hasher: Any, data: bytes) -> None:
    """Hash and write one batch, in a worker thread: hashlib lets go of the GIL for large
    buffers, so the event loop goes on receiving meanwhile."""
    hasher.update(data)
    out.write(data)
    out.flush()


def _write_last(out: BinaryIO, hasher: Any, data: bytes) -> None:
    try:
        if data:
            _write(out, hasher, data)
        out.flush()
        os.fsync(out.fileno())
    finally:
        out.close()


def _prepare(target: Path, part: Path, meta_path: Path) -> tuple[dict[str, Any], int]:
    """In one worker-thread hop: the folder made, the .part's metadata and size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        value = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError):
        value = {}
    try:
        offset = part.stat().st_size
    except FileNotFoundError:
        offset = 0
    return (value if isinstance(value, dict) else {}), offset


async def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    await anyio.Path(path).write_text(json.dumps(meta), "utf-8")


async def _hash_into(path: Path, hasher: Any) -> None:
    async with aiofiles.open(path, "rb") as handle:
        while chunk := await handle.read(_CHUNK):
            hasher.update(chunk)


async def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    await _hash_into(path, hasher)
    return hasher.hexdigest()
