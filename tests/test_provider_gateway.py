"""The gateway provider: an OpenAI-style video API described in the manifest.

End to end against the simulator's ``gateway`` dialect over real loopback sockets (a campaign
rendered by ``run --simulate`` and by the Runner, every error class, an unknown status word,
a description pointing at the wrong place in the JSON, a kill at each step of a job's life),
the manifest's checks of ``api.gateway`` (each problem names the file, the line and the key)
and the wire details on bytes.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
import yaml
from test_resume import CRASH_POINTS, assert_whole_and_paid_once, finish, start_runner
from test_submit import FAST_POLLS
from test_submit import run_once as run_in_process

from wanbatch import cli
from wanbatch.client import ProviderApi
from wanbatch.errors import (
    AnswerUnknownError,
    AuthError,
    CreditsExhaustedError,
    JobRejectedError,
    ManifestError,
    RateLimitedError,
    TaskNotFoundError,
    TransientApiError,
    UsageError,
)
from wanbatch.journal import Journal
from wanbatch.manifest import load_manifest
from wanbatch.models import GatewayDescription, JobSpec, JobState, Manifest, TaskStatus, TaskView
from wanbatch.providers import provider_for
from wanbatch.providers.base import Answer, ServerText
from wanbatch.providers.gateway import GatewayProvider, as_manifest
from wanbatch.scheduler import RunSummary
from wanbatch.simulator import SimulatorServer

from test_runner import stats, write_manifest

REPO = Path(__file__).resolve().parent.parent
MakeSim = Callable[..., SimulatorServer]


def write(folder: Path, gateway: str = "", jobs: str = "", *, deadline: float = 30) -> Path:
    """A gateway manifest: ``gateway`` is the ``api.gateway`` block (indented YAML lines)."""
    jobs = jobs or (
        "  - {id: wide, prompt: a drone shot over a misty forest}\n"
        "  - {id: tall, prompt: ocean waves at golden hour, aspect_ratio: '9:16', duration: 8}\n"
        "  - id: frame\n"
        "    prompt: a white sneaker turning slowly\n"
        "    image: https://example.com/sneaker.png\n"
        "    aspect_ratio: '1:1'\n"
        "    extra: {seed: 42}\n"
    )
    text = (
        "name: gw\n"
        "api:\n"
        "  provider: gateway\n"
        "  base_url: https://gateway.example/v1\n"
        + ("  gateway:\n" + gateway if gateway else "")
        + "limits: {concurrency: 4, requests_per_second: 500, downloads: 2,"
        f" job_deadline_seconds: {deadline}}}\n"
        "output: {dir: out}\n"
        "jobs:\n" + jobs
    )
    path = folder / "gw.yaml"
    path.write_text(text)
    return path


def run(manifest: Manifest, sim: SimulatorServer, **options: Any) -> tuple[RunSummary, Journal]:
    """One in-process run of ``manifest`` against ``sim`` through the manifest's adapter."""
    options.setdefault("poll", FAST_POLLS)
    return run_in_process(manifest.path, sim.base_url, key=sim.api_key, **options)


