"""Downloads byte by byte: resume with Range, restarts, short bodies, reuse of a complete part.

These drive ``download_video`` through ``client.VideoFetcher`` over an httpx MockTransport,
because the exact bytes and headers are the point here. End-to-end downloads from the
simulator's CDN are covered in the runner tests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import httpx
import pytest

from wanbatch.client import VideoFetcher
from wanbatch.download import download_video, part_path
from wanbatch.errors import TransientDownloadError, VideoUrlExpiredError

VIDEO = bytes(range(256)) * 40  # 10,240 bytes
URL = "http://127.0.0.1:1/v/video.mp4"


class Cdn:
    """A handler that serves VIDEO with Range support and scripted faults."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.cut_first_at: int | None = None
        self.wrong_offset = False
        self.ignore_range = False
        self.status: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status is not None:
            return httpx.Response(self.status)
        headers = {"ETag": '"v1"'}
        wanted = request.headers.get("Range")
        if wanted and not self.ignore_range:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if self.wrong_offset:
                start = 0
            body = VIDEO[start:]
            headers["Content-Range"] = f"bytes {start}-{len(VIDEO) - 1}/{len(VIDEO)}"
            return httpx.Response(206, content=body, headers=headers)
        body = VIDEO
        if self.cut_first_at is not None:
            cut, self.cut_first_at = self.cut_first_at, None
            headers["Content-Length"] = str(len(VIDEO))
            return httpx.Response(200, content=_ShortStream(VIDEO[:cut]), headers=headers)
        return httpx.Response(200, content=body, headers=headers)


class _ShortStream(httpx.AsyncByteStream):
    """A body that ends early, as a connection closed mid-download looks to the client."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield self.data


def fetch(cdn: Cdn, target: Path):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with VideoFetcher(transport=httpx.MockTransport(cdn)) as fetcher:
            return await download_video(fetcher, URL, target)

    return anyio.run(go)


def test_whole_download_is_hashed_and_renamed(tmp_path: Path) -> None:
    """A plain download lands whole at the target with its sha256, and no .part remains."""
    target = tmp_path / "a" / "v.mp4"
    result = fetch(Cdn(), target)
    assert target.read_bytes() == VIDEO
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()
    assert not part_path(target).exists()


def test_short_body_keeps_the_part_and_resumes_with_range(tmp_path: Path) -> None:
    """A cut download raises, keeps its part, and the next attempt asks only for the rest."""
    cdn = Cdn()
    cdn.cut_first_at = 4000
    target = tmp_path / "v.mp4"
    with pytest.raises(TransientDownloadError):
        fetch(cdn, target)
    assert not target.exists()
    assert part_path(target).stat().st_size == 4000
    result = fetch(cdn, target)
    assert cdn.requests[-1].headers["Range"] == "bytes=4000-"
    assert cdn.requests[-1].headers["If-Range"] == '"v1"'
    assert target.read_bytes() == VIDEO and result.resumed_from == 4000
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()


def test_206_from_the_wrong_offset_starts_over(tmp_path: Path) -> None:
    """A 206 that does not start where the part ends is refused and the part discarded."""
    cdn = Cdn()
    cdn.cut_first_at = 4000
    target = tmp_path / "v.mp4"
    with pytest.raises(TransientDownloadError):
        fetch(cdn, target)
    cdn.wrong_offset = True
    with pytest.raises(TransientDownloadError, match="resumed at byte 0"):
        fetch(cdn, target)
    assert not part_path(target).exists()
    cdn.wrong_offset = False
    fetch(cdn, target)
    assert target.read_bytes() == VIDEO


def test_200_to_a_range_request_restarts_cleanly(tmp_path: Path) -> None:
    """A server that ignores Range sends the whole file, which replaces the part."""
    cdn = Cdn()
    cdn.cut_first_at = 4000
    target = tmp_path / "v.mp4"
    with pytest.raises(TransientDownloadError):
        fetch(cdn, target)
    cdn.ignore_range = True
    result = fetch(cdn, target)
    assert target.read_bytes() == VIDEO and result.resumed_from == 0


def test_complete_part_is_verified_and_renamed_without_fetching(tmp_path: Path) -> None:
    """A whole .part left by a crash before the rename is renamed, not fetched again."""
    target = tmp_path / "v.mp4"
    part_path(target).write_bytes(VIDEO)
    target.with_name("v.mp4.part.json").write_text(
        json.dumps({"etag": '"v1"', "total": len(VIDEO)})
    )
    cdn = Cdn()
    result = fetch(cdn, target)
    assert cdn.requests == [] and result.reused_part
    assert target.read_bytes() == VIDEO


@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_url_is_reported_for_refresh(tmp_path: Path, status: int) -> None:
    """403, 404 and 410 from the video host mean: fetch the task again for a new URL."""
    cdn = Cdn()
    cdn.status = status
    with pytest.raises(VideoUrlExpiredError):
        fetch(cdn, tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()
