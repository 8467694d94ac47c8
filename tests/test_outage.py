"""Overnight means overnight: outages of the API or the video host, sleeps, and a first request
that finds nobody. Runs go over real sockets (the simulator behind ``flakyhost.FlakyHost``, a
proxy that refuses and resets while down); long outages run on a compressed clock."""

from __future__ import annotations

import io
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
import structlog
from flakyhost import FlakyHost
from structlog.testing import capture_logs
from test_submit import closed_port_url
from test_submit import manifest_file as small_manifest

from wanbatch import progress
from wanbatch.backoff import PollPolicy, RetryPolicy
from wanbatch.client import ProviderApi, VideoFetcher
from wanbatch.commands import run as run_command
from wanbatch.journal import Journal
from wanbatch.manifest import load_manifest
from wanbatch.outage import ClockWatch, HostHealth, ProbePolicy, outage_line, past_limit
from wanbatch.runcontext import Timing
from wanbatch.scheduler import Runner, RunOptions, RunSummary
from wanbatch.settings import Flags
from wanbatch.simulator import SimulatorServer
from wanbatch.simulator.config import DEFAULT_KEY
from wanbatch.stops import StopReason, pause_before_next_round
from wanbatch.summary import ProgressSnapshot, outage_lines, progress_snapshot

FAST_RETRY = RetryPolicy(
    max_attempts=3, max_attempts_told_when=5, base_seconds=0.001, cap_seconds=0.01
)
STEADY_POLLS = PollPolicy(initial_seconds=1.0, factor=1.0, cap_seconds=1.0, jitter=0.0)
SCALE = 400.0  # compressed clock: 400 s of the run's time pass in one real second


def compressed(scale: float = SCALE) -> Timing:
    """A clock on which time runs ``scale`` times faster (both clocks; sleeps are shortened)."""
    start_mono, start_wall = time.monotonic(), time.time()

    def clock() -> float:
        return start_mono + (time.monotonic() - start_mono) * scale

    def wall() -> float:
        return start_wall + (time.monotonic() - start_mono) * scale

    async def sleep(seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds) / scale)

    return Timing(clock=clock, wall=wall, sleep=sleep)


def manifest_file(
    folder: Path, jobs: int, rps: float = 100_000, deadline: float = 30 * 86400
) -> Path:
    """A manifest of ``jobs`` jobs; the job deadline is far off (a compressed clock runs 400
    times faster on a loaded machine too), except where a test means it."""
    return small_manifest(folder, jobs, rps=rps, deadline=deadline)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def run(
    path: Path,
    base_url: str,
    timing: Timing | None = None,
    during: Callable[[Runner], Coroutine[Any, Any, None]] | None = None,
    **options: Any,
) -> tuple[RunSummary, list[MutableMapping[str, Any]], Journal]:
    """One in-process run; ``during(runner)`` runs beside it. The summary and the log events."""
    manifest = load_manifest(path)
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", STEADY_POLLS)

    async def go() -> RunSummary:
        journal = Journal.open(manifest.output_dir, base_url=base_url, manifest=str(path))
        try:
            async with ProviderApi(base_url, DEFAULT_KEY) as api, VideoFetcher() as videos:
                runner = Runner(
                    manifest, journal, api, videos, options=RunOptions(**options), timing=timing
                )
                async with anyio.create_task_group() as group:
                    if during is not None:
                        group.start_soon(during, runner)
                    await runner.run()
                    group.cancel_scope.cancel()
                return runner.summary
        finally:
            journal.close()

    with capture_logs() as logs:
        summary = anyio.run(go)
    journal = Journal.open(manifest.output_dir, base_url=base_url, manifest=str(path))
    journal.close()
    return summary, logs, journal


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry.get("event") == name]


async def polled(sim: SimulatorServer) -> None:
    """Until some task was polled: a create's answer reached the run (the host is known)."""
    while not sim.stats()["polls_by_task"]:  # noqa: ASYNC110 (another thread's count)
        await anyio.sleep(0.002)


def assert_paid_once(sim: SimulatorServer, jobs: int) -> None:
    stats = sim.stats()
    assert stats["tasks_created"] == jobs
    accepted = [
        counts.get("accepted", 0) for counts in stats["creates_by_idempotency_key"].values()
    ]
    assert accepted == [1] * jobs


# --- the pure rules ---------------------------------------------------------------------