def job(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {
        "id": "j",
        "prompt": "a prompt",
        "model": "wan-2-2",
        "duration": 8,
        "aspect_ratio": "16:9",
    }
    return JobSpec(**{**base, **fields})


async def call(sim: SimulatorServer, provider: GatewayProvider, work: Any, key: str = "") -> Any:
    async with ProviderApi(sim.base_url, key or sim.api_key, provider=provider) as api:
        return await work(api)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [str(problem) for problem in caught.value.problems]


# --- a campaign renders -------------------------------------------------------------------


def test_run_simulate_renders_a_gateway_campaign(tmp_path: Path) -> None:
    path = write(tmp_path)
    assert cli.main(["run", str(path), "--simulate", "-q"]) == 0
    videos = sorted(p.name for p in (tmp_path / "out").glob("*.mp4"))
    assert videos == ["frame.mp4", "tall.mp4", "wide.mp4"]


def test_the_runner_renders_through_a_described_gateway(
    make_sim: MakeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A description spelled out in full (with a model map, an env header and an idempotency
    key) renders every job, each created once, with the body the dialect checks."""
    monkeypatch.setenv("GATEWAY_ORG", "org-7")
    sim = make_sim(provider="gateway", models=("wan-2-2", "wan2.1-t2v"))
    gateway = (
        "    create: POST videos\n"
        "    get: GET videos/{id}\n"
        "    id: id\n"
        "    status: status\n"
        "    video_url: outputs.video_url\n"
        "    statuses: {succeeded: [completed], failed: [failed], pending: [queued],"
        " running: [in_progress]}\n"
        "    models: {wan-2-1: wan2.1-t2v}\n"
        "    headers: {OpenAI-Organization: '${GATEWAY_ORG}'}\n"
        "    idempotency_keys: true\n"
    )
    jobs = (
        "  - {id: a, prompt: one}\n"
        "  - {id: b, prompt: two, model: wan-2-1, aspect_ratio: '9:16'}\n"
        "  - {id: c, prompt: three, duration: 12}\n"
    )
    manifest = load_manifest(write(tmp_path, gateway, jobs))
    summary, journal = run(manifest, sim)
    assert summary.failed == {} and summary.left == {}
    assert all(journal.record(j).state is JobState.DOWNLOADED for j in ("a", "b", "c"))
    journal.close()
    stats = sim.state.stats()
    assert stats["creates_accepted"] == 3 and stats["tasks_created"] == 3
    bodies = {task.body["prompt"]: task.body for task in sim.state.tasks.values()}
    assert bodies["two"] == {
        "model": "wan2.1-t2v",
        "prompt": "two",
        "seconds": "5",
        "size": "720x1280",
    }
    assert bodies["three"]["seconds"] == "12"


# --- every error class --------------------------------------------------------------------


def test_every_error_class_over_the_wire(make_sim: MakeSim) -> None:
    provider = GatewayProvider(GatewayDescription())
    ok = make_sim(provider="gateway")

    async def create(api: ProviderApi) -> Any:
        return await api.create(job(), "k1")

    with pytest.raises(AuthError) as auth:
        anyio.run(call, ok, provider, create, "sk-wrong")
    assert auth.value.status == 401 and auth.value.code == "invalid_api_key"

    with pytest.raises(JobRejectedError) as rejected:
        anyio.run(call, ok, provider, lambda api: api.create(job(model="wan-9"), "k2"))
    assert rejected.value.status == 400 and "'model'" in str(rejected.value)

    with pytest.raises(TaskNotFoundError):
        anyio.run(call, ok, provider, lambda api: api.get("video_nope"))

    broke = make_sim(provider="gateway", credits=0)
    with pytest.raises(CreditsExhaustedError) as spent:
        anyio.run(call, broke, provider, create)
    assert spent.value.status == 429 and spent.value.code == "insufficient_quota"

    down = make_sim(provider="gateway", error_rate=1.0)
    with pytest.raises(TransientApiError) as server:
        anyio.run(call, down, provider, create)
    assert server.value.status in (500, 503) and not isinstance(server.value, RateLimitedError)

    limited = make_sim(provider="gateway", rate_limit_rps=0.5, rate_limit_burst=1)
    anyio.run(call, limited, provider, create)
    with pytest.raises(RateLimitedError) as slow:
        anyio.run(call, limited, provider, create)
    assert slow.value.status == 429 and slow.value.retry_after_seconds is not None


def test_failed_and_filtered_renders_carry_the_servers_reason(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    sim = make_sim(provider="gateway", failure_rate=1.0, flagged_words=("celebrity",))
    jobs = "  - {id: plain, prompt: a forest}\n  - {id: famous, prompt: a celebrity waving}\n"
    summary, journal = run(load_manifest(write(tmp_path, jobs=jobs)), sim)
    record = journal.record("famous")
    journal.close()
    assert "content filter" in summary.failed["famous"] and record.code == "content_filtered"
    assert summary.failed["plain"].startswith("generation failed")


# --- status words -------------------------------------------------------------------------


def test_an_unknown_status_word_surfaces_by_name(make_sim: MakeSim, tmp_path: Path) -> None:
    """A map without the dialect's ``in_progress``: the word is warned about by name and kept
    in the journal while the task renders, never silently taken as running."""
    sim = make_sim(provider="gateway", generation_seconds=60)  # rendering from the start
    gateway = "    statuses: {succeeded: [completed], failed: [failed], pending: [queued]}\n"
    manifest = load_manifest(write(tmp_path, gateway, "  - {id: a, prompt: one}\n"))
    provider = provider_for(manifest.api)
    created = anyio.run(call, sim, provider, lambda api: api.create(manifest.jobs[0], "k"))
    view = anyio.run(call, sim, provider, lambda api: api.get(created.view.task_id))
    assert view.unrecognised_status and view.raw_status == "in_progress"
    assert view.status is TaskStatus.RUNNING
    with structlog.testing.capture_logs() as logs:
        summary, journal = run(manifest, make_sim(provider="gateway", generation_seconds=1))
        journal.close()
    warned = [entry for entry in logs if entry["event"] == "api.unknown_status"]
    assert [entry["status"] for entry in warned] == ["in_progress"]
    assert summary.failed == {}


def test_status_words_match_whatever_their_case() -> None:
    provider = GatewayProvider(GatewayDescription())
    body = {"id": "v1", "status": "In-Progress"}
    view = provider.read_polled(Answer(200, {}, json.dumps(body).encode()), "v1", ServerText(None))
    assert isinstance(view, TaskView) and view.status is TaskStatus.RUNNING
    assert not view.unrecognised_status


# --- a description pointing at the wrong place ----------------------------------------------


def test_a_wrong_id_path_leaves_the_job_with_a_clear_message(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    sim = make_sim(provider="gateway")
    manifest = load_manifest(write(tmp_path, "    id: data.id\n", "  - {id: a, prompt: one}\n"))
    summary, journal = run(manifest, sim)
    journal.close()
    assert "no task id at 'data.id' (api.gateway.id)" in summary.left["a"]
    assert "object" in summary.left["a"]  # the answer's own keys, to find the right path
    assert sim.state.stats()["creates_total"] == 1  # not resent blindly


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        ("    status: state\n", "no status word at 'state' (api.gateway.status)"),
        ("    video_url: output.video_url\n", "no video URL at 'output.video_url'"),
    ],
)
def test_a_wrong_poll_path_is_named_not_a_crash(
    make_sim: MakeSim, tmp_path: Path, gateway: str, expected: str
) -> None:
    sim = make_sim(provider="gateway")
    manifest = load_manifest(write(tmp_path, gateway, "  - {id: a, prompt: one}\n"))
    summary, journal = run(manifest, sim)
    journal.close()
    assert expected in summary.left["a"] and "polling failed" in summary.left["a"]
    assert sim.state.stats()["creates_total"] == 1


# --- the manifest's checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "key", "needle"),
    [
        ("    create: POST /videos\n", "api.gateway.create", "relative to api.base_url"),
        ("    create: DELETE videos\n", "api.gateway.create", "POST or PUT"),
        ("    get: videos/status\n", "api.gateway.get", "must hold {id} once"),
        ("    get: videos/{task}\n", "api.gateway.get", "only placeholder"),
        ("    id: data..id\n", "api.gateway.id", "dotted path"),
        ("    video_url: null\n", "api.gateway.video_url", "dotted path"),
        ("    statuses: {done: [completed]}\n", "api.gateway.statuses.done", "unknown class"),
        (
            "    statuses: {succeeded: [done], failed: [done]}\n",
            "api.gateway.statuses.failed",
            "also listed under succeeded",
        ),
        ("    statuses: {pending: [queued]}\n", "api.gateway.statuses", "succeeded words"),
        ("    body: {seconds: '{duraton}'}\n", "api.gateway.body.seconds", "'duration'"),
        ("    body: {input: '{prompt}', input.x: 1}\n", "api.gateway.body.input", "at once"),
        ("    sizes: {'16:9': big}\n", "api.gateway.sizes.16:9", "WIDTHxHEIGHT"),
        ("    models: {wan-9: x}\n", "api.gateway.models.wan-9", "unknown model"),
        ("    headers: {X-Key: Bearer sk-123}\n", "api.gateway.headers.X-Key", "environment"),
        ("    headers: {Authorization: '${K}'}\n", "api.gateway.headers.Authorization", "set by"),
        ("    headers: {X-Org: '${1X}'}\n", "api.gateway.headers.X-Org", "environment variable"),
        ("    auth_scheme: Bearer token\n", "api.gateway.auth_scheme", "one word"),
        ("    idempotency_keys: yes please\n", "api.gateway.idempotency_keys", "true or false"),
        ("    statusses: {}\n", "api.gateway.statusses", "did you mean 'statuses'"),
    ],
)
def test_a_bad_description_names_file_line_and_key(
    tmp_path: Path, block: str, key: str, needle: str
) -> None:
    path = write(tmp_path, block)
    found = problems_of(path)
    assert any(f"{path}:6: {key}:" in p and needle in p for p in found), found


def test_a_gateway_section_needs_the_gateway_provider(tmp_path: Path) -> None:
    path = write(tmp_path, "    id: data.id\n")
    path.write_text(path.read_text().replace("provider: gateway", "provider: wanapi"))
    assert any(":5: api.gateway:" in p and "not 'gateway'" in p for p in problems_of(path))


def test_what_the_gateway_cannot_take_is_refused_at_validate_time(tmp_path: Path) -> None:
    jobs = (
        "  - {id: cinema, prompt: one, aspect_ratio: '21:9'}\n"
        "  - {id: frame, prompt: two, image: 'https://example.com/a.png'}\n"
    )
    path = write(
        tmp_path, "    body: {model: '{model}', prompt: '{prompt}', size: '{size}'}\n", jobs
    )
    found = problems_of(path)
    assert any("jobs[0]" in p and "21:9 has no size" in p for p in found), found
    assert any("jobs[1]" in p and "no {image} entry" in p for p in found), found


def test_the_gateway_has_no_default_address(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("  base_url: https://gateway.example/v1\n", ""))
    assert cli.main(["run", str(path), "-q"]) == 2
    assert "no default address: set api.base_url" in capsys.readouterr().err


# --- the wire, on bytes -------------------------------------------------------------------


def test_the_body_follows_the_template() -> None:
    description = GatewayDescription(
        body={
            "model": "{model}",
            "input.prompt": "{prompt}",
            "input.first_frame": "{image}",
            "parameters.duration": "{duration}",
            "parameters.label": "{duration}s at {width}x{height}",
            "parameters.resolution": "720p",
            "parameters.audio": False,
        },
        models={"wan-2-2": "wan2.2-t2v-plus"},
        webhook="callback.url",
    )
    provider = GatewayProvider(description)
    sent = provider.create_call(job(extra={"seed": 7}), "idem-1", "https://me.example/hook")
    assert sent.method == "POST" and sent.url == "videos" and dict(sent.headers) == {}
    assert sent.json == {
        "model": "wan2.2-t2v-plus",
        "input": {"prompt": "a prompt"},
        "parameters": {
            "duration": 8,
            "label": "8s at 1280x720",
            "resolution": "720p",
            "audio": False,
        },
        "seed": 7,
        "callback": {"url": "https://me.example/hook"},
    }
    with_frame = provider.create_call(job(image="https://example.com/a.png"), "k", None)
    assert with_frame.json["input"]["first_frame"] == "https://example.com/a.png"
    assert provider.capabilities.webhooks and not provider.capabilities.idempotency_keys


def test_the_default_body_is_openais_and_keys_are_sent_only_when_honoured() -> None:
    default = GatewayProvider(GatewayDescription())
    sent = default.create_call(job(aspect_ratio="9:16"), "idem-1", "https://me.example/hook")
    assert sent.json == {
        "model": "wan-2-2",
        "prompt": "a prompt",
        "seconds": "8",
        "size": "720x1280",
    }
    assert "Idempotency-Key" not in sent.headers  # and no webhook field: none is described
    keyed = GatewayProvider(GatewayDescription(idempotency_keys=True))
    assert keyed.create_call(job(), "idem-1", None).headers == {"Idempotency-Key": "idem-1"}
    assert keyed.capabilities.idempotency_keys


def test_poll_paths_take_the_id_in_the_path_or_the_query() -> None:
    in_path = GatewayProvider(GatewayDescription(get_path="jobs/{id}/status"))
    assert in_path.poll_call("v/1", None).url == "jobs/v%2F1/status"
    in_query = GatewayProvider(
        GatewayDescription(get_method="POST", get_path="queue/status?request_id={id}&x=1")
    )
    polled = in_query.poll_call("r-1", None)
    assert (polled.method, polled.url, dict(polled.params)) == (
        "POST",
        "queue/status",
        {"request_id": "r-1", "x": "1"},
    )


def test_headers_fill_in_the_environment_and_the_auth_form() -> None:
    described = GatewayDescription(
        headers={"X-Org": "org=${ORG}"}, auth_header="api-key", auth_scheme=""
    )
    headers = GatewayProvider(described, {"ORG": "acme"}).auth_headers("sk-1")
    assert headers == {"X-Org": "org=acme", "api-key": "sk-1"}
    assert GatewayProvider(GatewayDescription()).auth_headers("sk-1") == {
        "Authorization": "Bearer sk-1"
    }
    with pytest.raises(UsageError, match=r"\$\{ORG\}, which is not set"):
        GatewayProvider(described, {}).auth_headers("sk-1")


def test_reads_follow_the_described_paths() -> None:
    description = GatewayDescription(
        id="data.id",
        status="data.state",
        video_url="data.urls.0",
        error_message="data.error",
        error_code=None,
    )
    provider = GatewayProvider(description)
    text = ServerText("sk-secret")
    answer = {"data": {"id": 42, "state": "completed", "urls": ["https://cdn.example/v.mp4"]}}
    created = provider.read_created(Answer(202, {}, json.dumps(answer).encode()), text)
    assert created.view.task_id == "42" and created.view.status is TaskStatus.SUCCEEDED
    assert created.view.video_url == "https://cdn.example/v.mp4"
    failed = {"data": {"id": "x", "state": "failed", "error": "bad sk-secret"}}
    view = provider.read_polled(Answer(200, {}, json.dumps(failed).encode()), "x", text)
    assert isinstance(view, TaskView) and view.status is TaskStatus.FAILED
    assert view.error_message == "bad [key]"
    with pytest.raises(AnswerUnknownError, match="no task id at 'data.id'"):
        provider.read_created(Answer(200, {}, b'{"id": "v"}'), text)
    notice = provider.read_notice({"webhook-id": "d1"}, json.dumps(answer).encode())
    assert notice is None  # 42 is a number: a notice names its task as text
    notice = provider.read_notice({"webhook-id": "d1"}, b'{"data": {"id": "v1"}}')
    assert notice is not None and (notice.task_id, notice.delivery_id) == ("v1", "d1")


def test_an_error_answer_reads_its_message_code_and_quota() -> None:
    provider = GatewayProvider(GatewayDescription())
    text = ServerText(None)
    quota = (
        b'{"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}'
    )
    assert isinstance(provider.error(Answer(429, {}, quota), "create", text), CreditsExhaustedError)
    bare = provider.error(Answer(400, {}, b'{"error": "prompt too long"}'), "create", text)
    assert isinstance(bare, JobRejectedError) and "prompt too long" in str(bare)
    html = provider.error(Answer(502, {}, b"<html>bad gateway</html>"), "poll", text)
    assert isinstance(html, TransientApiError) and "bad gateway" in str(html)


def test_retry_yaml_keeps_the_provider_and_its_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The failed jobs' retry.yaml names the gateway and its description, so `wanbatch retry`
    goes to the same API in the same form (and the journal accepts it)."""
    gateway = (
        "    id: id\n"
        "    statuses: {succeeded: [completed], failed: [failed], pending: [queued],"
        " running: [in_progress]}\n"
        "    body: {model: '{model}', prompt: '{prompt}', seconds: '{seconds}', size: '{size}'}\n"
        "    headers: {X-Org: '${GATEWAY_ORG}'}\n"
        "    webhook: hook.url\n"
    )
    jobs = "  - {id: famous, prompt: a celebrity waving}\n  - {id: plain, prompt: a forest}\n"
    path = write(tmp_path, gateway, jobs)
    original = load_manifest(path)
    assert cli.main(["run", str(path), "--simulate", "-q"]) == 2
    assert "${GATEWAY_ORG}, which is not set" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_ORG", "org-7")
    assert cli.main(["run", str(path), "--simulate", "-q"]) == 1  # the celebrity is filtered
    retry = load_manifest(tmp_path / "out" / "retry.yaml")
    assert [spec.id for spec in retry.jobs] == ["famous"]
    assert retry.api.provider == "gateway" and retry.api.gateway == original.api.gateway
    assert (
        cli.main(["retry", str(tmp_path / "out" / "retry.yaml"), "--simulate", "--yes", "-q"]) == 1
    )


def test_a_description_written_back_reads_the_same(tmp_path: Path) -> None:
    gateway = (
        "    create: PUT jobs?api-version=2\n"
        "    get: POST jobs/{id}/status\n"
        "    id: data.id\n"
        "    video_url: data.urls.0\n"
        "    error_code: null\n"
        "    sizes: {'16:9': 1920x1080}\n"
        "    models: {wan-2-2: wan2.2-t2v-plus}\n"
        "    auth_header: api-key\n"
        "    auth_scheme: ''\n"
        "    idempotency_keys: true\n"
    )
    described = load_manifest(write(tmp_path, gateway, "  - {id: a, prompt: one}\n")).api.gateway
    assert described is not None and described.create_path == "jobs?api-version=2"
    written = yaml.safe_dump({"gw": as_manifest(described)})
    block = "".join("  " + line + "\n" for line in written.splitlines()[1:])
    again = load_manifest(write(tmp_path, block, "  - {id: a, prompt: one}\n")).api.gateway
    assert again == described
    assert as_manifest(GatewayDescription()) == {}


# --- crashes: nothing paid twice ------------------------------------------------------------


def crash_manifest(folder: Path, keys: bool) -> Path:
    manifest = write_manifest(folder, jobs=4, concurrency=2, downloads=1, provider="gateway")
    gateway = "  gateway: {idempotency_keys: true}\n" if keys else ""
    manifest.write_text(manifest.read_text().replace("api:\n", "api:\n" + gateway))
    return manifest


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_then_resume_pays_once_where_keys_are_honoured(
    tmp_path: Path, make_sim: MakeSim, point: str
) -> None:
    """A gateway described as honouring Idempotency-Key: killed at each step of a job's
    life, the rerun finishes every job with no task paid twice."""
    sim = make_sim(provider="gateway", video_size=300_000)
    manifest = crash_manifest(tmp_path, keys=True)
    env = {"WANBATCH_TEST_CRASH_AT": f"{point}:2"}
    code, _, err = finish(start_runner(manifest, sim, env=env))
    assert code == -signal.SIGKILL, err
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    assert_whole_and_paid_once(manifest, sim, 4)


def test_a_crash_after_a_create_without_keys_is_not_resent(
    tmp_path: Path, make_sim: MakeSim
) -> None:
    sim = make_sim(provider="gateway")
    manifest = crash_manifest(tmp_path, keys=False)
    code, _, err = finish(
        start_runner(manifest, sim, env={"WANBATCH_TEST_CRASH_AT": "after_create:2"})
    )
    assert code == -signal.SIGKILL, err
    finish(start_runner(manifest, sim))
    assert stats(sim)["tasks_created"] <= 4


def test_a_described_header_echoed_back_is_redacted_like_the_key() -> None:
    """A header filled from the environment (an organisation token) is a credential too: a
    server echoing it into an error does not put it into messages, the journal or the summary
    (found in review: only the key was redacted)."""
    import anyio
    import httpx

    from wanbatch.client import ProviderApi

    description = dataclasses.replace(GatewayDescription(), headers={"X-Org-Token": "${ORG}"})
    provider = GatewayProvider(description, environ={"ORG": "org-SECRET-123"})

    def handler(request: httpx.Request) -> httpx.Response:
        echoed = f"token {request.headers['x-org-token']} is not valid"
        return httpx.Response(401, json={"error": {"message": echoed, "code": "bad_org"}})

    async def create() -> None:
        transport = httpx.MockTransport(handler)
        async with ProviderApi(
            "https://gw.example.com/v1", "sk-KEY-999", provider=provider, transport=transport
        ) as api:
            await api.create(JobSpec(id="j", prompt="p", model="wan-2-2", duration=5,
                                     aspect_ratio="16:9"), "k")  # fmt: skip

    with pytest.raises(AuthError) as caught:
        anyio.run(create)
    assert "org-SECRET-123" not in str(caught.value)
