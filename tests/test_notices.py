"""Webhook notices over real sockets: the receiver's rules (signed, unsigned, forged, replayed,
late), and runs whose polls are woken by the simulator's notices: completion is found at about
one poll per job although the fallback polls are set very slow, and nothing is paid twice."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook
from structlog.testing import capture_logs

from wanbatch import cli
from wanbatch.backoff import PollPolicy
from wanbatch.client import ProviderApi, VideoFetcher, fetch_public_json
from wanbatch.commands.session import keyed_check as _keyed_check
from wanbatch.errors import UsageError
from wanbatch.journal import Journal, read_journal, state_dir
from wanbatch.manifest import load_manifest
from wanbatch.models import JobState
from wanbatch.noticerules import (
    MAX_NOTICE_BYTES,
    BurstRule,
    DeliveryLog,
    NoticePace,
    SignatureCheck,
    ed25519_keys,
)
from wanbatch.notices import NoticeReceiver, notice_path, parse_listen
from wanbatch.providers import PROVIDERS
from wanbatch.providers.base import Notice
from wanbatch.providers.wanapi import WanApiProvider
from wanbatch.scheduler import Runner, RunOptions
from wanbatch.simulator import SimulatorServer
from wanbatch.submit import idempotency_key_for

from hostile import Answer as HostileAnswer
from hostile import json_response, serve

KEY_ENV = "WANBATCH_TEST_KEY"
SECRET_ENV = "WANBATCH_TEST_NOTIFY_SECRET"
SECRET = "whsec_" + base64.b64encode(b"a test secret, 32 bytes long....").decode()
SLOW = "30"  # --poll-interval: the fallback polls would come after two minutes (x4)
NOTICE = json.dumps({"id": "task-1", "status": "succeeded"}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signed(body: bytes, msg_id: str = "msg_1", at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed as Replicate signs."""
    at = at or datetime.now(tz=UTC)
    signature = Webhook(SECRET).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


# --- the receiver on a real socket --------------------------------------------------------


def exchange(
    check: SignatureCheck,
    requests: list[tuple[str, str, Mapping[str, str], bytes]],
    on_task: Callable[[str], str] | None = None,
) -> tuple[list[int], NoticeReceiver, list[str]]:
    """Serve a receiver on /hook and send it ``requests`` (method, path, headers, body)."""
    woken: list[str] = []

    def wake(task_id: str) -> str:
        woken.append(task_id)
        return on_task(task_id) if on_task else "woken"

    receiver = NoticeReceiver(("127.0.0.1", 0), "/hook", WanApiProvider().read_notice, check, wake)
    statuses: list[int] = []

    async def go() -> None:
        port = await receiver.open()
        async with anyio.create_task_group() as group:
            group.start_soon(receiver.serve)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for method, path, headers, body in requests:
                    answer = await client.request(method, path, headers=headers, content=body)
                    statuses.append(answer.status_code)
            group.cancel_scope.cancel()

    anyio.run(go)
    return statuses, receiver, woken


def test_a_signed_notice_wakes_its_task_and_a_forged_one_wakes_nothing() -> None:
    check = SignatureCheck.for_provider("replicate", SECRET)
    forged = {
        **signed(NOTICE, "msg_2"),
        "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode(),
    }
    other_body = json.dumps({"id": "task-2", "status": "succeeded"}).encode()
    with capture_logs() as logs:
        statuses, receiver, woken = exchange(
            check,
            [
                ("POST", "/hook", signed(NOTICE), NOTICE),
                ("POST", "/hook", forged, NOTICE),
                ("POST", "/hook", signed(NOTICE, "msg_3"), other_body),  # signed for another body
                ("POST", "/hook", {}, NOTICE),  # unsigned, where the provider signs
            ],
        )
    assert statuses == [200, 401, 401, 401]
    assert woken == ["task-1"]
    assert receiver.counts["refused"] == 3
    assert SECRET not in repr(logs) and SECRET.removeprefix("whsec_") not in repr(logs)


