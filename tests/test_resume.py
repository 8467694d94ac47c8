"""Crash, kill, interrupt and resume: the runner in a subprocess, the simulator in this one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from wanbatch import cli
from wanbatch.journal import journal_path, read_journal
from wanbatch.models import JobState

from test_runner import KEY_ENV, out_dir, run_argv, stats, videos, write_manifest

CRASH_POINTS = [
    "before_intent",
    "after_intent",
    "after_create",
    "after_created",
    "before_download",
    "mid_download",
    "before_rename",
    "before_record_download",
]


def start_runner(
    manifest: Path, sim: Any, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`python -m wanbatch run` in a child process pointed at the simulator."""
    child_env = {**os.environ, KEY_ENV: sim.api_key, **(env or {})}
    argv = run_argv(manifest, sim.base_url, "--poll-interval", "0.02", "-q", *extra)
    return subprocess.Popen(
        argv, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(child: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out, err


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def created_count(manifest: Path) -> int:
    try:
        return journal_path(out_dir(manifest)).read_text().count('"ev":"created"')
    except FileNotFoundError:
        return 0


def assert_whole_and_paid_once(manifest: Path, sim: Any, jobs: int) -> None:
    found = videos(manifest)
    assert len(found) == jobs
    records = read_journal(out_dir(manifest)).records
    assert all(record.state is JobState.DOWNLOADED for record in records.values())
    assert stats(sim)["tasks_created"] == jobs
    assert not list(out_dir(manifest).rglob("*.part"))


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_point_then_resume(tmp_path: Path, make_sim: Any, point: str) -> None:
    """Killed at each step of a job's life, the rerun finishes every job with no task paid twice."""
    sim = make_sim(video_size=300_000)  # several chunks, so a kill can land mid-download
    manifest = write_manifest(
        tmp_path, jobs=4, concurrency=2, downloads=1
    )  # one download at a time
    code, _, err = finish(start_runner(manifest, sim, env={"WANBATCH_TEST_CRASH_AT": f"{point}:2"}))
    assert code == -signal.SIGKILL, err
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    assert_whole_and_paid_once(manifest, sim, 4)
    seen = stats(sim)
    if point == "mid_download":
        assert seen["cdn_range_requests"] == 1  # the partial video resumed where it stopped
    if point == "before_rename":
        assert seen["cdn_requests_total"] == 4  # the whole .part was renamed, not fetched again


def test_sigkill_at_random_moments_then_resume(tmp_path: Path, make_sim: Any) -> None:
    """SIGKILLed at seeded random moments, repeated resumes end whole and paid once."""
    import random

    rng = random.Random(1234)
    sim = make_sim(generation_seconds=0.05, error_rate=0.1, seed=5)
    manifest = write_manifest(tmp_path, jobs=12, concurrency=4)
    for _ in range(5):
        child = start_runner(manifest, sim)
        time.sleep(rng.uniform(0.05, 0.6))
        child.kill()
        child.communicate(timeout=30)
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    assert_whole_and_paid_once(manifest, sim, 12)


def test_ctrl_c_exits_130_and_the_rerun_collects(tmp_path: Path, make_sim: Any) -> None:
    """SIGINT mid-run exits 130 promptly with the journal whole; the rerun collects every video."""
    sim = make_sim(generation_seconds=1.0)
    manifest = write_manifest(tmp_path, jobs=4, concurrency=4)
    child = start_runner(manifest, sim)
    wait_for(lambda: created_count(manifest) >= 2)
    child.send_signal(signal.SIGINT)
    code, out, err = finish(child, timeout=15)
    assert code == 130, out + err
    assert "interrupted" in out
    read_journal(out_dir(manifest))  # parses: no torn or damaged record
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    assert_whole_and_paid_once(manifest, sim, 4)


def test_second_runner_is_refused_while_the_first_runs(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A second run on the same output tree fails fast, names the holder and sends nothing."""
    sim = make_sim(generation_seconds=1.0)
    manifest = write_manifest(tmp_path, jobs=2)
    child = start_runner(manifest, sim)
    try:
        wait_for(lambda: created_count(manifest) >= 1)
        monkeypatch.setenv(KEY_ENV, sim.api_key)
        code = cli.main(["run", str(manifest), "--base-url", sim.base_url, "-q"])
        assert code == 5
        assert f"pid {child.pid}" in capsys.readouterr().err
    finally:
        child.kill()
        child.communicate(timeout=30)


def test_a_second_ctrl_c_leaves_at_once(tmp_path: Path) -> None:
    """While the first Ctrl-C waits for a create on the wire (the server is slow to answer),
    a second one ends the process at once, through the signal watcher, with exit 130."""
    from hostile import Answer, json_response, serve

    def slow_create(method: str, path: str, headers: dict[str, str]) -> Answer:
        time.sleep(5)  # the create is still on the wire when the signals come
        return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))

    manifest = write_manifest(tmp_path, jobs=1)
    with serve(slow_create) as server:
        child = subprocess.Popen(
            run_argv(manifest, server.base_url, "-q"),
            env={**os.environ, KEY_ENV: "sk-wan-test"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: (
                journal_path(out_dir(manifest)).exists()
                and b'"intent"' in journal_path(out_dir(manifest)).read_bytes()
            )
        )
        child.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the first stop is waiting out the create's grace period
        child.send_signal(signal.SIGINT)
        code, out, err = finish(child, timeout=4)
    assert code == 130, out + err
    assert "Traceback" not in err
    # The watcher ended it, not a KeyboardInterrupt torn through the event loop (the CLI's
    # last resort, which says "interrupted" and may land inside a journal write).
    assert "interrupted" not in err


def test_journal_deleted_after_a_kill_adopts_the_sidecars(tmp_path: Path, make_sim: Any) -> None:
    """Killed mid-run, then the journal deleted: the jobs whose sidecars are on disk are adopted
    with no create at all; the rest are asked for again (with the same Idempotency-Key)."""
    import json

    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=4, concurrency=2, downloads=1)
    env = {"WANBATCH_TEST_CRASH_AT": "before_download:3"}
    code, _, err = finish(start_runner(manifest, sim, env=env))
    assert code == -signal.SIGKILL, err
    sidecars = [json.loads(path.read_text()) for path in out_dir(manifest).glob("job-*.json")]
    assert len(sidecars) == 2
    journal_path(out_dir(manifest)).unlink()
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    assert_whole_and_paid_once(manifest, sim, 4)
    creates = stats(sim)["creates_by_idempotency_key"]
    for sidecar in sidecars:
        assert creates[sidecar["idempotency_key"]]["requests"] == 1, sidecar["id"]
    assert stats(sim)["creates_total"] == 6  # 4 first, then the 2 jobs without a sidecar


def test_journal_deleted_while_the_run_goes_then_rerun_pays_nothing(
    tmp_path: Path, make_sim: Any
) -> None:
    """The journal unlinked under a running run: that run finishes (it writes to the open file);
    the next run finds no journal and adopts every job from its sidecar, creating nothing."""
    sim = make_sim(generation_seconds=0.3, honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=4, concurrency=4)
    child = start_runner(manifest, sim)
    wait_for(lambda: created_count(manifest) >= 2)
    journal_path(out_dir(manifest)).unlink()
    code, out, err = finish(child)
    assert code == 0, out + err
    assert not journal_path(out_dir(manifest)).exists()
    creates = stats(sim)["creates_total"]
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    assert stats(sim)["creates_total"] == creates == 4
    assert "adopted 4 jobs" in out
    assert_whole_and_paid_once(manifest, sim, 4)
