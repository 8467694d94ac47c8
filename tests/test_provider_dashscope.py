"""DashScope: its adapter against its simulator dialect over real sockets (the happy path,
every error class, an unknown status word) and on bytes (the wire details). The settling of a
create whose answer was lost is in test_unanswered_create.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import httpx
import pytest
import structlog
from test_submit import run_once as run_in_process

from wanbatch.backoff import PollPolicy, RetryPolicy
from wanbatch.client import ProviderApi
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
from wanbatch.models import JobSpec, JobState
from wanbatch.providers import PROVIDERS
from wanbatch.providers.base import Answer as WireAnswer
from wanbatch.providers.base import Provider, ServerText
from wanbatch.providers.dashscope import DashScopeProvider
from wanbatch.scheduler import RunSummary
from wanbatch.simulator import SimulatorServer

from hostile import Answer, json_response, serve

DASHSCOPE = PROVIDERS["dashscope"]
FAST_POLLS = PollPolicy(initial_seconds=0.02, factor=1.0, cap_seconds=0.02)
TEXT = ServerText("sk-secret")


def job(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {
        "id": "j",
        "prompt": "a fox in the snow",
        "model": "wan-2-2",
        "duration": 5,
        "aspect_ratio": "16:9",
    }
    return JobSpec(**{**base, **fields})


def manifest_file(
    folder: Path,
    jobs: list[str] | None = None,
    *,
    concurrency: int = 2,
    grace: float = 0.2,  # the simulator lists a task at once
) -> Path:
    lines = [
        "name: t",
        "api: {provider: dashscope}",
        f"limits: {{concurrency: {concurrency}, requests_per_second: 500, downloads: 2,"
        f" list_grace_seconds: {grace}}}",
        "output: {dir: out}",
        "jobs:",
    ]
    lines += jobs or ['  - {id: job-0, prompt: a test prompt, aspect_ratio: "16:9"}']
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_once(
    path: Path,
    base_url: str,
    key: str = "sk-wan-sim-local",
    provider: Provider = DASHSCOPE,
    **options: Any,
) -> tuple[RunSummary, Journal]:
    """One in-process run on the DashScope adapter; the journal reopened after it."""
    return run_in_process(path, base_url, key=key, provider=provider, **options)


def accepted(sim: SimulatorServer) -> int:
    return int(sim.stats()["creates_accepted"])


# --- the happy path ----------------------------------------------------------------------


def test_a_campaign_renders_on_the_dashscope_dialect(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """5 s jobs at 16:9, 9:16 and 1:1, both models, an image job with ``extra``: every video
    is downloaded, one task each, and the wire carries DashScope's own names."""
    sim = make_sim(provider="dashscope")
    path = manifest_file(
        tmp_path,
        [
            '  - {id: wide, prompt: a drone shot over a forest, aspect_ratio: "16:9"}',
            '  - {id: tall, prompt: a lighthouse at night, aspect_ratio: "9:16"}',
            '  - {id: square, prompt: croissants in an oven, aspect_ratio: "1:1"}',
            "  - {id: older, prompt: a rainy street, model: wan-2-1}",
            "  - {id: still, prompt: a sneaker turning, image: 'https://example.com/s.png',"
            " extra: {seed: 42}}",
        ],
    )
    summary, journal = run_once(path, sim.base_url)
    records = [journal.record(name) for name in ("wide", "tall", "square", "older", "still")]
    journal.close()
    assert summary.exit_code == 0, summary.left
    assert all(record.state is JobState.DOWNLOADED for record in records)
    assert accepted(sim) == 5 and summary.possible_duplicates == []
    assert sim.base_url.endswith("/api/v1")


def test_run_simulate_speaks_dashscope(tmp_path: Path) -> None:
    """`wanbatch run --simulate` with `api.provider: dashscope` renders through the dialect."""
    from wanbatch import cli

    path = manifest_file(tmp_path, ['  - {id: one, prompt: a cat on a wall, aspect_ratio: "1:1"}'])
    assert cli.main(["run", str(path), "--simulate", "-q"]) == 0
    assert (tmp_path / "out" / "one.mp4").stat().st_size > 0


