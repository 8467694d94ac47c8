"""Machine-readable results: ``run``/``retry`` ``--json``, ``--summary-json``, ``--on-finish``;
``status --json`` and ``plan --json`` with stable keys; ``validate --json`` on a bad manifest;
``validate --list`` as aligned columns. In-process CLI against the simulator over loopback."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEY_ENV
from tests.test_runner import out_dir, stats, write_manifest
from wanbatch import cli
from wanbatch.commands.plan import PLAN_KEYS
from wanbatch.commands.status import STATUS_KEYS, STATUS_ROW_KEYS
from wanbatch.commands.validate import PROBLEM_KEYS, VALIDATE_KEYS
from wanbatch.jobstate import Standing
from wanbatch.runend import COUNT_KEYS, OUTAGE_HOSTS, REQUEST_KINDS, SUMMARY_KEYS

STATES = [str(state) for state in Standing]


def run_json(run_cli: Any, capsys: Any, command: str, manifest: Path, sim: Any, *extra: str) -> Any:
    """Run with --json; stdout must be exactly one JSON document. (record, exit code, stderr)"""
    capsys.readouterr()
    code = run_cli(command, manifest, sim, "--json", *extra)
    captured = capsys.readouterr()
    record = json.loads(captured.out)  # one document and nothing else, or this raises
    return record, code, captured.err


def assert_stable(record: dict[str, Any]) -> None:
    assert list(record) == list(SUMMARY_KEYS)
    assert list(record["counts"]) == list(COUNT_KEYS)
    assert list(record["requests"]) == list(REQUEST_KINDS)


def test_run_json_clean_run(tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any) -> None:
    """A clean run: stdout is the summary record alone, every key present; the human closing
    lines go to stderr."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3)
    record, code, err = run_json(run_cli, capsys, "run", manifest, sim)
    assert code == 0 == record["exit_code"]
    assert_stable(record)
    assert record["counts"]["done"] == 3 and record["counts"]["failed"] == 0
    assert record["failed"] == [] and record["left"] == [] and record["stalled"] == []
    assert record["videos_submitted"] == 3 and record["credits_submitted"] is None
    assert record["report"] == str(out_dir(manifest) / "report.html")
    assert record["retry_manifest"] is None and record["cost_cap"] is None
    assert record["outages"] == {host: {"count": 0, "seconds": 0} for host in OUTAGE_HOSTS}
    assert record["stop_reason"] is None and record["possible_duplicates"] == []
    assert "exit code 0" in err


def test_run_json_with_a_failure(tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any) -> None:
    """A failed job: its id and reason in ``failed``, exit 1 in the record and as the code."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3, last_job_lines=["extra: {aspect_ratio: sideways}"])
    record, code, _ = run_json(run_cli, capsys, "run", manifest, sim)
    assert code == 1 == record["exit_code"]
    assert_stable(record)
    assert [entry["id"] for entry in record["failed"]] == ["job-2"]
    assert "aspect_ratio" in record["failed"][0]["reason"]
    assert record["retry_manifest"] == str(out_dir(manifest) / "retry.yaml")


def test_run_json_stopped_by_a_cost_cap(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """--max-videos: the cap's words in ``cost_cap``, the rest in ``left``, exit 5."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=4, concurrency=1)
    record, code, _ = run_json(run_cli, capsys, "run", manifest, sim, "--max-videos", "2")
    assert code == 5 == record["exit_code"]
    assert_stable(record)
    assert record["videos_submitted"] == 2 and record["counts"]["left"] == 2
    assert record["cost_cap"] and [entry["id"] for entry in record["left"]] == ["job-2", "job-3"]


