"""The Replicate adapter: exact wire details on bytes, then runs against the simulator's
Replicate dialect (and a scripted server for answers the simulator never gives) over real
loopback sockets: the happy path, every error class, unknown and ``aborted`` statuses, signed
notices, listing, cancel, and the output deleted an hour after it finished (on a compressed
clock)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog
from test_submit import FAST_POLLS
from test_submit import run_once as run_in_process

from wanbatch.backoff import RetryPolicy
from wanbatch.client import ProviderApi
from wanbatch.commands import plan as plan_command
from wanbatch.errors import (
    AnswerUnknownError,
    AuthError,
    CreditsExhaustedError,
    JobRejectedError,
    RateLimitedError,
    TaskNotFoundError,
    TransientApiError,
)
from wanbatch.journal import Journal
from wanbatch.models import JobSpec, JobState, TaskStatus, TaskView
from wanbatch.providers import PROVIDERS
from wanbatch.providers.base import Answer, ServerText
from wanbatch.providers.replicate import ReplicateProvider
from wanbatch.scheduler import RunSummary
from wanbatch.settings import Flags
from wanbatch.simulator import SimulatorServer

from hostile import Answer as Scripted
from hostile import json_response, serve

REPLICATE = PROVIDERS["replicate"]
TEXT = ServerText("sk-wan-test")
KEY = "sk-wan-sim-local"


def job(**changes: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "id": "j",
        "prompt": "a fox in the snow",
        "model": "wan-2-2",
        "duration": 5,
        "aspect_ratio": "16:9",
    }
    return JobSpec(**{**fields, **changes})


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Answer(status, headers or {}, raw, at=time.time())


def prediction(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "p1", "status": status, "output": None, "error": None, **fields}


def polled(body: dict[str, Any]) -> TaskView:
    view = REPLICATE.read_polled(answer(200, body), "p1", TEXT)
    assert isinstance(view, TaskView)
    return view


# --- the wire, on bytes ----------------------------------------------------------------------


def test_the_registry_names_it_and_it_is_the_documented_api() -> None:
    assert isinstance(REPLICATE, ReplicateProvider)
    assert REPLICATE.default_base_url == "https://api.replicate.com/v1"
    assert REPLICATE.auth_headers("k") == {"Authorization": "Bearer k"}
    caps = REPLICATE.capabilities
    assert caps.url_lifetime_seconds == 3600 and not caps.idempotency_keys
    assert caps.webhooks and caps.cancel and caps.list_tasks


def test_a_text_job_is_a_prediction_of_the_wan_2_2_model_with_its_inputs() -> None:
    call = REPLICATE.create_call(job(extra={"seed": 7}), "idem", None)
    assert (call.method, call.url) == ("POST", "models/wan-video/wan-2.2-t2v-fast/predictions")
    assert call.json == {
        "input": {
            "prompt": "a fox in the snow",
            "num_frames": 81,
            "frames_per_second": 16,
            "aspect_ratio": "16:9",
            "seed": 7,
        }
    }
    assert "Prefer" not in call.headers and "Idempotency-Key" not in call.headers


def test_an_image_job_goes_to_the_i2v_model_and_a_notice_url_asks_for_completed_only() -> None:
    call = REPLICATE.create_call(
        job(image="https://x.test/a.png", aspect_ratio="1:1"), "idem", "https://me.test/hook"
    )
    assert call.url == "models/wan-video/wan-2.2-i2v-fast/predictions"
    assert call.json["input"]["image"] == "https://x.test/a.png"
    assert "aspect_ratio" not in call.json["input"]  # the video takes the image's shape
    assert call.json["webhook"] == "https://me.test/hook"
    assert call.json["webhook_events_filter"] == ["completed"]
    wan21 = REPLICATE.create_call(job(model="wan-2-1", aspect_ratio="9:16"), "idem", None)
    assert wan21.url == "models/wavespeedai/wan-2.1-t2v-480p/predictions"
    assert wan21.json == {"input": {"prompt": "a fox in the snow", "aspect_ratio": "9:16"}}


def test_job_problem_names_what_replicate_cannot_take() -> None:
    for ratio in ("16:9", "9:16"):
        assert REPLICATE.job_problem(job(aspect_ratio=ratio)) is None
    assert REPLICATE.job_problem(job(duration=6)) is None
    assert REPLICATE.job_problem(job(image="https://x.test/a.png", aspect_ratio="1:1")) is None
    square = REPLICATE.job_problem(job(aspect_ratio="1:1"))
    assert square is not None and "16:9 or 9:16, not 1:1" in square
    long = REPLICATE.job_problem(job(duration=8))
    assert long is not None and "5 s or 6 s" in long and "not 8 s" in long
    old = REPLICATE.job_problem(job(model="wan-2-1", duration=6))
    assert old is not None and "5 s at 16 fps" in old
    assert "no model" in (REPLICATE.job_problem(job(model="wan-9")) or "")


def test_statuses_outputs_and_the_words_that_end_a_prediction() -> None:
    assert polled(prediction("starting")).status is TaskStatus.PENDING
    assert polled(prediction("processing")).status is TaskStatus.RUNNING
    done = polled(prediction("succeeded", output="https://cdn.test/v.mp4"))
    assert done.status is TaskStatus.SUCCEEDED and done.video_url == "https://cdn.test/v.mp4"
    listed = polled(prediction("succeeded", output=["https://cdn.test/a.mp4"]))
    assert listed.video_url == "https://cdn.test/a.mp4"
    failed = polled(prediction("failed", error="CUDA out of memory"))
    assert failed.status is TaskStatus.FAILED and failed.error_message == "CUDA out of memory"
    canceled = polled(prediction("canceled"))
    assert canceled.status is TaskStatus.FAILED and canceled.error_code == "canceled"


def test_aborted_is_a_failure_that_says_it_was_not_billed() -> None:
    view = polled(prediction("aborted"))
    assert view.status is TaskStatus.FAILED and view.error_code == "aborted"
    assert "not billed" in (view.error_message or "") and not view.unrecognised_status


def test_an_unknown_status_word_is_flagged_by_name() -> None:
    view = polled(prediction("paused"))
    assert view.unrecognised_status and view.raw_status == "paused"
    assert view.status is TaskStatus.RUNNING  # the run warns by name; it never fails paid work


def test_a_deleted_output_is_named_not_waited_for() -> None:
    with pytest.raises(JobRejectedError) as caught:
        polled(prediction("succeeded", data_removed=True, input={}))
    assert caught.value.code == "output_deleted" and "1 hour" in str(caught.value)
    # succeeded without output and not removed: the poll stage asks again (not an error)
    assert polled(prediction("succeeded")).video_url is None


def test_a_created_answer_without_a_usable_id_is_an_unknown_outcome() -> None:
    created = REPLICATE.read_created(answer(201, prediction("starting")), TEXT)
    assert created.view.task_id == "p1" and created.view.status is TaskStatus.PENDING
    assert created.handle is None  # the id is enough: predictions/{id}
    for body in (b"<html>busy</html>", {"status": "starting"}, {"id": "../../etc"}):
        with pytest.raises(AnswerUnknownError):
            REPLICATE.read_created(answer(201, body), TEXT)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthError),
        (402, CreditsExhaustedError),
        (422, JobRejectedError),
        (500, TransientApiError),
        (503, TransientApiError),
    ],
)
def test_problem_json_errors_become_their_class(status: int, kind: type[Exception]) -> None:
    body = {"title": "Some title", "detail": "what went wrong", "status": status}
    error = REPLICATE.error(answer(status, body), "create", TEXT)
    assert type(error) is kind and "what went wrong" in str(error)
    assert error.code == "Some title"


def test_a_poll_404_is_a_task_not_found_and_a_create_404_a_rejection() -> None:
    body = {
        "title": "Not found",
        "detail": "The requested resource could not be found.",
        "status": 404,
    }
    assert isinstance(REPLICATE.error(answer(404, body), "poll", TEXT), TaskNotFoundError)
    created = REPLICATE.error(answer(404, body), "create", TEXT)
    assert type(created) is JobRejectedError


def test_the_429_wait_comes_from_the_header_else_from_the_body() -> None:
    body = {"title": "Request was throttled", "detail": "Request was throttled.", "retry_after": 7}
    error = REPLICATE.error(answer(429, body), "create", TEXT)
    assert isinstance(error, RateLimitedError) and error.retry_after_seconds == 7
    told = REPLICATE.error(answer(429, body, {"retry-after": "2"}), "create", TEXT)
    assert isinstance(told, RateLimitedError) and told.retry_after_seconds == 2
    documented = {"detail": "Request was throttled. Your rate limit resets in ~30s."}
    parsed = REPLICATE.error(answer(429, documented), "create", TEXT)
    assert isinstance(parsed, RateLimitedError) and parsed.retry_after_seconds == 30
    bare = REPLICATE.error(answer(429, b"busy"), "create", TEXT)
    assert isinstance(bare, RateLimitedError) and bare.retry_after_seconds is None


def test_server_text_is_cleaned_and_the_key_redacted() -> None:
    body = {"title": "t", "detail": "bad key sk-wan-test\x1b[31m", "status": 401}
    error = REPLICATE.error(answer(401, body), "poll", TEXT)
    assert "sk-wan-test" not in str(error) and "\x1b" not in str(error)


def test_a_notice_names_the_prediction_and_its_delivery() -> None:
    body = json.dumps(prediction("succeeded", output="https://cdn.test/v.mp4")).encode()
    notice = REPLICATE.read_notice({"webhook-id": "msg_1"}, body)
    assert notice is not None and (notice.task_id, notice.delivery_id) == ("p1", "msg_1")
    assert REPLICATE.read_notice({}, b"[]") is None
    assert REPLICATE.read_notice({}, b'{"id": "../x"}') is None


def test_the_listing_finds_the_prediction_with_this_jobs_input() -> None:
    spec = job()
    mine = REPLICATE.create_call(spec, "k", None).json["input"]
    results = [
        {"id": "other", "status": "starting", "input": {**mine, "prompt": "another"}},
        {
            "id": "mine",
            "status": "processing",
            "model": "wan-video/wan-2.2-t2v-fast",
            "input": mine,
        },
    ]
    since = time.time() - 60
    found = REPLICATE.read_listed(answer(200, {"results": results}), spec, since, TEXT)
    assert [created.view.task_id for created in found] == ["mine"]
    assert found[0].view.prompt == spec.prompt  # what the submit stage compares
    assert REPLICATE.read_listed(answer(200, {"results": results[:1]}), spec, since, TEXT) == []
    with pytest.raises(AnswerUnknownError, match="more than one page"):
        REPLICATE.read_listed(answer(200, {"results": results, "next": "x"}), spec, since, TEXT)
    call = REPLICATE.list_call(spec, time.time())
    assert (call.method, call.url) == ("GET", "predictions") and "created_after" in call.params


# --- runs over real sockets ------------------------------------------------------------------


def write_manifest(folder: Path, jobs: list[str], *, deadline: float = 60) -> Path:
    lines = [
        "name: r",
        "api: {provider: replicate}",
        "defaults: {model: wan-2-2, duration: 5}",
        f"limits: {{concurrency: 4, requests_per_second: 500, downloads: 2, list_grace_seconds: 0.2,"
        f" job_deadline_seconds: {deadline}}}",
        "output: {dir: out}",
        "jobs:",
        *jobs,
    ]
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def three_ratios(folder: Path) -> Path:
    return write_manifest(
        folder,
        [
            '  - {id: wide, prompt: a lighthouse in a storm, aspect_ratio: "16:9"}',
            '  - {id: tall, prompt: a waterfall in a jungle, aspect_ratio: "9:16"}',
            "  - {id: square, prompt: a cat on a windowsill, aspect_ratio: '1:1',"
            " image: 'https://example.com/cat.png'}",
        ],
    )


def run_replicate(
    path: Path, base_url: str, key: str = KEY, **options: Any
) -> tuple[RunSummary, Journal]:
    options.setdefault("poll", FAST_POLLS)
    return run_in_process(path, base_url, key=key, provider=REPLICATE, **options)


@pytest.fixture
def replicate_sim(make_sim: Callable[..., SimulatorServer]) -> Callable[..., SimulatorServer]:
    return lambda **knobs: make_sim(provider="replicate", **knobs)


def test_a_campaign_renders_and_downloads_every_video(
    tmp_path: Path, replicate_sim: Callable[..., SimulatorServer]
) -> None:
    sim = replicate_sim()
    summary, journal = run_replicate(three_ratios(tmp_path), sim.base_url)
    journal.close()
    assert sorted(summary.downloaded) == ["square", "tall", "wide"], summary.left
    for name in ("wide", "tall", "square"):
        assert (tmp_path / "out" / f"{name}.mp4").read_bytes()[4:8] == b"ftyp"
    stats = sim.stats()
    assert stats["creates_accepted"] == 3 and stats["cdn_requests_with_authorization"] == 0


def test_a_wrong_key_is_an_auth_error(replicate_sim: Callable[..., SimulatorServer]) -> None:
    sim = replicate_sim()

    async def go() -> None:
        async with ProviderApi(sim.base_url, "sk-wrong", provider=REPLICATE) as api:
            await api.create(job(), "k")

    with pytest.raises(AuthError) as caught:
        anyio.run(go)
    assert caught.value.status == 401 and caught.value.code == "Unauthenticated"


def test_input_the_model_refuses_is_a_rejection_naming_the_field(
    replicate_sim: Callable[..., SimulatorServer],
) -> None:
    sim = replicate_sim()

    async def go() -> None:
        async with ProviderApi(sim.base_url, KEY, provider=REPLICATE) as api:
            await api.create(job(duration=8), "k")  # past job_problem: 129 frames

    with pytest.raises(JobRejectedError) as caught:
        anyio.run(go)
    assert caught.value.status == 422 and "num_frames" in str(caught.value)


def test_spent_credit_is_credits_exhausted(replicate_sim: Callable[..., SimulatorServer]) -> None:
    sim = replicate_sim(credits=0)

    async def go() -> None:
        async with ProviderApi(sim.base_url, KEY, provider=REPLICATE) as api:
            await api.create(job(), "k")

    with pytest.raises(CreditsExhaustedError) as caught:
        anyio.run(go)
    assert caught.value.status == 402


def test_a_429_without_retry_after_header_waits_what_the_body_says(
    replicate_sim: Callable[..., SimulatorServer],
) -> None:
    sim = replicate_sim(rate_limit_rps=1, rate_limit_burst=1, retry_after_format="none")

    async def go() -> None:
        async with ProviderApi(sim.base_url, KEY, provider=REPLICATE) as api:
            await api.create(job(), "k")
            await api.create(job(), "k")

    with pytest.raises(RateLimitedError) as caught:
        anyio.run(go)
    assert caught.value.retry_after_seconds == 1
    assert "throttled" in str(caught.value)


def test_throttled_and_failing_servers_still_finish_the_run(
    tmp_path: Path, replicate_sim: Callable[..., SimulatorServer]
) -> None:
    sim = replicate_sim(rate_limit_rps=40, rate_limit_burst=2, error_rate=0.2, seed=3)
    retry = RetryPolicy(
        max_attempts=20, max_attempts_told_when=40, base_seconds=0.001, cap_seconds=0.02
    )
    summary, journal = run_replicate(three_ratios(tmp_path), sim.base_url, retry=retry)
    journal.close()
    assert sorted(summary.downloaded) == ["square", "tall", "wide"], summary.left
    stats = sim.stats()
    assert stats["creates_accepted"] == 3  # nothing made twice
    assert stats["rate_limited_total"] + stats["server_errors_total"] > 0


def test_a_failed_render_and_the_content_filter_are_failures_with_the_servers_words(
    tmp_path: Path, replicate_sim: Callable[..., SimulatorServer]
) -> None:
    sim = replicate_sim(flagged_words=("celebrity",))
    path = write_manifest(
        tmp_path,
        [
            "  - {id: ok, prompt: a quiet lake}",
            "  - {id: blocked, prompt: a famous celebrity waving}",
        ],
    )
    summary, journal = run_replicate(path, sim.base_url)
    journal.close()
    assert summary.downloaded == ["ok"]
    assert "content filter" in summary.failed["blocked"]
    other = tmp_path / "b"
    other.mkdir()
    sim2 = replicate_sim(failure_rate=1.0)
    summary2, journal2 = run_replicate(
        write_manifest(other, ["  - {id: doomed, prompt: a red kite}"]), sim2.base_url
    )
    journal2.close()
    assert "generation failed" in summary2.failed["doomed"]


def replicate_script(word: str, **extra: Any) -> Callable[[str, str, dict[str, str]], Scripted]:
    def script(method: str, path: str, headers: dict[str, str]) -> Scripted:
        status = "starting" if method == "POST" else word
        body = {"id": "p1", "status": status, "output": None, "error": None, **extra}
        return Scripted(json_response(201 if method == "POST" else 200, json.dumps(body)))

    return script


def test_an_unknown_status_word_surfaces_by_name(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, ["  - {id: odd, prompt: a paper boat}"], deadline=0.3)
    with serve(replicate_script("paused")) as server, structlog.testing.capture_logs() as logs:
        summary, journal = run_replicate(path, server.base_url, key="sk-wan-test")
        record = journal.record("odd")
        journal.close()
    warned = [entry for entry in logs if entry["event"] == "api.unknown_status"]
    assert len(warned) == 1 and warned[0]["status"] == "paused"
    assert record.state is JobState.RUNNING and "paused" in (record.reason or "")
    assert summary.stalled == ["odd"]


def test_an_aborted_prediction_fails_the_job_and_says_it_was_not_billed(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, ["  - {id: late, prompt: a paper boat}"])
    with serve(replicate_script("aborted")) as server:
        summary, journal = run_replicate(path, server.base_url, key="sk-wan-test")
        record = journal.record("late")
        journal.close()
    assert "not billed" in summary.failed["late"] and record.code == "aborted"


def test_the_list_finds_a_created_prediction_and_cancel_ends_one(
    replicate_sim: Callable[..., SimulatorServer],
) -> None:
    sim = replicate_sim(generation_seconds=30)
    spec = job()

    async def go() -> tuple[str, str | None, str]:
        async with ProviderApi(sim.base_url, KEY, provider=REPLICATE) as api:
            made = await api.create(spec, "k")
            await api.create(job(prompt="something else"), "k2")
            found = await api.find(spec, time.time() - 5)
            cancel = ReplicateProvider().cancel_call(made.view.task_id, None)
        async with httpx.AsyncClient(base_url=sim.base_url + "/") as http:
            headers = REPLICATE.auth_headers(KEY)
            await http.request(cancel.method, cancel.url, headers=headers)
        async with ProviderApi(sim.base_url, KEY, provider=REPLICATE) as api:
            view = await api.get(made.view.task_id)
        return made.view.task_id, found[0].view.task_id if found else None, view.raw_status

    made, found, status = anyio.run(go)
    assert found == made and status == "canceled"


class Receiver(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_notices_are_signed_per_standard_webhooks_with_the_served_secret(
    replicate_sim: Callable[..., SimulatorServer], receiver: str
) -> None:
    sim = replicate_sim()

    async def go() -> str:
        async with ProviderApi(sim.base_url, KEY, provider=REPLICATE, notify_url=receiver) as api:
            made = await api.create(job(), "k")
        for _ in range(200):
            if Receiver.got:
                break
            await anyio.sleep(0.02)
        return made.view.task_id

    task_id = anyio.run(go)
    secret = httpx.get(
        sim.base_url + "/webhooks/default/secret", headers=REPLICATE.auth_headers(KEY)
    ).json()["key"]
    assert secret.startswith("whsec_")
    headers, body = Receiver.got[0]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == "v1," + expected
    notice = REPLICATE.read_notice(headers, body)
    assert notice is not None and notice.task_id == task_id
    assert notice.delivery_id == headers["webhook-id"]
    assert json.loads(body)["status"] == "succeeded"


def test_an_output_polled_after_its_deletion_fails_the_job_saying_so(
    tmp_path: Path, replicate_sim: Callable[..., SimulatorServer]
) -> None:
    """A compressed clock: outputs live 0 s, so the first poll after the render already finds
    the output deleted; the job fails with the reason, not a silent wait."""
    sim = replicate_sim(output_lifetime_seconds=0.0)
    path = write_manifest(tmp_path, ["  - {id: gone, prompt: a paper boat}"])
    summary, journal = run_replicate(path, sim.base_url)
    record = journal.record("gone")
    journal.close()
    assert record.state is JobState.FAILED and record.code == "output_deleted"
    assert "deleted" in summary.failed["gone"] and "1 hour" in summary.failed["gone"]


def test_a_download_after_the_hour_says_the_output_was_deleted(
    tmp_path: Path, replicate_sim: Callable[..., SimulatorServer]
) -> None:
    """A compressed clock: outputs live 1 s; the download is held 1.3 s after the render
    (a slow queue, a sleeping laptop). The URL no longer works, the refresh finds the output
    deleted, and the job fails for good with that reason (so `retry` renders it again) after
    one refresh, not one per download retry."""
    sim = replicate_sim(output_lifetime_seconds=1.0, url_ttl_seconds=1.0)
    path = write_manifest(tmp_path, ["  - {id: late, prompt: a paper boat}"])
    held: list[str] = []

    def hold(point: str, job_id: str) -> None:
        if point == "before_download" and not held:
            held.append(job_id)
            time.sleep(1.3)

    summary, journal = run_replicate(
        path,
        sim.base_url,
        faults=hold,
        download_retry=RetryPolicy(max_attempts=4, base_seconds=0.001, cap_seconds=0.01),
    )
    record = journal.record("late")
    journal.close()
    assert summary.downloaded == []
    reason = summary.failed["late"]
    assert "deleted" in reason and "1 hour" in reason, reason
    assert (record.state, record.code) == (JobState.FAILED, "output_deleted")
    assert sim.stats()["cdn_expired"] == 1  # one refused download, then no more tries


def test_the_plan_says_replicate_deletes_outputs_an_hour_after_they_finish(
    tmp_path: Path,
) -> None:
    shown = io.StringIO()
    assert plan_command.execute(Flags(manifest=str(three_ratios(tmp_path))), shown) == 0
    assert "replicate deletes outputs 1 h after they finish" in shown.getvalue()
    wanapi = tmp_path / "w.yaml"
    wanapi.write_text("name: w\noutput: {dir: o}\njobs:\n  - {id: a, prompt: a kite}\n")
    other = io.StringIO()
    plan_command.execute(Flags(manifest=str(wanapi)), other)
    assert "deletes outputs" not in other.getvalue()
