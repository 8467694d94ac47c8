"""A create whose answer was lost, on an API without idempotency keys (DashScope's dialect,
over real sockets, behind a proxy that loses answers): it is settled by listing tasks and asking
each its prompt, never by a blind resend, so exactly one task is paid for; without a task list
it is never resent unless --resend-unknown."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import anyio.from_thread
import httpx
import pytest
import structlog
from anyio.abc import SocketStream
from test_provider_dashscope import accepted, manifest_file, run_once

from wanbatch.backoff import RetryPolicy
from wanbatch.models import JobState
from wanbatch.providers import PROVIDERS
from wanbatch.providers.base import Capabilities
from wanbatch.providers.dashscope import DashScopeProvider
from wanbatch.simulator import SimulatorServer

from hostile import http_response, json_response, read_request

# --- a proxy that loses answers --------------------------------------------------------------


@dataclass
class Dropper:
    """Forwards every request to ``target`` and sends the answer back, except the answers to
    the first ``drop`` creates: those are made on the server and the connection is then cut."""

    target: str
    drop: int = 1
    refuse: int = 0  # the first creates answered 503 without reaching the server
    edge_timeout: int = 0  # the first creates reach the server, then the edge answers 504
    port: int = 0
    dropped: int = 0
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            method, target, headers, body = await read_request(stream)
            self.seen.append((method, target))
            if method == "POST" and self.refuse > 0:
                self.refuse -= 1
                await stream.send(json_response(503, '{"code": "ServiceUnavailable"}'))
                return
            forward = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
            async with httpx.AsyncClient() as client:
                answer = await client.request(
                    method, self.target + target, headers=forward, content=body
                )
            if method == "POST" and self.edge_timeout > 0:
                self.edge_timeout -= 1
                await stream.send(json_response(504, '{"detail": "Gateway Timeout"}'))
                return  # the task is made; an edge proxy answered for the server
            if method == "POST" and self.dropped < self.drop:
                self.dropped += 1
                return  # the task is made; its answer is lost
            kept = {"Content-Type": answer.headers.get("content-type", "application/json")}
            await stream.send(http_response(answer.status_code, answer.content, kept))


@contextlib.contextmanager
def dropping(
    sim: SimulatorServer, drop: int = 1, refuse: int = 0, edge_timeout: int = 0
) -> Iterator[Dropper]:
    proxy = Dropper(sim.origin, drop, refuse, edge_timeout)
    with anyio.from_thread.start_blocking_portal() as portal:

        async def listen() -> anyio.abc.SocketListener:
            return await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

        listener = portal.call(listen)
        proxy.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        serving = portal.start_task_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            serving.cancel()
            portal.call(listener.aclose)


# --- the unknown-outcome policy -------------------------------------------------------------


def test_a_create_whose_answer_was_lost_is_found_by_listing_not_paid_twice(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """The server makes the task, the connection drops before its answer: the run lists the
    tasks, finds the one it made, and renders it. Before the policy, the create was resent and
    a second task was paid for."""
    sim = make_sim(provider="dashscope")
    with dropping(sim) as proxy, structlog.testing.capture_logs() as logs:
        summary, journal = run_once(manifest_file(tmp_path), proxy.base_url)
        record = journal.record("job-0")
        journal.close()
    assert accepted(sim) == 1
    assert record.state is JobState.DOWNLOADED
    assert ("GET", "/api/v1/tasks?") in [(m, t[: len("/api/v1/tasks?")]) for m, t in proxy.seen]
    assert summary.possible_duplicates == []
    assert any(entry["event"] == "job.found_by_listing" for entry in logs)


def test_a_lost_answer_found_in_the_next_run(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """Every answer to a create lost in the first run (retries used up): the next run lists
    before sending anything, adopts the task, and pays nothing more."""
    sim = make_sim(provider="dashscope")
    path = manifest_file(tmp_path)
    with dropping(sim, drop=1) as proxy:
        summary, journal = run_once(path, proxy.base_url, retry=RetryPolicy(max_attempts=1))
        record = journal.record("job-0")
        journal.close()
        assert record.state is JobState.SUBMITTING and accepted(sim) == 1
        summary, journal = run_once(path, proxy.base_url)
        record = journal.record("job-0")
        journal.close()
    assert record.state is JobState.DOWNLOADED and accepted(sim) == 1


def test_two_lost_creates_of_one_model_are_told_apart_by_their_prompts(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """Two jobs, both answers lost: the list shows two tasks of the model and names no
    prompt, so each task is asked the prompt it was made from: each job adopts its own."""
    sim = make_sim(provider="dashscope")
    jobs = ["  - {id: a, prompt: first prompt}", "  - {id: b, prompt: second prompt}"]
    path = manifest_file(tmp_path, jobs)
    with dropping(sim, drop=2) as proxy:
        summary, journal = run_once(path, proxy.base_url, retry=RetryPolicy(max_attempts=1))
        journal.close()
        summary, journal = run_once(path, proxy.base_url)
        records = [journal.record(name) for name in ("a", "b")]
        journal.close()
    assert accepted(sim) == 2
    assert {record.state for record in records} == {JobState.DOWNLOADED}
    assert records[0].task_id != records[1].task_id
    served = sim.stats()["creates_by_prompt"]
    assert served["first prompt"]["accepted"] == served["second prompt"]["accepted"] == 1


def test_two_lost_creates_of_one_prompt_are_not_guessed(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """One prompt at two aspect ratios, both answers lost: neither the list nor the tasks'
    prompts tell them apart, so neither is adopted and neither is resent; each says how to go
    on."""
    sim = make_sim(provider="dashscope")
    jobs = [
        '  - {id: a, prompt: same prompt, aspect_ratio: "16:9"}',
        '  - {id: b, prompt: same prompt, aspect_ratio: "9:16"}',
    ]
    path = manifest_file(tmp_path, jobs)
    with dropping(sim, drop=2) as proxy:
        summary, journal = run_once(path, proxy.base_url, retry=RetryPolicy(max_attempts=1))
        journal.close()
        summary, journal = run_once(path, proxy.base_url)
        states = {journal.record(name).state for name in ("a", "b")}
        journal.close()
    assert accepted(sim) == 2
    assert states == {JobState.SUBMITTING}
    assert all("--resend-unknown" in summary.left[name] for name in ("a", "b"))
    assert summary.exit_code != 0


class Unlisted(DashScopeProvider):
    """DashScope's wire format on an API that could not list tasks (as fal's or Replicate's
    may not): no key to dedupe by, no list to look in."""

    capabilities = Capabilities(
        idempotency_keys=False,
        webhooks=False,
        cancel=False,
        list_tasks=False,
        url_lifetime_seconds=None,
        task_lifetime_seconds=None,
    )


def test_without_a_task_list_a_lost_create_is_never_resent_unless_asked(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """No idempotency keys and no list: the create whose answer was lost is not sent again,
    in this run or the next; the summary says how to go on; --resend-unknown sends it (and
    reports the possible duplicate)."""
    sim = make_sim(provider="dashscope")
    path = manifest_file(tmp_path)
    unlisted = Unlisted()
    with dropping(sim) as proxy:
        for _ in range(2):
            summary, journal = run_once(path, proxy.base_url, provider=unlisted)
            record = journal.record("job-0")
            journal.close()
            assert record.state is JobState.SUBMITTING and accepted(sim) == 1
            assert "--resend-unknown" in summary.left["job-0"]
            assert "console" in summary.left["job-0"]
        assert not any(method == "GET" for method, _ in proxy.seen)
        summary, journal = run_once(path, proxy.base_url, provider=unlisted, force_resend=True)
        record = journal.record("job-0")
        journal.close()
    assert record.state is JobState.DOWNLOADED and accepted(sim) == 2
    assert summary.possible_duplicates == ["job-0"]


def test_the_resend_flag_is_documented_on_run_and_retry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from wanbatch import cli

    for command in ("run", "retry"):
        cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--resend-unknown" in text and "paid twice" in text


def test_a_503_on_create_is_listed_then_sent_once_more(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """A 5xx on a create may have made a task: the task list is read first; it shows none, so
    the create is sent again, and that is no possible duplicate."""
    sim = make_sim(provider="dashscope")
    with dropping(sim, drop=0, refuse=1) as proxy, structlog.testing.capture_logs() as logs:
        summary, journal = run_once(manifest_file(tmp_path), proxy.base_url)
        record = journal.record("job-0")
        journal.close()
    methods = [method for method, _ in proxy.seen]
    # create (503); the list (read again once its grace is over, when the first read came
    # before it); the create again
    second = methods.index("POST", 1)
    assert methods[0] == "POST" and set(methods[1:second]) == {"GET"} and second in (2, 3)
    assert record.state is JobState.DOWNLOADED and accepted(sim) == 1
    assert summary.possible_duplicates == []
    assert any(entry["event"] == "job.not_listed" for entry in logs)


def test_a_task_another_job_holds_is_not_taken_for_the_lost_one(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """Two jobs of one model, one at a time; the first create's answer is lost and the run
    gives up on it, the second renders. The next run lists two tasks: the one the second job
    holds is ruled out, the other is the first job's, adopted: two tasks for two jobs."""
    sim = make_sim(provider="dashscope")
    jobs = ["  - {id: a, prompt: first prompt}", "  - {id: b, prompt: second prompt}"]
    path = manifest_file(tmp_path, jobs, concurrency=1)
    with dropping(sim, drop=1) as proxy:
        summary, journal = run_once(path, proxy.base_url, retry=RetryPolicy(max_attempts=1))
        states = {name: journal.record(name).state for name in ("a", "b")}
        journal.close()
        assert sorted(states.values()) == [JobState.DOWNLOADED, JobState.SUBMITTING]
        summary, journal = run_once(path, proxy.base_url)
        tasks = {journal.record(name).task_id for name in ("a", "b")}
        states = {name: journal.record(name).state for name in ("a", "b")}
        journal.close()
    assert set(states.values()) == {JobState.DOWNLOADED}
    assert len(tasks) == 2 and accepted(sim) == 2


