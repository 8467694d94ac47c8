"""The command layer's order of things: every usage error before anything is opened, asked or
journaled; the summary of a run of several rounds is the whole run's; each flag is offered only
where it works. (Found in a review of the split of app.py into commands/.)"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY_ENV

from wanbatch import cli
from wanbatch.commands import asking
from wanbatch.commands import run as run_command
from wanbatch.journal import read_journal
from wanbatch.models import JobState
from wanbatch.settings import Flags

from test_runner import out_dir, write_manifest


def journal_bytes(manifest: Path) -> bytes:
    return (out_dir(manifest) / ".wanbatch" / "journal.jsonl").read_bytes()


def test_a_bad_listen_address_is_refused_before_retry_requeues_anything(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """`retry --listen nohost` is a usage error (exit 2, "nothing was sent"), and the failed job
    stays failed: were it requeued first, a later plain `run` would pay for it again."""
    sim = make_sim(flagged_words=("0",), provider="replicate")
    manifest = write_manifest(tmp_path, jobs=2, provider="replicate")
    assert run_cli("run", manifest, sim) == 1
    before = journal_bytes(manifest)
    code = run_cli(
        "retry",
        manifest,
        sim,
        "--yes",
        "--notify-url",
        "https://example.com/h",
        "--listen",
        "nohost",
    )
    assert code == 2
    assert journal_bytes(manifest) == before
    assert read_journal(out_dir(manifest)).records["job-0"].state is JobState.FAILED


def test_the_question_comes_after_the_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A usage error (here: no key) is reported before `run` asks whether to spend 10,000
    credits: a user must not answer a question whose yes leads nowhere."""
    asked: list[str] = []
    monkeypatch.setattr(asking, "on_terminal", lambda: True)
    monkeypatch.setattr(run_command, "on_terminal", lambda: True)
    monkeypatch.setattr("builtins.input", lambda *a: asked.append("asked") or "y")
    monkeypatch.delenv(KEY_ENV, raising=False)
    manifest = write_manifest(tmp_path, jobs=2)
    argv = ["run", str(manifest), "--price", "wan-2-2=1000", "--base-url", "http://127.0.0.1:9/v1"]
    assert cli.main(argv) == 2
    assert asked == []


