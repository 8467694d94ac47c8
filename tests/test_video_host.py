"""A rude video host and a hostile disk, end to end (issue 12, items 6, 7, 10, 11, 12, 16).

The CDN answers here come over real loopback sockets (``hostile.serve``, or a trickling server of
this file's own); the disk faults are a read-only folder, a file or a symlink where a folder
should be, and ENOSPC injected into the one writer of the output tree (``outtree.write_all``).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import pytest

from wanbatch import cli, outtree
from wanbatch.client import VideoFetcher
from wanbatch.download import Pace, download_video
from wanbatch.errors import TransientDownloadError, UnusableVideoUrlError
from wanbatch.journal import read_journal
from wanbatch.models import JobState

from hostile import Answer, http_response, json_response, serve, trickling
from test_runner import KEY_ENV, stats

VIDEO = (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 64)[:16_000]


def manifest_at(folder: Path, jobs: int = 1, path: str = "{id}.mp4") -> Path:
    lines = [
        "name: t",
        "api:",
        f"  key_env: {KEY_ENV}",
        "defaults: {model: wan-2-2, duration: 5}",
        "limits: {concurrency: 2, requests_per_second: 200, downloads: 2}",
        f"output: {{dir: out, path: '{path}'}}",
        "jobs:",
    ]
    lines += [f"  - {{id: job-{index}, prompt: prompt number {index}}}" for index in range(jobs)]
    manifest = folder / "m.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


class Host:
    """One task whose video URL and CDN answers are scripted."""

    def __init__(self, cdn: list[bytes], video_url: str | None = None) -> None:
        self.cdn = cdn  # raw answers, one per video request; the last repeats
        self.video_url = video_url
        self.port = 0
        self.creates = 0
        self.polls = 0
        self.videos: list[dict[str, str]] = []

    def __call__(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        if path.startswith("/v/"):
            self.videos.append(headers)
            return Answer(self.cdn[min(len(self.videos), len(self.cdn)) - 1])
        if method == "POST":
            self.creates += 1
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        self.polls += 1
        url = self.video_url or f"http://127.0.0.1:{self.port}/v/gen_1.mp4"
        body = {"id": "gen_1", "status": "succeeded", "video_url": url}
        return Answer(json_response(200, json.dumps(body)))


def run_against(host: Host, manifest: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(KEY_ENV, "sk-wan-host-0000")
    with serve(host) as server:
        host.port = server.port
        return cli.main(
            ["run", str(manifest), "--base-url", server.base_url, "--poll-interval", "0.01", "-q"]
        )


def test_an_html_page_from_the_cdn_is_not_saved_as_the_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200 text/html error page is a failed download; the URL is refreshed, the video saved."""
    page = http_response(200, b"<html>Access denied</html>", {"Content-Type": "text/html"})
    video = http_response(200, VIDEO, {"Content-Type": "video/mp4"})
    host = Host([page, video])
    manifest = manifest_at(tmp_path)
    assert run_against(host, manifest, monkeypatch) == 0
    assert (tmp_path / "out" / "job-0.mp4").read_bytes() == VIDEO
    assert len(host.videos) == 2 and host.polls == 2  # the second poll is the URL refresh


def test_a_cdn_that_gzips_anyway_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """We ask for identity; a gzipped answer (Content-Length of the encoded body) still works."""
    body = gzip.compress(VIDEO)
    encoded = http_response(200, body, {"Content-Type": "video/mp4", "Content-Encoding": "gzip"})
    host = Host([encoded])
    manifest = manifest_at(tmp_path)
    assert run_against(host, manifest, monkeypatch) == 0
    assert (tmp_path / "out" / "job-0.mp4").read_bytes() == VIDEO
    assert host.videos[0]["accept-encoding"] == "identity"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "/v/gen_1.mp4"])