def test_a_host_is_down_from_its_first_failure_and_probed_at_a_doubling_capped_interval() -> None:
    health = HostHealth(ProbePolicy(first_seconds=2, cap_seconds=60, jitter=0.2), lambda: 0.5)
    assert health.probe_wait(0.0) == 0.0
    assert health.failed(10.0) is True
    assert health.failed(10.5) is False  # another request of the same outage
    assert health.outages == 1
    assert health.probe_wait(10.5) == 1.5  # the first probe 2 s after the outage began
    waits = []
    now = 12.0
    for _ in range(8):
        now += health.probe_wait(now)
        health.probe_sent(now)
        assert health.probe_wait(now) > 0  # one probe at a time
        health.failed(now)
        waits.append(health.probe_wait(now))
    assert waits == [4, 8, 16, 32, 60, 60, 60, 60]
    assert not past_limit(health, now, 0)  # 0: never give up
    assert past_limit(health, now, 60)
    assert health.answered(now + 1) == now + 1 - 10.0
    assert not health.down and health.probe_wait(now) == 0.0
    assert health.total_seconds(now + 5) == now + 1 - 10.0
    assert health.down_since(now) and not health.down_since(now + 2)


def test_probe_intervals_are_jittered_within_a_fifth() -> None:
    policy = ProbePolicy(first_seconds=2, cap_seconds=60, jitter=0.2)
    assert policy.interval(0, lambda: 0.0) == 1.6
    assert policy.interval(10, lambda: 0.999999) < 72.0
    assert policy.interval(10, lambda: 0.999999) > 71.9


def test_an_outage_is_shown_with_its_start_and_next_try() -> None:
    health = HostHealth(ProbePolicy(first_seconds=120, cap_seconds=120, jitter=0))
    assert outage_line("API", health, 0.0, 0.0) is None
    health.failed(100.0)
    wall = time.mktime((2026, 1, 2, 2, 13, 30, 0, 0, -1))
    line = outage_line("API", health, 100.0, wall)
    # The next try to the second: probes come within a minute of each other.
    assert line == "API unreachable since 02:13, next try 02:15:30"


def test_a_sleep_is_the_wall_clock_gaining_on_the_monotonic_one() -> None:
    watch = ClockWatch(threshold=30)
    assert watch.look(0.0, 1000.0) == 0.0
    assert watch.look(10.0, 1010.0) == 0.0
    assert watch.look(20.0, 1030.0) == 0.0  # 10 s of drift: not a sleep
    assert watch.look(21.0, 1031.0 + 3600) == 3600
    assert watch.take_unseen() and not watch.take_unseen()
    assert watch.slept_since(1000.0) == 3600
    assert watch.slept_since(1040.0) == 0.0  # submitted after the sleep: nothing to excuse


# --- runs -------------------------------------------------------------------------------


