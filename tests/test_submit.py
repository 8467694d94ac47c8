"""The submit and download stages over real sockets (a rude loopback server, or a port nobody
holds): a create refused for certain leaves no "may be paid twice" behind, the cost guard says
what stopped it, and a failing URL refresh is retried."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from wanbatch.backoff import PollPolicy, RetryPolicy
from wanbatch.client import ProviderApi, VideoFetcher
from wanbatch.costguard import CostGuard
from wanbatch.journal import Journal
from wanbatch.manifest import load_manifest
from wanbatch.models import JobState
from wanbatch.providers import provider_for
from wanbatch.providers.base import Provider
from wanbatch.scheduler import Runner, RunOptions, RunSummary
from wanbatch.stops import StopReason

from hostile import Answer, http_response, json_response, serve

FAST_RETRY = RetryPolicy(
    max_attempts=3, max_attempts_told_when=5, base_seconds=0.001, cap_seconds=0.01
)
FAST_POLLS = PollPolicy(initial_seconds=0.01, factor=1.0, cap_seconds=0.01, jitter=0.0)


SLOW_DOWN = '{"error": {"message": "slow down"}}'


def manifest_file(
    folder: Path, jobs: int = 1, *, rps: float = 500, deadline: float | None = None
) -> Path:
    """``jobs`` small jobs, two at a time (the tests of submit, answers and outages use it)."""
    limits = f"concurrency: 2, requests_per_second: {rps}, downloads: 1"
    if deadline is not None:
        limits += f", job_deadline_seconds: {deadline}"
    lines = ["name: t", f"limits: {{{limits}}}", "output: {dir: out}", "jobs:"]
    lines += [f"  - {{id: job-{n}, prompt: a test prompt number {n}}}" for n in range(jobs)]
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_once(
    path: Path,
    base_url: str,
    drive: Callable[[Runner], Awaitable[object]] | None = None,
    *,
    key: str = "sk-wan-test",
    provider: Provider | None = None,
    **options: Any,
) -> tuple[RunSummary, Journal]:
    """One in-process run of the manifest at ``path`` against ``base_url`` through
    ``provider`` (the manifest's when None), with fast retries unless ``options`` say
    otherwise; the journal reopened after it. ``drive`` runs it instead of a plain
    ``runner.run()``, for tests that act while it runs."""
    manifest = load_manifest(path)
    adapter = provider or provider_for(manifest.api)
    options.setdefault("retry", FAST_RETRY)
    where = {"base_url": base_url, "manifest": str(path), "provider": adapter.name}

    async def go() -> RunSummary:
        journal = Journal.open(manifest.output_dir, **where)
        try:
            async with (
                ProviderApi(base_url, key, provider=adapter) as api,
                VideoFetcher() as videos,
            ):
                runner = Runner(manifest, journal, api, videos, options=RunOptions(**options))
                await (drive or Runner.run)(runner)
                return runner.summary
        finally:
            journal.close()

    summary = anyio.run(go)
    return summary, Journal.open(manifest.output_dir, **where)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # bound, then closed: connections are refused


def assert_certainly_not_created(journal: Journal) -> None:
    record = journal.record("job-0")
    journal.close()
    assert record.state is JobState.PLANNED
    assert record.intents == 0


def test_a_rejected_key_leaves_the_job_not_created(tmp_path: Path) -> None:
    """401 to a create: the run stops with exit 3 and the journal says no task exists."""

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        return Answer(json_response(401, '{"error": {"message": "bad key"}}'))

    with serve(script) as server:
        summary, journal = run_once(manifest_file(tmp_path), server.base_url)
    assert summary.exit_code == 3
    assert summary.stop_reason is StopReason.AUTH
    assert summary.possible_duplicates == []
    assert_certainly_not_created(journal)


def test_429s_only_leave_the_job_not_created_and_the_rerun_warns_of_nothing(
    tmp_path: Path,
) -> None:
    """Every create answered 429: the run gives up on it and journals that no task exists; a
    later run creates it with no "may be paid twice" warning."""
    accepting = [False]

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if not accepting[0]:
            return Answer(json_response(429, SLOW_DOWN, {"Retry-After": "0"}))
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return Answer(json_response(200, '{"id": "gen_1", "status": "failed"}'))

    path = manifest_file(tmp_path)
    with serve(script) as server:
        summary, journal = run_once(path, server.base_url)
        assert "create refused" in summary.left["job-0"]
        assert_certainly_not_created(journal)
        assert len(server.requests) == FAST_RETRY.max_attempts_told_when
        accepting[0] = True
        summary, journal = run_once(path, server.base_url)
        journal.close()
    assert summary.possible_duplicates == []
    assert summary.failed == {"job-0": "generation failed"}


def test_a_refused_connection_leaves_the_job_not_created(tmp_path: Path) -> None:
    """Nobody listens: the create fails to connect, so no task can exist; nothing ever
    answered at that URL, so the run stops at once as misconfigured (exit 2)."""
    summary, journal = run_once(manifest_file(tmp_path), closed_port_url())
    assert "create refused once" in summary.left["job-0"]
    assert summary.possible_duplicates == []
    assert summary.exit_code == 2
    assert_certainly_not_created(journal)


def test_a_lost_answer_is_still_a_possible_duplicate(tmp_path: Path) -> None:
    """A create whose connection drops after sending may have made a task: it stays unknown,
    and the next run resends it with the same key and reports it."""

    def hang_up(method: str, path: str, headers: dict[str, str]) -> Answer:
        return Answer(b"")  # the connection closes with no answer

    path = manifest_file(tmp_path)
    with serve(hang_up) as server:
        summary, journal = run_once(path, server.base_url)
        record = journal.record("job-0")
        journal.close()
        assert record.state is JobState.SUBMITTING
        assert "not confirmed" in summary.left["job-0"]
        summary, journal = run_once(path, server.base_url)
        journal.close()
    assert summary.possible_duplicates == ["job-0"]


def test_a_job_retrying_within_the_cap_is_not_dropped_when_the_cap_is_reached(
    tmp_path: Path,
) -> None:
    """--max-videos 1, two jobs: the first create meets a 503 and retries while the second
    finds the cap reached. The first still gets its task; nothing says credits ran out."""
    posts = [0]

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            posts[0] += 1
            if posts[0] == 1:
                return Answer(json_response(503, '{"error": {"message": "busy"}}'))
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return Answer(json_response(200, '{"id": "gen_1", "status": "failed"}'))

    with serve(script) as server:
        summary, journal = run_once(manifest_file(tmp_path, jobs=2), server.base_url, max_videos=1)
        journal.close()
    assert summary.videos_submitted == 1
    assert summary.cap_message == "--max-videos 1 reached"
    assert "credits" not in " ".join(summary.left.values())
    assert summary.stop_reason is None


def test_the_cost_guard_keeps_a_reservation_and_names_the_cap() -> None:
    """Reservations count together; a job that holds one keeps it; the message names the cap."""
    guard = CostGuard(max_videos=2)
    assert guard.reserve("a", 1.0) is None
    assert guard.reserve("b", 1.0) is None
    cap = guard.reserve("c", 1.0)
    assert cap is not None and "--max-videos 2" in cap.message
    assert "credits" not in cap.message
    assert guard.reserve("a", 1.0) is None  # a resend of a reserved create is not refused
    guard.commit("a")
    guard.release("b")
    assert guard.reserve("c", 1.0) is None and guard.videos == 1


def test_a_credit_cap_names_the_estimate() -> None:
    guard = CostGuard(max_credits=10.0, priced=True)
    assert guard.reserve("a", 6.0) is None
    cap = guard.reserve("b", 6.0)
    assert cap is not None and "--max-credits 10" in cap.message and "12" in cap.message


def test_one_exit_code_table_serves_the_summary_the_help_and_the_readme() -> None:
    """Every exit code's meaning comes from `stops.EXIT_CODES`: --help and README agree."""
    from wanbatch.commands import EPILOG
    from wanbatch.stops import EXIT_CODES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in readme
        assert f"{code} {meaning}" in EPILOG


def test_a_create_granted_before_a_429_came_back_waits_for_the_gate(tmp_path: Path) -> None:
    """The token is granted, the intent is fsynced, and meanwhile a Retry-After closes the
    host: the create goes out only after the window."""
    import time

    arrived: list[float] = []

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        arrived.append(time.monotonic())
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return Answer(json_response(200, '{"id": "gen_1", "status": "failed"}'))

    gates: list[Any] = []

    def close_gate(point: str, job_id: str) -> None:
        if point == "after_intent":
            gates[0].block_for(0.2, time.monotonic())  # an earlier request's 429 arrives now

    async def drive(runner: Runner) -> None:
        gates.append(runner.admission.gate)
        await runner.run()

    with serve(script) as server:
        _, journal = run_once(manifest_file(tmp_path), server.base_url, drive, faults=close_gate)
        journal.close()
    assert arrived and arrived[0] >= gates[0].not_before


def test_a_refresh_that_keeps_failing_goes_back_to_the_download_retries(tmp_path: Path) -> None:
    """The video URL has expired and the API answers 503 to more refreshes than one refresh
    may try: the download's own retries ask again later, and the video still arrives."""
    body = b"\x00\x00\x00\x18ftypmp42" + b"v" * 64
    task_gets = [0]

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        if path == "/cdn/expired.mp4":
            return Answer(json_response(404, '{"error": {"message": "expired"}}'))
        if path == "/cdn/fresh.mp4":
            return Answer(http_response(200, body, {"Content-Type": "video/mp4"}))
        task_gets[0] += 1
        if 2 <= task_gets[0] <= 8:  # after the poll, seven refreshes in a row meet a 503
            return Answer(json_response(503, '{"error": {"message": "busy"}}'))
        name = "expired" if task_gets[0] == 1 else "fresh"
        url = f"http://127.0.0.1:{server.port}/cdn/{name}.mp4"
        return Answer(
            json_response(200, f'{{"id": "gen_1", "status": "succeeded", "video_url": "{url}"}}')
        )

    with serve(script) as server:
        summary, journal = run_once(
            manifest_file(tmp_path),
            server.base_url,
            download_retry=RetryPolicy(max_attempts=6, base_seconds=0.001, cap_seconds=0.01),
        )
        journal.close()
    assert summary.downloaded == ["job-0"], summary.left
    assert (tmp_path / "out" / "job-0.mp4").read_bytes() == body


def test_a_stop_while_a_create_waits_for_the_gate_leaves_it_not_created(tmp_path: Path) -> None:
    """The intent is written, a Retry-After closes the host, and the run is stopped while the
    create waits: nothing was sent, so the journal says so (no "may be paid twice" later)."""
    import time

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))

    runners: list[Runner] = []
    closed: list[anyio.Event] = []

    def close_gate(point: str, job_id: str) -> None:
        if point == "after_intent":
            runners[0].admission.gate.block_for(60.0, time.monotonic())
            closed[0].set()

    async def drive(runner: Runner) -> None:
        runners.append(runner)
        closed.append(anyio.Event())
        async with anyio.create_task_group() as group:
            group.start_soon(runner.run)
            await closed[0].wait()
            await anyio.sleep(0.05)  # the create is waiting for the gate now
            runner.interrupts.cancel()  # what Ctrl-C does

    with serve(script) as server:
        _, journal = run_once(manifest_file(tmp_path), server.base_url, drive, faults=close_gate)
        assert server.requests == []
    assert_certainly_not_created(journal)