def test_a_video_url_that_is_not_http_gets_one_clear_reason_and_no_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, url: str
) -> None:
    host = Host([http_response(200, VIDEO)], video_url=url)
    manifest = manifest_at(tmp_path)
    assert run_against(host, manifest, monkeypatch) == 5
    out = capsys.readouterr()
    assert url in out.out and "not an absolute http(s) URL" in out.out
    assert "Traceback" not in out.err
    assert host.polls == 1 and host.videos == []
    assert read_journal(tmp_path / "out").records["job-0"].state is JobState.SUCCEEDED


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/v.mp4"])
def test_a_cdn_redirect_to_a_url_that_is_not_http_is_refused(tmp_path: Path, location: str) -> None:
    redirect = Answer(http_response(302, b"", {"Location": location}))

    async def go(url: str) -> None:
        async with VideoFetcher() as fetcher:
            await download_video(fetcher, url, tmp_path / "v.mp4")

    with serve(lambda *_: redirect) as server, pytest.raises(UnusableVideoUrlError):
        anyio.run(go, f"http://127.0.0.1:{server.port}/v.mp4")


# --- a trickle and a stall over a real socket (item 10) --------------------------------------


def test_a_trickling_cdn_is_cut_off_over_a_real_socket(tmp_path: Path) -> None:
    """One byte every 10 ms against a floor of 10 KiB/s over 0.2 s: cut off, not saved."""
    head = f'HTTP/1.1 200 OK\r\nContent-Length: {len(VIDEO)}\r\nETag: "t"\r\n\r\n'.encode()
    target = tmp_path / "v.mp4"
    pace = Pace(min_bytes_per_second=10 * 1024, window_seconds=0.2)

    async def go() -> None:
        with anyio.fail_after(20):  # the old code waited 160 s for the last byte
            async with VideoFetcher() as fetcher:
                await download_video(fetcher, f"http://127.0.0.1:{port}/v.mp4", target, pace=pace)

    with trickling(head, VIDEO, 0.01) as port, pytest.raises(TransientDownloadError, match="slow"):
        anyio.run(go)
    assert not target.exists()  # what arrived stays in the .part (see test_download.py)


def test_a_stalled_cdn_hits_the_read_timeout(tmp_path: Path) -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(VIDEO)}\r\n\r\n".encode()
    stalled = Answer(head + VIDEO[:100], stall_seconds=5)

    async def go(url: str) -> None:
        with anyio.fail_after(4):
            async with VideoFetcher(read_timeout_seconds=0.2) as fetcher:
                await download_video(fetcher, url, tmp_path / "v.mp4")

    with serve(lambda *_: stalled) as server, pytest.raises(TransientDownloadError):
        anyio.run(go, f"http://127.0.0.1:{server.port}/v.mp4")


# --- the disk (items 12 and 16), end to end against the simulator ---------------------------


