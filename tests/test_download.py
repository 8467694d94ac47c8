"""Downloads byte by byte: resume with Range, restarts, short bodies, reuse of a complete part.

These drive ``download_video`` through ``client.VideoFetcher`` over an httpx MockTransport,
because the exact bytes and headers are the point here. End-to-end downloads from the
simulator's CDN are covered in the runner tests.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from wanbatch import outtree
from wanbatch.client import VideoFetcher
from wanbatch.download import Pace, download_video, part_path, write_sidecar
from wanbatch.errors import (
    DiskError,
    TransientDownloadError,
    UnusableVideoUrlError,
    VideoUrlExpiredError,
)

# An MP4's first box is ``ftyp`` (its type at bytes 4..8); the rest is filler.
VIDEO = (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 40)[:10_240]
URL = "http://127.0.0.1:1/v/video.mp4"


class Cdn:
    """A handler that serves VIDEO with Range support and scripted faults."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.cut_first_at: int | None = None
        self.wrong_offset = False
        self.ignore_range = False
        self.status: int | None = None
        self.answer: httpx.Response | None = None  # a scripted answer to every request

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status is not None:
            return httpx.Response(self.status)
        if self.answer is not None:
            return self.answer
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


def fetch(cdn: Cdn, target: Path, url: str = URL, **options: Any):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with VideoFetcher(transport=httpx.MockTransport(cdn)) as fetcher:
            return await download_video(fetcher, url, target, **options)

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


# --- whatever the CDN sends is not saved as the video (issue 12, item 6) ----------------------

NOT_VIDEOS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "an HTML error page": (
        200,
        b"<html><body>Access denied</body></html>",
        {"Content-Type": "text/html; charset=utf-8"},
    ),
    "JSON": (200, b'{"error": "expired"}', {"Content-Type": "application/json"}),
    "plain text": (200, b"x" * 100, {"Content-Type": "text/plain"}),
    "an empty body": (200, b"", {"Content-Type": "video/mp4"}),
    "bytes that are not an MP4": (
        200,
        b"GIF89a" + bytes(200),
        {"Content-Type": "application/octet-stream"},
    ),
    "fewer bytes than an MP4 header": (200, VIDEO[:6], {"Content-Type": "video/mp4"}),
    "a 206 to a request without Range": (
        206,
        VIDEO[:100],
        {"Content-Range": "bytes 0-99/*", "Content-Type": "video/mp4"},
    ),
}


@pytest.mark.parametrize("name", list(NOT_VIDEOS))
def test_an_answer_that_is_not_a_video_is_never_saved(tmp_path: Path, name: str) -> None:
    """Each is a failed download to retry or refresh, leaves nothing to resume from, and the
    next attempt (the CDN healed) fetches the whole video from byte 0."""
    status, body, headers = NOT_VIDEOS[name]
    cdn = Cdn()
    cdn.answer = httpx.Response(status, content=body, headers=headers)
    target = tmp_path / "v.mp4"
    with pytest.raises((TransientDownloadError, VideoUrlExpiredError)):
        fetch(cdn, target)
    assert not target.exists()
    part = part_path(target)
    assert not part.exists() or part.read_bytes() == b""
    cdn.answer = None
    result = fetch(cdn, target)
    assert "Range" not in cdn.requests[-1].headers
    assert target.read_bytes() == VIDEO and result.resumed_from == 0


