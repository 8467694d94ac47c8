"""The simulator on its own: plain httpx against its real sockets, one test per behaviour and knob.

None of these go through wanbatch's runner or client: the simulator is judged by the wire alone.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from wanbatch.simulator import SimConfig, SimulatorServer
from wanbatch.simulator.app import ApiApp, SimState
from wanbatch.simulator.video import top_level_boxes

BODY = {
    "model": "wan-2-2",
    "prompt": "a drone shot over a misty forest",
    "duration": 5,
    "aspect_ratio": "16:9",
}


def auth(sim: SimulatorServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.api_key}"}


def create(
    sim: SimulatorServer, body: dict[str, Any] | None = None, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{sim.base_url}/video/generations", json=body or BODY, headers={**auth(sim), **headers}
    )


def get(sim: SimulatorServer, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{sim.base_url}/video/generations/{task_id}", headers=auth(sim))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_status(
    sim: SimulatorServer, task_id: str, wanted: str, limit: float = 10.0
) -> dict[str, Any]:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        view = get(sim, task_id)
        if view["status"] == wanted:
            return view
        time.sleep(0.01)
    raise AssertionError(f"{task_id} never reached {wanted}")


def http_stats(sim: SimulatorServer) -> dict[str, Any]:
    return httpx.get(f"{sim.origin}/_sim/stats").json()  # type: ignore[no-any-return]


def test_create_poll_download_as_documented(make_sim: Callable[..., SimulatorServer]) -> None:
    """Create answers {id, status: queued} with a request id; the task succeeds with a video_url on another origin."""
    sim = make_sim()
    response = create(sim)
    assert response.status_code == 200 and response.headers["x-request-id"]
    task = response.json()
    assert task["status"] == "queued" and task["id"].startswith("gen_")
    view = wait_status(sim, task["id"], "succeeded")
    assert view["video_url"].startswith(sim.cdn_url) and not view["video_url"].startswith(
        sim.origin
    )
    video = httpx.get(view["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    stats = http_stats(sim)
    assert stats["creates_accepted"] == 1 and stats["polls_by_task"][task["id"]] >= 1


def test_queued_then_running_with_one_slot(make_sim: Callable[..., SimulatorServer]) -> None:
    """With one render slot the second task waits queued while the first runs."""
    sim = make_sim(slots=1, generation_seconds=0.5)
    first = create(sim).json()["id"]
    second = create(sim).json()["id"]
    assert get(sim, first)["status"] == "running"
    assert get(sim, second)["status"] == "queued"
    wait_status(sim, second, "running")
    assert get(sim, first)["status"] == "succeeded"


@pytest.mark.parametrize("key", [None, "sk-wan-wrong"])
def test_bad_or_missing_key_gets_401(
    make_sim: Callable[..., SimulatorServer], key: str | None
) -> None:
    """No key or a wrong key: 401 with the OpenAI-style error body."""
    sim = make_sim()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(f"{sim.base_url}/video/generations", json=BODY, headers=headers)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "code"}
    assert sim.stats()["auth_failures"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": "wan-9"}, "model"),
        ({"prompt": ""}, "prompt"),
        ({"duration": 0}, "duration"),
        ({"duration": "5"}, "duration"),
        ({"aspect_ratio": "wide"}, "aspect_ratio"),
        ({"image": "file:///x.png"}, "image"),
        ({"webhook_url": "nope"}, "webhook_url"),
    ],
)
def test_invalid_fields_get_400_naming_the_field(
    make_sim: Callable[..., SimulatorServer], change: dict[str, Any], field: str
) -> None:
    """Each invalid field is refused with 400 and a message that names it; nothing is charged."""
    sim = make_sim(credits=5)
    response = create(sim, {**BODY, **change})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)
    assert sim.stats()["credits"][sim.api_key] == 5


def test_body_that_is_not_json_gets_400(make_sim: Callable[..., SimulatorServer]) -> None:
    """A body that is not JSON is a 400."""
    sim = make_sim()
    response = httpx.post(f"{sim.base_url}/video/generations", content=b"{oops", headers=auth(sim))
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize("distribution", ["fixed", "uniform", "lognormal"])
def test_render_time_distributions(distribution: str) -> None:
    """Render times follow the chosen distribution around the mean, scaled by time_scale, seeded."""
    config = SimConfig(
        generation_seconds=10.0, distribution=distribution, spread=0.5, time_scale=0.1, seed=4
    )
    state = SimState(config)
    samples = [state.render_seconds() for _ in range(2000)]
    mean = sum(samples) / len(samples)
    assert 0.9 <= mean <= 1.1  # 10 s scaled by 0.1
    spread = max(samples) - min(samples)
    if distribution == "fixed":
        assert spread == 0
    elif distribution == "uniform":
        assert min(samples) >= 0.5 * 0.95 and max(samples) <= 1.5 * 1.05
    else:
        assert max(samples) > 1.5  # a long right tail
    again = SimState(config)
    assert [again.render_seconds() for _ in range(5)] == samples[:5]


def test_time_scale_turns_minutes_into_moments(make_sim: Callable[..., SimulatorServer]) -> None:
    """A five-minute render with time_scale 0.0002 finishes within a poll loop."""
    sim = make_sim(generation_seconds=300.0, time_scale=0.0002)
    task = create(sim).json()["id"]
    wait_status(sim, task, "succeeded")


@pytest.mark.parametrize("form", ["seconds", "http-date", "none"])
def test_rate_limit_answers_429_with_retry_after(
    make_sim: Callable[..., SimulatorServer], form: str
) -> None:
    """Past the burst, 429 with Retry-After as seconds, as an HTTP-date, or none, per the knob."""
    sim = make_sim(rate_limit_rps=1.0, rate_limit_burst=2, retry_after_format=form)
    statuses = [create(sim).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = create(sim)
    header = response.headers.get("retry-after")
    if form == "seconds":
        assert header is not None and header.isdigit() and int(header) >= 1
    elif form == "http-date":
        assert (
            header is not None
            and email.utils.parsedate_to_datetime(header).timestamp() > time.time() - 1
        )
    else:
        assert header is None
    assert http_stats(sim)["rate_limited_total"] == 2


def test_requests_inside_the_wait_window_are_counted(
    make_sim: Callable[..., SimulatorServer],
) -> None:
    """A request sent right after a 429 (past the 50 ms grace) counts as inside the window; one after it does not."""
    sim = make_sim(rate_limit_rps=1.0, rate_limit_burst=1, retry_after_format="seconds")
    assert create(sim).status_code == 200
    limited = create(sim)
    assert limited.status_code == 429
    time.sleep(0.1)
    create(sim)
    assert sim.stats()["requests_inside_wait_window"] == 1
    time.sleep(int(limited.headers["retry-after"]) + 0.2)
    before = sim.stats()["requests_inside_wait_window"]
    create(sim)
    assert sim.stats()["requests_inside_wait_window"] == before


def test_credits_one_charge_per_task_402_and_top_up(
    make_sim: Callable[..., SimulatorServer],
) -> None:
    """Each created task costs one credit; at zero creates get 402; the admin endpoint tops up."""
    sim = make_sim(credits=2)
    assert [create(sim).status_code for _ in range(3)] == [200, 200, 402]
    assert create(sim).json()["error"]["code"] == "insufficient_credits"
    topped = httpx.post(f"{sim.origin}/_sim/credits", json={"key": sim.api_key, "credits": 3})
    assert topped.json() == {"key_credits": 3}
    assert create(sim).status_code == 200
    assert sim.stats()["credits"][sim.api_key] == 2 and sim.stats()["tasks_created"] == 3


def test_server_errors_at_a_configured_rate(make_sim: Callable[..., SimulatorServer]) -> None:
    """error_rate 1.0 answers every API request with 500 or 503."""
    sim = make_sim(error_rate=1.0)
    statuses = {create(sim).status_code for _ in range(10)}
    assert statuses <= {500, 503} and statuses
    assert sim.stats()["server_errors_total"] == 10 and sim.stats()["tasks_created"] == 0


def test_failed_generations_carry_an_error(make_sim: Callable[..., SimulatorServer]) -> None:
    """failure_rate 1.0 ends every task failed with an error object and no video."""
    sim = make_sim(failure_rate=1.0)
    view = wait_status(sim, create(sim).json()["id"], "failed")
    assert view["error"]["code"] == "generation_failed" and "video_url" not in view


def test_flagged_words_fail_only_the_prompts_that_name_them(
    make_sim: Callable[..., SimulatorServer],
) -> None:
    """flagged_words: a prompt with the word fails with content_filtered; others succeed."""
    sim = make_sim(flagged_words="celebrity,logo")
    flagged = create(sim, {**BODY, "prompt": "A Celebrity on a red carpet"}).json()["id"]
    clean = create(sim, {**BODY, "prompt": "celebrations in the park"}).json()["id"]
    view = wait_status(sim, flagged, "failed")
    assert view["error"]["code"] == "content_filtered" and "'celebrity'" in view["error"]["message"]
    assert "video_url" in wait_status(sim, clean, "succeeded")


def test_idempotency_key_is_honoured(make_sim: Callable[..., SimulatorServer]) -> None:
    """The same Idempotency-Key returns the same task and charges once."""
    sim = make_sim(credits=10)
    first = create(sim, **{"Idempotency-Key": "k1"}).json()["id"]
    second = create(sim, **{"Idempotency-Key": "k1"}).json()["id"]
    assert first == second
    stats = http_stats(sim)
    assert stats["creates_by_idempotency_key"]["k1"] == {"requests": 2, "accepted": 1}
    assert stats["creates_by_prompt"][BODY["prompt"]] == {"requests": 2, "accepted": 1}
    assert stats["credits"][sim.api_key] == 9


def test_idempotency_can_be_switched_off(make_sim: Callable[..., SimulatorServer]) -> None:
    """With honour_idempotency off, a repeated key makes (and charges) a second task."""
    sim = make_sim(honour_idempotency=False)
    first = create(sim, **{"Idempotency-Key": "k1"}).json()["id"]
    second = create(sim, **{"Idempotency-Key": "k1"}).json()["id"]
    assert first != second
    assert sim.stats()["creates_by_idempotency_key"]["k1"] == {"requests": 2, "accepted": 2}


def finished_url(sim: SimulatorServer) -> str:
    view = wait_status(sim, create(sim).json()["id"], "succeeded")
    return str(view["video_url"])


def test_signed_urls_refuse_tampering_and_expire(make_sim: Callable[..., SimulatorServer]) -> None:
    """A tampered signature gets 403; after url_ttl_seconds the URL answers 403."""
    sim = make_sim()
    url = finished_url(sim)
    assert httpx.get(url.replace("sig=", "sig=0")).status_code == 403
    httpx.post(f"{sim.origin}/_sim/config", json={"url_ttl_seconds": 0.05})
    short = finished_url(sim)
    time.sleep(0.1)
    assert httpx.get(short).status_code == 403
    assert sim.stats()["cdn_expired"] == 1


def test_range_and_if_range(make_sim: Callable[..., SimulatorServer]) -> None:
    """Range gets 206 with Content-Range; If-Range with a stale ETag gets the whole file."""
    sim = make_sim()
    url = finished_url(sim)
    whole = httpx.get(url)
    etag = whole.headers["etag"]
    part = httpx.get(url, headers={"Range": "bytes=100-", "If-Range": etag})
    assert part.status_code == 206
    assert (
        part.headers["content-range"] == f"bytes 100-{len(whole.content) - 1}/{len(whole.content)}"
    )
    assert part.content == whole.content[100:]
    stale = httpx.get(url, headers={"Range": "bytes=100-", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == whole.content
    assert sim.stats()["cdn_range_requests"] == 2


def test_first_download_can_be_cut_short(make_sim: Callable[..., SimulatorServer]) -> None:
    """truncate_first_download breaks the first full download; the next one is whole."""
    sim = make_sim(truncate_first_download=True, video_size=100_000)
    url = finished_url(sim)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url)
    assert len(httpx.get(url).content) == 100_000
    assert sim.stats()["cdn_truncated"] == 1


def test_downloads_can_redirect_to_a_third_origin(make_sim: Callable[..., SimulatorServer]) -> None:
    """redirect_downloads answers 302 to another origin that serves the same bytes."""
    sim = make_sim(redirect_downloads=True)
    url = finished_url(sim)
    first = httpx.get(url)
    assert first.status_code == 302 and first.headers["location"].startswith(sim.mirror_url)
    followed = httpx.get(url, follow_redirects=True)
    assert followed.status_code == 200 and top_level_boxes(followed.content)[0][0] == "ftyp"
    assert sim.stats()["cdn_redirects"] == 2


def test_cdn_counts_requests_carrying_a_key(make_sim: Callable[..., SimulatorServer]) -> None:
    """A request to the CDN with an Authorization header is counted: clients must never send one."""
    sim = make_sim()
    url = finished_url(sim)
    httpx.get(url)
    httpx.get(url, headers=auth(sim))
    stats = sim.stats()
    assert stats["cdn_requests_total"] == 2 and stats["cdn_requests_with_authorization"] == 1


def test_videos_are_real_distinct_and_sized(make_sim: Callable[..., SimulatorServer]) -> None:
    """Each task's video is a well-formed MP4, distinct per task, padded to video_size."""
    sim = make_sim(video_size=20_000)
    first, second = httpx.get(finished_url(sim)).content, httpx.get(finished_url(sim)).content
    assert first != second and len(first) == len(second) == 20_000
    kinds = [kind for kind, _ in top_level_boxes(first)]
    assert kinds[0] == "ftyp" and "moov" in kinds and "mdat" in kinds