def run_sim(manifest: Path, sim: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    argv = ["run", str(manifest), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    return cli.main(argv)


@pytest.mark.parametrize("written", ["video", "part.json", "sidecar"])
def test_a_full_disk_stops_the_run_with_a_summary_then_the_rerun_resumes(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, written: str
) -> None:
    """ENOSPC while a video, its .part.json or its sidecar is written: exit 5, one line, the
    report written; the rerun finishes and no task is paid twice."""
    real = outtree.write_all
    suffix = {"video": ".mp4.part", "part.json": ".mp4.part.json", "sidecar": "-0.json"}[written]

    def full(fd: int, data: bytes, path: Path) -> None:
        if path.name.endswith(suffix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data, path)

    sim = make_sim()
    manifest = manifest_at(tmp_path, jobs=4)
    monkeypatch.setattr(outtree, "write_all", full)
    assert run_sim(manifest, sim, monkeypatch) == 5
    out = capsys.readouterr()
    assert "stopped: " in out.out and "No space left on device" in out.out
    assert "exit code 5" in out.out and "Traceback" not in out.err + out.out
    assert (tmp_path / "out" / "report.html").exists()
    assert not (tmp_path / "out" / "job-0.json").exists()

    monkeypatch.setattr(outtree, "write_all", real)  # the disk was freed
    assert run_sim(manifest, sim, monkeypatch) == 0
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 4
    assert stats(sim)["tasks_created"] == 4  # each job paid once, across both runs


def test_a_file_where_a_jobs_folder_should_be_leaves_that_job_only(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sim = make_sim()
    manifest = manifest_at(tmp_path, jobs=3, path="{id}/clip.mp4")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "job-1").write_text("in the way")
    assert run_sim(manifest, sim, monkeypatch) == 5
    out = capsys.readouterr().out
    assert "job-1" in out and "not a folder" in out
    assert (tmp_path / "out" / "job-0" / "clip.mp4").exists()
    assert (tmp_path / "out" / "job-2" / "clip.mp4").exists()


def test_a_symlinked_job_folder_is_refused_and_nothing_lands_outside(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sim = make_sim()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = manifest_at(tmp_path, jobs=3, path="{id}/clip.mp4")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "job-1").symlink_to(elsewhere)
    assert run_sim(manifest, sim, monkeypatch) == 5
    assert "symbolic link" in capsys.readouterr().out
    assert list(elsewhere.iterdir()) == []
    assert (tmp_path / "out" / "job-0" / "clip.mp4").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_stops_the_run_cleanly(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sim = make_sim()
    manifest = manifest_at(tmp_path, jobs=2)
    out = tmp_path / "out"
    (out / ".wanbatch").mkdir(parents=True)
    out.chmod(0o555)
    try:
        assert run_sim(manifest, sim, monkeypatch) == 5
    finally:
        out.chmod(0o755)
    printed = capsys.readouterr()
    assert "Permission denied" in printed.out and "Traceback" not in printed.err


def test_a_file_where_the_output_folder_should_be_is_one_line_not_a_traceback(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The journal cannot be opened: exit 5 with the reason, nothing sent."""
    sim = make_sim()
    manifest = manifest_at(tmp_path)
    (tmp_path / "out").write_text("in the way")
    assert run_sim(manifest, sim, monkeypatch) == 5
    printed = capsys.readouterr()
    assert "cannot open the journal" in printed.err and "Not a directory" in printed.err
    assert stats(sim)["requests_total"] == 0


@contextlib.contextmanager
def small_file_system(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` (root only, as CI runs), unmounted after;
    the test is skipped where nothing can be mounted."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_really_full_disk_stops_the_run_in_one_line_then_the_rerun_resumes(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A real file system that fills up mid-run (videos, sidecars, the journal and the log all
    on it): one line and exit 5, no traceback, no half-written video in place; once there is
    room again the rerun finishes and no task is paid twice."""
    sim = make_sim(video_size=120_000)
    with small_file_system(tmp_path / "out", "400k") as out:
        manifest = manifest_at(tmp_path, jobs=6)
        assert run_sim(manifest, sim, monkeypatch) == 5
        printed = capsys.readouterr()
        assert "No space left on device" in printed.out + printed.err
        assert "Traceback" not in printed.out + printed.err
        for video in out.glob("*.mp4"):  # whatever was renamed into place is whole
            assert video.stat().st_size == 120_000
            sidecar = video.with_suffix(".json")  # absent when the disk filled just after
            if sidecar.exists():  # the rename; the rerun then writes it
                assert json.loads(sidecar.read_text())["size"] == 120_000
        subprocess.run(["mount", "-o", "remount,size=4m", str(out)], check=True)
        assert run_sim(manifest, sim, monkeypatch) == 0
        assert len(list(out.glob("*.mp4"))) == 6
    assert stats(sim)["tasks_created"] == 6


def test_a_really_read_only_output_tree_stops_the_run_in_one_line(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The output tree on a file system mounted read-only (what a root user meets, where
    chmod does not stop root): one line naming the cause, exit 5, nothing sent."""
    sim = make_sim()
    with small_file_system(tmp_path / "out", "1m") as out:
        (out / ".wanbatch").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        manifest = manifest_at(tmp_path, jobs=2)
        assert run_sim(manifest, sim, monkeypatch) == 5
        printed = capsys.readouterr()
        assert "Read-only file system" in printed.out + printed.err
        assert "Traceback" not in printed.out + printed.err
    assert stats(sim)["tasks_created"] == 0
