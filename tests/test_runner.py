"""The runner end to end: `wanbatch run` in-process against the simulator on a real socket."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY_ENV

from wanbatch import cli
from wanbatch.journal import journal_path, read_journal
from wanbatch.models import JobState


def run_argv(manifest: Path, base_url: str, *extra: str) -> list[str]:
    """`python -m wanbatch run MANIFEST --base-url URL EXTRA...`, for a child process."""
    return [sys.executable, "-m", "wanbatch", "run", str(manifest), "--base-url", base_url, *extra]


def write_manifest(folder: Path, jobs: int = 6, **limits: Any) -> Path:
    """A YAML manifest of ``jobs`` small jobs with test-sized limits."""
    lines = [
        "name: t",
        "api:",
        f"  key_env: {KEY_ENV}",
        f"  provider: {limits.get('provider', 'wanapi')}",
        "defaults:",
        "  model: wan-2-2",
        "  duration: 5",
        "limits:",
        f"  concurrency: {limits.get('concurrency', 4)}",
        f"  requests_per_second: {limits.get('requests_per_second', 200)}",
        f"  downloads: {limits.get('downloads', 2)}",
        f"  list_grace_seconds: {limits.get('list_grace_seconds', 0.2)}",  # tests' lists are fresh
        "output:",
        "  dir: out",
        "jobs:",
    ]
    for index in range(jobs):
        lines += [f"  - id: job-{index}", f"    prompt: a test prompt number {index}"]
    lines += [f"    {line}" for line in limits.get("last_job_lines", [])]
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def stats(sim: Any) -> dict[str, Any]:
    return sim.stats()  # type: ignore[no-any-return]


def out_dir(manifest: Path) -> Path:
    return manifest.parent / "out"


def videos(manifest: Path) -> dict[str, bytes]:
    return {path.stem: path.read_bytes() for path in out_dir(manifest).glob("*.mp4")}


def test_happy_path_then_rerun_sends_nothing(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """Every job is rendered with a sidecar; a rerun sends no request at all and exits 0."""
    sim = make_sim()
    manifest = write_manifest(tmp_path)
    assert run_cli("run", manifest, sim) == 0
    found = videos(manifest)
    assert sorted(found) == [f"job-{i}" for i in range(6)]
    for job_id, data in found.items():
        sidecar = json.loads((out_dir(manifest) / f"{job_id}.json").read_text())
        assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
        assert sidecar["size"] == len(data) and sidecar["task_id"].startswith("gen_")
    before = stats(sim)
    assert before["tasks_created"] == 6
    assert run_cli("run", manifest, sim) == 0
    after = stats(sim)
    assert after["requests_total"] == before["requests_total"]


def test_rejected_job_fails_alone(tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any) -> None:
    """A 400 fails that job with the server's message; the others render; exit 1."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3, last_job_lines=["extra: {aspect_ratio: sideways}"])
    assert run_cli("run", manifest, sim) == 1
    assert sorted(videos(manifest)) == ["job-0", "job-1"]
    record = read_journal(out_dir(manifest)).records["job-2"]
    assert record.state is JobState.FAILED and "aspect_ratio" in (record.reason or "")
    assert "aspect_ratio" in capsys.readouterr().out