def test_a_real_decoder_plays_the_video(
    make_sim: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    """FFmpeg (through PyAV, which bundles it, so CI needs nothing from the system) reads the
    video as one H.264 stream and decodes every frame of it."""
    import av

    sim = make_sim(video_size=50_000)
    path = tmp_path / "v.mp4"
    path.write_bytes(httpx.get(finished_url(sim)).content)
    with av.open(str(path)) as container:
        streams = container.streams.video
        assert len(streams) == 1 and streams[0].codec_context.name == "h264"
        frames = list(container.decode(video=0))
    assert len(frames) >= 10 and (frames[0].width, frames[0].height) == (160, 90)


def test_a_real_decoder_refuses_garbage(tmp_path: Path) -> None:
    """The decoder check above can fail: bytes that are not a video are refused."""
    import av

    path = tmp_path / "v.mp4"
    path.write_bytes(b"<html>not a video</html>" * 100)
    with pytest.raises(av.error.FFmpegError):
        av.open(str(path))


def test_webhook_receives_the_final_task(make_sim: Callable[..., SimulatorServer]) -> None:
    """A task with webhook_url gets its final view POSTed there on completion."""
    received: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sim = make_sim()
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        task = create(sim, {**BODY, "webhook_url": hook}).json()["id"]
        end = time.monotonic() + 10
        # The hook sees the POST before the simulator counts the delivery: wait for both.
        while (not received or sim.stats()["webhook_deliveries"] < 1) and time.monotonic() < end:
            time.sleep(0.01)
        assert received and received[0]["id"] == task and received[0]["status"] == "succeeded"
        assert sim.stats()["webhook_deliveries"] == 1
    finally:
        server.shutdown()


def test_config_changes_at_run_time(make_sim: Callable[..., SimulatorServer]) -> None:
    """POST /_sim/config changes a knob on the live server; an unknown knob is a 400."""
    sim = make_sim()
    assert httpx.post(f"{sim.origin}/_sim/config", json={"error_rate": 1.0}).status_code == 200
    assert create(sim).status_code in (500, 503)
    assert httpx.post(f"{sim.origin}/_sim/config", json={"colour": "red"}).status_code == 400


def test_starts_from_sync_and_async_code() -> None:
    """SimulatorServer works as a context manager and as an async context manager."""
    with SimulatorServer() as sim:
        assert create(sim).status_code == 200

    async def main() -> None:
        async with SimulatorServer() as server, httpx.AsyncClient() as client:
            response = await client.post(
                f"{server.base_url}/video/generations", json=BODY, headers=auth(server)
            )
            assert response.status_code == 200

    anyio.run(main)


def test_config_from_yaml_and_json_files(tmp_path: Path) -> None:
    """Knobs load from YAML and JSON files; unknown knobs are refused."""
    (tmp_path / "k.yaml").write_text("slots: 3\nretry_after_format: http-date\n")
    (tmp_path / "k.json").write_text('{"error_rate": 0.25, "honour_idempotency": false}')
    assert SimConfig.from_file(tmp_path / "k.yaml").slots == 3
    loaded = SimConfig.from_file(tmp_path / "k.json")
    assert loaded.error_rate == 0.25 and loaded.honour_idempotency is False
    (tmp_path / "bad.yaml").write_text("colour: red\n")
    with pytest.raises(ValueError, match="unknown simulator knob"):
        SimConfig.from_file(tmp_path / "bad.yaml")


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    """With a state file, tasks created before a restart are still known after it."""
    state = tmp_path / "sim.json"
    with SimulatorServer(SimConfig(generation_seconds=0.01), state_file=state) as sim:
        task = create(sim).json()["id"]
    with SimulatorServer(SimConfig(), state_file=state) as again:
        assert wait_status(again, task, "succeeded")["id"] == task


def _admit(state: SimState, count: int) -> list[str]:
    with state.lock:
        made = [
            state.admit(state.config.api_key, {**BODY, "prompt": f"p {i}"}, None)
            for i in range(count)
        ]
    return [task.id for task in made if task is not None]


def _bytes_written() -> int | None:
    """This process's bytes written so far (Linux's ``wchar``), or None where it is not kept."""
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:
        return None
    return next(int(line.split()[1]) for line in lines if line.startswith("wchar:"))


def test_a_create_appends_to_the_state_file_and_rewrites_nothing(tmp_path: Path) -> None:
    """A create adds its own record to the state file; the tasks before it are not written again
    (the whole file rewritten per create made a 100,000-job `run --simulate` quadratic)."""
    path = tmp_path / "sim.json"
    state = SimState(SimConfig(credits=10_000), state_file=path)
    _admit(state, 300)
    before, inode = path.read_bytes(), path.stat().st_ino
    written = _bytes_written()
    _admit(state, 100)
    if written is not None:
        per_create = (_bytes_written() or 0) - written
        assert per_create / 100 < 2_000, per_create  # one record, not the 300 tasks before it
    assert path.stat().st_ino == inode  # the same file, grown
    assert path.read_bytes().startswith(before)
    state.close()
    again = SimState(SimConfig(credits=10_000), state_file=path)
    assert len(again.tasks) == 400
    assert again.credits[again.config.api_key] == 10_000 - 400
    again.close()


def test_a_torn_last_line_of_the_state_is_ignored(tmp_path: Path) -> None:
    """Killed in the middle of a record: the whole records before it load, the torn one is
    dropped, and the records written after the restart load too."""
    path = tmp_path / "sim.json"
    state = SimState(SimConfig(), state_file=path)
    kept = _admit(state, 3)
    state.close()
    whole = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(b'{"tasks": [{"id": "gen_torn", "key": "sk-')
    again = SimState(SimConfig(), state_file=path)
    assert sorted(again.tasks) == sorted(kept)
    later = _admit(again, 2)
    again.close()
    assert path.read_bytes().startswith(whole)
    third = SimState(SimConfig(), state_file=path)
    assert sorted(third.tasks) == sorted(kept + later)
    assert third.credits[third.config.api_key] == SimConfig().credits - 5
    third.close()


def test_an_old_whole_file_state_still_loads(tmp_path: Path) -> None:
    """A state file written before the append-only form (one JSON object: every task and the
    balances) loads, and the tasks made after it are kept with it."""
    path = tmp_path / "sim.json"
    old = SimState(SimConfig())
    made = _admit(old, 2)
    tasks = [dataclasses.asdict(old.tasks[task_id]) for task_id in made]
    path.write_text(json.dumps({"tasks": tasks, "credits": {old.config.api_key: 7}}))
    state = SimState(SimConfig(), state_file=path)
    assert sorted(state.tasks) == sorted(made) and state.credits[state.config.api_key] == 7
    later = _admit(state, 1)
    state.close()
    again = SimState(SimConfig(), state_file=path)
    assert sorted(again.tasks) == sorted(made + later)
    assert again.credits[again.config.api_key] == 6
    again.close()


@pytest.mark.parametrize("damage", ["not json", "a list", "an unknown field"])
def test_a_whole_line_that_is_not_a_record_is_an_error(tmp_path: Path, damage: str) -> None:
    """Damage that a torn write cannot explain (a line ended by its newline that is not a
    record) is refused, not skipped: `run --simulate` names the file and sends nothing."""
    path = tmp_path / "sim.json"
    state = SimState(SimConfig(), state_file=path)
    _admit(state, 1)
    state.close()
    bad = {"not json": "{oops", "a list": "[1, 2]", "an unknown field": '{"tasks": [{"x": 1}]}'}
    with path.open("a") as handle:
        handle.write(bad[damage] + "\n")
    with pytest.raises((ValueError, TypeError)):
        SimState(SimConfig(), state_file=path)


def test_credits_topped_up_over_admin_survive_a_restart(tmp_path: Path) -> None:
    """`POST /_sim/credits` is kept in the state file like a create."""
    path = tmp_path / "sim.json"
    with SimulatorServer(SimConfig(credits=3), state_file=path) as sim:
        assert sim.admin("credits", {"credits": 5})["key_credits"] == 8
        create(sim)
    with SimulatorServer(SimConfig(credits=3), state_file=path) as again:
        assert again.stats()["credits"][again.api_key] == 7


@pytest.fixture
def sim_process() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wanbatch.simulator",
            "--json",
            "--port",
            "0",
            "--generation-seconds",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        yield child, info
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)