@pytest.mark.parametrize(
    "content_type", ["video/mp4", "application/octet-stream", "binary/octet-stream", None]
)
def test_video_types_and_a_missing_type_are_accepted(tmp_path: Path, content_type: str) -> None:
    cdn = Cdn()
    headers = {"Content-Type": content_type} if content_type else {}
    cdn.answer = httpx.Response(200, content=VIDEO, headers=headers)
    fetch(cdn, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO


def _stale_part(target: Path, data: bytes) -> None:
    part_path(target).write_bytes(data)
    target.with_name(target.name + ".part.json").write_text(
        json.dumps({"etag": '"v1"', "total": len(VIDEO)})
    )


def test_a_part_with_bad_bytes_is_not_resumed_from(tmp_path: Path) -> None:
    """A .part that does not start as an MP4 (left by an older version) is started over."""
    target = tmp_path / "v.mp4"
    _stale_part(target, b"<html>proxy error</html>")
    cdn = Cdn()
    result = fetch(cdn, target)
    assert "Range" not in cdn.requests[0].headers
    assert target.read_bytes() == VIDEO and result.resumed_from == 0


def test_a_whole_part_with_bad_bytes_is_not_renamed(tmp_path: Path) -> None:
    """A .part of the announced size is renamed unfetched only if it starts as an MP4."""
    target = tmp_path / "v.mp4"
    _stale_part(target, b"<html>" + bytes(len(VIDEO) - 6))
    cdn = Cdn()
    result = fetch(cdn, target)
    assert len(cdn.requests) == 1 and not result.reused_part
    assert target.read_bytes() == VIDEO


# --- compressed answers (item 7) ---------------------------------------------------------------


def test_identity_encoding_is_asked_for(tmp_path: Path) -> None:
    cdn = Cdn()
    fetch(cdn, tmp_path / "v.mp4")
    assert cdn.requests[0].headers["Accept-Encoding"] == "identity"


def test_a_gzip_answer_is_decoded_and_not_compared_to_its_length(tmp_path: Path) -> None:
    """A CDN that gzips anyway: Content-Length is the encoded size; the video is the decoded."""
    body = gzip.compress(VIDEO)
    cdn = Cdn()
    cdn.answer = httpx.Response(
        200,
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "video/mp4", "ETag": '"v1"'},
    )
    result = fetch(cdn, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO
    assert result.size == len(VIDEO) and result.sha256 == hashlib.sha256(VIDEO).hexdigest()


def test_a_cut_gzip_answer_fails_and_is_started_over_not_resumed(tmp_path: Path) -> None:
    """Bytes of a cut encoded body are no prefix a Range request could extend."""
    body = gzip.compress(VIDEO)
    cdn = Cdn()
    cdn.answer = httpx.Response(
        200,
        content=_ShortStream(body[: len(body) // 2]),
        headers={"Content-Encoding": "gzip", "Content-Length": str(len(body)), "ETag": '"v1"'},
    )
    target = tmp_path / "v.mp4"
    with pytest.raises(TransientDownloadError):
        fetch(cdn, target)
    assert not target.exists()
    cdn.answer = None
    result = fetch(cdn, target)
    assert "Range" not in cdn.requests[-1].headers
    assert target.read_bytes() == VIDEO and result.resumed_from == 0


def test_a_compressed_206_to_a_resume_is_not_appended(tmp_path: Path) -> None:
    """A compressed 206 is never appended (its range may count compressed bytes): start over."""
    cdn = Cdn()
    cdn.cut_first_at = 4000
    target = tmp_path / "v.mp4"
    with pytest.raises(TransientDownloadError):
        fetch(cdn, target)
    cdn.answer = httpx.Response(
        206,
        content=gzip.compress(VIDEO[4000:]),
        headers={"Content-Encoding": "gzip", "Content-Range": f"bytes 4000-10239/{len(VIDEO)}"},
    )
    with pytest.raises(TransientDownloadError, match="starting over"):
        fetch(cdn, target)
    assert not part_path(target).exists()
    cdn.answer = None
    fetch(cdn, target)
    assert target.read_bytes() == VIDEO


# --- a trickle is cut off (item 10) ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Trickle(httpx.AsyncByteStream):
    """A body sent ``step`` bytes per (fake) second."""

    def __init__(self, data: bytes, step: int, clock: FakeClock) -> None:
        self.data, self.step, self.clock = data, step, clock

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for start in range(0, len(self.data), self.step):
            self.clock.now += 1.0
            yield self.data[start : start + self.step]


def test_a_trickling_cdn_is_cut_off_and_the_part_kept_for_resume(tmp_path: Path) -> None:
    """100 bytes/s against a floor of 1 KiB/s over 5 s: a transient failure, the part kept."""
    clock = FakeClock()
    cdn = Cdn()
    cdn.answer = httpx.Response(
        200,
        content=_Trickle(VIDEO, 100, clock),
        headers={"Content-Length": str(len(VIDEO)), "ETag": '"v1"'},
    )
    target = tmp_path / "v.mp4"
    pace = Pace(min_bytes_per_second=1024, window_seconds=5.0, clock=clock)
    with pytest.raises(TransientDownloadError, match="too slow"):
        fetch(cdn, target, pace=pace)
    kept = part_path(target).stat().st_size
    assert 0 < kept < len(VIDEO)
    cdn.answer = None
    result = fetch(cdn, target, pace=pace)
    assert cdn.requests[-1].headers["Range"] == f"bytes={kept}-"
    assert target.read_bytes() == VIDEO and result.resumed_from == kept


def test_a_fast_enough_download_is_not_cut_off(tmp_path: Path) -> None:
    """2,000 bytes/s against a floor of 1 KiB/s: the whole video arrives."""
    clock = FakeClock()
    cdn = Cdn()
    cdn.answer = httpx.Response(200, content=_Trickle(VIDEO, 2000, clock))
    pace = Pace(min_bytes_per_second=1024, window_seconds=2.0, clock=clock)
    fetch(cdn, tmp_path / "v.mp4", pace=pace)
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO


# --- only absolute http(s) URLs are fetched (item 11) ----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:video/mp4;base64,AAAAGGZ0eXBpc29t",
        "/v/relative.mp4",
        "v.mp4",
        "ftp://cdn.example/v.mp4",
        "http:///v.mp4",
        "https://cdn.example/v\x00.mp4",
        "javascript:" + "a" * 500,
    ],
)
def test_a_url_that_is_not_http_is_refused_without_a_request(tmp_path: Path, url: str) -> None:
    cdn = Cdn()
    with pytest.raises(UnusableVideoUrlError) as info:
        fetch(cdn, tmp_path / "v.mp4", url=url)
    message = str(info.value)
    assert cdn.requests == [] and repr(url[:12])[1:-1] in message and len(message) < 250


def test_a_redirect_to_a_url_that_is_not_http_is_refused(tmp_path: Path) -> None:
    cdn = Cdn()
    cdn.answer = httpx.Response(302, headers={"Location": "javascript:alert(1)"})
    with pytest.raises(UnusableVideoUrlError, match="redirected"):
        fetch(cdn, tmp_path / "v.mp4")
    assert len(cdn.requests) == 1


# --- disk faults (item 12) and symlinks (item 16) ----------------------------------------------


def test_a_file_where_the_folder_should_be_leaves_that_job_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file")
    with pytest.raises(DiskError) as info:
        fetch(Cdn(), out / "sub" / "deeper" / "v.mp4", root=out)
    assert not info.value.stops_batch and "sub" in str(info.value)


def _no_space(kind: str):  # type: ignore[no-untyped-def]
    """A writer that fails with ENOSPC for files whose name ends with ``kind``."""
    real = outtree.write_all

    def write(fd: int, data: bytes, path: Path) -> None:
        if path.name.endswith(kind):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data, path)

    return write


