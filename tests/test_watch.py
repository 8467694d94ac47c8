"""What a person sees: live progress, `plan` in every state, the cost guard, logs and the report.

Runs go in-process (`cli.main`) or as a child process (for a terminal or a pipe), always against
the simulator on a real loopback socket. Nothing here asserts how long anything takes.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from wanbatch import cli
from wanbatch.journal import encode_event, encode_run_header, journal_path, read_journal
from wanbatch.manifest import load_manifest
from wanbatch.models import EventKind, JobEvent, JobState

from test_runner import KEY_ENV, out_dir, run_argv, stats

SGR_COLOUR = re.compile(rb"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;)[0-9;]*m")


def manifest_file(folder: Path, jobs: int = 6, *, pricing: bool = True, **limits: Any) -> Path:
    """A manifest of ``jobs`` 5-second jobs; with pricing, each costs 10 credits."""
    lines = [
        "name: watch",
        "api:",
        f"  key_env: {KEY_ENV}",
        "defaults: {model: wan-2-2, duration: 5}",
        f"limits: {{concurrency: {limits.get('concurrency', 2)}, requests_per_second: 200,"
        " downloads: 2}",
        "output: {dir: out}",
    ]
    if pricing:
        lines.append("pricing: {wan-2-2: 2, wan-2-1: 1}")
    lines.append("jobs:")
    for index in range(jobs):
        lines += [f"  - id: job-{index}", f"    prompt: a watched prompt number {index}"]
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(manifest: Path, sim: Any, *extra: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    argv = ["run", str(manifest), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    return cli.main([*argv, *extra])


def child_env(sim: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI", "TERM")}
    return {**env, KEY_ENV: sim.api_key, **extra}


def sim_argv(manifest: Path, sim: Any, *extra: str) -> list[str]:
    return run_argv(manifest, sim.base_url, "--poll-interval", "0.02", *extra)


def run_in_terminal(argv: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its stdin, stdout and stderr; all it wrote."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                output += data
            elif child.poll() is not None:
                break
        code = child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        os.close(master)
    return code, bytes(output)


# --- live progress ----------------------------------------------------------------------------


def test_live_view_in_a_terminal_shows_counts_and_failures(tmp_path: Path, make_sim: Any) -> None:
    """On a terminal: the live panel with counts by state, the bar, the ETA, and each failure."""
    sim = make_sim(failure_rate=0.5, seed=3, generation_seconds=0.2)
    manifest = manifest_file(tmp_path, jobs=6)
    env = child_env(sim, TERM="xterm-256color", COLUMNS="120")
    code, output = run_in_terminal(sim_argv(manifest, sim), env)
    text = output.decode("utf-8", "replace")
    records = read_journal(out_dir(manifest)).records
    failed = sorted(job for job, rec in records.items() if rec.state is JobState.FAILED)
    assert failed and code == 1
    for word in ("new", "rendering", "to download", "done", "failed", "ETA", "jobs/min"):
        assert word in text, word
    assert "6/6" in text and "100%" in text
    assert "latest failures" in text
    for job_id in failed:  # the display never hides an error: each failure is printed
        assert f"x job.finished {job_id} failed: " in text
        assert f"x {job_id}:" in text
    assert "credits submitted" in text
    assert SGR_COLOUR.search(output), "a terminal gets colour"
    assert "\x1b[" in text  # the live view redraws in place


def test_no_color_and_quiet_are_respected(tmp_path: Path, make_sim: Any) -> None:
    """NO_COLOR: the same view with no colour codes. -q: no live view, only the summary."""
    sim = make_sim(generation_seconds=0.1)
    manifest = manifest_file(tmp_path, jobs=3)
    code, output = run_in_terminal(
        sim_argv(manifest, sim), child_env(sim, TERM="xterm-256color", NO_COLOR="1")
    )
    assert code == 0
    assert b"3/3" in output and b"to download" in output
    assert not SGR_COLOUR.search(output)
    other = tmp_path / "again"
    other.mkdir()
    quiet_manifest = manifest_file(other, jobs=2)
    code, output = run_in_terminal(
        sim_argv(quiet_manifest, sim, "-q"), child_env(sim, TERM="xterm-256color")
    )
    assert code == 0
    assert b"to download" not in output and b"jobs/min" not in output
    assert b"2/2 videos" in output


def test_plain_progress_lines_when_not_a_terminal(tmp_path: Path, make_sim: Any) -> None:
    """Piped output gets periodic readable `run.progress` lines; --json-logs gets JSON lines."""
    sim = make_sim(generation_seconds=0.4)
    manifest = manifest_file(tmp_path, jobs=4, concurrency=2)
    done = subprocess.run(
        sim_argv(manifest, sim, "--progress-every", "0.1"),
        env=child_env(sim),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "run.progress" in line]
    assert len(lines) >= 2
    assert re.search(r"done=\d/4 new=\d rendering=\d to_download=\d failed=0", lines[0])
    assert "\x1b[" not in done.stderr
    assert "jobs_per_minute=" in lines[-1] and "eta=" in lines[-1]

    other = tmp_path / "json"
    other.mkdir()
    manifest = manifest_file(other, jobs=4, concurrency=2)
    done = subprocess.run(
        sim_argv(manifest, sim, "--progress-every", "0.1", "--json-logs"),
        env=child_env(sim),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    progress = [event for event in events if event["event"] == "run.progress"]
    assert progress and {"done", "new", "rendering", "eta"} <= set(progress[-1])


# --- the log -----------------------------------------------------------------------------------


def test_log_has_one_canonical_line_per_finished_job(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.wanbatch/log.jsonl`: exactly one `job.finished` per job, with the same stable fields."""
    sim = make_sim(failure_rate=0.5, seed=11)
    manifest = manifest_file(tmp_path, jobs=8)
    assert run(manifest, sim, monkeypatch=monkeypatch) == 1
    log = out_dir(manifest) / ".wanbatch" / "log.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    finished = [event for event in events if event["event"] == "job.finished"]
    assert sorted(event["job"] for event in finished) == [f"job-{i}" for i in range(8)]
    states = {event["state"] for event in finished}
    assert states == {"downloaded", "failed"}
    for event in finished:
        assert {"job", "state", "model", "duration", "task_id", "render_seconds"} <= set(event)
        assert event["timestamp"] and event["level"] in ("info", "warning")
        if event["state"] == "failed":
            assert event["reason"] and event["level"] == "warning"
        else:
            assert event["path"] == f"{event['job']}.mp4" and event["size"] > 0
            assert event["render_seconds"] >= 0 and event["download_seconds"] >= 0
    assert sim.api_key not in log.read_text()