def test_a_task_made_elsewhere_on_the_account_is_not_adopted(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """Someone else on the key makes a task of the model while the job's create meets a 503:
    the list shows that task, its prompt is not the job's, so the create is sent again and
    the job renders its own."""
    sim = make_sim(provider="dashscope")
    url = sim.base_url + "/services/aigc/video-generation/video-synthesis"
    headers = {"Authorization": f"Bearer {sim.api_key}", "X-DashScope-Async": "enable"}
    body = {"model": "wan2.2-t2v-plus", "input": {"prompt": "someone else's video"}}
    foreign = httpx.post(url, json=body, headers=headers).json()["output"]["task_id"]
    with dropping(sim, drop=0, refuse=1) as proxy:
        summary, journal = run_once(manifest_file(tmp_path), proxy.base_url)
        record = journal.record("job-0")
        journal.close()
    assert record.state is JobState.DOWNLOADED and record.task_id != foreign
    assert accepted(sim) == 2 and summary.possible_duplicates == []


def test_a_504_from_an_edge_after_the_create_is_not_taken_as_refused(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """fal (no keys, no list) takes a 500/503 answer as a refusal, but a 502/504 comes from a
    proxy in front of the API, which may have made the task: that create is left "answer
    unknown", not sent again (found in review: two tasks paid, no duplicate reported)."""
    sim = make_sim(provider="fal")
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: t\napi: {provider: fal}\n"
        "limits: {concurrency: 2, requests_per_second: 500, downloads: 2}\n"
        'output: {dir: out}\njobs:\n  - {id: job-0, prompt: a red fox in snow, aspect_ratio: "16:9"}\n'
    )
    with dropping(sim, drop=0, edge_timeout=1) as proxy:
        summary, journal = run_once(
            path, f"http://127.0.0.1:{proxy.port}", provider=PROVIDERS["fal"]
        )
        journal.close()
    assert accepted(sim) == 1
    assert "--resend-unknown" in summary.left["job-0"]


@dataclass
class LateMaker(Dropper):
    """Cuts the first create's connection at once and makes its task on the server only
    ``late`` seconds later, as an API still working on a create whose answer was lost."""

    late: float = 1.0

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            method, target, headers, body = await read_request(stream)
            forward = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
            cut = method == "POST" and self.dropped < self.drop
            if cut:
                self.dropped += 1
                await stream.aclose()  # the answer is lost now, the task not yet made
                await anyio.sleep(self.late)
            async with httpx.AsyncClient() as client:
                answer = await client.request(
                    method, self.target + target, headers=forward, content=body
                )
            if not cut:
                kept = {"Content-Type": answer.headers.get("content-type", "application/json")}
                await stream.send(http_response(answer.status_code, answer.content, kept))


def test_a_task_listed_late_is_waited_for_not_paid_twice(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """The create's connection is cut while the API is still making the task (it appears a
    second later): the list read at once shows nothing, so wanbatch waits the list's grace
    (`limits.list_grace_seconds`) and looks again before believing "not listed" (found in
    review: it resent at once and paid twice, reporting no duplicate)."""
    sim = make_sim(provider="dashscope")
    path = manifest_file(tmp_path, grace=3.0)
    proxy = LateMaker(sim.origin, drop=1, late=1.0)
    with anyio.from_thread.start_blocking_portal() as portal:

        async def listen() -> anyio.abc.SocketListener:
            return await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

        listener = portal.call(listen)
        proxy.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        serving = portal.start_task_soon(listener.serve, proxy.handle)
        try:
            summary, journal = run_once(path, proxy.base_url)
            journal.close()
        finally:
            serving.cancel()
            portal.call(listener.aclose)
    assert accepted(sim) == 1
    assert summary.downloaded == ["job-0"]
