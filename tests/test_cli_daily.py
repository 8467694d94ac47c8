"""The daily loop's small things (issue 14): no flag abbreviations, help that lists what each
command takes, `wanbatch sim --help` with choices and plain defaults, console lines without
Python reprs, counts with their plural, natural order of ids, the confirmation of `run` and
`retry` (on a real pseudo-terminal), and one vocabulary of states in every view."""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import KEY_ENV

from wanbatch import cli, logs, progress
from wanbatch.commands import COMMANDS, build_parser
from wanbatch.jobstate import LABELS
from wanbatch.settings import CONFIRM_ENV
from wanbatch.simulator import SimulatorServer
from wanbatch.simulator.cli import build_parser as sim_parser
from wanbatch.simulator.config import SimConfig
from wanbatch.summary import ProgressSnapshot

PACKAGE = Path(cli.__file__).resolve().parent
ROOT = PACKAGE.parent


def manifest_file(folder: Path, ids: tuple[str, ...] = ("shot-13", "shot-5")) -> Path:
    """A YAML manifest with prices (10 credits a second, 5 s a job: 50 credits a job)."""
    jobs = "\n".join(f"  - {{id: {job_id}, prompt: a fox number {job_id}}}" for job_id in ids)
    path = folder / "m.yaml"
    path.write_text(
        "name: daily\n"
        f"api: {{key_env: {KEY_ENV}}}\n"
        "pricing: {wan-2-2: 10}\n"
        'defaults: {model: wan-2-2, duration: 5, aspect_ratio: "16:9"}\n'
        "output: {dir: out}\n"
        f"jobs:\n{jobs}\n"
    )
    return path


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


# --- 1. abbreviations off ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "abbreviation"),
    [("status", "--js"), ("run", "--json-l"), ("plan", "--js"), ("retry", "--include")],
)
def test_a_flag_is_never_abbreviated(
    command: str, abbreviation: str, tmp_path: Path, capsys: Any
) -> None:
    """`status m.yaml --js` is an unknown flag (exit 2), not --json; `run --json-l` is not
    --json-logs; nothing is read or sent."""
    path = manifest_file(tmp_path)
    assert cli.main([command, str(path), abbreviation]) == 2
    assert f"unrecognized arguments: {abbreviation}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_parser_refuses_abbreviations() -> None:
    parser = build_parser()
    assert parser.allow_abbrev is False
    assert all(sub.allow_abbrev is False for sub in subparsers(parser).values())
    assert sim_parser().allow_abbrev is False


# --- 2. help ----------------------------------------------------------------------------------


def test_wanbatch_alone_prints_the_whole_help_and_exits_2(capsys: Any) -> None:
    """`wanbatch` with no arguments: the full help (every command with its one line) on
    stderr, exit 2."""
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    help_text = " ".join(captured.err.split())
    assert help_text.startswith("usage: wanbatch")
    for command in COMMANDS:
        assert f"{command.NAME} {' '.join(command.HELP.split())}" in help_text
    assert "sim serve the built-in Wan API simulator" in help_text
    assert "exit codes:" in help_text