# --- plan against journals in each state --------------------------------------------------------


def write_journal(folder: Path, base_url: str, events: list[JobEvent]) -> None:
    path = journal_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(encode_run_header(base_url, "m.yaml"))
        for event in events:
            handle.write(encode_event(event))


def states_journal(manifest: Path, base_url: str) -> None:
    """job-0 new, job-1 unknown create, job-2 submitted, job-3 running, job-4 rendered,
    job-5 downloaded (its 1-byte video on disk), job-6 failed, job-7 changed after submission."""
    jobs = {job.id: job for job in load_manifest(manifest).jobs}
    events: list[JobEvent] = []

    def intent(job_id: str, fingerprint: str | None = None) -> None:
        print_ = fingerprint or jobs[job_id].fingerprint()
        events.append(
            JobEvent(
                EventKind.INTENT, job_id, 1.0, idempotency_key=f"k-{job_id}", fingerprint=print_
            )
        )

    intent("job-1")
    for job_id in ("job-2", "job-3", "job-4", "job-5", "job-6"):
        intent(job_id)
        events.append(JobEvent(EventKind.CREATED, job_id, 2.0, task_id=f"gen_{job_id}"))
    events.append(JobEvent(EventKind.RUNNING, "job-3", 3.0))
    for job_id in ("job-4", "job-5"):
        events.append(JobEvent(EventKind.SUCCEEDED, job_id, 4.0, video_url="http://127.0.0.1:9/v"))
    events.append(
        JobEvent(EventKind.DOWNLOADED, "job-5", 5.0, path="job-5.mp4", size=1, sha256="0")
    )
    events.append(JobEvent(EventKind.FAILED, "job-6", 4.0, reason="content policy", code="X"))
    intent("job-7", fingerprint="0000000000000000")
    events.append(JobEvent(EventKind.CREATED, "job-7", 2.0, task_id="gen_job-7"))
    write_journal(out_dir(manifest), base_url, events)
    (out_dir(manifest) / "job-5.mp4").write_bytes(b"v")