def test_the_create_body_is_dashscopes() -> None:
    """Model, input and parameters as the docs write them; the async header; no idempotency
    header (the API has none)."""
    call = DASHSCOPE.create_call(job(extra={"seed": 7, "negative_prompt": "blur"}), "wb-1", None)
    assert call.url == "services/aigc/video-generation/video-synthesis"
    assert call.headers == {"X-DashScope-Async": "enable"}
    assert call.json == {
        "model": "wan2.2-t2v-plus",
        "input": {"prompt": "a fox in the snow", "negative_prompt": "blur"},
        "parameters": {"duration": 5, "size": "1920*1080", "seed": 7},
    }
    still = DASHSCOPE.create_call(job(model="wan-2-1", image="https://x/y.png"), "wb-1", None)
    assert still.json["model"] == "wanx2.1-i2v-plus"
    assert still.json["parameters"] == {"duration": 5, "resolution": "720P"}
    assert still.json["input"]["img_url"] == "https://x/y.png"


def test_what_dashscope_cannot_render_is_named_before_sending() -> None:
    assert DASHSCOPE.job_problem(job()) is None
    assert "5 s" in (DASHSCOPE.job_problem(job(duration=8)) or "")
    assert "21:9" in (DASHSCOPE.job_problem(job(aspect_ratio="21:9")) or "")


# --- errors ----------------------------------------------------------------------------


def error_of(status: int, code: str, message: str = "m", what: str = "create") -> Exception:
    body = json.dumps({"request_id": "r-1", "code": code, "message": message}).encode()
    return DASHSCOPE.error(WireAnswer(status, {}, body), what, TEXT)


def test_each_dashscope_error_code_has_its_class() -> None:
    assert isinstance(error_of(400, "DataInspectionFailed"), JobRejectedError)
    assert isinstance(error_of(400, "InvalidParameter"), JobRejectedError)
    assert isinstance(error_of(401, "InvalidApiKey"), AuthError)
    assert "per region" in str(error_of(401, "InvalidApiKey"))
    assert isinstance(error_of(429, "Throttling.RateQuota"), RateLimitedError)
    allocated = error_of(429, "Throttling.AllocationQuota", "Allocated quota exceeded")
    assert isinstance(allocated, RateLimitedError)
    assert isinstance(
        error_of(429, "Throttling.AllocationQuota", "Free allocated quota exceeded."),
        CreditsExhaustedError,
    )
    assert isinstance(error_of(400, "Arrearage"), CreditsExhaustedError)
    assert isinstance(error_of(500, "InternalError"), TransientApiError)
    assert error_of(400, "InvalidParameter").request_id == "r-1"  # type: ignore[attr-defined]


def test_unknown_from_dashscope_is_a_task_it_does_not_know(
    make_sim: Callable[..., SimulatorServer],
) -> None:
    """The dialect answers UNKNOWN for a task it never made; the adapter says "not found"."""
    sim = make_sim(provider="dashscope")

    async def go() -> None:
        async with ProviderApi(sim.base_url, sim.api_key, provider=DASHSCOPE) as api:
            with pytest.raises(TaskNotFoundError):
                await api.get("gen_000000000000")

    anyio.run(go)


def test_errors_over_the_wire(make_sim: Callable[..., SimulatorServer], tmp_path: Path) -> None:
    """The simulator's faults in DashScope's form: a wrong key stops the run (exit 3, nothing
    made); the content filter fails the job with DataInspectionFailed; credits spent (Arrearage)
    stop submitting; a 429 with Throttling is waited out."""
    sim = make_sim(provider="dashscope", flagged_words=("celebrity",))
    summary, journal = run_once(manifest_file(tmp_path), sim.base_url, key="sk-wrong")
    journal.close()
    assert summary.exit_code == 3 and accepted(sim) == 0

    (tmp_path / "filter").mkdir()
    jobs = [
        "  - {id: star, prompt: a famous celebrity waving}",
        "  - {id: ok, prompt: a calm lake}",
    ]
    path = manifest_file(tmp_path / "filter", jobs)
    summary, journal = run_once(path, sim.base_url)
    record = journal.record("star")
    journal.close()
    assert record.state is JobState.FAILED and record.code == "DataInspectionFailed"
    assert summary.failed.keys() == {"star"}

    broke = make_sim(provider="dashscope", credits=0)
    (tmp_path / "broke").mkdir()
    summary, journal = run_once(manifest_file(tmp_path / "broke"), broke.base_url)
    record = journal.record("job-0")
    journal.close()
    assert summary.exit_code == 4 and record.state is JobState.PLANNED

    busy = make_sim(provider="dashscope", rate_limit_rps=5, rate_limit_burst=1)
    (tmp_path / "busy").mkdir()
    jobs = [f"  - {{id: job-{n}, prompt: prompt {n}}}" for n in range(3)]
    summary, journal = run_once(manifest_file(tmp_path / "busy", jobs), busy.base_url)
    journal.close()
    assert summary.exit_code == 0 and accepted(busy) == 3