def test_a_replayed_delivery_is_answered_and_polls_nothing() -> None:
    headers = signed(NOTICE, "msg_same")
    statuses, receiver, woken = exchange(
        SignatureCheck.for_provider("replicate", SECRET),
        [("POST", "/hook", headers, NOTICE), ("POST", "/hook", headers, NOTICE)],
    )
    assert statuses == [200, 200]  # the sender stops retrying
    assert woken == ["task-1"]
    assert receiver.counts["repeated"] == 1


def test_a_notice_signed_too_long_ago_is_refused() -> None:
    late = datetime.now(tz=UTC) - timedelta(minutes=10)
    early = datetime.now(tz=UTC) + timedelta(minutes=10)
    statuses, _, woken = exchange(
        SignatureCheck.for_provider("replicate", SECRET),
        [
            ("POST", "/hook", signed(NOTICE, "msg_old", late), NOTICE),
            ("POST", "/hook", signed(NOTICE, "msg_new", early), NOTICE),
        ],
    )
    assert statuses == [401, 401]
    assert woken == []


def test_unsigned_wanapi_notices_are_hints_and_unknown_tasks_are_counted() -> None:
    statuses, receiver, woken = exchange(
        SignatureCheck.for_provider("wanapi", None),
        [
            ("POST", "/hook", {}, NOTICE),
            ("POST", "/hook", {}, json.dumps({"id": "../etc", "status": "x"}).encode()),
            ("POST", "/hook", {}, b"not json"),
        ],
        on_task=lambda task_id: "unknown",
    )
    assert statuses == [200, 400, 400]
    assert woken == ["task-1"]
    assert receiver.counts["unknown"] == 1 and receiver.counts["unreadable"] == 2


def test_only_small_posts_on_its_path_are_read() -> None:
    big = b"{" + b" " * MAX_NOTICE_BYTES + b"}"

    async def chunks() -> Any:
        yield big[:1000]
        yield big[1000:]

    statuses, receiver, woken = exchange(
        SignatureCheck(None, None),
        [
            ("GET", "/hook", {}, b""),
            ("POST", "/other", {}, NOTICE),
            ("POST", "/hook", {}, big),
        ],
    )
    assert statuses == [405, 404, 413]
    assert woken == []

    async def chunked() -> int:
        receiver = NoticeReceiver(
            ("127.0.0.1", 0), "/hook", WanApiProvider().read_notice, SignatureCheck(None, None),
            lambda task_id: "woken",
        )  # fmt: skip
        port = await receiver.open()
        async with anyio.create_task_group() as group:
            group.start_soon(receiver.serve)
            async with httpx.AsyncClient() as client:
                try:
                    answer = await client.post(f"http://127.0.0.1:{port}/hook", content=chunks())
                    status = answer.status_code
                except httpx.HTTPError:  # the receiver may close before the body is all sent
                    status = 413
            group.cancel_scope.cancel()
        assert receiver.counts["too_large"] == 1
        return status

    assert anyio.run(chunked) == 413