def test_command_line_server_prints_json_and_stops_on_ctrl_c(
    sim_process: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    """`python -m wanbatch.simulator --json` prints its URLs and key, serves, and stops on SIGINT."""
    child, info = sim_process
    assert set(info) == {"provider", "base_url", "api_key", "cdn_url", "admin_url"}
    assert info["provider"] == "wanapi"
    headers = {"Authorization": f"Bearer {info['api_key']}"}
    response = httpx.post(f"{info['base_url']}/video/generations", json=BODY, headers=headers)
    assert response.status_code == 200
    assert httpx.get(f"{info['admin_url']}/stats").json()["tasks_created"] == 1
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 0


def test_models_and_host_knobs() -> None:
    """`models` sets the accepted models; `host` the loopback address every listener binds."""
    with SimulatorServer(SimConfig(models=("wan-2-5",), host="127.0.0.2")) as sim:
        assert sim.base_url.startswith("http://127.0.0.2:") and sim.cdn_url.startswith(
            "http://127.0.0.2:"
        )
        assert create(sim).status_code == 400  # wan-2-2 is not offered here
        assert create(sim, {**BODY, "model": "wan-2-5"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/_sim/stats", b""),
        ("POST", "/_sim/credits", b'{"credits": 5}'),
        ("POST", "/_sim/config", b'{"slots": 3}'),
        ("POST", "/_sim/config", b'{"no_such_knob": 1}'),
        ("GET", "/_sim/nothing", b""),
        ("GET", "/v1/video/generations/gen_0", b""),
    ],
)
def test_no_answer_is_sent_while_the_state_lock_is_held(
    method: str, path: str, body: bytes
) -> None:
    """The state's threading lock is never held across an ``await``: every ``send`` of the ASGI
    app happens with the lock free (holding it there would stall the listeners' event loop)."""
    state = SimState(SimConfig())
    app = ApiApp(state)
    held: list[bool] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        held.append(state.lock.locked())

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    anyio.run(app, scope, receive, send)
    assert held and not any(held), held
