"""The fal adapter: exact wire details on bytes, then runs against the fal simulator dialect (and
a scripted server where the simulator is too polite) over real loopback sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_resume import CRASH_POINTS, finish, start_runner

from wanbatch import cli
from wanbatch.backoff import PollPolicy, RetryPolicy
from wanbatch.client import ProviderApi, VideoFetcher
from wanbatch.errors import (
    AnswerUnknownError,
    AuthError,
    CreditsExhaustedError,
    JobRejectedError,
    RateLimitedError,
    TaskNotFoundError,
    TransientApiError,
)
from wanbatch.journal import Journal, read_journal
from wanbatch.manifest import load_manifest
from wanbatch.models import JobSpec, JobState, TaskStatus
from wanbatch.providers import PROVIDERS
from wanbatch.providers.base import Answer, Call, ServerText
from wanbatch.scheduler import Runner, RunOptions

from hostile import Answer as Scripted
from hostile import json_response, serve

FAL = PROVIDERS["fal"]
TEXT = ServerText("sk-secret")
KEY_ENV = "WANBATCH_TEST_KEY"
RID = "a1b2c3d4-0000-4000-8000-000000000001"
BASE = f"https://queue.fal.run/fal-ai/wan/requests/{RID}"
URLS = {"status_url": BASE + "/status", "response_url": BASE, "cancel_url": BASE + "/cancel"}
HANDLE = json.dumps(URLS, separators=(",", ":"))


def job(**fields: Any) -> JobSpec:
    values: dict[str, Any] = {
        "id": "j",
        "prompt": "a red fox in snow",
        "model": "wan-2-2",
        "duration": 5,
        "aspect_ratio": "16:9",
    }
    return JobSpec(**{**values, **fields})


def answer(status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, headers or {}, json.dumps(payload).encode())


# --- the wire, on bytes -------------------------------------------------------------------


def test_a_five_second_campaign_renders_unchanged_at_every_ratio() -> None:
    """wan-2-2 takes 5 s at 16:9, 9:16 and 1:1; what fal cannot take is named before sending."""
    for ratio in ("16:9", "9:16", "1:1"):
        assert FAL.job_problem(job(aspect_ratio=ratio)) is None
        assert FAL.job_problem(job(aspect_ratio=ratio, image="https://x.test/a.png")) is None
    assert FAL.job_problem(job(model="wan-2-1")) is None
    assert "1:1" in (FAL.job_problem(job(model="wan-2-1", aspect_ratio="1:1")) or "")
    assert "1 to 10 s" in (FAL.job_problem(job(duration=11)) or "")
    assert "5 to 6 s" in (FAL.job_problem(job(model="wan-2-1", duration=8)) or "")
    assert "wan-3" in (FAL.job_problem(job(model="wan-3")) or "")


def test_the_submit_names_the_endpoint_and_maps_duration_and_image() -> None:
    call = FAL.create_call(job(extra={"seed": 7}), "idem-key", None)
    assert (call.method, call.url, call.absolute) == (
        "POST",
        "fal-ai/wan/v2.2-a14b/text-to-video",
        False,
    )
    assert call.json == {
        "prompt": "a red fox in snow",
        "num_frames": 81,
        "frames_per_second": 16,
        "aspect_ratio": "16:9",
        "seed": 7,
    }
    assert "Idempotency-Key" not in call.headers and not call.params  # fal takes none
    i2v = FAL.create_call(job(image="https://x.test/a.png", model="wan-2-1"), "k", "https://h/n")
    assert i2v.url == "fal-ai/wan-i2v" and i2v.json["image_url"] == "https://x.test/a.png"
    assert i2v.params == {"fal_webhook": "https://h/n"}
    assert FAL.auth_headers("k1") == {"Authorization": "Key k1"}


def test_the_submit_answer_keeps_the_three_urls_as_the_handle() -> None:
    created = FAL.read_created(answer(200, {"request_id": RID, **URLS}), TEXT)
    assert created.view.task_id == RID and created.view.status is TaskStatus.PENDING
    assert created.handle is not None and json.loads(created.handle) == URLS
    poll = FAL.poll_call(RID, created.handle)
    assert (poll.method, poll.url, poll.absolute) == ("GET", BASE + "/status", True)
    cancel = FAL.cancel_call(RID, created.handle)  # type: ignore[attr-defined]
    assert (cancel.method, cancel.url) == ("PUT", BASE + "/cancel")


@pytest.mark.parametrize(
    "payload",
    [
        {"request_id": RID},  # no URLs: the request cannot be followed
        {"request_id": RID, **URLS, "status_url": "ftp://x/status"},
        {"request_id": "../etc", **URLS},
        ["not", "an", "object"],
    ],
)
def test_a_submit_answer_that_cannot_be_followed_is_an_unknown_outcome(payload: object) -> None:
    with pytest.raises(AnswerUnknownError):
        FAL.read_created(answer(200, payload), TEXT)


def test_a_journal_without_the_handle_fails_the_job_rather_than_guessing() -> None:
    with pytest.raises(JobRejectedError) as caught:
        FAL.poll_call(RID, None)
    assert caught.value.code == "no_handle"


def test_status_words_and_the_result_call() -> None:
    queued = FAL.read_polled(answer(200, {"status": "IN_QUEUE", "queue_position": 3}), RID, TEXT)
    assert not isinstance(queued, Call) and queued.status is TaskStatus.PENDING
    running = FAL.read_polled(answer(200, {"status": "IN_PROGRESS", "logs": None}), RID, TEXT)
    assert not isinstance(running, Call) and running.status is TaskStatus.RUNNING
    done = FAL.read_polled(answer(200, {"status": "COMPLETED", "response_url": BASE}), RID, TEXT)
    assert isinstance(done, Call) and (done.what, done.url, done.absolute) == ("result", BASE, True)
    failed = FAL.read_polled(
        answer(200, {"status": "COMPLETED", "error": "boom", "error_type": "request_timeout"}),
        RID,
        TEXT,
    )
    assert not isinstance(failed, Call) and failed.status is TaskStatus.FAILED
    assert (failed.error_message, failed.error_code) == ("boom", "request_timeout")
    odd = FAL.read_polled(answer(200, {"status": "PAUSED"}), RID, TEXT)
    assert not isinstance(odd, Call) and odd.unrecognised_status and odd.raw_status == "PAUSED"
    with pytest.raises(TransientApiError):
        FAL.read_polled(answer(200, {"status": "COMPLETED"}), RID, TEXT)  # no response_url
    with pytest.raises(TransientApiError):
        FAL.read_polled(Answer(200, {}, b"<html>"), RID, TEXT)


def test_the_result_decides_success_or_failure() -> None:
    video = {"video": {"url": "https://v3.fal.media/files/x.mp4"}, "seed": 1}
    ok = FAL.read_result(answer(200, video), RID, TEXT)
    assert ok.status is TaskStatus.SUCCEEDED and ok.video_url == "https://v3.fal.media/files/x.mp4"
    empty = FAL.read_result(answer(200, {"seed": 1}), RID, TEXT)
    assert empty.status is TaskStatus.FAILED and empty.error_code == "no_video"
    with pytest.raises(TransientApiError):
        FAL.read_result(Answer(200, {}, b"garbled"), RID, TEXT)


def test_error_classes() -> None:
    def err(status: int, payload: object, what: str = "poll", **headers: str) -> Exception:
        return FAL.error(answer(status, payload, headers), what, TEXT)

    spent = "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard."
    assert isinstance(err(403, {"detail": spent}, "create"), CreditsExhaustedError)
    assert isinstance(
        err(403, {"detail": "User is locked. Reason: TOP_UP."}), CreditsExhaustedError
    )
    assert isinstance(err(403, {"detail": "User is locked. Reason: Admin lock."}), AuthError)
    assert isinstance(err(401, {"detail": "Invalid key sk-secret"}), AuthError)
    assert "sk-secret" not in str(err(401, {"detail": "Invalid key sk-secret"}))
    limited = err(429, {"detail": "slow down"}, **{"retry-after": "2"})
    assert isinstance(limited, RateLimitedError) and limited.retry_after_seconds == 2
    assert isinstance(err(404, {"detail": "Request not found"}), TaskNotFoundError)
    assert type(err(503, {"detail": "upstream"})) is TransientApiError
    invalid = err(
        422, {"detail": [{"loc": ["body", "num_frames"], "msg": "too many", "type": "x"}]}
    )
    assert isinstance(invalid, JobRejectedError) and "num_frames: too many" in str(invalid)
    # At result time: a 5xx naming an error type is the request's end; one without is the gateway's.
    final = err(500, {"detail": "boom", "error_type": "runner_server_error"}, "result")
    assert isinstance(final, JobRejectedError) and final.code == "runner_server_error"
    by_header = err(504, {"detail": "late"}, "result", **{"x-fal-error-type": "request_timeout"})
    assert isinstance(by_header, JobRejectedError) and by_header.code == "request_timeout"
    assert type(err(502, {"detail": "bad gateway"}, "result")) is TransientApiError
    assert type(err(500, {"detail": "boom", "error_type": "x"}, "poll")) is TransientApiError
    policy = {"loc": ["body", "prompt"], "msg": "flagged", "type": "content_policy_violation"}
    flagged = err(422, {"detail": [policy]}, "result")
    assert isinstance(flagged, JobRejectedError) and flagged.code == "content_policy_violation"


def test_a_notice_names_its_request() -> None:
    body = {"request_id": RID, "gateway_request_id": "g", "status": "OK", "payload": {}}
    notice = FAL.read_notice({}, json.dumps(body).encode())
    assert notice is not None and (notice.task_id, notice.delivery_id) == (RID, RID)
    assert FAL.read_notice({}, b'{"status": "OK"}') is None
    assert FAL.read_notice({}, b'{"request_id": "../x"}') is None
    assert FAL.read_notice({}, b"not json") is None


# --- against the fal dialect, over sockets ------------------------------------------------


def fal_manifest(folder: Path, jobs: list[str], **limits: Any) -> Path:
    """A fal manifest: one job a line of ``jobs`` (YAML flow mappings without the id)."""
    lines = [
        "name: t",
        "api:",
        "  provider: fal",
        f"  key_env: {KEY_ENV}",
        "defaults: {model: wan-2-2, duration: 5}",
        "limits:",
        f"  concurrency: {limits.get('concurrency', 4)}",
        f"  requests_per_second: {limits.get('rps', 200)}",
        f"  job_deadline_seconds: {limits.get('deadline', 3600)}",
        "  downloads: 2",
        "output: {dir: out}",
        "jobs:",
    ]
    lines += [f"  - {{id: job-{n}, {spec}}}" for n, spec in enumerate(jobs)]
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def prompts(count: int) -> list[str]:
    return [f"prompt: a test prompt number {n}" for n in range(count)]


def run(manifest: Path, sim: Any, monkeypatch: pytest.MonkeyPatch, key: str | None = None) -> int:
    monkeypatch.setenv(KEY_ENV, key if key is not None else sim.api_key)
    argv = ["run", str(manifest), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    return cli.main(argv)


def outcome(manifest: Path) -> dict[str, JobState]:
    records = read_journal(manifest.parent / "out").records
    return {job_id: record.state for job_id, record in records.items()}


def test_happy_path_through_the_runner(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16:9, 9:16, 1:1 and an image job render; each request was polled by its kept URLs."""
    sim = make_sim(provider="fal")
    specs = [f'prompt: clip {r}, aspect_ratio: "{r}"' for r in ("16:9", "9:16", "1:1")]
    specs.append('prompt: a sneaker, image: "https://example.com/s.png", model: wan-2-1')
    manifest = fal_manifest(tmp_path, specs)
    assert run(manifest, sim, monkeypatch) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == [
        f"job-{n}.mp4" for n in range(4)
    ]
    seen = sim.stats()
    assert seen["tasks_created"] == seen["creates_total"] == 4
    records = read_journal(tmp_path / "out").records
    for job_id, record in records.items():
        status_url = json.loads(record.handle or "{}")["status_url"]
        app = "fal-ai/wan-i2v" if job_id == "job-3" else "fal-ai/wan"  # the sub-path dropped
        assert status_url == f"{sim.base_url}/{app}/requests/{record.task_id}/status"
        assert seen["polls_by_task"][record.task_id] >= 1
    assert run(manifest, sim, monkeypatch) == 0  # a rerun sends nothing
    assert sim.stats()["requests_total"] == seen["requests_total"]