def test_plan_against_a_journal_in_every_state(tmp_path: Path, capsys: Any) -> None:
    """Each job lands in its group; only new jobs count toward what a run would submit."""
    manifest = manifest_file(tmp_path, jobs=8)
    states_journal(manifest, "http://127.0.0.1:1/v1")
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["jobs"] == {
        "new": ["job-0"],
        "changed": ["job-7"],
        "unconfirmed": ["job-1"],
        "in_flight": ["job-2", "job-3"],
        "to_download": ["job-4"],
        "done": ["job-5"],
        "failed": ["job-6"],
    }
    assert plan["to_submit"] == {"jobs": 1, "seconds": 5, "credits": 10.0}
    assert cli.main(["plan", str(manifest)]) == 0
    text = capsys.readouterr().out
    assert "1  new" in text and "A run would submit 1 job: 5 s of video, about 10 credits" in text


# --- the cost guard -----------------------------------------------------------------------------


def test_max_videos_stops_submitting_and_finishes_what_is_in_flight(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """--max-videos 3 of 8: three tasks are created and downloaded, the run says so (exit 5);
    a rerun with the same cap makes three more."""
    sim = make_sim()
    manifest = manifest_file(tmp_path, jobs=8, concurrency=4)
    assert run(manifest, sim, "--max-videos", "3", monkeypatch=monkeypatch) == 5
    out = capsys.readouterr().out
    assert stats(sim)["tasks_created"] == 3
    records = read_journal(out_dir(manifest)).records
    assert sum(r.state is JobState.DOWNLOADED for r in records.values()) == 3
    assert "cost guard: --max-videos 3 reached" in out
    assert "submitted this run: 3 new tasks, about 30 credits" in out
    assert run(manifest, sim, "--max-videos", "3", monkeypatch=monkeypatch) == 5
    assert stats(sim)["tasks_created"] == 6
    assert run(manifest, sim, monkeypatch=monkeypatch) == 0
    assert stats(sim)["tasks_created"] == 8


def test_max_credits_caps_the_estimate_and_in_flight_jobs_are_still_collected(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A journal with jobs in flight: they are polled and downloaded whatever the cap; new jobs
    stop where the next one would pass --max-credits."""
    sim = make_sim()
    manifest = manifest_file(tmp_path, jobs=6)
    # A first run creates two tasks and is cut short by its cap; kill nothing, just cap.
    assert run(manifest, sim, "--max-credits", "25", monkeypatch=monkeypatch) == 5
    out = capsys.readouterr().out
    assert stats(sim)["tasks_created"] == 2
    assert "--max-credits 25 reached (the next job would bring the estimate to 30)" in out
    assert "about 20 credits" in out
    # Put one more job in flight by hand: created on the server, journaled as submitted.
    records = read_journal(out_dir(manifest)).records
    todo = sorted(job for job, rec in records.items() if rec.state is JobState.DOWNLOADED)
    assert len(todo) == 2
    assert run(manifest, sim, "--max-credits", "10", monkeypatch=monkeypatch) == 5
    assert stats(sim)["tasks_created"] == 3
    done = read_journal(out_dir(manifest)).records
    assert sum(r.state is JobState.DOWNLOADED for r in done.values()) == 3


def test_cap_does_not_block_polling_jobs_already_in_flight(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks created by an earlier run are collected even when the cap allows nothing new."""
    sim = make_sim()
    manifest = manifest_file(tmp_path, jobs=3)
    jobs = load_manifest(manifest).jobs
    events = []
    for job in jobs[:2]:  # created on the server by "an earlier run" that then died
        view = sim_create(sim, job.prompt)
        events.append(
            JobEvent(
                EventKind.INTENT,
                job.id,
                1.0,
                idempotency_key=f"k-{job.id}",
                fingerprint=job.fingerprint(),
            )
        )
        events.append(JobEvent(EventKind.CREATED, job.id, time.time(), task_id=view))
    write_journal(out_dir(manifest), sim.base_url, events)
    assert run(manifest, sim, "--max-videos", "1", monkeypatch=monkeypatch) == 0
    assert stats(sim)["tasks_created"] == 3
    records = read_journal(out_dir(manifest)).records
    assert all(record.state is JobState.DOWNLOADED for record in records.values())


def sim_create(sim: Any, prompt: str) -> str:
    import httpx

    response = httpx.post(
        f"{sim.base_url}/video/generations",
        json={"model": "wan-2-2", "prompt": prompt, "duration": 5},
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def test_max_credits_needs_pricing(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sim = make_sim()
    manifest = manifest_file(tmp_path, jobs=2, pricing=False)
    assert run(manifest, sim, "--max-credits", "5", monkeypatch=monkeypatch) == 2
    assert "--max-credits needs prices" in capsys.readouterr().err
    assert stats(sim)["requests_total"] == 0


# --- the report -----------------------------------------------------------------------------------


def test_every_run_writes_the_gallery_and_retry_manifest(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The run ends with report.html (one card per job) and retry.yaml (the failed jobs);
    `wanbatch retry retry.yaml` reruns them, after which retry.yaml is gone."""
    sim = make_sim(failure_rate=0.5, seed=5)
    manifest = manifest_file(tmp_path, jobs=6)
    assert run(manifest, sim, monkeypatch=monkeypatch) == 1
    out = capsys.readouterr().out
    folder = out_dir(manifest)
    html = (folder / "report.html").read_text()
    assert html.count('class="card"') == 6
    assert f"gallery: {folder / 'report.html'}" in out
    failed = sorted(
        job for job, rec in read_journal(folder).records.items() if rec.state is JobState.FAILED
    )
    assert failed
    retry_file = folder / "retry.yaml"
    assert sorted(job["id"] for job in yaml.safe_load(retry_file.read_text())["jobs"]) == failed
    for text in (html, retry_file.read_text()):
        assert sim.api_key not in text
    sim.set_config(failure_rate=0.0)
    argv = ["retry", str(retry_file), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    assert cli.main([*argv, "--yes"]) == 0
    assert not retry_file.exists()
    assert (folder / "report.html").read_text().count('data-state="done"') == 6
    capsys.readouterr()
    (folder / "report.html").unlink()
    assert cli.main(["report", str(manifest)]) == 0
    assert "no failed jobs" in capsys.readouterr().out
    assert (folder / "report.html").exists()


def run_example(name: str, output: Path) -> subprocess.CompletedProcess[str]:
    """`wanbatch run jobs/NAME --simulate` as the README runs it, into ``output``."""
    root = Path(__file__).resolve().parent.parent
    argv = [sys.executable, "-m", "wanbatch", "run", f"jobs/{name}", "--simulate"]
    return subprocess.run(
        [*argv, "--output", str(output)],
        cwd=root,
        env={k: v for k, v in os.environ.items() if k != "WAN_API_KEY"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_main_job_renders_every_video_and_exits_0(tmp_path: Path) -> None:
    """`wanbatch run jobs/campaign.yaml --simulate` (the README's first command): every one of
    the 13 videos, exit 0, report.html written and no retry.yaml."""
    output = tmp_path / "spring-campaign"
    done = run_example("campaign.yaml", output)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "13/13 videos" in done.stdout and "failed" not in done.stdout
    assert len(list(output.glob("*.mp4"))) == 13
    html = (output / "report.html").read_text()
    assert html.count('class="card"') == 13 and 'data-state="failed"' not in html
    assert not (output / "retry.yaml").exists()


def test_the_failures_example_ends_with_the_reason_and_a_retry_manifest(tmp_path: Path) -> None:
    """`wanbatch run jobs/failures.yaml --simulate` (the README's second example): the
    celebrity prompt failed by the demo's content filter, its reason in the summary and the
    gallery, exit 1, and retry.yaml holding it."""
    output = tmp_path / "failures-demo"
    done = run_example("failures.yaml", output)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1/2 videos" in done.stdout
    assert "red-carpet: generation blocked by the content filter" in done.stdout
    assert len(list(output.glob("*.mp4"))) == 1
    html = (output / "report.html").read_text()
    assert html.count('class="card"') == 2 and html.count('data-state="failed"') == 1
    retry = yaml.safe_load((output / "retry.yaml").read_text())
    assert [job["id"] for job in retry["jobs"]] == ["red-carpet"]


# --- the live view at any width (issue 14) ------------------------------------------------------


def snapshot(**changes: Any) -> Any:
    """A ProgressSnapshot: nothing finished yet, unless ``changes`` say otherwise."""
    from wanbatch.summary import ProgressSnapshot

    base: dict[str, Any] = {
        "total": 300,
        "new": 300,
        "rendering": 0,
        "downloading": 0,
        "done": 0,
        "failed": 0,
        "elapsed_seconds": 0.0,
        "finished_this_run": 0,
        "jobs_per_second": None,
        "eta_seconds": None,
        "mean_render_seconds": None,
        "recent_failures": (),
        "videos_submitted": 0,
        "credits_submitted": None,
        "stopping": None,
    }
    return ProgressSnapshot(**{**base, **changes})


BIG = {  # a long run, mid-way, with failures, a cap and an outage
    "total": 1_000_000,
    "new": 800_000,
    "rendering": 70_000,
    "downloading": 6_544,
    "done": 111_111,
    "failed": 12_345,
    "elapsed_seconds": 3725.2,
    "finished_this_run": 123_456,
    "jobs_per_second": 36.4,
    "eta_seconds": 3 * 86400 + 5,
    "mean_render_seconds": 123.4,
    "recent_failures": (("job-13", "content flagged by the moderation filter, try again"),),
    "videos_submitted": 200_000,
    "credits_submitted": 1_234_567.5,
    "stopping": "--max-credits 2000000 reached (the next job would bring the estimate to 2000010)",
    "outages": ("API unreachable since 02:13, next try 02:15 (attempt 12)",),
}
# What must appear whole, on one line, in the view of BIG at any width.
BIG_WHOLE = (
    "123,456/1,000,000",
    "12%",
    "new 800,000",
    "rendering 70,000",
    "to download 6,544",
    "done 111,111",
    "failed 12,345",
    "2,184.0 jobs/min",
    "mean render 123.4 s",
    "elapsed 1:02:05",
    "ETA 72:00:05",
    "credits submitted ~1,234,567.5",
    "2000000",
    "2000010",
    "02:15",
    "(attempt 12)",
)


def view_lines(snap: Any, width: int, title: str = "my-campaign") -> tuple[list[str], Any]:
    """The live view of ``snap`` on a console ``width`` columns wide: its lines, its segments."""
    import io

    from rich.console import Console

    from wanbatch.progress import render

    console = Console(
        file=io.StringIO(), width=width, force_terminal=True, color_system="truecolor"
    )
    lines = console.render_lines(render(snap, title), console.options, pad=False)
    texts = ["".join(segment.text for segment in line) for line in lines]
    return texts, lines


def reddish(style: Any) -> bool:
    """A style whose colour is red, or shows as red on a 16-colour terminal."""
    from rich.color import ColorSystem

    if style is None or style.color is None:
        return False
    return style.color.downgrade(ColorSystem.STANDARD).number in (1, 9)


@pytest.mark.parametrize("width", [60, 70, 80, 120])
def test_the_live_view_fits_the_width_and_keeps_every_number_whole(width: int) -> None:
    """At 60-120 columns no line is wider than the terminal (a wider one wraps and the redraw
    goes wrong) and every number, with its label, is on one line, whole."""
    from rich.cells import cell_len

    for snap, whole in (
        (snapshot(), ("0/300", "0%", "new 300", "ETA -")),
        (snapshot(**BIG), BIG_WHOLE),
    ):
        lines, _ = view_lines(snap, width)
        for line in lines:
            assert cell_len(line) <= width, (width, line)
        for text in whole:
            assert any(text in line for line in lines), (width, text, lines)


def test_a_long_title_gives_way_to_the_numbers() -> None:
    """A campaign name as wide as the terminal is cut (with an ellipsis), the counts are not."""
    lines, _ = view_lines(snapshot(**BIG), 60, title="a-very-long-campaign-name-" * 3)
    assert any("123,456/1,000,000" in line and "12%" in line for line in lines), lines
    assert any("…" in line for line in lines), lines


@pytest.mark.parametrize("done", [0, 1])
def test_nothing_is_red_at_zero_percent(done: int) -> None:
    """At 0 % (nothing finished, or 1 of 300: "0%"), with no failure, the view has no red: not
    in the bar (rich's default bar colour shows as bright red on 16-colour terminals) and not in
    a count of 0 failures."""
    snap = snapshot(done=done, new=300 - done, finished_this_run=done)
    lines, segments = view_lines(snap, 80)
    assert "0%" in lines[0]
    red = [seg.text for line in segments for seg in line if seg.text.strip() and reddish(seg.style)]
    assert red == [], red


def test_failures_show_red_in_the_bar_and_done_does_not() -> None:
    """Mid-run with failures: the bar's red part is the failures, the done part is not red."""
    snap = snapshot(done=150, failed=60, new=90, finished_this_run=210)
    lines, segments = view_lines(snap, 120)
    bar = [seg for seg in segments[0] if seg.text and set(seg.text) <= set("━╸╺─ ")]
    red = sum(len(seg.text) for seg in bar if reddish(seg.style))
    other = sum(len(seg.text) for seg in bar if seg.text.strip() and not reddish(seg.style))
    assert 0 < red < other, [(seg.text, seg.style) for seg in bar]


def test_plain_progress_fields_hold_no_python_reprs() -> None:
    """The `run.progress` line before the first job finishes: no `None` (a Python repr)."""
    from wanbatch.progress import fields

    line = " ".join(f"{key}={value}" for key, value in fields(snapshot()).items())
    assert "None" not in line and "done=0/300" in line, line
    later = fields(snapshot(**BIG))
    assert later["jobs_per_minute"] == 2184.0 and later["mean_render_seconds"] == 123.4
