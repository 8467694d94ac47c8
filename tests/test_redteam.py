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
import zlib
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_watch import child_env, run_in_terminal

from wanbatch import cli
from wanbatch.journal import read_journal
from wanbatch.models import JobState
from wanbatch.stops import EXIT_CODES, INTERNAL_ERROR

from hostile import Answer, http_response, json_response, serve
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
        assert text.strip(), f"exit {code} without a reason"
    return text


def command_argv(command: str, manifest: Path, sim: Any) -> list[str]:
    """``command`` on ``manifest``; run and retry against ``sim`` (a loopback simulator)."""
    argv = [command, str(manifest)]
    if command in ("run", "retry", "salvage"):
        argv += ["-q", "--base-url", sim.base_url, "--poll-interval", "0.02"]
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
    "url", ["https://xn--/v1", "https://xn--ls8h.xn--/v1", "https://127.0.0.1:99999/v1"]
)
def test_a_base_url_whose_host_cannot_be_encoded_is_a_usage_error(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A host that is not a valid internationalised name (`xn--` with nothing after it) or a
    port past 65535 is refused before anything is opened or sent (exit 2), not met mid-run as
    a bug."""
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
    no_httpx = next(c for c in contracts if c.get("forbidden_modules") == ["httpx"])
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
    pure = next(c for c in contracts if {"httpx", "anyio"} <= set(c.get("forbidden_modules", [])))
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


# --- answers: URLs whose host or port cannot be used, numbers too large --------------------

VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4


def hostile_manifest(folder: Path) -> Path:
    path = folder / "m.yaml"
    path.write_text(
        f"name: t\napi: {{key_env: {KEY_ENV}}}\n"
        "limits: {concurrency: 1, requests_per_second: 500, downloads: 1}\n"
        "output: {dir: out}\njobs:\n  - {id: j0, prompt: a cat}\n"
    )
    return path


def run_against(folder: Path, script: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """`wanbatch run` against a hostile server whose create answers ``gen_1`` and whose every
    other answer comes from ``script(port, method, path)``."""

    def answer(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return script(server.port, method, path)

    monkeypatch.setenv(KEY_ENV, "sk-test")
    manifest = hostile_manifest(folder)
    with serve(answer) as server:
        argv = ["run", str(manifest), "--base-url", server.base_url, "-q"]
        return cli.main([*argv, "--poll-interval", "0.01"])


def rendered_at(url: str) -> Answer:
    body = {"id": "gen_1", "status": "succeeded", "video_url": url}
    return Answer(json_response(200, json.dumps(body)))


BAD_VIDEO_URLS = [
    "https://xn--/v.mp4",  # an A-label with nothing after it
    "http://xn--ls8h.xn--/v.mp4",  # a host IDNA refuses
    "http://127.0.0.1:99999/v.mp4",  # a port past 65535
]


@pytest.mark.parametrize("url", BAD_VIDEO_URLS)
def test_a_video_url_whose_host_or_port_cannot_be_used_fails_that_job(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A rendered task's video URL with a host IDNA refuses or a port out of range: the job is
    left with the URL named (not fetched, not retried); no bug (70)."""
    code = run_against(tmp_path, lambda port, method, path: rendered_at(url), monkeypatch)
    text = clean_exit(code, capsys)
    assert "is not an absolute http(s) URL" in text, text


@pytest.mark.parametrize("target", BAD_VIDEO_URLS)
def test_a_redirect_to_a_url_that_cannot_be_used_fails_that_download(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The video host redirects to a URL with a refused host or port: that download fails
    with a reason, no bug (70)."""

    def script(port: int, method: str, path: str) -> Answer:
        if path.startswith("/cdn"):
            return Answer(http_response(302, b"", {"Location": target}))
        return rendered_at(f"http://127.0.0.1:{port}/cdn/v.mp4")

    code = run_against(tmp_path, script, monkeypatch)
    clean_exit(code, capsys)


def test_numbers_too_large_in_headers_are_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A 206 whose Content-Range total has 5,000 digits (more than Python turns into an int)
    and a 503 whose Retry-After has 400 digits (more than a float holds): each is read as a
    number that is not usable, never a crash."""
    sent: list[str] = []

    def script(port: int, method: str, path: str) -> Answer:
        if path.startswith("/cdn"):
            sent.append(path)
            if len(sent) == 1:
                head = {"Content-Type": "video/mp4", "Content-Range": "bytes 0-9/" + "9" * 5000}
                return Answer(http_response(206, VIDEO[:10], head))
            return Answer(http_response(200, VIDEO, {"Content-Type": "video/mp4"}))
        return rendered_at(f"http://127.0.0.1:{port}/cdn/v.mp4")

    code = run_against(tmp_path, script, monkeypatch)
    text = clean_exit(code, capsys)
    assert code == 0, text


def test_a_retry_after_too_large_for_a_float_is_the_longest_wait(tmp_path: Path) -> None:
    """`Retry-After: 999...9` (400 digits) is a wait of the documented maximum, not an
    OverflowError."""
    from wanbatch.backoff import MAX_RETRY_AFTER_SECONDS
    from wanbatch.client import ProviderApi
    from wanbatch.errors import TransientApiError
    from wanbatch.manifest import load_manifest

    job = load_manifest(hostile_manifest(tmp_path)).jobs[0]
    answer = Answer(json_response(503, "{}", {"Retry-After": "9" * 400}))

    async def create(base_url: str) -> None:
        async with ProviderApi(base_url, "sk-test") as api:
            await api.create(job, "key-1")

    with (
        serve(lambda method, path, headers: answer) as server,
        pytest.raises(TransientApiError) as caught,
    ):
        anyio.run(create, server.base_url)
    assert caught.value.retry_after_seconds == MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    "raw",
    [
        # gzip announced, not gzip sent: the body cannot be decoded
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 3\r\nConnection: close\r\n\r\nabc",
        # a redirect (never followed) to a host IDNA refuses
        b"HTTP/1.1 302 Found\r\nLocation: http://xn--/x\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n",
    ],
    ids=["undecodable body", "redirect to a refused host"],
)
def test_an_api_answer_that_cannot_be_read_is_not_a_crash(
    raw: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The first answer of the API host cannot be read: it is a garbled answer (asked again
    with the same Idempotency-Key), not a bug (70); the run then renders the job."""
    answers: list[str] = []

    def script(port: int, method: str, path: str) -> Answer:
        answers.append(path)
        if len(answers) == 1:
            return Answer(raw)
        if path.startswith("/cdn"):
            return Answer(http_response(200, VIDEO, {"Content-Type": "video/mp4"}))
        return rendered_at(f"http://127.0.0.1:{port}/cdn/v.mp4")

    def answer(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST" and answers:
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return script(server.port, method, path)

    monkeypatch.setenv(KEY_ENV, "sk-test")
    manifest = hostile_manifest(tmp_path)
    with serve(answer) as server:
        argv = ["run", str(manifest), "--base-url", server.base_url, "-q"]
        code = cli.main([*argv, "--poll-interval", "0.01"])
    text = clean_exit(code, capsys)
    assert code == 0, text


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_sim_on_a_port_out_of_range_is_a_usage_error(port: str, capsys: Any) -> None:
    """`wanbatch sim --port 99999`: one line and exit 2, as for a port that is taken."""
    code = cli.main(["sim", "--port", port])
    text = clean_exit(code, capsys)
    assert code == 2 and "port" in text, text


# --- files nested too deep for the JSON parser ------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_a_journal_line_nested_too_deep_is_a_damaged_line(
    tmp_path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A journal line whose checksum is right but whose JSON nests 100,000 deep (RecursionError
    in the parser): it is a damaged line (exit 2, `--salvage-journal` named) for plan and run."""
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(command_argv("run", manifest, sim)) == 0
    capsys.readouterr()
    body = b'{"v":1,"deep":' + DEEP + b"}"
    crc = zlib.crc32(body) & 0xFFFFFFFF
    line = body[:-1] + b',"crc":"%08x"}\n' % crc
    journal = out_dir(manifest) / ".wanbatch" / "journal.jsonl"
    journal.write_bytes(line + journal.read_bytes())
    for command in ("plan", "run"):
        code = cli.main(command_argv(command, manifest, sim))
        text = clean_exit(code, capsys)
        assert code == 2 and "--salvage-journal" in text, text


def test_a_part_note_nested_too_deep_is_ignored(
    tmp_path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A planted `NAME.part.json` (the note of a download to resume) nesting 100,000 deep is
    an unreadable note, as bad JSON is: the video is fetched afresh, exit 0."""
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=1)
    out_dir(manifest).mkdir()
    (out_dir(manifest) / "job-0.mp4.part.json").write_bytes(DEEP)
    code = cli.main(command_argv("run", manifest, sim))
    text = clean_exit(code, capsys)
    assert code == 0, text
    assert sorted(videos(manifest)) == ["job-0"]


# --- manifests: numbers past any field's range -----------------------------------------------

HUGE_NUMBERS = {
    "hex.yaml": "name: t\ndefaults: {model: wan-2-2, duration: 0x" + "f" * 5000 + "}\n"
    "jobs:\n  - {id: a, prompt: x}\n",
    "price.yaml": "name: t\npricing: {wan-2-2: " + "9" * 400 + "}\n"
    "defaults: {model: wan-2-2, duration: 5}\njobs:\n  - {id: a, prompt: x}\n",
    "extra.yaml": "name: t\ndefaults: {model: wan-2-2, duration: 5}\n"
    "jobs:\n  - {id: a, prompt: x, extra: {seed: 0b1" + "0" * 20000 + "}}\n",
    "rows.csv": "id,prompt,duration\na,x," + "9" * 5000 + "\n",
}


@pytest.mark.parametrize("name", sorted(HUGE_NUMBERS))
def test_a_number_past_any_field_is_a_manifest_problem(
    name: str, tmp_path: Path, capsys: Any
) -> None:
    """A 5,000-digit hex duration, a 400-digit price (past a float), a 20,000-bit seed, a
    5,000-digit CSV duration: each is a manifest problem naming its key (exit 2), not a bug."""
    path = tmp_path / name
    path.write_text(HUGE_NUMBERS[name])
    code = cli.main(["validate", str(path), "--model", "wan-2-2"])
    text = clean_exit(code, capsys)
    assert code == 2 and name in text, text
    assert any(key in text for key in ("duration", "pricing", "seed")), text


# --- a journal line with a right checksum and a wrong type -----------------------------------


def _reseal(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":")).encode()
    return body[:-1] + b',"crc":"%08x"}' % (zlib.crc32(body) & 0xFFFFFFFF)


@pytest.mark.parametrize(
    ("event", "name", "value"),
    [
        ("downloaded", "path", {"a": 1}),
        ("downloaded", "path", 7),
        ("downloaded", "size", "big"),
        ("intent", "fingerprint", [1]),
        ("created", "at", 1e308),
        ("created", "task_id", ["x"]),
        ("run", "manifest", "a\u0000b"),
    ],
)
def test_a_journal_field_of_the_wrong_type_is_a_damaged_line(
    event: str,
    name: str,
    value: Any,
    tmp_path: Path,
    sim: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """A record whose checksum is right but whose field has the wrong type (a path that is a
    mapping, a time past year 9999, a manifest path with a NUL): plan, status and report say
    the line is damaged and name `--salvage-journal` (exit 2), not a bug (70)."""
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(command_argv("run", manifest, sim)) == 0
    capsys.readouterr()
    journal = out_dir(manifest) / ".wanbatch" / "journal.jsonl"
    lines = journal.read_bytes().splitlines()
    index = next(i for i, line in enumerate(lines) if f'"ev":"{event}"'.encode() in line)
    record = json.loads(lines[index])
    del record["crc"]
    record[name] = value
    lines[index] = _reseal(record)
    journal.write_bytes(b"\n".join(lines) + b"\n")
    for command in ("plan", "status", "report"):
        code = cli.main([command, str(manifest)])
        text = clean_exit(code, capsys)
        assert code == 2 and "--salvage-journal" in text, (command, text)