def test_settings_are_checked_before_anything_is_sent() -> None:
    assert parse_listen("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_listen("[::1]:9") == ("::1", 9)
    for bad in ("8080", "host:", "host:99999", ":80"):
        with pytest.raises(UsageError):
            parse_listen(bad)
    assert notice_path("https://hooks.example.com/wanbatch/n") == "/wanbatch/n"
    with pytest.raises(UsageError):
        notice_path("ftp://hooks.example.com/")
    with pytest.raises(UsageError):
        notice_path("https://user:pw@hooks.example.com/")
    with pytest.raises(ValueError, match="not signed with a shared secret"):
        SignatureCheck.for_provider("wanapi", SECRET)


# --- the pure rules -----------------------------------------------------------------------


def test_the_rules_drop_repeats_fold_bursts_and_slow_the_fallback() -> None:
    log = DeliveryLog(limit=2)
    assert [log.repeat(x) for x in ("a", "a", "b", "c", "a", None, None)] == [
        False, True, False, False, False, False, False,
    ]  # fmt: skip
    burst = BurstRule(window_seconds=1.0)
    assert burst.due(None, 10.0) == 10.0 and burst.due(9.5, 10.0) == 10.5
    pace = NoticePace(factor=4.0, misses=2)
    # Each further notice-woken poll of one task waits twice as long (a forged stream costs
    # a few polls per task, not one a second: found in review), up to a cap.
    assert burst.due(9.5, 10.0, woken=1) == 11.5 and burst.due(9.5, 10.0, woken=3) == 17.5
    assert burst.due(0.0, 10.0, woken=40) == burst.max_window_seconds
    assert pace.stretch(10.0, 12.0) == 18.0
    assert not pace.finished(woken=False)
    assert pace.finished(woken=False)  # two in a row: notices are not arriving
    assert pace.stretch(10.0, 12.0) == 12.0
    assert not pace.finished(woken=True) and pace.stretch(10.0, 12.0) == 18.0


# --- runs woken by the simulator's notices ------------------------------------------------


def write_manifest(folder: Path, jobs: int = 6) -> Path:
    lines = [
        "name: t",
        f"api: {{key_env: {KEY_ENV}}}",
        "defaults: {model: wan-2-2, duration: 5}",
        "limits: {concurrency: 6, requests_per_second: 200, downloads: 2}",
        "output: {dir: out}",
        "jobs:",
    ]
    lines += [f"  - {{id: job-{n}, prompt: a test prompt number {n}}}" for n in range(jobs)]
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(
    monkeypatch: pytest.MonkeyPatch, manifest: Path, sim: SimulatorServer, *extra: str
) -> int:
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    argv = ["run", str(manifest), "--base-url", sim.base_url, "-q", *extra]
    return cli.main(argv)


def notices_heard(manifest: Path) -> dict[str, Any]:
    log = state_dir(manifest.parent / "out") / "log.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return next(e for e in events if e.get("event") == "notices.heard")


def test_notices_wake_the_polls_of_a_run_whose_polls_are_slow(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 30 s poll interval (120 s as a fallback) the run still ends as soon as the
    renders do: each task's notice woke its one poll."""
    sim = make_sim(generation_seconds=0.2)
    manifest = write_manifest(tmp_path)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    code = run_cli(
        monkeypatch, manifest, sim, "--poll-interval", SLOW, "--notify-url", hook,
        "--listen", f"127.0.0.1:{port}",
    )  # fmt: skip
    stats = sim.stats()
    assert code == 0
    assert stats["webhook_deliveries"] == 6
    assert sorted(stats["polls_by_task"].values()) == [1] * 6  # one poll per job
    assert stats["creates_accepted"] == 6  # nothing paid twice
    heard = notices_heard(manifest)
    assert heard["received"] == 6 and heard["woken"] == 6
    records = read_journal(manifest.parent / "out").records
    assert all(record.state is JobState.DOWNLOADED for record in records.values())


def test_notices_wake_planned_polls_too(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --poll-interval the planner times the polls; notices still wake them, and the
    planned ones, spread out while notices arrive, mostly never come."""
    sim = make_sim(generation_seconds=0.3)
    manifest = write_manifest(tmp_path)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    assert (
        run_cli(monkeypatch, manifest, sim, "--notify-url", hook, "--listen", f"127.0.0.1:{port}")
        == 0
    )
    stats = sim.stats()
    assert stats["creates_accepted"] == 6
    assert notices_heard(manifest)["woken"] == 6
    assert sum(stats["polls_by_task"].values()) <= 2 * 6


def test_the_callback_url_enters_no_fingerprint_nor_idempotency_key(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[set[str]] = []
    fingerprints: list[dict[str, str | None]] = []
    for notify in (False, True):
        folder = tmp_path / ("with" if notify else "without")
        folder.mkdir()
        manifest = write_manifest(folder, jobs=3)
        sim = make_sim(generation_seconds=0.05)
        port = free_port()
        extra = ["--poll-interval", "0.05"]
        if notify:
            extra += ["--notify-url", f"http://127.0.0.1:{port}/n", "--listen", f"127.0.0.1:{port}"]
        assert run_cli(monkeypatch, manifest, sim, *extra) == 0
        keys.append(set(sim.stats()["creates_by_idempotency_key"]))
        records = read_journal(folder / "out").records
        fingerprints.append({job_id: r.fingerprint for job_id, r in records.items()})
        jobs = load_manifest(manifest).jobs
        assert keys[-1] == {idempotency_key_for(job, 0) for job in jobs}
    assert keys[0] == keys[1]
    assert fingerprints[0] == fingerprints[1]


def test_late_and_unknown_notices_cost_no_poll(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """After a task's poll found it finished, its notice (late, or replayed) polls nothing;
    nor does a notice for a task this run does not hold."""
    sim = make_sim(generation_seconds=0.05)
    manifest = load_manifest(write_manifest(tmp_path, jobs=2))
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    statuses: list[int] = []

    async def go() -> NoticeReceiver:
        journal = Journal.open(manifest.output_dir, base_url=sim.base_url, manifest="m.yaml")
        try:
            async with (
                ProviderApi(sim.base_url, sim.api_key, notify_url=url) as api,
                VideoFetcher() as videos,
            ):
                fast = PollPolicy(initial_seconds=0.01, factor=1.0, cap_seconds=0.01)
                runner = Runner(
                    manifest, journal, api, videos, options=RunOptions(poll=fast, notice_pace=4.0)
                )
                receiver = NoticeReceiver(
                    ("127.0.0.1", port), "/hook", WanApiProvider().read_notice,
                    SignatureCheck(None, None), runner.polls.notice,
                )  # fmt: skip
                await receiver.open()
                async with anyio.create_task_group() as group:
                    group.start_soon(receiver.serve)
                    await runner.run()
                    task_ids = [journal.record(job.id).task_id for job in manifest.jobs]
                    async with httpx.AsyncClient() as client:
                        for task_id in [*task_ids, task_ids[0], "task-not-ours"]:
                            body = json.dumps({"id": task_id, "status": "succeeded"})
                            statuses.append((await client.post(url, content=body)).status_code)
                    group.cancel_scope.cancel()
                return receiver
        finally:
            journal.close()

    receiver = anyio.run(go)
    counts = receiver.counts
    assert statuses == [200, 200, 200, 200]  # answered, so that no sender retries
    assert counts["received"] == 6  # the simulator's two, then ours
    assert counts["late"] >= 3 and counts["unknown"] == 1
    assert counts["woken"] + counts["coalesced"] + counts["late"] == 5
    assert sim.stats()["creates_accepted"] == 2


@pytest.mark.parametrize("flags", [["--listen", "127.0.0.1:1"], ["--notify-url", "http://x/"]])
def test_notices_need_both_flags(
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
) -> None:
    sim = make_sim()
    assert run_cli(monkeypatch, write_manifest(tmp_path), sim, *flags) == 2
    assert sim.stats()["creates_total"] == 0


def test_a_secret_that_is_not_set_is_a_usage_error(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim()
    monkeypatch.delenv(SECRET_ENV, raising=False)
    port = free_port()
    code = run_cli(
        monkeypatch, write_manifest(tmp_path), sim, "--notify-url", f"http://127.0.0.1:{port}/",
        "--listen", f"127.0.0.1:{port}", "--notify-secret-env", SECRET_ENV,
    )  # fmt: skip
    assert code == 2 and sim.stats()["creates_total"] == 0
    assert SECRET_ENV not in os.environ


def test_a_flood_of_forged_notices_costs_a_poll_or_two_per_task(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """wanapi's notices are unsigned, so anyone may send them: 20 notices per task while the
    tasks render wake at most one poll per task per burst window, and the run ends as usual."""
    sim = make_sim(generation_seconds=0.8)
    manifest = load_manifest(write_manifest(tmp_path, jobs=3))
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"

    async def go() -> NoticeReceiver:
        journal = Journal.open(manifest.output_dir, base_url=sim.base_url, manifest="m.yaml")
        try:
            async with (
                ProviderApi(sim.base_url, sim.api_key, notify_url=url) as api,
                VideoFetcher() as videos,
            ):
                slow = PollPolicy(initial_seconds=30.0, factor=1.0, cap_seconds=30.0)
                options = RunOptions(poll=slow, notice_pace=4.0)
                runner = Runner(manifest, journal, api, videos, options=options)
                receiver = NoticeReceiver(
                    ("127.0.0.1", port), "/hook", WanApiProvider().read_notice,
                    SignatureCheck(None, None), runner.polls.notice,
                )  # fmt: skip
                await receiver.open()

                async def flood() -> None:
                    # the test looks at the journal now and then (nothing to wait on)
                    while not all(journal.record(job.id).task_id for job in manifest.jobs):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    task_ids = [journal.record(job.id).task_id for job in manifest.jobs]
                    async with httpx.AsyncClient() as client:
                        for _ in range(20):
                            for task_id in task_ids:
                                body = json.dumps({"id": task_id, "status": "succeeded"})
                                await client.post(url, content=body)

                async with anyio.create_task_group() as group:
                    group.start_soon(receiver.serve)
                    group.start_soon(flood)
                    await runner.run()
                    group.cancel_scope.cancel()
                return receiver
        finally:
            journal.close()

    receiver = anyio.run(go)
    stats = sim.stats()
    assert stats["creates_accepted"] == 3
    assert receiver.counts["received"] >= 60
    assert receiver.counts["woken"] <= 2 * 3  # the rest were folded into those polls
    assert all(polls <= 3 for polls in stats["polls_by_task"].values()), stats["polls_by_task"]
    records = read_journal(manifest.output_dir).records
    assert all(record.state is JobState.DOWNLOADED for record in records.values())


# --- fal: ED25519 signatures by the keys of a JWKS document -------------------------------


FAL_KEY = Ed25519PrivateKey.generate()
FAL_NOTICE = json.dumps({"request_id": "req-1", "status": "OK", "payload": {}}).encode()


def fal_jwks(*keys: Ed25519PrivateKey) -> dict[str, Any]:
    raw = [key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for key in keys]
    return {
        "keys": [
            {"kty": "RSA", "n": "x", "e": "AQAB"},  # not an Ed25519 key: skipped
            {"kty": "OKP", "crv": "Ed25519", "x": "!!"},  # malformed: skipped
            *(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": base64.urlsafe_b64encode(r).decode().rstrip("="),
                }
                for r in raw
            ),
        ]
    }


def fal_signed(body: bytes, at: float, key: Ed25519PrivateKey = FAL_KEY) -> dict[str, str]:
    """fal's headers for ``body``: request id, user id, timestamp and body digest, signed."""
    stamp = str(int(at))
    message = "\n".join(["req-1", "user-1", stamp, hashlib.sha256(body).hexdigest()])
    return {
        "x-fal-webhook-request-id": "req-1",
        "x-fal-webhook-user-id": "user-1",
        "x-fal-webhook-timestamp": stamp,
        "x-fal-webhook-signature": key.sign(message.encode()).hex(),
    }


def test_fal_signatures_are_checked_by_its_public_keys() -> None:
    keys = ed25519_keys(fal_jwks(Ed25519PrivateKey.generate(), FAL_KEY))
    assert len(keys) == 2
    now = 1_800_000_000.0
    check = SignatureCheck.for_provider("fal", None, keys)
    check = SignatureCheck(check.scheme, None, keys, clock=lambda: now)
    assert check.verifies
    assert check.problem(fal_signed(FAL_NOTICE, now), FAL_NOTICE) is None
    assert check.problem(fal_signed(FAL_NOTICE, now - 200), FAL_NOTICE) is None
    assert check.problem(fal_signed(FAL_NOTICE, now), FAL_NOTICE + b" ") == "no matching signature"
    assert check.problem(fal_signed(FAL_NOTICE, now - 400), FAL_NOTICE) is not None  # stale
    forged = fal_signed(FAL_NOTICE, now, Ed25519PrivateKey.generate())
    assert check.problem(forged, FAL_NOTICE) == "no matching signature"
    bad_hex = {**fal_signed(FAL_NOTICE, now), "x-fal-webhook-signature": "zz"}
    assert check.problem(bad_hex, FAL_NOTICE) == "malformed signature"
    assert check.problem({}, FAL_NOTICE) == "missing signature headers"
    assert not SignatureCheck.for_provider("fal", None).verifies  # no keys: hints only
    with pytest.raises(ValueError, match="public keys"):
        SignatureCheck.for_provider("fal", SECRET)


def test_a_timestamp_of_unicode_digits_is_refused_not_a_crash() -> None:
    """`"²".isdigit()` is true but `int("²")` raises: a forged fal notice with a superscript
    timestamp is a refused notice (401), never an exception out of the receiver (it ran in the
    run's task group: one unauthenticated request ended the run)."""
    now = 1_800_000_000.0
    keys = ed25519_keys(fal_jwks(FAL_KEY))
    scheme = SignatureCheck.for_provider("fal", None, keys).scheme
    check = SignatureCheck(scheme, None, keys, clock=lambda: now)
    forged = {**fal_signed(FAL_NOTICE, now), "x-fal-webhook-timestamp": "\u00b2"}
    assert check.problem(forged, FAL_NOTICE) is not None


def test_fal_keys_are_fetched_and_their_notices_checked_on_the_socket() -> None:
    document = json.dumps(fal_jwks(FAL_KEY))
    with serve(lambda method, path, headers: HostileAnswer(json_response(200, document))) as host:
        jwks = anyio.run(fetch_public_json, f"http://127.0.0.1:{host.port}/jwks.json")
    keys = ed25519_keys(jwks)

    def read_fal(headers: Mapping[str, str], body: bytes) -> Notice | None:
        request_id = json.loads(body).get("request_id")
        return Notice(request_id, headers.get("x-fal-webhook-request-id"))

    statuses: list[int] = []
    woken: list[str] = []
    receiver = NoticeReceiver(
        ("127.0.0.1", 0), "/hook", read_fal, SignatureCheck.for_provider("fal", None, keys),
        lambda task_id: woken.append(task_id) or "woken",
    )  # fmt: skip

    async def go() -> None:
        port = await receiver.open()
        async with anyio.create_task_group() as group:
            group.start_soon(receiver.serve)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                now = datetime.now(tz=UTC).timestamp()
                for headers in (
                    fal_signed(FAL_NOTICE, now),
                    fal_signed(FAL_NOTICE, now, Ed25519PrivateKey.generate()),
                    {},
                ):
                    answer = await client.post("/hook", headers=headers, content=FAL_NOTICE)
                    statuses.append(answer.status_code)
            group.cancel_scope.cancel()

    anyio.run(go)
    assert statuses == [200, 401, 401]
    assert woken == ["req-1"]


def test_fal_keys_that_cannot_be_had_leave_notices_as_hints() -> None:
    with capture_logs() as logs:
        check = anyio.run(
            _keyed_check, "fal", f"http://127.0.0.1:{free_port()}/k", structlog.get_logger()
        )
    assert check is None
    assert [entry["event"] for entry in logs] == ["notices.keys_unavailable"]


def test_a_notice_that_beats_the_polling_still_wakes_it(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer]
) -> None:
    """A task may end (and its notice come) before its poll loop begins: the notice is kept,
    and the first poll goes at once instead of after the slow fallback wait."""
    sim = make_sim(generation_seconds=0.0)
    manifest = load_manifest(write_manifest(tmp_path, jobs=2))
    runners: list[Runner] = []

    def notice_first(point: str, job_id: str) -> None:
        if point == "after_created":  # the task id is journaled; its polling has not begun
            runner = runners[0]
            task_id = runner.journal.record(job_id).task_id
            assert task_id is not None
            assert runner.polls.notice(task_id) == "unknown"

    async def go() -> Runner:
        journal = Journal.open(manifest.output_dir, base_url=sim.base_url, manifest="m.yaml")
        try:
            async with ProviderApi(sim.base_url, sim.api_key) as api, VideoFetcher() as videos:
                slow = PollPolicy(initial_seconds=30.0, factor=1.0, cap_seconds=30.0)
                options = RunOptions(poll=slow, notice_pace=4.0, faults=notice_first)
                runners.append(Runner(manifest, journal, api, videos, options=options))
                with anyio.fail_after(60):  # without the kept notice: 120 s, then a failure
                    await runners[0].run()
                return runners[0]
        finally:
            journal.close()

    runner = anyio.run(go)
    assert runner.polls.pace is not None and runner.polls.pace.heard == 2
    assert sorted(sim.stats()["polls_by_task"].values()) == [1, 1]


WEBHOOK_PROVIDERS = sorted(name for name, p in PROVIDERS.items() if p.capabilities.webhooks)


@pytest.mark.parametrize("provider", WEBHOOK_PROVIDERS)
def test_every_provider_with_webhooks_wakes_polls_by_its_own_notices(
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
) -> None:
    """Each provider's simulator dialect calls back in its own form (wanapi's task view,
    Replicate's signed prediction, fal's queue notice): with 30 s polls the run still ends as
    the renders do, one poll per job, every notice verified where the provider signs."""
    sim = make_sim(provider=provider, generation_seconds=0.2)
    manifest = write_manifest(tmp_path, jobs=4)
    manifest.write_text(
        manifest.read_text().replace(f"api: {{key_env: {KEY_ENV}}}",
                                     f"api: {{key_env: {KEY_ENV}, provider: {provider}}}")
    )  # fmt: skip
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    extra = ["--notify-url", hook, "--listen", f"127.0.0.1:{port}"]
    if provider == "replicate":  # it signs: give wanbatch the secret the dialect signs with
        monkeypatch.setenv("SIM_WEBHOOK_SECRET", sim.config.webhook_secret)
        extra += ["--notify-secret-env", "SIM_WEBHOOK_SECRET"]
    code = run_cli(monkeypatch, manifest, sim, "--poll-interval", SLOW, *extra)
    stats = sim.stats()
    assert code == 0
    assert stats["webhook_deliveries"] == 4
    assert sorted(stats["polls_by_task"].values()) == [1] * 4  # one poll per job
    assert stats["creates_accepted"] == 4
    heard = notices_heard(manifest)
    assert heard["received"] == 4 and heard["woken"] == 4
    assert not heard.get("refused")


def test_an_unverified_forged_notice_does_not_swallow_the_real_one() -> None:
    """Where notices cannot be verified (fal without its keys), the delivery id is the
    sender's word: a forged notice sent mid-render must not make the real one a "repeat"
    (found in review: the genuine completion notice was dropped)."""
    from wanbatch.notices import NoticeReceiver
    from wanbatch.providers.fal import FalProvider

    woken: list[str] = []

    def wake(task_id: str) -> str:
        woken.append(task_id)
        return "woken"

    check = SignatureCheck.for_provider("fal", None)
    receiver = NoticeReceiver(("127.0.0.1", 0), "/hook", FalProvider().read_notice, check, wake)
    forged = json.dumps({"request_id": "req-42", "status": "OK"}).encode()
    genuine = json.dumps(
        {"request_id": "req-42", "status": "OK", "payload": {"video": {"url": "https://v/x"}}}
    ).encode()
    assert receiver.take({}, forged) == 200
    assert receiver.take({}, genuine) == 200
    assert woken == ["req-42", "req-42"]