def test_salvage_is_offered_by_run_only(capsys: Any, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(["retry", str(manifest), "--salvage-journal"]) == 2
    assert "unrecognized arguments: --salvage-journal" in capsys.readouterr().err


def test_a_damaged_journal_is_salvaged_even_when_run_asks_first(
    tmp_path: Path, make_sim: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal `run` counts what it would submit, which reads the journal: a damaged one
    must not stop `run --salvage-journal` before it repairs it."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    journal = out_dir(manifest) / ".wanbatch" / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:2], b'{"damaged\n', *lines[2:]]))
    monkeypatch.setattr(run_command, "on_terminal", lambda: True)
    monkeypatch.setattr(asking, "on_terminal", lambda: True)
    monkeypatch.setattr("builtins.input", lambda *a: "y")
    assert run_cli("run", manifest, sim, "--salvage-journal") == 0


def test_the_summary_of_a_run_of_rounds_counts_every_round(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credits run out after one task; --wait-credits goes round again after a top-up. The
    summary record (--summary-json) holds the tasks of both rounds, not the last one's."""
    from test_rounds import manifest_file, top_up_after_round_one

    sim = make_sim(credits=1)
    monkeypatch.setenv("WAN_API_KEY", sim.api_key)
    path = manifest_file(tmp_path, 3)
    out = io.StringIO()
    record = tmp_path / "summary.json"
    thread = top_up_after_round_one(sim, out)
    flags = Flags(
        manifest=str(path),
        base_url=sim.base_url,
        verbosity=-1,
        poll_interval=0.02,
        wait_credits=0.3,
        summary_json=str(record),
    )
    code = run_command.execute(flags, out)
    thread.join(5)
    assert code == 0, out.getvalue()
    summary = json.loads(record.read_text())
    assert sim.stats()["tasks_created"] == 3
    assert summary["videos_submitted"] == 3
    assert summary["requests"]["create"] >= 3
    assert summary["counts"]["done"] == 3


def test_simulate_ignores_the_settings_of_the_real_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--simulate sends nothing to the real API: its address (even a bad one in the
    environment) and the confirmation threshold are not read."""
    monkeypatch.setenv("WAN_API_BASE_URL", "https://user:pass@example.com/v1")
    monkeypatch.setenv("WANBATCH_CONFIRM_CREDITS", "lots")
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(["run", str(manifest), "--simulate", "-q", "--poll-interval", "0.02"]) == 0


def test_the_closing_lines_show_paths_from_the_working_directory() -> None:
    """ "13/13 videos in renders/x", not a machine's whole path; outside it, the whole path."""
    from wanbatch.runend import RunEnd, closing_lines
    from wanbatch.summary import RunSummary

    end = RunEnd(
        "x", "/home/u/jobs/x.yaml", "/home/u/renders/x", True, "/home/u/renders/x/report.html"
    )
    text = "\n".join(closing_lines(end.shown_from("/home/u"), RunSummary(total=1)))
    assert " in renders/x " in text and "gallery: renders/x/report.html" in text
    assert "/home/u" not in text
    elsewhere = "\n".join(closing_lines(end.shown_from("/tmp"), RunSummary(total=1)))
    assert " in /home/u/renders/x " in elsewhere


def test_a_mistyped_base_url_that_reached_nobody_does_not_pin_the_output_tree(
    tmp_path: Path, make_sim: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run against a mistyped address (nothing listens) sends nothing and ends with exit
    2; the corrected rerun must be let in, not refused for "another API" with the advice to use
    the mistyped address again. Once a create was sent, the address is the tree's for good."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        wrong = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    sim = make_sim()
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(["run", str(manifest), "-q", "--base-url", wrong]) == 2
    assert run_cli("run", manifest, sim) == 0
    again = cli.main(["run", str(manifest), "-q", "--base-url", wrong])
    assert again == 2  # now the tree's tasks live at the simulator


def test_a_bare_csv_takes_prices_and_ignored_columns_from_flags(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV of prompts with a `notes` column: --ignore-columns keeps it out of the jobs, and
    --price gives the estimate and lets --max-credits cap the run (2 of 3 jobs at 50 each)."""
    csv = tmp_path / "shots.csv"
    csv.write_text(
        "Prompt;Notes\na kite over a beach;ok\na boat at dawn;check\na cat asleep;later\n"
    )
    flags = ["--model", "wan-2-2", "--duration", "5", "--ignore-columns", "notes"]
    assert cli.main(["validate", str(csv), *flags]) == 0
    assert "3 jobs" in capsys.readouterr().out
    assert cli.main(["validate", str(csv), *flags, "--price", "wan-2-2=10"]) == 0
    assert "estimated credits: 150" in capsys.readouterr().out
    sim = make_sim()
    monkeypatch.setenv("WAN_API_KEY", sim.api_key)  # a bare CSV's key is WAN_API_KEY
    out = tmp_path / "out"
    code = run_cli(
        "run",
        csv,
        sim,
        *flags,
        "--price",
        "wan-2-2=10",
        "--max-credits",
        "100",
        "--output",
        str(out),
    )
    assert code == 5
    assert sim.stats()["tasks_created"] == 2
    assert "--max-credits" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["status", "plan"])
def test_status_and_plan_say_a_run_is_live_only_while_one_holds_the_tree(
    tmp_path: Path, command: str, capsys: Any
) -> None:
    """While a runner holds the output tree's lock, `status` and `plan` name it (text and JSON,
    key `live_run`); after it ends, nothing reads as a live run."""
    from wanbatch.journal import Journal

    manifest = write_manifest(tmp_path, jobs=1)
    journal = Journal.open(out_dir(manifest), base_url="http://h/v1", manifest=str(manifest))
    try:
        assert cli.main([command, str(manifest)]) == 0
        assert f"a run is live (pid {__import__('os').getpid()}" in capsys.readouterr().out
        assert cli.main([command, str(manifest), "--json"]) == 0
        assert "pid" in json.loads(capsys.readouterr().out)["live_run"]
    finally:
        journal.close()
    assert cli.main([command, str(manifest)]) == 0
    assert "a run is live" not in capsys.readouterr().out
    assert cli.main([command, str(manifest), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["live_run"] is None


def test_the_read_commands_start_without_the_run_stack(tmp_path: Path) -> None:
    """Building the parser and running `validate` imports neither httpx nor the scheduler: a
    read command does not pay for the run's imports (figures in BENCHMARKS.md)."""
    import subprocess
    import sys

    manifest = write_manifest(tmp_path, jobs=1)
    probe = (
        "import sys; from wanbatch import cli; code = cli.main(['validate', sys.argv[1]]);"
        " loaded = [m for m in ('httpx', 'wanbatch.scheduler', 'wanbatch.client', 'h11')"
        " if m in sys.modules]; print('LOADED', loaded); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(manifest)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


def test_the_trees_own_retry_yaml_gone_is_not_a_warning(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """The README's flow: a failure, retry.yaml edited and retried (it then goes away, as
    nothing failed any more). Later runs and reports say nothing about the missing retry.yaml:
    wanbatch removed it itself."""
    sim = make_sim(flagged_words=("forbidden",))
    manifest = write_manifest(tmp_path, jobs=2)
    manifest.write_text(manifest.read_text().replace("number 1", "number 1 forbidden"))
    assert run_cli("run", manifest, sim) == 1
    retry = out_dir(manifest) / "retry.yaml"
    retry.write_text(retry.read_text().replace(" forbidden", ""))
    assert run_cli("retry", retry, sim, "--yes") == 0
    assert not retry.exists()
    capsys.readouterr()
    assert cli.main(["report", str(manifest)]) == 0
    assert "leaves out" not in capsys.readouterr().err


def test_many_failures_are_grouped_by_reason_in_the_closing_lines() -> None:
    """300 jobs failed for one reason (a base URL without /v1): one line with the count and a
    few ids, not 300 identical lines; a few failures are still listed one by one."""
    from wanbatch.runend import RunEnd, closing_lines
    from wanbatch.summary import RunSummary

    end = RunEnd("x", "x.yaml", "out", True)
    many = RunSummary(total=301, failed={f"shot-{n}": "create: No route" for n in range(300)})
    many.failed["odd"] = "blocked"
    text = "\n".join(closing_lines(end, many))
    assert len(text.splitlines()) < 20
    assert "300 x create: No route (shot-0, shot-1, shot-2 and 297 more)" in text
    assert "1 x blocked (odd)" in text
    few = RunSummary(total=2, failed={"shot-13": "a", "shot-5": "b"})
    lines = closing_lines(end, few)
    assert lines.index("    shot-5: b") < lines.index("    shot-13: a")


def test_creates_refused_by_a_rejected_key_are_journaled_as_not_created(
    tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two creates on the wire; the first 401 stops the run while the second is still out,
    and its own 401 comes after the stop. Both are certainly not created, and journaled so:
    the next run must not warn that they may have been paid twice."""
    from hostile import Answer, json_response, serve

    posts: list[str] = []

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        posts.append(method)
        refused = json_response(401, '{"error": {"message": "bad key"}}')
        return Answer(refused, delay_seconds=0.0 if len(posts) == 1 else 0.5)

    monkeypatch.setenv(KEY_ENV, "sk-wan-rejected")
    manifest = write_manifest(tmp_path, jobs=2, concurrency=2)
    with serve(script) as server:
        argv = ["run", str(manifest), "-q", "--base-url", server.base_url]
        assert cli.main(argv) == 3
    records = read_journal(out_dir(manifest)).records
    assert len(posts) == 2
    assert {record.state for record in records.values()} == {JobState.PLANNED}
