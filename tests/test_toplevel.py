"""The top of the process: closed consoles, errors that escape the run, SIGHUP, credentials in
the base URL. Runs go as child processes (a pipe, a terminal, a signal) or in-process
(`cli.main`), always against the simulator on a real loopback socket.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from test_resume import created_count, finish, start_runner, wait_for
from test_watch import child_env, run_in_terminal

from wanbatch import cli
from wanbatch.errors import (
    AuthError,
    CreditsExhaustedError,
    JobRejectedError,
    JournalWriteError,
    ManifestChangedError,
)
from wanbatch.journal import Journal, encode_run_header, journal_path, read_journal
from wanbatch.models import JobState
from wanbatch.stops import EXIT_CODES

from test_runner import KEY_ENV, out_dir, run_argv, stats, videos, write_manifest

INTERNAL = 70  # the exit code of an unexpected error (a bug)


def all_downloaded(manifest: Path, jobs: int) -> None:
    """Every video on disk, every job downloaded in the journal, and the run's end logged."""
    assert sorted(videos(manifest)) == [f"job-{i}" for i in range(jobs)]
    records = read_journal(out_dir(manifest)).records
    assert len(records) == jobs
    assert all(record.state is JobState.DOWNLOADED for record in records.values())
    log = (out_dir(manifest) / ".wanbatch" / "log.jsonl").read_text()
    finished = [json.loads(line) for line in log.splitlines() if '"run.finished"' in line]
    assert finished and finished[-1]["exit_code"] == 0


def crash_argv(manifest: Path, base_url: str, *extra: str) -> list[str]:
    """`wanbatch run` in a child whose run meets a bug (a RuntimeError) once the log is open."""
    code = (
        "import sys, wanbatch.scheduler as s\n"
        "def boom(*a, **k):\n"
        "    raise RuntimeError('the planner fell over')\n"
        "s.plan_work = boom\n"
        "from wanbatch.cli import entrypoint\n"
        "sys.argv = ['wanbatch'] + sys.argv[1:]\n"
        "entrypoint()\n"
    )
    return [sys.executable, "-c", code, *run_argv(manifest, base_url, *extra)[3:]]


# --- 13: a closed console ------------------------------------------------------------------------