def test_run_json_with_nothing_to_do(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A resume with nothing left: the same keys, zeros where nothing happened."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    record, code, _ = run_json(run_cli, capsys, "run", manifest, sim)
    assert code == 0
    assert_stable(record)
    assert record["counts"]["already_done"] == 2 and record["counts"]["downloaded_now"] == 0
    assert record["videos_submitted"] == 0
    assert all(count == 0 for count in record["requests"].values())


def test_summary_json_file_without_json(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """--summary-json FILE writes the same record; stdout keeps the human lines."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    target = tmp_path / "sub" / "summary.json"
    target.parent.mkdir()
    capsys.readouterr()
    assert run_cli("run", manifest, sim, "--summary-json", str(target)) == 0
    out = capsys.readouterr().out
    assert "exit code 0" in out and not out.lstrip().startswith("{")
    record = json.loads(target.read_text())
    assert_stable(record)
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]  # nothing left beside


def test_summary_json_equals_stdout(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=1)
    target = tmp_path / "s.json"
    record, _, _ = run_json(run_cli, capsys, "run", manifest, sim, "--summary-json", str(target))
    assert json.loads(target.read_text()) == record


def test_on_finish_gets_the_record_on_stdin(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    got = tmp_path / "got.json"
    code_file = tmp_path / "code"
    command = f"cat > {shlex.quote(str(got))}; echo $WANBATCH_EXIT_CODE > {code_file}"
    record, code, _ = run_json(run_cli, capsys, "run", manifest, sim, "--on-finish", command)
    assert code == 0
    assert json.loads(got.read_text()) == record
    assert code_file.read_text().strip() == "0"


def test_a_failing_on_finish_keeps_the_exit_code(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=1)
    capsys.readouterr()
    assert run_cli("run", manifest, sim, "--on-finish", "cat >/dev/null; exit 7") == 0
    assert "--on-finish exited 7" in capsys.readouterr().err


def test_on_finish_output_does_not_spoil_json_stdout(
    tmp_path: Path, make_sim: Any, monkeypatch: Any, capfd: Any
) -> None:
    """With --json, what the --on-finish command prints goes to stderr: stdout stays one
    JSON document (the command inherits wanbatch's file descriptors)."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=1)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    argv = ["run", str(manifest), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    code = cli.main([*argv, "--json", "--on-finish", "echo from-the-hook"])
    captured = capfd.readouterr()
    assert code == 0
    assert json.loads(captured.out)["exit_code"] == 0
    assert "from-the-hook" in captured.err


def test_run_json_answered_no(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any, monkeypatch: Any
) -> None:
    """On a terminal, answered no: nothing sent, and still the record on stdout (exit 0)."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    monkeypatch.setattr("wanbatch.commands.run.on_terminal", lambda: True)
    monkeypatch.setattr("wanbatch.commands.asking.on_terminal", lambda: True)
    monkeypatch.setattr("builtins.input", lambda: "n")
    monkeypatch.setenv("WANBATCH_CONFIRM_CREDITS", "0")
    record, code, err = run_json(run_cli, capsys, "run", manifest, sim, "--price", "wan-2-2=1")
    assert code == 0 == record["exit_code"]
    assert_stable(record)
    assert record["videos_submitted"] == 0 and record["stopped"]
    assert "Nothing was sent." in err and "Go ahead?" in err
    assert stats(sim)["requests_total"] == 0


def test_retry_json(tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any) -> None:
    """`retry --yes --json`: the same record; the retry's own lines go to stderr."""
    sim = make_sim(failure_rate=1.0)
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 1
    sim.set_config(failure_rate=0.0)
    got = tmp_path / "got.json"
    target = tmp_path / "s.json"
    record, code, err = run_json(
        run_cli,
        capsys,
        "retry",
        manifest,
        sim,
        "--yes",
        "--summary-json",
        str(target),
        "--on-finish",
        f"cat > {shlex.quote(str(got))}",
    )
    assert code == 0 == record["exit_code"]
    assert_stable(record)
    assert record["videos_submitted"] == 2 and record["failed"] == []
    assert "will be submitted again" in err
    assert json.loads(target.read_text()) == record == json.loads(got.read_text())
    assert stats(sim)["tasks_created"] == 4


def test_retry_json_with_nothing_to_retry(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """Nothing failed: still one JSON document on stdout (nothing submitted, exit 0)."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=1)
    assert run_cli("run", manifest, sim) == 0
    record, code, err = run_json(run_cli, capsys, "retry", manifest, sim, "--yes")
    assert code == 0 == record["exit_code"]
    assert_stable(record)
    assert record["videos_submitted"] == 0
    assert "No failed jobs" in err


# --- status and plan ---------------------------------------------------------------------------


def status_json(manifest: Path, capsys: Any, *extra: str) -> Any:
    capsys.readouterr()
    assert cli.main(["status", str(manifest), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_json_keys_and_every_state(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """Every state in counts, zeros included, in the Standing order; stable top-level keys."""
    manifest = write_manifest(tmp_path, jobs=2)
    payload = status_json(manifest, capsys)
    assert list(payload) == list(STATUS_KEYS)
    assert list(payload["counts"]) == STATES
    assert payload["counts"]["new"] == 2 and payload["counts"]["done"] == 0
    assert payload["shown"] == payload["total"] == 2
    assert [list(row) for row in payload["jobs"]] == [list(STATUS_ROW_KEYS)] * 2
    assert payload["jobs"][0]["task_id"] is None and payload["jobs"][0]["journal_state"] is None


def test_status_json_rows_have_every_key(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2, last_job_lines=["extra: {aspect_ratio: sideways}"])
    assert run_cli("run", manifest, sim) == 1
    rows = status_json(manifest, capsys)["jobs"]
    assert [list(row) for row in rows] == [list(STATUS_ROW_KEYS)] * 2
    done, failed = rows
    assert done["state"] == "done" and done["size"] > 0 and done["reason"] is None
    assert failed["state"] == "failed" and "aspect_ratio" in failed["reason"]
    assert failed["path"] is None and failed["note"] is None


def test_status_state_filters_the_rows(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """--state failed (repeatable): only those rows; counts are still over every job."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3, last_job_lines=["extra: {aspect_ratio: sideways}"])
    assert run_cli("run", manifest, sim) == 1
    payload = status_json(manifest, capsys, "--state", "failed")
    assert [row["id"] for row in payload["jobs"]] == ["job-2"]
    assert payload["shown"] == 1 and payload["total"] == 3
    assert payload["counts"]["done"] == 2 and payload["counts"]["failed"] == 1
    payload = status_json(manifest, capsys, "--state", "failed", "--state", "done")
    assert payload["shown"] == 3
    capsys.readouterr()
    assert cli.main(["status", str(manifest), "--state", "failed"]) == 0
    out = capsys.readouterr().out
    assert "job-2" in out and "job-0" not in out and "1 of 3 jobs shown" in out


def test_status_state_refuses_an_unknown_state(tmp_path: Path, capsys: Any) -> None:
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(["status", str(manifest), "--state", "queued"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_plan_json_keys_and_every_state(tmp_path: Path, capsys: Any) -> None:
    manifest = write_manifest(tmp_path, jobs=2)
    capsys.readouterr()
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload) == list(PLAN_KEYS)
    assert list(payload["counts"]) == STATES and list(payload["jobs"]) == STATES
    assert payload["counts"]["new"] == 2 and payload["counts"]["failed"] == 0
    assert payload["lost"] == []
    assert payload["to_submit"] == {"jobs": 2, "seconds": 10, "credits": None}


# --- validate ----------------------------------------------------------------------------------


BAD = """\
name: t
defaults:
  model: wan-2-2
  duration: 5
jobs:
  - id: a
    prompt: fine
  - id: b
    prompt: too long
    duration: -3
"""


def test_validate_json_on_a_bad_manifest(tmp_path: Path, capsys: Any) -> None:
    """Problems as JSON on stdout, exit 2; file, line, key and message each."""
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    capsys.readouterr()
    assert cli.main(["validate", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["ok"] is False
    assert payload["problems"], payload
    problem = payload["problems"][0]
    assert list(payload) == ["ok", "problems"]
    assert list(problem) == list(PROBLEM_KEYS)
    assert problem["file"] == str(path) and problem["line"] == 10
    assert "duration" in problem["key"]


def test_validate_json_on_a_good_manifest_says_ok(tmp_path: Path, capsys: Any) -> None:
    path = write_manifest(tmp_path, jobs=2)
    capsys.readouterr()
    assert cli.main(["validate", str(path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is True and payload["jobs_count"] == 2
    assert list(payload) == list(VALIDATE_KEYS)
    assert cli.main(["validate", str(path), "--json", "--list"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == [*VALIDATE_KEYS, "jobs"]


def test_validate_text_errors_start_with_file_and_line(tmp_path: Path, capsys: Any) -> None:
    """Editors jump to ``file:line:`` at the start of a line (vim -q, Emacs compile mode)."""
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    capsys.readouterr()
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert any(line.startswith(f"{path}:10: jobs[1].duration: ") for line in err.splitlines()), err
    assert "1 problem" in err


def test_validate_list_is_aligned_with_a_header(tmp_path: Path, capsys: Any) -> None:
    path = write_manifest(tmp_path, jobs=2)
    path.write_text(path.read_text().replace("id: job-1", "id: a-much-longer-id-here"))
    capsys.readouterr()
    assert cli.main(["validate", str(path), "--list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["id", "model"])
    assert lines[header].split() == ["id", "model", "seconds", "ratio", "output", "prompt"]
    rows = lines[header + 1 : header + 3]
    starts = {
        column: [line.index(word) for line, word in zip(lines[header:], words, strict=True)]
        for column, words in (
            ("model", ["model", "wan-2-2", "wan-2-2"]),
            ("output", ["output", "job-0.mp4", "a-much-longer-id-here.mp4"]),
        )
    }
    assert len(rows) == 2
    assert all(len(set(found)) == 1 for found in starts.values()), (starts, out)


@pytest.mark.parametrize(("jobs", "said"), [(1, "1 job,"), (2, "2 jobs,")])
def test_validate_counts_are_pluralised(tmp_path: Path, capsys: Any, jobs: int, said: str) -> None:
    path = write_manifest(tmp_path, jobs=jobs)
    capsys.readouterr()
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert said in out
    assert "1 jobs" not in out


@pytest.mark.parametrize("command", ["run", "retry"])
def test_summary_json_into_a_missing_folder_is_refused_before_anything_is_sent(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any, command: str
) -> None:
    """A typo in --summary-json must not cost a whole run and then exit 5: usage error first."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=1)
    target = tmp_path / "no-such-folder" / "s.json"
    capsys.readouterr()
    assert run_cli(command, manifest, sim, "--yes", "--summary-json", str(target)) == 2
    assert "--summary-json" in capsys.readouterr().err
    assert stats(sim)["requests_total"] == 0


def test_a_record_of_nothing_sent_tells_the_tree_as_it_stands(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --json` answered no on a tree with one video done and one failed: the record says
    so (done 1, failed 1 with its reason, the rest left), exit 0, and its meaning is that
    nothing was sent, not "every job rendered"."""
    from wanbatch.commands import asking
    from wanbatch.commands import run as run_command

    sim = make_sim(flagged_words=("1",))
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 1
    text = manifest.read_text() + "  - id: job-2\n    prompt: a test prompt number two\n"
    manifest.write_text(text)
    capsys.readouterr()
    monkeypatch.setattr(run_command, "on_terminal", lambda: True)
    monkeypatch.setattr(asking, "on_terminal", lambda: True)
    monkeypatch.setattr("builtins.input", lambda *a: "n")
    monkeypatch.setenv("WANBATCH_CONFIRM_CREDITS", "0")
    code = run_cli("run", manifest, sim, "--json", "--price", "wan-2-2=1")
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["exit_code"] == 0
    assert record["counts"]["done"] == 1 and record["counts"]["failed"] == 1
    assert record["counts"]["left"] == 1 and record["left"][0]["id"] == "job-2"
    assert [one["id"] for one in record["failed"]] == ["job-1"]
    assert "nothing was sent" in record["exit_meaning"]


def test_a_summary_file_that_cannot_be_written_keeps_the_exit_code_and_on_finish(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """The videos are what the exit code is about: a --summary-json that cannot be written at
    the end (here a folder where files cannot be made, even by root) is said on stderr, the
    exit code stays the run's and --on-finish still gets the record."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=1)
    got = tmp_path / "got.json"
    code = run_cli(
        "run",
        manifest,
        sim,
        "--summary-json",
        "/proc/wanbatch-summary.json",
        "--on-finish",
        f"cat > {got}",
    )
    assert code == 0
    assert "--summary-json" in capsys.readouterr().err
    assert json.loads(got.read_text())["exit_code"] == 0