@pytest.mark.parametrize("command", [command.NAME for command in COMMANDS])
def test_every_command_has_a_description(command: str, capsys: Any) -> None:
    module = next(c for c in COMMANDS if command == c.NAME)
    assert module.HELP and module.DESCRIPTION and module.DESCRIPTION != module.HELP
    assert cli.main([command, "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert " ".join(module.DESCRIPTION.split()) in shown


# What only a run sends or shows: listed for run and retry, for no other command.
RUNNING = {
    "--simulate",
    "--base-url",
    "--allow-insecure-http",
    "--concurrency",
    "--rps",
    "--poll-interval",
    "--job-deadline",
    "--max-videos",
    "--max-credits",
    "--yes",
    "--resubmit-changed",
    "--keep-changed",
    "--resend-unknown",
    "--max-outage",
    "--until-done",
    "--wait-credits",
    "--summary-json",
    "--on-finish",
    "--notify-url",
    "--listen",
    "--notify-secret-env",
    "--json-logs",
    "--verbose",
    "--quiet",
    "--progress-every",
}


def test_each_command_lists_only_the_flags_that_do_something_for_it() -> None:
    """From the parser, for every command: the run's flags only on run and retry;
    --include-lost only on retry; --json where there is JSON to print; --list on validate."""
    parsers = subparsers(build_parser())
    assert set(parsers) == {command.NAME for command in COMMANDS} | {"sim"}
    listed = {name: flags_of(parser) for name, parser in parsers.items()}
    for name in ("run", "retry"):
        assert listed[name] >= RUNNING | {"--json", "--only", "--where", "--model"}, name
    for name in ("status", "plan", "validate", "report", "completion", "show", "verify"):
        assert not listed[name] & RUNNING, (name, listed[name] & RUNNING)
    assert "--concurrency" not in listed["status"] and "--json-logs" not in listed["status"]
    assert "--simulate" not in listed["validate"]
    assert {name for name, flags in listed.items() if "--price" in flags} == {
        "run",
        "retry",
        "validate",
        "plan",
        "report",
    }
    assert {name for name, flags in listed.items() if "--include-lost" in flags} == {"retry"}
    # retry reads the journal before it could repair it: salvaging is run's
    assert {name for name, flags in listed.items() if "--salvage-journal" in flags} == {"run"}
    assert {name for name, flags in listed.items() if "--list" in flags} == {"validate"}
    assert {name for name, flags in listed.items() if "--json" in flags} == {
        "run",
        "retry",
        "validate",
        "plan",
        "status",
        "show",
        "verify",
    }
    assert listed["completion"] == {"-h", "--help"}
    for name, parser in parsers.items():  # every flag shown says what it does
        for action in parser._actions:
            assert action.help, (name, action.option_strings or action.dest)


# --- 3. `wanbatch sim --help` -----------------------------------------------------------------


def test_sim_help_shows_choices_and_plain_defaults(capsys: Any) -> None:
    """Choices for the provider (the dialects), the distribution and the Retry-After format;
    true/false for switches; defaults as a user writes them (no tuple, None or True reprs)."""
    assert cli.main(["sim", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "--provider {wanapi,dashscope,fal,gateway,replicate}" in shown
    assert "--distribution {fixed,uniform,lognormal}" in shown
    assert "--retry-after-format {seconds,http-date,none}" in shown
    assert "--honour-idempotency {true,false} default true" in shown
    assert "--redirect-downloads {true,false} default false" in shown
    assert "--models MODELS default wan-2-2,wan-2-1" in shown
    assert "--flagged-words FLAGGED_WORDS default none" in shown
    for repr_text in ("()", "('", "None", "True", "False", "{'"):
        assert repr_text not in shown, repr_text


def test_sim_flags_still_shape_the_simulator() -> None:
    """The knobs parse as before: a comma list, a switch, a number, a dialect by name."""
    args = sim_parser().parse_args(
        [
            "--models",
            "a,b",
            "--honour-idempotency",
            "false",
            "--slots",
            "3",
            "--provider",
            "fal",
            "--truncate-first-download",
            "TRUE",
        ]
    )
    changes = {
        name: getattr(args, name)
        for name in SimConfig.__dataclass_fields__
        if getattr(args, name) is not None
    }
    config = SimConfig().replace(**changes)
    assert config.models == ("a", "b") and config.honour_idempotency is False
    assert config.slots == 3 and config.provider == "fal" and config.truncate_first_download


@pytest.mark.parametrize(
    "argv", [["--provider", "nope"], ["--honour-idempotency", "maybe"], ["--slots", "many"]]
)
def test_sim_refuses_a_value_outside_the_choices(argv: list[str], capsys: Any) -> None:
    """(From the parser: a value it let through would start a simulator that serves on.)"""
    with pytest.raises(SystemExit) as refused:
        sim_parser().parse_args(argv)
    assert refused.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_every_dialect_is_a_choice() -> None:
    from wanbatch.simulator.dialects import NAMES, dialect

    assert {dialect(name).name for name in NAMES} == set(NAMES)
    provider = next(a for a in sim_parser()._actions if a.dest == "provider")
    assert tuple(provider.choices or ()) == NAMES


# --- 4. console lines without Python reprs ----------------------------------------------------


def console_lines(*events: dict[str, Any]) -> list[str]:
    console = io.StringIO()
    logs.configure(None, console=console)
    try:
        log = structlog.get_logger("test")
        for event in events:
            fields = dict(event)
            log.info(fields.pop("event"), **fields)
    finally:
        logs.reset()
    return console.getvalue().splitlines()


def test_run_finished_on_the_console_reads_as_words() -> None:
    (line,) = console_lines(
        {
            "event": "run.finished",
            "exit_code": 1,
            "downloaded": 3,
            "failed": 1,
            "left": 0,
            "requests": {"create": 4, "poll": 1, "refresh": 0, "download": 3},
            "wall_seconds": 2.422,
        }
    )
    assert "{" not in line and "'" not in line
    assert "3 downloaded, 1 failed, 0 left" in line
    assert "4 creates, 1 poll, 3 downloads" in line and "refresh" not in line
    assert "exit 1" in line and "2.4 s" in line


def test_no_python_repr_reaches_a_console_line() -> None:
    """Any event: None, lists, tuples and mappings are written as words, not reprs."""
    (line,) = console_lines(
        {
            "event": "some.event",
            "nothing": None,
            "ids": ["shot-5", "shot-13"],
            "pair": ("a", "b"),
            "by_kind": {"create": 2, "poll": 7},
            "empty": [],
            "flag": True,
        }
    )
    assert line.split(" some.event ")[1] == (
        "nothing=none ids=shot-5,shot-13 pair=a,b by_kind=create:2,poll:7 empty=none flag=true"
    )


def test_the_json_log_keeps_the_structure(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], capsys: Any, monkeypatch: Any
) -> None:
    """A real run: the console's run.finished line has no repr; the log file's event keeps
    `requests` a mapping."""
    sim = make_sim()
    path = manifest_file(tmp_path)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    argv = ["run", str(path), "--base-url", sim.base_url, "--poll-interval", "0.02"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    finished = next(line for line in err.splitlines() if "run.finished" in line)
    assert "{" not in finished and "'" not in finished and "2 creates" in finished
    for line in err.splitlines():
        assert not re.search(r"=None\b|=\{|=\[|=\(|='", line), line
    events = [json.loads(line) for line in (tmp_path / "out/.wanbatch/log.jsonl").open()]
    record = next(event for event in events if event["event"] == "run.finished")
    assert record["requests"]["create"] == 2 and isinstance(record["requests"], dict)


# --- 5. plurals and natural order -------------------------------------------------------------


def test_count_says_one_or_many() -> None:
    from wanbatch import words

    assert words.count(1, "job") == "1 job"
    assert words.count(0, "job") == "0 jobs"
    assert words.count(2, "retry", "retries") == "2 retries"
    assert words.count(1, "retry", "retries") == "1 retry"
    assert words.count(1_000, "task") == "1000 tasks"


def strings_of(path: Path) -> list[tuple[int, str]]:
    with path.open("rb") as handle:
        return [
            (token.start[0], token.string)
            for token in tokenize.tokenize(handle.readline)
            if token.type in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING))
        ]


def test_no_message_says_s_in_parentheses() -> None:
    """No noun with an "s" in parentheses in any text of the package: real plurals."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in strings_of(path)
        if re.search(r"[a-z]\((s|es)\)", text.replace("http(s)", ""))
    ]
    assert not found, "\n".join(found)


def test_plan_counts_one_job_in_the_singular(tmp_path: Path, capsys: Any) -> None:
    path = manifest_file(tmp_path, ("only",))
    assert cli.main(["plan", str(path)]) == 0
    assert "A run would submit 1 job: 5 s of video" in capsys.readouterr().out
    assert cli.main(["status", str(path)]) == 0
    assert "\n1 job: 1 new" in capsys.readouterr().out


def failed_run(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: Any
) -> tuple[Path, SimulatorServer]:
    """A finished run of shot-13, shot-5 and shot-7 in which the two flagged ones failed."""
    sim = make_sim(flagged_words=("flagged",))
    path = manifest_file(tmp_path, ("shot-13", "shot-5", "shot-7"))
    text = path.read_text().replace("a fox number shot-13", "flagged fox")
    path.write_text(text.replace("a fox number shot-5", "flagged fox 5"))
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    argv = ["run", str(path), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    assert cli.main(argv) == 1
    return path, sim


def test_failures_are_listed_in_natural_order(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: Any, capsys: Any
) -> None:
    """shot-5 before shot-13 in the closing lines and in what retry will resubmit."""
    path, sim = failed_run(tmp_path, make_sim, monkeypatch)
    closing = capsys.readouterr().out
    assert closing.index("    shot-5:") < closing.index("    shot-13:")
    argv = ["retry", str(path), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    assert cli.main([*argv, "--yes"]) == 1
    out = capsys.readouterr().out
    assert "2 failed jobs will be submitted again" in out and ": shot-5, shot-13" in out


# --- 6. confirmation --------------------------------------------------------------------------


def on_a_terminal(
    argv: list[str], cwd: Path, env: dict[str, str], answer: bytes | None = None
) -> tuple[int, str, str]:
    """`python -m wanbatch ARGV` with stdin and stderr on a pseudo-terminal (stdout a pipe, as
    in `wanbatch run m.yaml > log`); ``answer`` is typed once the question shows. Returns the
    exit code, what the terminal showed and stdout."""
    main, secondary = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "wanbatch", *argv],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", **env},
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        start_new_session=True,
    )
    os.close(secondary)
    screen, typed = b"", False
    deadline = time.monotonic() + 60
    try:
        while True:
            assert time.monotonic() < deadline, f"no end: {screen[-2000:]!r}"
            if answer is not None and not typed and b"[y/N]" in screen:
                os.write(main, answer)
                typed = True
            if select.select([main], [], [], 0.05)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk and child.poll() is not None:
                    break
                screen += chunk
            elif child.poll() is not None:
                break
        assert child.stdout is not None
        out = child.stdout.read().decode()
        return child.wait(timeout=30), screen.decode(errors="replace"), out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()  # type: ignore[union-attr]
        os.close(main)


def run_argv(path: Path, sim: SimulatorServer, *extra: str) -> list[str]:
    return ["run", str(path), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q", *extra]


def test_run_on_a_terminal_above_the_threshold_asks_and_n_sends_nothing(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """100 credits against a threshold of 60: the question on the terminal (not on the
    redirected stdout); "n" -> exit 0, "Nothing was sent.", no task created."""
    sim = make_sim()
    path = manifest_file(tmp_path)
    env = {KEY_ENV: sim.api_key, CONFIRM_ENV: "60"}
    code, screen, out = on_a_terminal(run_argv(path, sim), tmp_path, env, b"n\n")
    assert code == 0, screen
    assert "2 new jobs will be submitted (10 s of video, about 100 credits)" in screen
    assert "Go ahead? [y/N]" in screen and "[y/N]" not in out
    assert "Nothing was sent." in screen + out
    assert sim.stats()["creates_total"] == 0
    assert not list(tmp_path.rglob("*.mp4"))


def test_run_on_a_terminal_answered_y_renders(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    sim = make_sim()
    path = manifest_file(tmp_path)
    env = {KEY_ENV: sim.api_key, CONFIRM_ENV: "60"}
    code, screen, out = on_a_terminal(run_argv(path, sim), tmp_path, env, b"y\n")
    assert code == 0, screen
    assert "[y/N]" in screen and sim.stats()["creates_total"] == 2
    assert "exit code 0" in out


@pytest.mark.parametrize(
    ("extra", "threshold"),
    [((), "1000"), (("--yes",), "60"), (("--simulate",), "0")],
    ids=["under-the-threshold", "yes", "simulate"],
)
def test_run_on_a_terminal_does_not_ask(
    extra: tuple[str, ...],
    threshold: str,
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
) -> None:
    """Under the threshold, with --yes, or --simulate (nothing spent): no question."""
    sim = make_sim()
    path = manifest_file(tmp_path)
    argv = (
        ["run", str(path), "-q", "--simulate"]
        if "--simulate" in extra
        else run_argv(path, sim, *extra)
    )
    env = {KEY_ENV: sim.api_key, CONFIRM_ENV: threshold}
    code, screen, out = on_a_terminal(argv, tmp_path, env)
    assert code == 0, screen
    assert "[y/N]" not in screen + out and "exit code 0" in out
    assert sim.stats()["creates_total"] == (0 if "--simulate" in extra else 2)


def test_run_off_a_terminal_does_not_ask_and_runs(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: Any, capsys: Any
) -> None:
    sim = make_sim()
    path = manifest_file(tmp_path)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    monkeypatch.setenv(CONFIRM_ENV, "0")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(run_argv(path, sim)) == 0
    captured = capsys.readouterr()
    assert "[y/N]" not in captured.out + captured.err
    assert sim.stats()["creates_total"] == 2


class Typed(io.StringIO):
    """Standard input that says it is a terminal (the fast twin of the pty tests)."""

    def isatty(self) -> bool:
        return True


def test_run_asks_when_stdin_is_a_terminal_fast(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: Any, capsys: Any
) -> None:
    sim = make_sim()
    path = manifest_file(tmp_path)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    monkeypatch.setenv(CONFIRM_ENV, "60")
    monkeypatch.setattr(sys, "stdin", Typed("no\n"))
    assert cli.main(run_argv(path, sim)) == 0
    captured = capsys.readouterr()
    assert "Go ahead? [y/N]" in captured.err and "[y/N]" not in captured.out
    assert "Nothing was sent." in captured.out
    assert sim.stats()["creates_total"] == 0


def test_retry_answered_n_on_a_terminal_exits_0_and_sends_nothing(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: Any
) -> None:
    path, sim = failed_run(tmp_path, make_sim, monkeypatch)
    created = sim.stats()["creates_total"]
    argv = ["retry", str(path), "--base-url", sim.base_url, "-q"]
    code, screen, out = on_a_terminal(argv, tmp_path, {KEY_ENV: sim.api_key}, b"n\n")
    assert code == 0, screen
    assert "2 failed jobs will be submitted again" in screen + out
    assert "Resubmit 2 failed jobs? [y/N]" in screen and "[y/N]" not in out
    assert "Nothing was sent." in screen + out
    assert sim.stats()["creates_total"] == created


def test_retry_off_a_terminal_without_yes_is_a_usage_error(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: Any, capsys: Any
) -> None:
    """Exit 2 saying to pass --yes; it does not pretend a question was asked."""
    path, sim = failed_run(tmp_path, make_sim, monkeypatch)
    capsys.readouterr()
    created = sim.stats()["creates_total"]
    assert cli.main(["retry", str(path), "--base-url", sim.base_url, "-q"]) == 2
    captured = capsys.readouterr()
    assert "--yes" in captured.err and "Nothing was sent" in captured.err
    assert "[y/N]" not in captured.out + captured.err
    assert "to skip this question" not in captured.out + captured.err
    assert sim.stats()["creates_total"] == created


def test_retry_answered_n_fast(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: Any, capsys: Any
) -> None:
    path, sim = failed_run(tmp_path, make_sim, monkeypatch)
    capsys.readouterr()
    created = sim.stats()["creates_total"]
    monkeypatch.setattr(sys, "stdin", Typed("n\n"))
    assert cli.main(["retry", str(path), "--base-url", sim.base_url, "-q"]) == 0
    captured = capsys.readouterr()
    assert "Resubmit 2 failed jobs? [y/N]" in captured.err and "[y/N]" not in captured.out
    assert "Nothing was sent." in captured.out
    assert sim.stats()["creates_total"] == created


# --- 7. one vocabulary of states --------------------------------------------------------------


SNAP = ProgressSnapshot(
    total=15,
    new=1,
    rendering=2,
    downloading=3,
    done=4,
    failed=5,
    elapsed_seconds=10.0,
    finished_this_run=9,
    jobs_per_second=0.5,
    eta_seconds=12.0,
    mean_render_seconds=3.0,
    recent_failures=(),
    videos_submitted=5,
    credits_submitted=None,
    stopping=None,
)


def test_the_live_view_says_each_state_as_every_view_does() -> None:
    """Every word the live view prints for a state is one of jobstate.LABELS."""
    shown = [item.plain.rsplit(" ", 1) for item in progress.counts(SNAP)]
    assert [word for word, _ in shown] == ["new", "rendering", "to download", "done", "failed"]
    assert {word for word, _ in shown} <= set(LABELS.values())
    assert [count for _, count in shown] == ["1", "2", "3", "4", "5"]
    state_fields = {
        key.replace("_", " ")
        for key in progress.fields(SNAP)
        if key not in {"jobs_per_minute", "eta", "mean_render_seconds", "elapsed"}
    }
    assert state_fields <= set(LABELS.values()), state_fields - set(LABELS.values())
    assert progress.fields(SNAP)["to_download"] == 3


def test_a_mistyped_flag_is_named_with_its_commands_usage_and_a_suggestion(capsys: Any) -> None:
    """`run m.yaml --simulat`: the run's usage (not the top level's), and "did you mean
    --simulate?"; nothing is read or sent."""
    assert cli.main(["run", "m.yaml", "--simulat"]) == 2
    err = capsys.readouterr().err
    assert "usage: wanbatch run" in err
    assert "unrecognized arguments: --simulat" in err and "did you mean --simulate?" in err
