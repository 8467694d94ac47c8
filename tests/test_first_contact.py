"""The first request of a run finds nobody: a configuration error, reported at once (issue 14).

A connection refused (nothing listens at the port: a real loopback port, bound then closed) or
a host name that does not resolve, on the run's first request, is a wrong ``--base-url`` or
``api.base_url`` far more often than an outage: the run stops with exit 2 after the first wave,
retries nothing, waits for no probe, and says which host and what to check, never the key.
Once a request of the run reached the host, a refusal is an outage (``test_outage.py``).

The name that does not resolve is a ``.invalid`` host (RFC 2606: never resolves). So that the
test never waits on the sandbox's resolver, ``socket.getaddrinfo`` answers EAI_NONAME for
``.invalid`` names itself (the failure a resolver gives, injected below httpx and anyio, which
run as in a real run).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from test_submit import closed_port_url

from wanbatch import cli
from wanbatch.errors import NotSentError
from wanbatch.outage import first_contact_problem

from test_runner import KEY_ENV, out_dir, write_manifest

KEY = "sk-wan-first-contact-0123456789"


def log_events(manifest: Path) -> list[dict[str, Any]]:
    lines = (out_dir(manifest) / ".wanbatch" / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def run_against(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, str, Path]:
    monkeypatch.setenv(KEY_ENV, KEY)
    manifest = write_manifest(tmp_path, jobs=6, concurrency=2)
    capsys.readouterr()
    code = cli.main(["run", str(manifest), "--base-url", base_url, "--poll-interval", "0.02"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, manifest


def assert_reported_at_once(code: int, text: str, manifest: Path) -> None:
    """Exit 2, nothing retried or waited for, the flags to check named, the key nowhere."""
    assert code == 2, text
    names = [event["event"] for event in log_events(manifest)]
    assert not [name for name in names if name.endswith((".retry", ".waiting_for_host"))], names
    assert "api.unreachable" not in names  # not taken for an outage
    assert "--base-url" in text and "api.base_url" in text, text
    assert "0 retries" in text, text
    tree = [
        path.read_text("utf-8", "replace")
        for path in out_dir(manifest).rglob("*")
        if path.is_file()
    ]
    for shown in (text, *tree):
        assert KEY not in shown


def test_a_refused_first_request_names_the_host_and_what_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    url = closed_port_url()
    host = url.split("//")[1].split("/")[0]  # 127.0.0.1:PORT
    code, text, manifest = run_against(url, tmp_path, monkeypatch, capsys)
    assert_reported_at_once(code, text, manifest)
    assert f"nothing listens at {host} (connection refused)" in text, text
    assert "server is running" in text


@pytest.fixture
def invalid_names_fail_fast(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``getaddrinfo`` fails at once for ``.invalid`` names, as a resolver does (EAI_NONAME)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.rstrip(".").endswith(".invalid"):
            asked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_host_that_does_not_resolve_is_named_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, invalid_names_fail_fast: Any
) -> None:
    code, text, manifest = run_against(
        "https://api.wan-typo.invalid/v1", tmp_path, monkeypatch, capsys
    )
    assert invalid_names_fail_fast  # the request went as far as the resolver
    assert_reported_at_once(code, text, manifest)
    assert "the API host api.wan-typo.invalid does not resolve" in text, text
    assert "DNS" in text


def test_the_message_names_the_host_not_a_key_in_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A base URL that carries the key in its query (some gateways ask for that): the message
    names the host and port only."""
    url = closed_port_url() + f"?key={KEY}"
    code, text, manifest = run_against(url, tmp_path, monkeypatch, capsys)
    assert code == 2
    stopped = [line for line in text.splitlines() if "connection refused" in line]
    assert stopped and all(KEY not in line for line in stopped), stopped


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("connection_refused", "nothing listens at api.example.com:8443 (connection refused)"),
        ("name_not_resolved", "the API host api.example.com does not resolve"),
        ("connect_timeout", "could not connect to api.example.com:8443"),
        (None, "could not connect to api.example.com:8443"),
    ],
)
def test_first_contact_problem_says_what_went_wrong_and_what_to_check(
    code: str | None, expected: str
) -> None:
    exc = NotSentError("create: could not connect: some detail", code=code)
    text = first_contact_problem("https://api.example.com:8443/v1?key=secret#x", exc)
    assert expected in text
    assert "--base-url" in text and "api.base_url" in text and "network" in text
    assert "secret" not in text


def test_a_404_to_the_runs_first_create_is_a_wrong_base_url_not_failed_jobs(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base URL without its /v1: the server answers the first create 404 (no such route).
    That is the address, not the jobs: exit 2 at once, naming --base-url, and no job is
    failed (the corrected rerun renders them all; nothing needs `retry`)."""
    from wanbatch.journal import read_journal
    from wanbatch.models import JobState

    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3)
    argv = ["run", str(manifest), "-q", "--base-url", sim.origin, "--poll-interval", "0.02"]
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    assert cli.main(argv) == 2
    err = capsys.readouterr()
    assert "--base-url" in err.out + err.err
    records = read_journal(out_dir(manifest)).records
    assert all(record.state is JobState.PLANNED for record in records.values())
    assert run_cli("run", manifest, sim) == 0