@pytest.mark.parametrize("kind", [".mp4.part", ".part.json"])
def test_a_full_disk_stops_the_batch_and_keeps_no_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(outtree, "write_all", _no_space(kind))
    target = tmp_path / "v.mp4"
    with pytest.raises(DiskError) as info:
        fetch(Cdn(), target)
    assert info.value.stops_batch and "No space left" in str(info.value)
    assert not target.exists()


def test_a_full_disk_on_the_sidecar_is_a_disk_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outtree, "write_all", _no_space(".json"))
    with pytest.raises(DiskError) as info:
        anyio.run(write_sidecar, tmp_path / "v.mp4", {"id": "v"})
    assert info.value.stops_batch and not (tmp_path / "v.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_stops_the_batch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(DiskError) as info:
            fetch(Cdn(), out / "v.mp4", root=out)
    finally:
        out.chmod(0o755)
    assert info.value.stops_batch


@pytest.mark.parametrize("name", ["v.mp4.part", "v.mp4.part.json"])
def test_a_symlinked_part_is_refused_and_its_target_untouched(tmp_path: Path, name: str) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(precious)
    with pytest.raises(DiskError) as info:
        fetch(Cdn(), out / "v.mp4", root=out)
    assert not info.value.stops_batch and "symbolic link" in str(info.value)
    assert precious.read_bytes() == b"keep me" and not (out / "v.mp4").exists()


@pytest.mark.parametrize("inside", ["sub/v.mp4", "sub/deeper/v.mp4"])
def test_a_symlinked_subfolder_is_refused(tmp_path: Path, inside: str) -> None:
    """A folder inside the output tree that links elsewhere would put the video outside it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere)
    with pytest.raises(DiskError) as info:
        fetch(Cdn(), out / inside, root=out)
    assert not info.value.stops_batch and "sub" in str(info.value)
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_output_folder_is_followed(tmp_path: Path) -> None:
    """The output folder itself may be a link (a big disk elsewhere): only links inside refuse."""
    real = tmp_path / "real"
    real.mkdir()
    out = tmp_path / "out"
    out.symlink_to(real)
    fetch(Cdn(), out / "a" / "v.mp4", root=out)
    assert (real / "a" / "v.mp4").read_bytes() == VIDEO


@pytest.mark.parametrize("name", ["v.mp4", "v.json", "v.json.tmp"])
def test_links_where_the_video_or_its_sidecar_go_are_replaced_not_followed(
    tmp_path: Path, name: str
) -> None:
    """A planted link at the video, its sidecar or the sidecar's temporary file: the link is
    replaced (or removed), its target never written."""
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(precious)
    fetch(Cdn(), out / "v.mp4", root=out)
    anyio.run(write_sidecar, out / "v.mp4", {"id": "v"})
    assert precious.read_bytes() == b"keep me"
    assert (out / "v.mp4").read_bytes() == VIDEO and not (out / "v.mp4").is_symlink()
    assert json.loads((out / "v.json").read_text()) == {"id": "v"}


def test_a_crash_after_a_new_whole_answer_never_renames_the_old_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half of an old video is on disk (its note: 10,240 bytes, ETag v1). The video changed on
    the host: a resume gets a 200 of a new 5,120-byte video, and the process dies right after
    the note is rewritten. The next attempt must not take the old half (now the announced
    size) for the new video and rename it into place."""
    from wanbatch import download

    target = tmp_path / "v.mp4"
    half = len(VIDEO) // 2
    part_path(target).write_bytes(VIDEO[:half])
    target.with_name("v.mp4.part.json").write_text(json.dumps({"etag": '"v1"', "total": 10_240}))
    new = VIDEO[:16] + bytes(reversed(VIDEO[16:half]))  # an MP4 head, other bytes
    cdn = Cdn()
    cdn.answer = httpx.Response(200, content=new, headers={"ETag": '"v2"'})
    real = download._write_meta

    class Died(Exception):
        pass

    def write_then_die(path: Path, meta: dict[str, Any]) -> None:
        real(path, meta)
        raise Died

    monkeypatch.setattr(download, "_write_meta", write_then_die)
    with pytest.raises(Died):
        fetch(cdn, target)
    monkeypatch.setattr(download, "_write_meta", real)
    fetch(cdn, target)
    assert target.read_bytes() == new


# --- a video of many batches, each hashed and written by a worker thread --------------------


class _Pieces(httpx.AsyncByteStream):
    """``data`` in pieces of ``size`` bytes, as a socket delivers a large video; ``cut_at``
    ends it early (a connection closed midway)."""

    def __init__(self, data: bytes, size: int, cut_at: int | None = None) -> None:
        self.data, self.size, self.cut_at = data, size, cut_at

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        end = len(self.data) if self.cut_at is None else self.cut_at
        for start in range(0, end, self.size):
            yield self.data[start : min(start + self.size, end)]


def _in_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batches of 1,000 bytes (not 1 MiB); returns the sizes written into the .part."""
    from wanbatch import download

    monkeypatch.setattr(download, "_WRITE_BATCH", 1000)
    real, batches = outtree.write_all, []

    def write(fd: int, data: bytes, path: Path) -> None:
        if path.name.endswith(".part"):
            batches.append(len(data))
        real(fd, data, path)

    monkeypatch.setattr(outtree, "write_all", write)
    return batches


def test_a_video_of_many_batches_is_written_whole_in_order_and_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many batches, each with its writeback started: the file is the video, its sha256 the
    video's."""
    batches = _in_batches(monkeypatch)
    cdn = Cdn()
    cdn.answer = httpx.Response(200, content=_Pieces(VIDEO, 256), headers={"ETag": '"v1"'})
    target = tmp_path / "v.mp4"
    result = fetch(cdn, target)
    assert target.read_bytes() == VIDEO
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest() and result.size == len(VIDEO)
    assert len(batches) >= 8 and not part_path(target).exists()


def test_a_body_cut_after_several_batches_keeps_every_byte_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut at 7,000 bytes: every batch and the rest are in the .part; the resume asks for the
    remainder and the whole video hashes right."""
    batches = _in_batches(monkeypatch)
    cdn = Cdn()
    cdn.answer = httpx.Response(
        200,
        content=_Pieces(VIDEO, 256, cut_at=7000),
        headers={"Content-Length": str(len(VIDEO)), "ETag": '"v1"'},
    )
    target = tmp_path / "v.mp4"
    with pytest.raises(TransientDownloadError):
        fetch(cdn, target)
    assert len(batches) >= 3 and part_path(target).read_bytes() == VIDEO[:7000]
    cdn.answer = None
    result = fetch(cdn, target)
    assert cdn.requests[-1].headers["Range"] == "bytes=7000-"
    assert target.read_bytes() == VIDEO and result.resumed_from == 7000
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()


def test_a_full_disk_after_the_first_bytes_stops_the_batch_and_keeps_no_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on a later batch (the first bytes went to disk) is the run's DiskError."""
    batches = _in_batches(monkeypatch)
    written = outtree.write_all

    def full(fd: int, data: bytes, path: Path) -> None:
        if path.name.endswith(".part") and batches:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written(fd, data, path)

    monkeypatch.setattr(outtree, "write_all", full)
    cdn = Cdn()
    cdn.answer = httpx.Response(200, content=_Pieces(VIDEO, 256), headers={"ETag": '"v1"'})
    target = tmp_path / "v.mp4"
    with pytest.raises(DiskError) as info:
        fetch(cdn, target)
    assert info.value.stops_batch and "No space left" in str(info.value)
    assert not target.exists() and part_path(target).read_bytes() == VIDEO[:256]


def test_starting_writeback_is_a_hint_that_never_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that refuses the advice (or a system without it) still gets the video."""

    def refuse(*args: Any) -> None:
        raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))

    monkeypatch.setattr(os, "posix_fadvise", refuse, raising=False)
    _in_batches(monkeypatch)
    cdn = Cdn()
    cdn.answer = httpx.Response(200, content=_Pieces(VIDEO, 256), headers={"ETag": '"v1"'})
    fetch(cdn, tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO
