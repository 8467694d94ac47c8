"""The red team on the merged code (issue 12, "no traceback, a documented code"): a hostile user
against every command, with odd files where the output tree's files and folders should be, odd
base URLs and odd answers from a rude server. Each attack ends with one clear line and an exit
code from the README's table that is not "a bug in wanbatch" (70); nothing paid for is lost.

Commands run in-process (`cli.main`) against the simulator or ``hostile.serve`` on a real
loopback socket; the console is read from ``capsys``.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from test_watch import child_env, run_in_terminal

from wanbatch import cli
from wanbatch.journal import read_journal
from wanbatch.models import JobState
from wanbatch.stops import EXIT_CODES, INTERNAL_ERROR

from test_runner import KEY_ENV, out_dir, run_argv, videos, write_manifest

ROOT = Path(__file__).resolve().parent.parent


def clean_exit(code: int, capsys: Any) -> str:
    """The attack ended as the README promises: no traceback, a documented exit code that is
    not an internal error, and a reason on stderr. Returns the console text."""
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text, text
    assert code in EXIT_CODES and code != INTERNAL_ERROR, (code, text)
    if code not in (0, 1):
        assert captured.err.strip(), f"exit {code} without a reason on stderr"
    return text


def command_argv(command: str, manifest: Path, sim: Any) -> list[str]:
    """``command`` on ``manifest``; run and retry against ``sim`` (a loopback simulator)."""
    argv = [command, str(manifest), "-q"]
    if command in ("run", "retry"):
        argv += ["--base-url", sim.base_url, "--poll-interval", "0.02"]
    if command == "retry":
        argv.append("--yes")
    if command == "salvage":
        argv[0] = "run"
        argv.append("--salvage-journal")
    return argv


# --- the output tree: a file where a folder should be, a folder where a file should be -------


def _output_is_a_file(out: Path) -> None:
    out.write_text("not a folder")


def _state_dir_is_a_file(out: Path) -> None:
    out.mkdir()
    (out / ".wanbatch").write_text("not a folder")


def _journal_is_a_folder(out: Path) -> None:
    (out / ".wanbatch" / "journal.jsonl").mkdir(parents=True)


TREE_FAULTS = {
    "the output folder is a file": _output_is_a_file,
    ".wanbatch is a file": _state_dir_is_a_file,
    "journal.jsonl is a folder": _journal_is_a_folder,
}


@pytest.mark.parametrize("fault", sorted(TREE_FAULTS))
@pytest.mark.parametrize("command", ["plan", "status", "report", "retry", "run", "salvage"])
def test_a_broken_output_tree_is_one_clear_line_for_every_command(
    command: str,
    fault: str,
    tmp_path: Path,
    sim: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """Every command that reads the journal (and `run --salvage-journal`) names the path at
    fault and exits 5 (a folder fault); nothing is sent."""
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=2)
    TREE_FAULTS[fault](out_dir(manifest))
    code = cli.main(command_argv(command, manifest, sim))
    text = clean_exit(code, capsys)
    assert code == 5, text
    assert str(out_dir(manifest)) in text
    assert sim.state.tasks == {}


@pytest.mark.parametrize("fault", sorted(TREE_FAULTS))
def test_simulate_with_a_broken_output_tree_is_one_clear_line(
    fault: str, tmp_path: Path, capsys: Any
) -> None:
    """`run --simulate` makes the simulator's folder before the journal: the same fault gets the
    same clear line and exit code as without --simulate."""
    manifest = write_manifest(tmp_path, jobs=2)
    TREE_FAULTS[fault](out_dir(manifest))
    code = cli.main(["run", str(manifest), "--simulate", "-q"])
    text = clean_exit(code, capsys)
    assert code == 5, text


@pytest.mark.parametrize("damage", ["a folder", "not JSON"])
def test_simulate_with_a_broken_simulator_state_is_one_clear_line(
    damage: str, tmp_path: Path, capsys: Any
) -> None:
    """The simulator's saved tasks (`.wanbatch/simulator-state.json`) a folder or damaged: the
    run names the file and exits with a documented code, sending nothing."""
    manifest = write_manifest(tmp_path, jobs=2)
    state = out_dir(manifest) / ".wanbatch" / "simulator-state.json"
    state.parent.mkdir(parents=True)
    if damage == "a folder":
        state.mkdir()
    else:
        state.write_text("{not json")
    code = cli.main(["run", str(manifest), "--simulate", "-q"])
    text = clean_exit(code, capsys)
    assert "simulator-state.json" in text


def test_a_lock_that_is_a_folder_is_named(
    tmp_path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`.wanbatch/lock` a folder: the message names the lock, not the journal (which is fine)."""
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=1)
    (out_dir(manifest) / ".wanbatch" / "lock").mkdir(parents=True)
    code = cli.main(command_argv("run", manifest, sim))
    text = clean_exit(code, capsys)
    assert code == 5 and "lock" in text and "journal.jsonl" not in text, text


@pytest.mark.parametrize("name", ["report.html", "report.html.tmp", "retry.yaml.tmp"])
def test_report_with_a_folder_in_the_way_is_one_clear_line(
    name: str, tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`wanbatch report` with a folder where report.html (or its temporary file) goes: a clear
    line naming the file, exit 5; after a run, the same fault is a warning and the run's code."""
    sim = make_sim(flagged_words=("test",))
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(command_argv("run", manifest, sim)) == 1  # one failure: retry.yaml is due
    capsys.readouterr()
    in_the_way = out_dir(manifest) / name
    in_the_way.unlink(missing_ok=True)
    in_the_way.mkdir()
    code = cli.main(["report", str(manifest)])
    text = clean_exit(code, capsys)
    assert code == 5 and name.removesuffix(".tmp") in text, text
    code = cli.main(command_argv("run", manifest, sim))
    text = clean_exit(code, capsys)
    assert code == 1 and "could not write the report" in text, text
    assert [p.name for p in out_dir(manifest).glob("*.tmp")] == [name] * name.endswith(".tmp")


# --- the log file: it cannot be opened, or the disk fills under it ----------------------------


@pytest.mark.parametrize("fault", ["a folder", "a full disk"])
def test_a_log_file_that_cannot_be_written_does_not_end_the_run(
    fault: str, tmp_path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`.wanbatch/log.jsonl` a folder, or on a full disk (a link to /dev/full: every write fails
    with ENOSPC): one console warning, the run renders everything, the journal (the source of
    truth) has every job, exit 0."""
    if fault == "a full disk" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=3)
    log = out_dir(manifest) / ".wanbatch" / "log.jsonl"
    log.parent.mkdir(parents=True)
    if fault == "a folder":
        log.mkdir()
    else:
        log.symlink_to("/dev/full")
    code = cli.main(command_argv("run", manifest, sim))
    text = clean_exit(code, capsys)
    assert code == 0, text
    assert text.count("log.jsonl") == 1, text  # one warning, naming the file
    records = read_journal(out_dir(manifest)).records
    assert [r.state for r in records.values()] == [JobState.DOWNLOADED] * 3


# --- the base URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://xn--/v1", "https://xn--ls8h.xn--/v1", "https://a\u00adb.xn--zz/v1"]
)
def test_a_base_url_whose_host_cannot_be_encoded_is_a_usage_error(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A host that is not a valid internationalised name (`xn--` with nothing after it) is
    refused before anything is opened or sent (exit 2), not met mid-run as a bug."""
    monkeypatch.setenv(KEY_ENV, "sk-test")
    monkeypatch.setenv("WAN_API_BASE_URL", url)
    manifest = write_manifest(tmp_path, jobs=1)
    code = cli.main(["run", str(manifest), "-q"])
    text = clean_exit(code, capsys)
    assert code == 2, text
    assert not (out_dir(manifest) / ".wanbatch" / "journal.jsonl").exists()


# --- the import layers ------------------------------------------------------------------------


def test_every_module_has_its_place_in_the_import_layers() -> None:
    """The layers contract covers every module of the package (a module left out may import
    anything), and only client.py may import httpx."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    placed = {name.strip() for row in layers for name in row.replace(":", "|").split("|")}
    no_httpx = next(c for c in contracts if c["forbidden_modules"] == ["httpx"])
    modules = {
        f"wanbatch.{path.stem}"
        for path in (ROOT / "wanbatch").glob("*.py")
        if path.stem not in ("__init__", "__main__")
    }
    assert modules - placed == set()
    assert modules - set(no_httpx["source_modules"]) - {"wanbatch.client"} <= {
        f"wanbatch.{pure}" for pure in _pure_modules(contracts)
    }


def _pure_modules(contracts: list[dict[str, Any]]) -> set[str]:
    pure = next(
        c
        for c in contracts
        if "httpx" in c["forbidden_modules"] and "anyio" in c["forbidden_modules"]
    )
    return {name.removeprefix("wanbatch.") for name in pure["source_modules"]}


# --- the live view: a bug in it is not the end of the run ---------------------------------


def test_a_bug_in_the_live_view_drops_to_plain_lines_and_the_run_goes_on(
    tmp_path: Path, make_sim: Any
) -> None:
    """In a terminal, the live panel fails on its third redraw (a bug in the view, not in the
    run): one line says so, the console goes on as plain lines, every video is downloaded,
    the exit code is 0, and the traceback is in the log, not on the screen."""
    sim = make_sim(generation_seconds=0.3)
    manifest = write_manifest(tmp_path, jobs=4, concurrency=2)
    code = (
        "import sys, wanbatch.progress as p\n"
        "real, calls = p.render, [0]\n"
        "def render(*a, **k):\n"
        "    calls[0] += 1\n"
        "    if calls[0] >= 3:\n"
        "        raise RuntimeError('the panel fell over')\n"
        "    return real(*a, **k)\n"
        "p.render = render\n"
        "from wanbatch.cli import entrypoint\n"
        "sys.argv = ['wanbatch'] + sys.argv[1:]\n"
        "entrypoint()\n"
    )
    argv = [sys.executable, "-c", code, *run_argv(manifest, sim.base_url)[3:]]
    argv += ["--poll-interval", "0.02"]
    exit_code, output = run_in_terminal(argv, child_env(sim, TERM="xterm-256color"))
    text = output.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    assert exit_code == 0, text
    assert "the live view failed" in text and "the panel fell over" in text, text
    assert "4/4 videos" in text
    assert sorted(videos(manifest)) == [f"job-{i}" for i in range(4)]
    log = (out_dir(manifest) / ".wanbatch" / "log.jsonl").read_text()
    failed = [json.loads(line) for line in log.splitlines() if '"view.failed"' in line]
    assert failed and "the panel fell over" in failed[0]["traceback"]
