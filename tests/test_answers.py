"""Every answer checked, over real sockets (issue 12): a resumed run collects old tasks, a 404
is waited out before a task is called lost, create answers are taken when usable and never
resent blindly when not, bad task ids fail one job, terminal status words end a task, and the
server's text is redacted before it reaches the journal."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from test_submit import manifest_file, run_once

from wanbatch import cli, polling
from wanbatch.backoff import PollPolicy
from wanbatch.commands import plan as plan_command
from wanbatch.commands import status as status_command
from wanbatch.journal import Journal
from wanbatch.manifest import load_manifest
from wanbatch.models import EventKind, JobEvent, JobState
from wanbatch.runend import RunEnd, closing_lines
from wanbatch.settings import Flags

from hostile import Answer, http_response, json_response, serve

VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4
FAST_POLLS = PollPolicy(initial_seconds=0.01, factor=1.0, cap_seconds=0.01, jitter=0.0)


def manifest(folder: Path, jobs: int = 1, deadline: float = 3600) -> Path:
    return manifest_file(folder, jobs, deadline=deadline)


def journal_tasks(path: Path, base_url: str, tasks: dict[str, str], age: float = 0.0) -> None:
    """Write a journal in which each job of ``tasks`` was created ``age`` seconds ago."""
    loaded = load_manifest(path)
    at = time.time() - age

    async def go() -> None:
        journal = Journal.open(loaded.output_dir, base_url=base_url, manifest=str(path))
        try:
            for job in loaded.jobs:
                if job.id not in tasks:
                    continue
                fp = job.fingerprint()
                await journal.append(
                    JobEvent(EventKind.INTENT, job.id, at, idempotency_key="k", fingerprint=fp)
                )
                await journal.append(JobEvent(EventKind.CREATED, job.id, at, task_id=tasks[job.id]))
        finally:
            journal.close()

    anyio.run(go)


def polls(server: Any) -> list[str]:
    return [p for m, p, _ in server.requests if m == "GET" and "/video/generations/" in p]


def posts(server: Any) -> int:
    return sum(1 for m, _, _ in server.requests if m == "POST")


def rendered(port: int, task: str = "gen_1") -> Answer:
    url = f"http://127.0.0.1:{port}/cdn/v.mp4"
    return Answer(
        json_response(200, json.dumps({"id": task, "status": "succeeded", "video_url": url}))
    )


# --- 1. the deadline ends waiting, not collecting -----------------------------------------


def test_a_resumed_run_collects_a_task_older_than_the_deadline(tmp_path: Path) -> None:
    """Interrupted, resumed two hours later with a one-minute deadline: the task is asked
    about (not marked stalled unasked) and its video collected."""

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if path == "/cdn/v.mp4":
            return Answer(http_response(200, VIDEO, {"Content-Type": "video/mp4"}))
        return rendered(server.port, "gen_old")

    path = manifest(tmp_path, deadline=60)
    with serve(script) as server:
        journal_tasks(path, server.base_url, {"job-0": "gen_old"}, age=7200)
        summary, journal = run_once(path, server.base_url)
        journal.close()
    assert summary.stalled == [] and summary.downloaded == ["job-0"], summary.left
    assert (tmp_path / "out" / "job-0.mp4").read_bytes() == VIDEO


def test_a_task_past_its_deadline_is_asked_once_and_says_how_to_wait_longer(
    tmp_path: Path,
) -> None:
    """Still rendering after the deadline: asked once in this run, then reported stalled with
    the way to wait longer (the flag and the manifest key)."""

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        return Answer(json_response(200, '{"id": "gen_old", "status": "running"}'))

    path = manifest(tmp_path, deadline=60)
    with serve(script) as server, structlog.testing.capture_logs() as logs:
        journal_tasks(path, server.base_url, {"job-0": "gen_old"}, age=7200)
        summary, journal = run_once(path, server.base_url)
        journal.close()
        assert len(polls(server)) == 1
    assert summary.stalled == ["job-0"]
    stalled = [entry for entry in logs if entry["event"] == "job.stalled"]
    assert stalled and "--job-deadline" in stalled[0]["hint"]
    assert "job_deadline_seconds" in stalled[0]["hint"]
    loaded = load_manifest(path)
    end = RunEnd(loaded.name, str(path), str(loaded.output_dir), idempotent=True)
    assert "--job-deadline" in "\n".join(closing_lines(end, summary))


# --- 2. a 404 for our own task is waited out, then the task is lost ------------------------


def test_a_404_right_after_the_create_is_waited_out(tmp_path: Path) -> None:
    """A server that does not know a task for a moment after creating it (eventual
    consistency): the job is not failed, the video arrives."""
    gets = [0]

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        if path == "/cdn/v.mp4":
            return Answer(http_response(200, VIDEO, {"Content-Type": "video/mp4"}))
        gets[0] += 1
        if gets[0] <= 2:
            return Answer(json_response(404, '{"error": {"message": "No task gen_1"}}'))
        return rendered(server.port)

    with serve(script) as server:
        summary, journal = run_once(manifest(tmp_path), server.base_url)
        journal.close()
    assert summary.failed == {} and summary.downloaded == ["job-0"], summary.left


def test_a_task_that_stays_unknown_is_lost_and_retry_leaves_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A task the server keeps denying is recorded as lost (a failure with code "lost" and a
    reason that says so); `retry` does not pay for a new task unless told `--include-lost`."""
    monkeypatch.setattr(
        polling, "LOST", polling.LostRule(grace_seconds=0.0, streak_seconds=0.05, misses=3)
    )

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return Answer(json_response(404, '{"error": {"message": "No task gen_1"}}'))

    path = manifest(tmp_path)
    with serve(script) as server:
        summary, journal = run_once(path, server.base_url)
        record = journal.record("job-0")
        journal.close()
        assert record.state is JobState.FAILED and record.code == "lost"
        assert "lost" in summary.failed["job-0"] and "--include-lost" in summary.failed["job-0"]
        assert len(polls(server)) >= 3
        planned = io.StringIO()
        plan_command.execute(Flags(manifest=str(path)), planned)
        assert "lost" in planned.getvalue() and "--include-lost" in planned.getvalue()
        monkeypatch.setenv("WAN_API_KEY", "sk-wan-test")
        argv = ["retry", str(path), "--yes", "--base-url", server.base_url, "-q"]
        assert cli.main(argv) == 0
        assert posts(server) == 1  # nothing paid again
        assert "--include-lost" in capsys.readouterr().out
        cli.main([*argv, "--include-lost"])
        assert posts(server) == 2
    status = io.StringIO()
    status_command.execute(Flags(manifest=str(path)), status)
    assert "lost" in status.getvalue()