def test_a_closed_pipe_drops_the_console_and_the_run_goes_on(tmp_path: Path, make_sim: Any) -> None:
    """`wanbatch run ... 2>&1 | head -1`: the reader leaves after one line; the run still
    downloads every video, journals every job, logs its end, and exits 0."""
    sim = make_sim(generation_seconds=0.3)
    manifest = write_manifest(tmp_path, jobs=6, concurrency=2)
    argv = run_argv(manifest, sim.base_url, "--poll-interval", "0.02", "--progress-every", "0.05")
    child = subprocess.Popen(
        argv, env=child_env(sim), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert child.stdout is not None
    first = child.stdout.readline()  # `head -1`
    child.stdout.close()  # ... and the reader is gone
    code = child.wait(timeout=60)
    assert b"run.started" in first
    assert code == 0
    all_downloaded(manifest, 6)
    assert stats(sim)["tasks_created"] == 6


def test_a_closed_stdout_keeps_the_exit_code(tmp_path: Path, make_sim: Any) -> None:
    """`wanbatch run ... | true`: the summary has nowhere to go; the exit code is still the
    run's (1: a job failed), not a traceback's or a pipe's."""
    sim = make_sim(generation_seconds=0.1, flagged_words=("2",))  # "number 2" is refused
    manifest = write_manifest(tmp_path, jobs=3)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read stdout
    child = subprocess.Popen(
        run_argv(manifest, sim.base_url, "--poll-interval", "0.02"),
        env=child_env(sim),
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    records = read_journal(out_dir(manifest)).records
    assert [r.state for r in records.values()].count(JobState.DOWNLOADED) == 2


@pytest.mark.parametrize("fd", [1, 2])
def test_a_stream_closed_from_the_start_is_no_console(
    fd: int, tmp_path: Path, make_sim: Any
) -> None:
    """`wanbatch run ... 2>&-` (Python then has no sys.stderr at all) or `>&-`: the run goes on."""
    sim = make_sim(generation_seconds=0.1)
    manifest = write_manifest(tmp_path, jobs=3)
    child = subprocess.Popen(
        run_argv(manifest, sim.base_url, "--poll-interval", "0.02"),
        env=child_env(sim),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(fd),  # after the redirections: the child starts without it
    )
    assert child.wait(timeout=60) == 0
    all_downloaded(manifest, 3)


def test_a_closed_terminal_drops_the_live_view_and_the_run_goes_on(
    tmp_path: Path, make_sim: Any
) -> None:
    """The live view's terminal goes away mid-run (its writes fail with EIO): the run finishes."""
    sim = make_sim(generation_seconds=0.3)
    manifest = write_manifest(tmp_path, jobs=6, concurrency=2)
    master, slave = os.openpty()
    child = subprocess.Popen(
        run_argv(manifest, sim.base_url, "--poll-interval", "0.02"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=child_env(sim, TERM="xterm-256color"),
    )
    os.close(slave)
    ready, _, _ = select.select([master], [], [], 30)
    assert ready and os.read(master, 65536)  # the live view started
    os.close(master)  # the terminal is gone
    code = child.wait(timeout=60)
    assert code == 0
    all_downloaded(manifest, 6)


@pytest.mark.parametrize("argv", [["validate", "--list"], ["--help"], ["plan"]])
def test_a_reader_who_leaves_at_once_gets_no_traceback(argv: list[str], tmp_path: Path) -> None:
    """`wanbatch validate --list | true`: nothing to read it; exit 0 and nothing on stderr."""
    manifest = write_manifest(tmp_path, jobs=300)
    command = [*argv[:1], str(manifest), *argv[1:]] if argv != ["--help"] else argv
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run(
        [sys.executable, "-m", "wanbatch", *command],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


# --- 14: errors that escape the run ------------------------------------------------------------


def changed_after_a_run(tmp_path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest run to the end, then one job's prompt edited."""
    manifest = write_manifest(tmp_path, jobs=2)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    argv = ["run", str(manifest), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    assert cli.main(argv) == 0
    manifest.write_text(manifest.read_text().replace("number 1", "number one, edited"))
    return manifest


def test_a_changed_manifest_under_the_live_view_is_one_clear_message(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's retry flow with the live view on (a terminal): the changed job is named,
    exit 2, no traceback and no exception group."""
    sim = make_sim()
    manifest = changed_after_a_run(tmp_path, sim, monkeypatch)
    code, output = run_in_terminal(
        run_argv(manifest, sim.base_url, "--poll-interval", "0.02"),
        child_env(sim, TERM="xterm-256color"),
    )
    text = output.decode("utf-8", "replace")
    assert code == 2, text
    assert "job-1" in text and "--resubmit-changed" in text
    assert "Traceback" not in text and "ExceptionGroup" not in text
    assert stats(sim)["tasks_created"] == 2  # nothing was sent again


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A bug inside the run: one line (type, message, where the traceback is), the traceback in
    the log file, and an exit code of its own from the table."""
    import wanbatch.scheduler

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the planner fell over")

    monkeypatch.setattr(wanbatch.scheduler, "plan_work", boom)
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    code = cli.main(["run", str(manifest), "--base-url", sim.base_url, "-q"])
    err = capsys.readouterr().err
    log = out_dir(manifest) / ".wanbatch" / "log.jsonl"
    assert code == INTERNAL and INTERNAL in EXIT_CODES
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "RuntimeError: the planner fell over" in lines[0] and str(log) in lines[0]
    crashed = [json.loads(line) for line in log.read_text().splitlines() if "run.crashed" in line]
    assert crashed and "Traceback" in crashed[0]["traceback"]
    assert "plan_work" in crashed[0]["traceback"] or "boom" in crashed[0]["traceback"]


def test_an_unexpected_error_under_the_live_view_is_one_line(tmp_path: Path, make_sim: Any) -> None:
    """The same bug with the live view on: one line on the terminal, no traceback there."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    code, output = run_in_terminal(
        crash_argv(manifest, sim.base_url), child_env(sim, TERM="xterm-256color")
    )
    text = output.decode("utf-8", "replace")
    assert code == INTERNAL, text
    assert "RuntimeError: the planner fell over" in text
    assert "Traceback" not in text and "ExceptionGroup" not in text
    log = (out_dir(manifest) / ".wanbatch" / "log.jsonl").read_text()
    assert "run.crashed" in log and "Traceback" in log


def test_a_bug_outside_a_run_writes_its_traceback_to_a_file_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A command with no log of its own (`validate`) names the file that holds the traceback."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("lost")

    from wanbatch.commands import validate

    monkeypatch.setattr(validate, "describe", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(["validate", str(manifest)]) == INTERNAL
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "KeyError" in lines[0]
    named = [Path(word.rstrip(").;,")) for word in lines[0].split() if "wanbatch-crash" in word]
    assert named and "Traceback" in named[0].read_text()


@pytest.mark.parametrize(
    ("leaves", "expected"),
    [
        # every leaf ours: the most severe one is handled as itself
        ([ManifestChangedError(["a"], "job a changed; pass --resubmit-changed")], 2),
        (
            [AuthError("key rejected"), [JournalWriteError("journal: disk full")]],
            JournalWriteError.exit_code,
        ),
        # one leaf is not ours: a bug, whatever else came with it
        ([CreditsExhaustedError("no credits"), [AuthError("key rejected")]], 3),
        ([JobRejectedError("bad prompt"), AuthError("key rejected")], 3),
        ([ManifestChangedError(["a"], "changed"), ValueError("oops")], INTERNAL),
    ],
)
def test_exception_groups_are_unwrapped_at_the_top(
    leaves: list[Any], expected: int, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    """However deeply a task group nests them, errors reach the user as one line and a code."""
    from wanbatch.commands import run as app

    def group(items: list[Any]) -> ExceptionGroup[Exception]:
        return ExceptionGroup(
            "unhandled errors in a TaskGroup",
            [group(item) if isinstance(item, list) else item for item in items],
        )

    def run(*args: Any, **kwargs: Any) -> int:
        raise group(leaves)

    monkeypatch.setattr(app, "execute", run)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["run", str(write_manifest(tmp_path, jobs=1))]) == expected
    err = capsys.readouterr().err
    assert "ExceptionGroup" not in err and "Traceback" not in err
    if expected == JournalWriteError.exit_code:
        assert err.strip() == "wanbatch: journal: disk full"
    if expected == INTERNAL:
        assert len(err.strip().splitlines()) == 1 and "ValueError: oops" in err


def test_the_simulator_on_a_taken_port_is_one_line(capsys: Any) -> None:
    """`wanbatch sim --port N` with N taken: one line naming the error, exit 2."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["sim", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wanbatch sim: ") and len(err.strip().splitlines()) == 1, err


# --- 19: SIGHUP, and credentials in the base URL -----------------------------------------------


def test_sighup_stops_like_sigterm_with_a_summary(tmp_path: Path, make_sim: Any) -> None:
    """The terminal hangs up mid-run: exit 130 with the summary, the journal whole; the rerun
    collects every video, none paid twice."""
    sim = make_sim(generation_seconds=1.0)
    manifest = write_manifest(tmp_path, jobs=4, concurrency=4)
    child = start_runner(manifest, sim)
    wait_for(lambda: created_count(manifest) >= 2)
    child.send_signal(signal.SIGHUP)
    code, out, err = finish(child, timeout=15)
    assert code == 130, out + err
    assert "stopped by SIGHUP" in out and "exit code 130" in out
    read_journal(out_dir(manifest))  # parses: no torn or damaged record
    code, out, err = finish(start_runner(manifest, sim))
    assert code == 0, out + err
    assert len(videos(manifest)) == 4 and stats(sim)["tasks_created"] == 4


def test_under_nohup_a_hangup_does_not_stop_the_run(tmp_path: Path, make_sim: Any) -> None:
    """SIGHUP ignored by whoever started the run (`nohup wanbatch run ...`): it stays ignored."""
    sim = make_sim(generation_seconds=0.5)
    manifest = write_manifest(tmp_path, jobs=4, concurrency=4)
    child = subprocess.Popen(
        run_argv(manifest, sim.base_url, "--poll-interval", "0.02", "-q"),
        env=child_env(sim),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    wait_for(lambda: created_count(manifest) >= 2)
    child.send_signal(signal.SIGHUP)
    code, out, err = finish(child, timeout=30)
    assert code == 0, out + err
    assert len(videos(manifest)) == 4


SECRET = "pa55-w0rd-xyzzy"


def every_file_text(folder: Path) -> str:
    return "".join(
        path.read_bytes().decode("utf-8", "replace") for path in folder.rglob("*") if path.is_file()
    )


@pytest.mark.parametrize(
    ("command", "where"),
    [
        ("run", "flag"),
        ("run", "env"),
        ("run", "manifest"),
        ("run", "manifest, overridden by the flag"),
        ("report", "manifest"),
        ("validate", "manifest"),
    ],
)
def test_credentials_in_the_base_url_are_refused_and_never_stored(
    command: str,
    where: str,
    tmp_path: Path,
    make_sim: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """`https://user:pass@host` from the flag, the environment or the manifest (which retry.yaml
    copies, even when a flag overrides it): exit 2 with a clear reason; the password is in no
    file of the output tree and not on the console. A failed job makes the run write retry.yaml."""
    sim = make_sim(flagged_words=("1",))
    url = sim.base_url.replace("http://", f"http://someone:{SECRET}@")
    manifest = write_manifest(tmp_path, jobs=2)
    argv = [command, str(manifest)] + (["--poll-interval", "0.02"] if command == "run" else [])
    if where == "flag":
        argv += ["--base-url", url]
    elif where == "env":
        monkeypatch.setenv("WAN_API_BASE_URL", url)
    else:
        text = manifest.read_text().replace("api:\n", f"api:\n  base_url: {url}\n")
        manifest.write_text(text)
        if "overridden" in where:
            argv += ["--base-url", sim.base_url]
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    code = cli.main(argv)
    seen = capsys.readouterr()
    assert code == 2, seen
    assert "user name or password" in seen.err
    assert SECRET not in seen.out + seen.err
    out = tmp_path / "out"
    assert not out.exists() or SECRET not in every_file_text(out)
    assert stats(sim)["tasks_created"] == 0


@pytest.mark.parametrize("tail", ["\n", "\u00e9", " ", "\x7f"])
def test_a_key_a_header_cannot_carry_is_refused_unseen(
    tail: str, tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A key with a newline, a non-ASCII letter, a space or DEL inside (a paste gone wrong):
    exit 2 before anything is sent; the key is on no console line and in no file (httpx's
    "Illegal header value b'Bearer ...'" put it into the log, and the run retried forever)."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    monkeypatch.setenv(KEY_ENV, f"sk-wan-{SECRET}{tail}tail")
    assert cli.main(["run", str(manifest), "--base-url", sim.base_url]) == 2
    seen = capsys.readouterr()
    assert KEY_ENV in seen.err and "header" in seen.err
    assert SECRET not in seen.out + seen.err
    out = tmp_path / "out"
    assert not out.exists() or SECRET not in every_file_text(out)
    assert stats(sim)["tasks_created"] == 0


def test_the_journal_stores_and_compares_the_base_url_without_credentials(tmp_path: Path) -> None:
    """A journal opened with credentials in its URL stores it without them; one written so by an
    older version resumes against the same host and never echoes the password."""
    journal = Journal.open(tmp_path, base_url=f"https://u:{SECRET}@api.example/v1", manifest="m")
    journal.close()
    assert SECRET not in journal_path(tmp_path).read_text()
    assert read_journal(tmp_path).base_url == "https://api.example/v1"
    Journal.open(tmp_path, base_url="https://api.example/v1", manifest="m").close()

    old = tmp_path / "old"
    journal_path(old).parent.mkdir(parents=True)
    from wanbatch.journal import _seal

    intent = {"v": 1, "at": 2.0, "ev": "intent", "job": "a", "idempotency_key": "k"}
    header = encode_run_header(f"https://u:{SECRET}@api.example/v1", "m")
    journal_path(old).write_bytes(header + _seal({**intent, "fingerprint": "f"}))  # a create sent
    Journal.open(old, base_url="https://api.example/v1", manifest="m").close()
    with pytest.raises(Exception) as caught:
        Journal.open(old, base_url="https://other.example/v1", manifest="m")
    assert SECRET not in str(caught.value) and "api.example/v1" in str(caught.value)