def test_a_generation_failure_shows_only_at_result_time(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(provider="fal", failure_rate=1.0)
    manifest = fal_manifest(tmp_path, prompts(2))
    assert run(manifest, sim, monkeypatch) == 1
    records = read_journal(tmp_path / "out").records
    for record in records.values():
        assert record.state is JobState.FAILED
        assert "generation failed" in (record.reason or "")
    assert sim.stats()["tasks_created"] == 2  # not resubmitted


def test_the_content_filter_fails_that_job_alone(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(provider="fal", flagged_words=("celebrity",))
    manifest = fal_manifest(tmp_path, [*prompts(2), "prompt: a celebrity on a red carpet"])
    assert run(manifest, sim, monkeypatch) == 1
    records = read_journal(tmp_path / "out").records
    assert records["job-2"].state is JobState.FAILED
    assert "content filter" in (records["job-2"].reason or "")
    assert records["job-2"].code == "content_policy_violation"
    assert outcome(manifest)["job-0"] is JobState.DOWNLOADED


def test_an_input_fal_refuses_fails_that_job_alone(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(provider="fal")
    manifest = fal_manifest(tmp_path, [*prompts(1), "prompt: big, extra: {resolution: 8k}"])
    assert run(manifest, sim, monkeypatch) == 1
    records = read_journal(tmp_path / "out").records
    assert records["job-1"].state is JobState.FAILED
    assert "resolution" in (records["job-1"].reason or "")
    assert records["job-0"].state is JobState.DOWNLOADED


def test_a_bad_key_stops_at_once(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(provider="fal")
    manifest = fal_manifest(tmp_path, prompts(3), concurrency=1)
    assert run(manifest, sim, monkeypatch, key="wrong-key") == 3
    assert sim.stats()["requests_total"] == 1
    assert set(outcome(manifest).values()) == {JobState.PLANNED}


def test_a_spent_balance_stops_submitting_then_a_top_up_finishes(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(provider="fal", credits=2)
    manifest = fal_manifest(tmp_path, prompts(4), concurrency=1)
    assert run(manifest, sim, monkeypatch) == 4
    sim.top_up(sim.api_key, 10)
    assert run(manifest, sim, monkeypatch) == 0
    assert sim.stats()["tasks_created"] == 4
    assert set(outcome(manifest).values()) == {JobState.DOWNLOADED}


def test_rate_limits_and_server_errors_are_waited_out(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(provider="fal", rate_limit_rps=40, rate_limit_burst=2, error_rate=0.2, seed=3)
    manifest = fal_manifest(tmp_path, prompts(4))
    assert run(manifest, sim, monkeypatch) == 0
    seen = sim.stats()
    assert seen["rate_limited_total"] > 0 and seen["server_errors_total"] > 0
    assert set(outcome(manifest).values()) == {JobState.DOWNLOADED}


def test_a_kill_after_the_submit_resumes_with_the_kept_urls(tmp_path: Path, make_sim: Any) -> None:
    """Killed between the journaled submit and its first poll: the rerun polls the journaled
    status URL and never submits again."""
    sim = make_sim(provider="fal")
    manifest = fal_manifest(tmp_path, prompts(2), concurrency=1)
    code, _, err = finish(
        start_runner(manifest, sim, env={"WANBATCH_TEST_CRASH_AT": "after_created:1"})
    )
    assert code == -signal.SIGKILL, err
    assert sim.stats()["creates_total"] == 1 and sim.stats()["polls_total"] == 0
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    seen = sim.stats()
    assert seen["creates_total"] == seen["tasks_created"] == 2
    first = read_journal(tmp_path / "out").records["job-0"]
    assert first.state is JobState.DOWNLOADED and seen["polls_by_task"][first.task_id] >= 1


def test_the_simulator_sends_fals_notice(make_sim: Any) -> None:
    """``fal_webhook`` is called with fal's body when the request ends; the adapter reads it."""
    with serve(lambda m, p, h: Scripted(json_response(200, "{}"))) as hook:
        sim = make_sim(provider="fal")
        notify = f"http://127.0.0.1:{hook.port}/notice"

        async def go() -> str:
            async with ProviderApi(
                sim.base_url, sim.api_key, provider=FAL, notify_url=notify
            ) as api:
                created = await api.create(job(), "k")
            with anyio.fail_after(10):
                while not hook.requests:  # noqa: ASYNC110 - another thread appends
                    await anyio.sleep(0.01)
            return created.view.task_id

        task_id = anyio.run(go)
    body, _ = sim.state.dialect.notice(sim.state, sim.state.tasks[task_id])
    notice = FAL.read_notice({}, body)
    assert notice is not None and notice.task_id == task_id
    assert json.loads(body)["status"] == "OK" and hook.requests[0][0] == "POST"


def test_cancel_and_unknown_requests_over_sockets(make_sim: Any) -> None:
    """A queued request cancels (PUT cancel_url, 202) and then ends in fal's 499; a request
    the key never made, or asked for under another app, is 404 (not found)."""
    sim = make_sim(provider="fal", slots=1, generation_seconds=5.0)

    async def go() -> None:
        async with ProviderApi(sim.base_url, sim.api_key, provider=FAL) as api:
            await api.create(job(prompt="first, rendering"), "k")
            queued = await api.create(job(prompt="second, queued"), "k")
            view = await api.get(queued.view.task_id, queued.handle)
            assert view.status is TaskStatus.PENDING and view.raw_status == "IN_QUEUE"
            cancel = FAL.cancel_call(queued.view.task_id, queued.handle)  # type: ignore[attr-defined]
            sent = await api._send(cancel)
            assert (sent.status, json.loads(sent.body)) == (
                202,
                {"status": "CANCELLATION_REQUESTED"},
            )
            with pytest.raises(JobRejectedError) as caught:
                await api.get(queued.view.task_id, queued.handle)
            assert caught.value.code == "client_cancelled"
            urls = json.loads(queued.handle or "{}")
            for url in (
                urls["status_url"].replace(queued.view.task_id, "gen_000000000000"),
                urls["status_url"].replace("/fal-ai/wan/", "/fal-ai/other/"),
            ):
                with pytest.raises(TaskNotFoundError):
                    await api.get(queued.view.task_id, json.dumps({"status_url": url}))

    anyio.run(go)


# --- where the simulator is too polite: a scripted server ----------------------------------


def scripted_fal(port_of: dict[str, int], words: list[str], url_host: str | None = None) -> Any:
    """A fal queue whose status answers ``words`` in turn (the last one for ever), and whose
    handed-out URLs are on ``url_host`` (default: itself)."""
    polls = [0]

    def script(method: str, path: str, headers: dict[str, str]) -> Scripted:
        host = url_host or f"http://127.0.0.1:{port_of['port']}"
        base = f"{host}/fal-ai/wan/requests/{RID}"
        if method == "POST":
            urls = {"status_url": base + "/status", "response_url": base}
            body = {"request_id": RID, **urls, "cancel_url": base + "/cancel"}
            return Scripted(json_response(200, json.dumps(body)))
        word = words[min(polls[0], len(words) - 1)]
        polls[0] += 1
        return Scripted(json_response(200, json.dumps({"status": word, "response_url": base})))

    return script


def test_an_unknown_status_word_surfaces_by_name(tmp_path: Path) -> None:
    port_of: dict[str, int] = {}
    with serve(scripted_fal(port_of, ["IN_QUEUE", "PAUSED"])) as server:
        port_of["port"] = server.port
        base_url = f"http://127.0.0.1:{server.port}"
        manifest = load_manifest(fal_manifest(tmp_path, prompts(1), deadline=0.3))

        async def go() -> None:
            journal = Journal.open(
                manifest.output_dir, base_url=base_url, manifest="m", provider="fal"
            )
            try:
                async with (
                    ProviderApi(base_url, "sk", provider=FAL) as api,
                    VideoFetcher() as videos,
                ):
                    options = RunOptions(
                        retry=RetryPolicy(max_attempts=2, base_seconds=0.001, cap_seconds=0.01),
                        poll=PollPolicy(initial_seconds=0.01, factor=1.0, cap_seconds=0.01),
                    )
                    summary = await Runner(manifest, journal, api, videos, options=options).run()
                    assert summary.stalled == ["job-0"]
            finally:
                journal.close()

        anyio.run(go)
    record = read_journal(manifest.output_dir).records["job-0"]
    assert record.state is JobState.RUNNING and "'PAUSED'" in (record.reason or "")


def test_a_handed_out_url_on_another_host_gets_no_key(tmp_path: Path) -> None:
    """The submit names a status URL elsewhere: it is refused and nothing reaches that host."""
    with serve(lambda m, p, h: Scripted(json_response(200, "{}"))) as elsewhere:
        port_of: dict[str, int] = {}
        foreign = f"http://127.0.0.1:{elsewhere.port}"
        with serve(scripted_fal(port_of, ["IN_QUEUE"], url_host=foreign)) as server:
            port_of["port"] = server.port

            async def go() -> None:
                base_url = f"http://127.0.0.1:{server.port}"
                async with ProviderApi(base_url, "sk-secret-key", provider=FAL) as api:
                    created = await api.create(job(), "k")
                    with pytest.raises(JobRejectedError) as caught:
                        await api.get(created.view.task_id, created.handle)
                assert caught.value.code == "foreign_url"

            anyio.run(go)
            assert server.requests[0][2]["authorization"] == "Key sk-secret-key"
    assert elsewhere.requests == []


def test_a_killed_simulate_run_resumes_on_the_urls_it_kept(tmp_path: Path) -> None:
    """`run --simulate` restarts the simulator on the port it had, so the journaled fal URLs
    (absolute, on the simulator's own origin) still lead to their requests."""
    manifest = fal_manifest(tmp_path, prompts(2), concurrency=1)
    argv = [sys.executable, "-m", "wanbatch", "run", str(manifest), "--simulate", "-q"]
    env = {**os.environ, "WANBATCH_TEST_CRASH_AT": "after_created:1"}
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(outcome(manifest).values()) == {JobState.DOWNLOADED}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_the_crash_campaign_over_fal(tmp_path: Path, make_sim: Any, point: str) -> None:
    """Killed at each step of a job's life, nothing is lost. fal takes no idempotency key and
    lists no requests, so a submit whose answer was not yet journaled when the run died is not
    sent again: the rerun finishes the rest and names it (exit 5); `--resend-unknown` then
    sends it, and every task paid twice is one that run names."""
    sim = make_sim(provider="fal", video_size=300_000)
    manifest = fal_manifest(tmp_path, prompts(4), concurrency=2)
    env = {"WANBATCH_TEST_CRASH_AT": f"{point}:2"}
    code, _, err = finish(start_runner(manifest, sim, env=env))
    assert code == -signal.SIGKILL, err
    code, out, err = finish(start_runner(manifest, sim))
    assert code in (0, 5), out + err
    assert sim.stats()["tasks_created"] <= 4  # nothing paid twice unless asked
    if point == "after_create":  # the submit was answered, its journal line never written
        assert code == 5 and "--resend-unknown" in out, out
    if code == 5:
        code, out, err = finish(start_runner(manifest, sim, "--resend-unknown"))
        assert code == 0, out + err
    assert set(outcome(manifest).values()) == {JobState.DOWNLOADED}
    named = re.search(r"created again after an unknown outcome \(.*\): (.*)", out)
    suspects = named.group(1).split(", ") if named else []
    extra = sim.stats()["tasks_created"] - 4
    assert 0 <= extra <= len(suspects), out
    if point == "after_create":
        assert extra >= 1  # the task the kill hid was paid again, and named