def test_bad_key_stops_at_once(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """401: exit 3 after a single request, and no job is left looking submitted."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, concurrency=1)
    assert run_cli("run", manifest, sim, key="sk-wan-wrong") == 3
    assert stats(sim)["requests_total"] == 1
    records = read_journal(out_dir(manifest)).records
    assert all(record.state is JobState.PLANNED for record in records.values())


def test_credits_run_out_then_top_up_and_rerun(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """402 mid-batch: in-flight jobs finish, exit 4; after a top-up the rerun completes, no task paid twice."""
    sim = make_sim(credits=3)
    manifest = write_manifest(tmp_path, jobs=6, concurrency=2)
    assert run_cli("run", manifest, sim) == 4
    assert len(videos(manifest)) == 3
    sim.top_up(sim.api_key, 100)
    assert run_cli("run", manifest, sim) == 0
    assert len(videos(manifest)) == 6
    assert stats(sim)["tasks_created"] == 6


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured_for_the_whole_host(
    tmp_path: Path, make_sim: Any, run_cli: Any, form: str
) -> None:
    """Under a tight server rate limit, no request arrives inside a window the server asked us to wait."""
    sim = make_sim(rate_limit_rps=5.0, rate_limit_burst=2, retry_after_format=form)
    manifest = write_manifest(tmp_path, jobs=5, requests_per_second=50)
    assert run_cli("run", manifest, sim) == 0
    seen = stats(sim)
    assert seen["rate_limited_total"] > 0
    assert seen["requests_inside_wait_window"] == 0


def test_server_errors_are_retried(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """Injected 500/503s are retried with backoff and the batch completes."""
    sim = make_sim(error_rate=0.3, seed=7)
    manifest = write_manifest(tmp_path, jobs=6)
    assert run_cli("run", manifest, sim) == 0
    assert len(videos(manifest)) == 6
    assert stats(sim)["server_errors_total"] > 0


def test_truncated_download_resumes_with_range(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """The first download of each video is cut short; the runner resumes with Range and the bytes match."""
    sim = make_sim(truncate_first_download=True, video_size=200_000)
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 0
    seen = stats(sim)
    assert seen["cdn_range_requests"] >= 3
    for job_id, data in videos(manifest).items():
        sidecar = json.loads((out_dir(manifest) / f"{job_id}.json").read_text())
        assert hashlib.sha256(data).hexdigest() == sidecar["sha256"]
        assert len(data) == sidecar["size"] >= 200_000
    assert not list(out_dir(manifest).glob("*.part"))


def _run_requests(manifest: Path) -> list[dict[str, int]]:
    """The request counts of each finished run, from the run log."""
    lines = (out_dir(manifest) / ".wanbatch" / "log.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return [event["requests"] for event in events if event.get("event") == "run.finished"]


def test_expired_url_is_refreshed(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """Video URLs that expire before download are refreshed by fetching the task again: with
    URLs that always expire the first run refreshes each job and stops with work left; the rerun
    fetches a fresh URL first (the stale one is never used again) and downloads."""
    sim = make_sim(url_ttl_seconds=0.0)
    manifest = write_manifest(tmp_path, jobs=2)
    code = run_cli("run", manifest, sim)
    assert code == 5  # a URL that is always expired cannot be fetched: work left, rerun resumes
    first = _run_requests(manifest)[-1]
    expired = stats(sim)["cdn_expired"]
    assert first.get("refresh", 0) >= 2 and expired >= 2 * 2, (first, expired)
    sim.set_config(url_ttl_seconds=600.0)
    assert run_cli("run", manifest, sim) == 0
    assert len(videos(manifest)) == 2
    assert _run_requests(manifest)[-1].get("refresh", 0) == 2
    assert stats(sim)["cdn_expired"] == expired  # no stale URL was tried in the rerun


def test_redirect_to_another_origin_gets_no_key(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """The CDN redirects to a third origin; neither receives an Authorization header."""
    sim = make_sim(redirect_downloads=True)
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    seen = stats(sim)
    assert seen["cdn_requests_total"] >= 4
    assert seen["cdn_requests_with_authorization"] == 0


def test_torn_journal_line_is_cut_and_the_run_resumes(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """Half a record at the end of the journal is dropped; the rerun finishes without new creates."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 0
    path = journal_path(out_dir(manifest))
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"at":1,"ev":"created","job":"job-0","ta')
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["tasks_created"] == 3
    assert path.read_bytes().endswith(b"\n")


def test_changed_job_is_named_and_not_resubmitted_silently(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """Editing a submitted job's prompt: exit 2 naming it; --resubmit-changed renders it anew."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    manifest.write_text(manifest.read_text().replace("number 1", "number one, edited"))
    capsys.readouterr()
    assert run_cli("run", manifest, sim) == 2
    assert "job-1" in capsys.readouterr().err
    assert stats(sim)["tasks_created"] == 2
    assert run_cli("run", manifest, sim, "--resubmit-changed") == 0
    assert stats(sim)["tasks_created"] == 3


def test_deleted_video_is_fetched_again(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """A video the user deleted is downloaded again without creating its task again."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    (out_dir(manifest) / "job-0.mp4").unlink()
    assert run_cli("run", manifest, sim) == 0
    assert (out_dir(manifest) / "job-0.mp4").exists()
    assert stats(sim)["tasks_created"] == 2


def test_stalled_job_hits_its_deadline(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A task that does not finish within the per-job deadline is reported stalled; exit 5."""
    sim = make_sim(generation_seconds=30.0)
    manifest = write_manifest(tmp_path, jobs=1)
    assert run_cli("run", manifest, sim, "--job-deadline", "0.2") == 5
    assert "stalled" in capsys.readouterr().out


def test_failed_generation_is_recorded_and_retry_resubmits(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """Failed generations are not resubmitted by run; `retry --yes` resubmits them with a new key."""
    sim = make_sim(failure_rate=1.0)
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 1
    assert run_cli("run", manifest, sim) == 1
    assert stats(sim)["tasks_created"] == 2
    sim.set_config(failure_rate=0.0)
    assert run_cli("retry", manifest, sim, "--yes") == 0
    assert stats(sim)["tasks_created"] == 4
    assert len(videos(manifest)) == 2


def test_retry_without_yes_and_without_a_terminal_sends_nothing(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """`retry` asks first; with no terminal to ask on it sends nothing and exits 2."""
    sim = make_sim(failure_rate=1.0)
    manifest = write_manifest(tmp_path, jobs=1)
    assert run_cli("run", manifest, sim) == 1
    assert run_cli("retry", manifest, sim) == 2
    assert stats(sim)["tasks_created"] == 1


def test_status_reports_each_job_as_json(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """`status --json` lists every job with its state and sends nothing."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert cli.main(["status", str(manifest), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["new"] == 2
    assert run_cli("run", manifest, sim) == 0
    capsys.readouterr()
    assert cli.main(["status", str(manifest), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {k: n for k, n in payload["counts"].items() if n} == {"done": 2}


def test_plain_http_to_a_remote_host_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The key is never sent over http:// to a non-loopback host: exit 2 and nothing sent."""
    monkeypatch.setenv(KEY_ENV, "sk-wan-secret")
    manifest = write_manifest(tmp_path, jobs=1)
    code = cli.main(["run", str(manifest), "--base-url", "http://api.example.com/v1"])
    assert code == 2
    assert "http://" in capsys.readouterr().err
    assert not out_dir(manifest).exists()


def test_missing_key_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Without the key variable the run exits 2 and names the variable."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    manifest = write_manifest(tmp_path, jobs=1)
    assert cli.main(["run", str(manifest)]) == 2
    assert KEY_ENV in capsys.readouterr().err


def test_the_key_appears_nowhere_in_the_output_tree(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """After runs with faults, no file of the output tree contains the key."""
    sim = make_sim(error_rate=0.2, truncate_first_download=True, seed=3)
    manifest = write_manifest(tmp_path, jobs=3)
    run_cli("run", manifest, sim)
    run_cli("run", manifest, sim)
    files = [path for path in out_dir(manifest).rglob("*") if path.is_file()]
    names = {path.name for path in files}
    # Something was written to search: the journal, the log, the report and every video.
    assert {"journal.jsonl", "log.jsonl", "report.html"} <= names, names
    assert len([name for name in names if name.endswith(".mp4")]) == 3, names
    for path in files:
        assert sim.api_key.encode() not in path.read_bytes(), path


def test_key_revoked_mid_run_stops_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A 401 on a poll (key revoked after the creates) stops the run at once with exit 3."""
    from hostile import Answer, json_response, serve

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            return Answer(json_response(200, '{"id": "gen_1", "status": "queued"}'))
        return Answer(json_response(401, '{"error": {"message": "key revoked"}}'))

    monkeypatch.setenv(KEY_ENV, "sk-wan-revoked")
    manifest = write_manifest(tmp_path, jobs=1)
    with serve(script) as server:
        code = cli.main(
            ["run", str(manifest), "--base-url", server.base_url, "--poll-interval", "0.01", "-q"]
        )
        polls = [request for request in server.requests if request[0] == "GET"]
    assert code == 3
    assert len(polls) == 1
    assert "key revoked" in capsys.readouterr().out
    assert read_journal(out_dir(manifest)).records["job-0"].task_id == "gen_1"


def test_plan_compares_manifest_and_journal(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """`plan --json` shows new jobs before a run, failed and changed ones after; it sends nothing."""
    sim = make_sim(failure_rate=1.0)
    manifest = write_manifest(tmp_path, jobs=2)
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["counts"]["new"] == 2 and before["to_submit"]["seconds"] == 10
    assert run_cli("run", manifest, sim) == 1
    manifest.write_text(manifest.read_text().replace("number 1", "number one"))
    capsys.readouterr()
    requests = stats(sim)["requests_total"]
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["jobs"]["failed"] == ["job-0"] and after["jobs"]["changed"] == ["job-1"]
    assert after["to_submit"]["jobs"] == 0
    assert stats(sim)["requests_total"] == requests


def test_resuming_against_another_api_is_refused(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A journal written against one base URL refuses a run against another: exit 2, nothing sent."""
    first, second = make_sim(), make_sim()
    manifest = write_manifest(tmp_path, jobs=1)
    assert run_cli("run", manifest, first) == 0
    capsys.readouterr()
    assert run_cli("run", manifest, second) == 2
    message = capsys.readouterr().err
    assert first.base_url in message and second.base_url in message
    assert stats(second)["requests_total"] == 0


def test_rate_limit_without_retry_after_backs_off_and_completes(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """429s that carry no Retry-After are retried with backoff, and the batch completes."""
    sim = make_sim(rate_limit_rps=10.0, rate_limit_burst=2, retry_after_format="none")
    manifest = write_manifest(tmp_path, jobs=6, requests_per_second=100)
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["rate_limited_total"] > 0
    assert len(videos(manifest)) == 6