# --- 4 and 5. create answers: usable ones taken, unusable ones not resent -------------------


def test_an_integer_task_id_is_taken(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": 7, "status": "queued"}'))
        return Answer(json_response(200, '{"id": 7, "status": "failed"}'))

    with serve(script) as server:
        summary, journal = run_once(manifest(tmp_path), server.base_url)
        journal.close()
        assert posts(server) == 1 and polls(server) == ["/v1/video/generations/7"]
    assert summary.failed == {"job-0": "generation failed"}


@pytest.mark.parametrize(
    "raw",
    [
        json_response(200, '{"id": 1.5, "status": "queued"}'),
        json_response(200, '{"id": "../../admin/x?y=1#", "status": "queued"}'),
        json_response(200, '{"id": "gen\\u0001", "status": "queued"}'),
        http_response(200, b"<html>proxy</html>"),
    ],
    ids=["float", "traversal", "control", "html"],
)
def test_an_unusable_create_answer_is_sent_once_and_left_unknown(
    tmp_path: Path, raw: bytes
) -> None:
    """A 2xx that names no usable task may have made one: the create is not resent in this
    run (a server that ignores Idempotency-Key would charge each time); the job is left with
    its outcome unknown, and said so."""
    with serve(lambda m, p, h: Answer(raw)) as server:
        summary, journal = run_once(manifest(tmp_path), server.base_url)
        record = journal.record("job-0")
        journal.close()
        assert posts(server) == 1 and polls(server) == []
        assert all("admin" not in p for _, p, _ in server.requests)
    assert record.state is JobState.SUBMITTING
    assert "answer unknown" in summary.left["job-0"]


@pytest.mark.parametrize("bad", ["gen\x07bell", "../../admin/x?y=1#"], ids=["control", "path"])
def test_a_bad_task_id_in_an_old_journal_fails_that_job_only(tmp_path: Path, bad: str) -> None:
    """An id that cannot be used in a URL fails its own job with a clear reason; the batch
    goes on and nothing is sent to another path of the API host."""

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        return Answer(json_response(200, '{"id": "gen_ok", "status": "failed"}'))

    path = manifest(tmp_path, jobs=2)
    with serve(script) as server:
        journal_tasks(path, server.base_url, {"job-0": bad, "job-1": "gen_ok"})
        summary, journal = run_once(path, server.base_url)
        journal.close()
        assert polls(server) == ["/v1/video/generations/gen_ok"]
    assert "task id" in summary.failed["job-0"]
    assert summary.failed["job-1"] == "generation failed"


# --- 11. terminal words end a task; unknown words are shown -------------------------------


def test_expired_is_a_failure_not_a_stall(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return Answer(json_response(200, '{"id": "gen_1", "status": "expired"}'))

    with serve(script) as server:
        summary, journal = run_once(manifest(tmp_path, deadline=1), server.base_url)
        journal.close()
    assert summary.stalled == [] and summary.failed == {"job-0": "generation expired"}


def test_an_unknown_status_word_is_warned_once_and_shown_in_status(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return Answer(json_response(200, '{"id": "gen_1", "status": "dreaming"}'))

    path = manifest(tmp_path, deadline=0.3)
    with serve(script) as server, structlog.testing.capture_logs() as logs:
        summary, journal = run_once(path, server.base_url, poll=FAST_POLLS)
        record = journal.record("job-0")
        journal.close()
        assert len(polls(server)) > 2
    warned = [entry for entry in logs if entry["event"] == "api.unknown_status"]
    assert len(warned) == 1 and warned[0]["status"] == "dreaming"
    assert record.state is JobState.RUNNING and "dreaming" in (record.reason or "")
    status = io.StringIO()
    status_command.execute(Flags(manifest=str(path)), status)
    assert "dreaming" in status.getvalue()


# --- 8. the server's text is redacted before it is kept -----------------------------------


def test_a_failure_message_echoing_the_key_is_redacted_everywhere(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        body = {
            "id": "gen_1",
            "status": "failed",
            "error": {"message": "denied: " + headers["authorization"], "code": "sk-wan-test"},
        }
        return Answer(json_response(200, json.dumps(body)))

    with serve(script) as server:
        summary, journal = run_once(manifest(tmp_path), server.base_url)
        record = journal.record("job-0")
        journal.close()
    assert record.state is JobState.FAILED and "denied" in (record.reason or "")
    assert "sk-wan-test" not in (record.reason or "") + (record.code or "")
    assert "sk-wan-test" not in json.dumps(summary.failed)
    written = (tmp_path / "out" / ".wanbatch" / "journal.jsonl").read_bytes()
    assert b"denied" in written and b"sk-wan-test" not in written


def test_the_lost_rule_needs_age_a_streak_and_misses() -> None:
    """A 404 is believed only past the grace after the create, for a streak of time and of
    polls; each alone is not enough."""
    rule = polling.LostRule()
    assert rule.lost(age=400, streak=61, misses=3)
    assert not rule.lost(age=100, streak=61, misses=9)  # too soon after the create
    assert not rule.lost(age=400, streak=10, misses=9)  # 404s for a moment only
    assert not rule.lost(age=400, streak=120, misses=2)  # too few polls


def test_a_bad_task_id_is_no_answer_from_the_host(tmp_path: Path) -> None:
    """A resumed run whose first poll is refused before sending (a bad task id) and whose next
    request finds nobody at the base URL: that is a configuration error at once (exit 2), not
    an outage of a host that never answered (the unsent poll was counted as an answer)."""
    from test_submit import closed_port_url

    nobody = closed_port_url()
    path = manifest(tmp_path, jobs=2)
    journal_tasks(path, nobody, {"job-0": "../../admin/x?y=1#", "job-1": "gen_ok"})
    summary, journal = run_once(path, nobody, max_outage=3.0)  # before: an outage, exit 5
    journal.close()
    assert summary.exit_code == 2, (summary.stop_reason, summary.stop_message, summary.left)


def test_404s_apart_are_not_a_streak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """404, then the host answers 503 for two seconds, then 404 twice, then the task is
    found: the 404s were not "in a row" (between them the host gave no answer about the task),
    so the task is not declared lost; it is followed to its end."""
    monkeypatch.setattr(
        polling, "LOST", polling.LostRule(grace_seconds=0.0, streak_seconds=0.3, misses=3)
    )
    gets: list[int] = []
    missing = '{"error": {"message": "No task gen_1"}}'

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        gets.append(1)
        if len(gets) in (2, 3):  # two 503s, a second each: the first 404 is long past
            busy = '{"error": {"message": "busy"}}'
            return Answer(json_response(503, busy, {"Retry-After": "1"}))
        if len(gets) <= 5:  # the first, fourth and fifth polls: 404
            return Answer(json_response(404, missing))
        return Answer(json_response(200, '{"id": "gen_1", "status": "failed"}'))

    with serve(script) as server:
        summary, journal = run_once(manifest(tmp_path), server.base_url)
        record = journal.record("job-0")
        journal.close()
    assert record.code != "lost", summary.failed
    assert summary.failed == {"job-0": "generation failed"}