def test_the_dialects_error_shape(make_sim: Callable[..., SimulatorServer]) -> None:
    sim = make_sim(provider="dashscope", rate_limit_rps=0.001, rate_limit_burst=1)
    url = sim.base_url + "/services/aigc/video-generation/video-synthesis"
    auth = {"Authorization": f"Bearer {sim.api_key}", "X-DashScope-Async": "enable"}
    body = {"model": "wan2.2-t2v-plus", "input": {"prompt": "x"}, "parameters": {"duration": 5}}
    first = httpx.post(url, json=body, headers=auth)
    second = httpx.post(url, json=body, headers=auth)
    assert first.status_code == 200 and first.json()["output"]["task_status"] == "PENDING"
    assert second.status_code == 429 and second.json()["code"].startswith("Throttling")
    assert set(second.json()) == {"request_id", "code", "message"}


def test_injected_server_errors_are_retried(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """500s on polls are retried; a 500 on a create may have made a task, so the create is
    settled by listing before any resend: never two tasks for one job."""
    sim = make_sim(provider="dashscope", error_rate=0.3, seed=3)
    jobs = [f"  - {{id: job-{n}, prompt: prompt number {n}}}" for n in range(4)]
    retry = RetryPolicy(max_attempts=8, base_seconds=0.001, cap_seconds=0.01)
    summary, journal = run_once(manifest_file(tmp_path, jobs), sim.base_url, retry=retry)
    journal.close()
    by_prompt = sim.stats()["creates_by_prompt"]
    assert all(counts.get("accepted", 0) <= 1 for counts in by_prompt.values()), by_prompt


def test_an_unknown_status_word_is_warned_by_name(tmp_path: Path) -> None:
    def answer(word: str) -> Answer:
        body = {"request_id": "r", "output": {"task_id": "t-1", "task_status": word}}
        return Answer(json_response(200, json.dumps(body)))

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        return answer("PENDING" if method == "POST" else "HIBERNATING")

    path = manifest_file(tmp_path)
    text = path.read_text().replace("limits: {", "limits: {job_deadline_seconds: 0.3, ")
    path.write_text(text)
    with serve(script) as server, structlog.testing.capture_logs() as logs:
        base = server.base_url.replace("/v1", "/api/v1")
        summary, journal = run_once(path, base, poll=FAST_POLLS)
        journal.close()
    warned = [entry for entry in logs if entry["event"] == "api.unknown_status"]
    assert len(warned) == 1 and warned[0]["status"] == "HIBERNATING"


def test_read_listed_chooses_by_model_time_and_any_prompt_shown() -> None:
    provider = DashScopeProvider()

    def listed(*items: dict[str, Any], total: int | None = None) -> WireAnswer:
        body = {"request_id": "r", "data": list(items), "total": total or len(items)}
        return WireAnswer(200, {}, json.dumps(body).encode())

    older = {"task_id": "t-old", "model_name": "wan2.2-t2v-plus", "gmt_create": 1_000_000}
    mine = {"task_id": "t-new", "model_name": "wan2.2-t2v-plus", "gmt_create": 2_000_000}
    other = {"task_id": "t-x", "model_name": "wanx2.1-t2v-plus", "gmt_create": 2_000_000}
    found = provider.read_listed(listed(older, mine, other), job(), 1900.0, TEXT)
    assert [created.view.task_id for created in found] == ["t-new"]
    assert provider.read_listed(listed(older), job(), 1900.0, TEXT) == []
    two = provider.read_listed(listed(mine, {**mine, "task_id": "t-2"}), job(), 1900.0, TEXT)
    assert len(two) == 2
    with pytest.raises(AnswerUnknownError):
        provider.read_listed(listed(mine, total=500), job(), 1900.0, TEXT)
    prompted = {**mine, "orig_prompt": "another prompt"}
    assert provider.read_listed(listed(prompted), job(), 1900.0, TEXT) == []