def test_a_ten_minute_outage_mid_run_is_ridden_out(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """The API host drops off for 10 minutes (listener closed, connections reset) once the
    first task was polled, far longer than any job's retry budget: every video is downloaded,
    exit 0, nothing paid twice, and the outage is reported once, with its length."""
    sim = make_sim(generation_seconds=0.3)  # renders outlast the start of the outage
    timing = compressed()
    with FlakyHost(port_of(sim.origin)) as host:

        async def outage(runner: Runner) -> None:
            await polled(sim)
            host.down()
            await timing.sleep(240)
            for _ in range(12):  # a probe may be out at any one look: look a few times
                shown.append(runner.snapshot())
                await timing.sleep(10)
            await timing.sleep(240)
            host.up()

        shown: list[ProgressSnapshot] = []
        summary, logs, _ = run(manifest_file(tmp_path, 4), host.base_url, timing, outage)
    assert summary.exit_code == 0, (summary.left, summary.stalled, summary.stop_message)
    assert sorted(summary.downloaded) == [f"job-{n}" for n in range(4)]
    assert_paid_once(sim, 4)
    assert len(events(logs, "api.unreachable")) == 1
    (back,) = events(logs, "api.reachable")
    assert back["seconds"] >= 550
    assert summary.outages["api"] == 1
    assert summary.outage_seconds["api"] >= 550
    form = re.compile(r"API unreachable since \d\d:\d\d, (next try \d\d:\d\d:\d\d|trying now)")
    for snapshot in shown:  # the live view's line, and the plain progress line's field
        (line,) = snapshot.outages
        assert form.fullmatch(line), line
        assert progress.fields(snapshot)["unreachable"] == line
    assert any(", next try " in snapshot.outages[0] for snapshot in shown)
    closing = "\n".join(outage_lines(summary))
    assert "API host unreachable once, " in closing and " min in all" in closing


def test_an_outage_of_a_few_seconds_on_the_real_clock(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """End to end on real time and sockets, with probes injected small."""
    sim = make_sim(generation_seconds=0.3)  # renders outlast the start of the outage
    with FlakyHost(port_of(sim.origin)) as host:

        async def outage(runner: Runner) -> None:
            await polled(sim)
            host.down()
            await anyio.sleep(1.0)
            host.up()

        summary, logs, _ = run(
            manifest_file(tmp_path, 3),
            host.base_url,
            during=outage,
            poll=PollPolicy(initial_seconds=0.02, factor=1.0, cap_seconds=0.02, jitter=0.0),
            probe=ProbePolicy(first_seconds=0.05, cap_seconds=0.2),
        )
    assert summary.exit_code == 0, (summary.left, summary.stop_message)
    assert_paid_once(sim, 3)
    assert len(events(logs, "api.reachable")) == 1


def test_the_video_host_dropping_off_is_ridden_out_on_its_own(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """The video host is down for 5 minutes from the start; the API host answers throughout.
    The downloads wait for it without using up their retries."""
    sim = make_sim(generation_seconds=0.3)  # renders outlast the start of the outage
    timing = compressed()
    with FlakyHost(port_of(sim.cdn_url)) as cdn:
        sim.state.cdn_base = cdn.origin
        cdn.down()

        async def outage(runner: Runner) -> None:
            await timing.sleep(300)
            cdn.up()

        summary, logs, _ = run(
            manifest_file(tmp_path, 2),
            sim.base_url,
            timing,
            outage,
            download_retry=RetryPolicy(max_attempts=3, base_seconds=0.5, cap_seconds=2),
        )
    assert summary.exit_code == 0, (summary.left, summary.stop_message)
    assert len(events(logs, "video.unreachable")) == 1
    assert len(events(logs, "video.reachable")) == 1
    assert summary.outages == {"video": 1}


def test_an_outage_past_max_outage_stops_the_run_with_work_left(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    sim = make_sim(generation_seconds=0.3)  # renders outlast the start of the outage
    timing = compressed()
    with FlakyHost(port_of(sim.origin)) as host:

        async def outage(runner: Runner) -> None:
            await polled(sim)
            host.down()

        summary, logs, _ = run(
            manifest_file(tmp_path, 3), host.base_url, timing, outage, max_outage=300.0
        )
        # A rerun while the host is still down: its first request (a poll) finds nobody.
        again, _, _ = run(manifest_file(tmp_path, 3), host.base_url, compressed())
    assert again.stop_reason is StopReason.CONFIG and again.exit_code == 2
    assert summary.exit_code == 5
    assert summary.stop_reason is StopReason.UNREACHABLE
    assert "--max-outage" in (summary.stop_message or "")
    assert sim.stats()["tasks_created"] <= 3
    assert summary.outage_seconds["api"] >= 300


def test_the_first_request_refused_is_a_configuration_error_reported_at_once(
    tmp_path: Path,
) -> None:
    url = closed_port_url()
    started = time.monotonic()
    summary, logs, journal = run(manifest_file(tmp_path, 3), url)
    assert time.monotonic() - started < 5
    assert summary.exit_code == 2
    assert summary.stop_reason is StopReason.CONFIG
    host = urlsplit(url).netloc  # the host and port are named (not the URL: a key may be in it)
    assert f"nothing listens at {host} (connection refused)" in (summary.stop_message or "")
    assert summary.requests["create"] <= 2  # the first wave, not retries
    assert summary.possible_duplicates == []


def test_a_sleep_of_hours_fires_no_deadline_and_refreshes_stored_urls(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """The wall clock jumps 5 hours while the monotonic clock stands still (a laptop lid
    closed), once just after a task was created and once just before its video is fetched:
    no job is declared stalled (the deadline is 1 hour), the stored URL is refreshed before
    use, and the server never had to refuse a request for its rate."""
    sim = make_sim(rate_limit_rps=200.0, rate_limit_burst=50.0)
    offset = [0.0]
    timing = Timing(wall=lambda: time.time() + offset[0])
    jumped: set[str] = set()

    def lid_closed(point: str, job_id: str) -> None:
        wanted = point in ("after_created", "before_download") and point not in jumped
        if job_id == "job-0" and wanted:
            jumped.add(point)
            offset[0] += 5 * 3600

    summary, logs, _ = run(
        manifest_file(tmp_path, 3, rps=100, deadline=3600),
        sim.base_url,
        timing,
        faults=lid_closed,
        poll=PollPolicy(initial_seconds=0.02, factor=1.0, cap_seconds=0.02, jitter=0.0),
    )
    assert jumped == {"after_created", "before_download"}
    assert summary.exit_code == 0, (summary.stalled, summary.left)
    assert summary.stalled == []
    assert summary.requests["refresh"] >= 1
    assert summary.requests["throttled"] == 0
    assert len(events(logs, "run.woke")) == 2


def test_capture_logs_sees_the_run_log() -> None:
    """Guard for the tests above: the run's logger is not cached away from capture_logs."""
    with capture_logs() as logs:
        structlog.get_logger("wanbatch.run").info("probe.event")
    assert events(logs, "probe.event")


def test_until_done_goes_round_again_after_an_outage_past_max_outage(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --until-done --max-outage 0.5s`: the API host drops off for 4 s; the first round
    gives up (exit 5), a line says it goes round again, and the next round finishes: exit 0,
    every video there, nothing paid twice. A refusal in a later round is an outage, not a
    configuration error."""
    # Renders of 1.5 s: the outage is started by a thread of the test (the run is synchronous
    # here), and on a loaded machine 0.3 s was once not enough for it to begin before the run
    # had finished everything (then no second round, and the test failed).
    sim = make_sim(generation_seconds=1.5)
    monkeypatch.setenv("WAN_API_KEY", sim.api_key)
    path = manifest_file(tmp_path, 3)
    out = io.StringIO()
    with FlakyHost(port_of(sim.origin)) as host:

        def outage() -> None:
            # Every task polled once, so no create is on the wire when the host drops off (an
            # unanswered create is one --until-done leaves to a person: not this test's point).
            while len(sim.stats()["polls_by_task"]) < 3:
                time.sleep(0.002)
            host.down()
            # Longer than the first probe (2 s +-20 %, after the retry that meets the outage),
            # so the probe surely fails past --max-outage 0.5 s and the round ends.
            time.sleep(4.0)
            host.up()

        thread = threading.Thread(target=outage, daemon=True)
        thread.start()
        code = run_command.execute(
            Flags(
                manifest=str(path),
                base_url=host.base_url,
                verbosity=-1,
                poll_interval=0.02,
                max_outage=0.5,
                until_done=True,
                round_pause=0.3,
            ),
            out,
        )
        thread.join()
    text = out.getvalue()
    assert code == 0, text
    assert "round 1 ended with" in text and "resuming in 0.3 s (--until-done" in text
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.mp4")) == ["job-0", "job-1", "job-2"]
    assert_paid_once(sim, 3)


def test_what_ends_an_until_done_run() -> None:
    again = {"capped": False, "until_done": True, "wait_credits": None, "every": 60.0}
    assert pause_before_next_round(5, StopReason.UNREACHABLE, **again) == 60.0
    assert pause_before_next_round(5, None, **again) == 60.0  # retries used up, stalled jobs
    assert pause_before_next_round(5, None, **{**again, "capped": True}) is None
    assert pause_before_next_round(5, StopReason.DISK, **again) is None
    assert pause_before_next_round(5, StopReason.JOURNAL, **again) is None
    for code in (0, 1, 2, 3, 130):
        assert pause_before_next_round(code, None, **again) is None
    assert pause_before_next_round(4, StopReason.CREDITS, **again) is None
    assert pause_before_next_round(4, StopReason.CREDITS, **{**again, "wait_credits": 600}) == 600
    assert pause_before_next_round(5, None, **{**again, "until_done": False}) is None


def test_durations_on_the_command_line() -> None:
    from wanbatch.cli import build_parser

    args = build_parser().parse_args(
        ["run", "m.yaml", "--max-outage", "30m", "--until-done", "--wait-credits", "1h"]
    )
    assert (args.max_outage, args.until_done, args.wait_credits) == (1800.0, True, 3600.0)
    assert build_parser().parse_args(["run", "m.yaml", "--max-outage", "0"]).max_outage == 0.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "m.yaml", "--max-outage", "soon"])


def top_up_after_round_one(sim: SimulatorServer, out: io.StringIO) -> threading.Thread:
    """A thread that tops the account up by 10 credits once the run says round 1 ended."""

    def top_up() -> None:
        while "round 1 ended" not in out.getvalue():
            time.sleep(0.01)
        with sim.state.lock:
            sim.state.credits[sim.api_key] += 10

    thread = threading.Thread(target=top_up, daemon=True)
    thread.start()
    return thread


def test_wait_credits_waits_for_a_top_up_and_finishes(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credits for one video of three: the round ends on 402, a line says it waits; the
    account is topped up meanwhile and the next round finishes (exit 0, each paid once)."""
    sim = make_sim(credits=1)
    monkeypatch.setenv("WAN_API_KEY", sim.api_key)
    path = manifest_file(tmp_path, 3)
    out = io.StringIO()

    thread = top_up_after_round_one(sim, out)
    code = run_command.execute(
        Flags(
            manifest=str(path),
            base_url=sim.base_url,
            verbosity=-1,
            poll_interval=0.02,
            wait_credits=0.3,
        ),
        out,
    )
    thread.join(5)
    text = out.getvalue()
    assert code == 0, text
    assert "round 1 ended" in text and "credits" in text
    assert_paid_once(sim, 3)


def test_the_live_view_shows_an_outage() -> None:
    from rich.console import Console

    snap = progress_snapshot(
        Counter(),
        elapsed_seconds=1.0,
        finished_this_run=0,
        render_seconds=(0.0, 0),
        recent_failures=(),
        videos_submitted=0,
        credits_submitted=None,
        stopping=None,
        outages=("API unreachable since 02:13, next try 02:15",),
    )
    console = Console(file=io.StringIO(), width=120)
    console.print(progress.render(snap, "t"))
    assert "API unreachable since 02:13, next try 02:15" in console.file.getvalue()  # type: ignore[attr-defined]


def test_polls_held_by_an_outage_do_not_teach_the_planner_that_the_budget_binds(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """Polls planned by the planner wait out a 1.5 s outage in admission: that wait is the
    host's, not the request budget's, so the planner does not thin out polls afterwards."""
    sim = make_sim(generation_seconds=0.3)
    runners: list[Runner] = []
    with FlakyHost(port_of(sim.origin)) as host:

        async def outage(runner: Runner) -> None:
            runners.append(runner)
            await polled(sim)
            host.down()
            await anyio.sleep(1.5)
            host.up()

        summary, logs, _ = run(
            manifest_file(tmp_path, 3, rps=500),
            host.base_url,
            during=outage,
            poll=None,  # the planner times the polls
            probe=ProbePolicy(first_seconds=0.05, cap_seconds=0.2),
        )
    assert summary.exit_code == 0, (summary.left, summary.stop_message)
    assert len(events(logs, "api.reachable")) == 1
    assert runners[0].board.planner.pressure < 1.5


def test_creates_waiting_out_an_outage_that_ends_the_run_are_journaled_not_created(
    tmp_path: Path,
) -> None:
    """In a later round (--until-done: the host answered before) nothing listens and the outage
    outlasts --max-outage. Every create met a refused connection, so no task exists: each job
    is journaled "not created", none is left "answer unknown" (which the next run would resend
    and report as a possible duplicate), whichever request the run was stopped from."""
    path = manifest_file(tmp_path, 2)
    nobody = closed_port_url()
    summary, _, journal = run(path, nobody, compressed(), reached_before=True, max_outage=120.0)
    assert summary.stop_reason is StopReason.UNREACHABLE and summary.exit_code == 5
    journal = Journal.open(tmp_path / "out", base_url=nobody, manifest=str(path))
    try:
        states = {job: journal.record(job).state.value for job in ("job-0", "job-1")}
    finally:
        journal.close()
    assert states == {"job-0": "planned", "job-1": "planned"}, states
    assert summary.possible_duplicates == []


def test_max_outage_ends_a_video_host_outage_after_credits_ran_out(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """Credits for one video (a 402 stops submitting) and the video host down from the start:
    --max-outage still ends the run (it waited for the CDN for good once a 402 had set a stop
    reason)."""
    sim = make_sim(generation_seconds=0.05, credits=1)
    timing = compressed()
    with FlakyHost(port_of(sim.cdn_url)) as cdn:
        sim.state.cdn_base = cdn.origin
        cdn.down()

        async def give_up_after(runner: Runner) -> None:
            await timing.sleep(4 * 3600)  # far past --max-outage: the run should have ended
            raise AssertionError("the run waited for the video host past --max-outage")

        summary, _, _ = run(
            manifest_file(tmp_path, 2), sim.base_url, timing, give_up_after, max_outage=300.0
        )
    assert summary.stop_reason is StopReason.UNREACHABLE and summary.exit_code == 5
