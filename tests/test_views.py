"""Every view true: run, plan, status, the gallery and the logs tell the same story, end to end
against the simulator (or a loopback server) over real sockets."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from wanbatch import cli
from wanbatch.journal import journal_path, read_journal

from hostile import Answer, json_response, serve
from test_runner import KEY_ENV, out_dir, stats, write_manifest


def plan_json(manifest: Path, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def status_json(manifest: Path, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    assert cli.main(["status", str(manifest), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def card(manifest: Path, job_id: str) -> str:
    """The gallery's card for ``job_id`` (report.html as the last run or report wrote it)."""
    page = (out_dir(manifest) / "report.html").read_text()
    found = re.search(rf'<article [^>]*data-job="{re.escape(job_id)}".*?</article>', page)
    assert found is not None, job_id
    return found.group(0)


def card_prompt(text: str) -> str:
    found = re.search(r'<p class="prompt">(.*?)</p>', text)
    assert found is not None
    return html.unescape(found.group(1))


# --- 20: one classification of a job's state -------------------------------------------------


def test_a_deleted_video_is_to_download_in_every_view_and_only_it_is_fetched(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """After a run, delete one video: plan, status and the report say it is to download (not
    done), and the next run downloads exactly that one and creates nothing."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 0
    (out_dir(manifest) / "job-0.mp4").unlink()
    kept = out_dir(manifest) / "job-1.mp4"
    kept_mtime = kept.stat().st_mtime_ns

    planned = plan_json(manifest, capsys)
    assert planned["jobs"]["to_download"] == ["job-0"]
    assert planned["jobs"]["done"] == ["job-1", "job-2"]
    assert planned["to_submit"]["jobs"] == 0

    status = status_json(manifest, capsys)
    assert {k: n for k, n in status["counts"].items() if n} == {"done": 2, "to_download": 1}
    row = next(row for row in status["jobs"] if row["id"] == "job-0")
    assert row["state"] == "to_download" and "missing" in row["note"]

    assert cli.main(["report", str(manifest)]) == 0
    missing = card(manifest, "job-0")
    assert 'data-state="to_download"' in missing and "<video" not in missing
    assert "<video" in card(manifest, "job-1")

    before = stats(sim)
    capsys.readouterr()
    assert run_cli("run", manifest, sim) == 0
    assert "(1 downloaded now, 2 already there)" in capsys.readouterr().out
    after = stats(sim)
    assert after["tasks_created"] == before["tasks_created"] == 3
    assert after["cdn_requests_total"] - before["cdn_requests_total"] == 1
    assert (out_dir(manifest) / "job-0.mp4").exists()
    assert kept.stat().st_mtime_ns == kept_mtime
    assert plan_json(manifest, capsys)["jobs"]["done"] == ["job-0", "job-1", "job-2"]
    # The run journaled what it found (rendered, not downloaded) before fetching it again, so
    # its live view and an interrupted run's journal never counted it done.
    lines = journal_path(out_dir(manifest)).read_text().splitlines()
    events = [json.loads(line) for line in lines if '"job":"job-0"' in line]
    first = [event["ev"] for event in events].index("downloaded")
    assert events[first + 1]["ev"] == "succeeded" and "video_url" not in events[first + 1]
    assert events[-1]["ev"] == "downloaded"


def test_a_video_of_the_wrong_size_is_not_done(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A video whose size on disk is not the recorded one is to download, in plan and status."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    (out_dir(manifest) / "job-1.mp4").write_bytes(b"not the video")
    assert plan_json(manifest, capsys)["jobs"]["to_download"] == ["job-1"]
    counts = status_json(manifest, capsys)["counts"]
    assert {k: n for k, n in counts.items() if n} == {"done": 1, "to_download": 1}


# --- 21: a card shows what was rendered; --keep-changed is remembered -------------------------


def test_a_card_shows_the_prompt_that_was_rendered_after_a_retry_with_an_edited_prompt(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """The README's retry flow: a job fails, its prompt is edited in retry.yaml and retried.
    Its card shows the new prompt (what was rendered), also in a report of the campaign
    manifest, which notes that the campaign still says the old prompt."""
    sim = make_sim(flagged_words=("forbidden",))
    manifest = write_manifest(tmp_path, jobs=2)
    manifest.write_text(manifest.read_text().replace("number 1", "number 1, forbidden"))
    assert run_cli("run", manifest, sim) == 1
    retry_file = out_dir(manifest) / "retry.yaml"
    retry_file.write_text(retry_file.read_text().replace("number 1, forbidden", "number 1, fixed"))
    assert run_cli("retry", retry_file, sim, "--yes") == 0

    shown = card(manifest, "job-1")
    assert card_prompt(shown) == "a test prompt number 1, fixed"

    assert cli.main(["report", str(manifest)]) == 0
    shown = card(manifest, "job-1")
    assert card_prompt(shown) == "a test prompt number 1, fixed"
    assert "a test prompt number 1, forbidden" in html.unescape(shown)  # noted, not as the prompt
    assert 'class="changed"' in shown
    assert 'class="changed"' not in card(manifest, "job-0")


def test_keep_changed_keeps_the_rendered_prompt_on_the_card_and_is_remembered(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """Edit a rendered job's prompt, run --keep-changed: the card shows the prompt the video was
    rendered from, with the manifest's new one noted; the next run does not ask again."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    manifest.write_text(manifest.read_text().replace("number 1", "number one, edited"))
    assert run_cli("run", manifest, sim) == 2
    assert run_cli("run", manifest, sim, "--keep-changed") == 0

    shown = card(manifest, "job-1")
    assert card_prompt(shown) == "a test prompt number 1"
    assert "a test prompt number one, edited" in html.unescape(shown)
    assert 'class="changed"' in shown

    requests = stats(sim)["requests_total"]
    assert run_cli("run", manifest, sim) == 0  # remembered: no question, nothing sent
    assert stats(sim)["requests_total"] == requests
    planned = plan_json(manifest, capsys)
    assert planned["jobs"]["changed"] == [] and planned["jobs"]["done"] == ["job-0", "job-1"]

    # Another edit of the same job is a new change: asked about again.
    manifest.write_text(manifest.read_text().replace("number one, edited", "number uno"))
    assert run_cli("run", manifest, sim) == 2
    assert plan_json(manifest, capsys)["jobs"]["changed"] == ["job-1"]


def test_a_planted_fifo_sidecar_does_not_hang_the_report(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """A kept job's card reads its sidecar for the fields rendered; a FIFO planted there must
    not hang `report` (run in a child, so that a hang fails the test instead of holding it)."""
    import os
    import subprocess
    import sys

    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    manifest.write_text(manifest.read_text().replace("number 1", "number one, edited"))
    assert run_cli("run", manifest, sim, "--keep-changed") == 0
    sidecar = out_dir(manifest) / "job-1.json"
    sidecar.unlink()
    os.mkfifo(sidecar)
    child = subprocess.run(
        [sys.executable, "-m", "wanbatch", "report", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stdout + child.stderr


# --- 22: the cap line says what the summary says --------------------------------------------


def test_the_cap_reached_log_line_counts_what_the_summary_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """--max-videos 1, three jobs, two workers: the second create finds the cap while the first
    is on the wire. The log's run.cap_reached line says 1 video and 40 credits, as the summary."""
    posts = [0]

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            posts[0] += 1
            time.sleep(0.3)  # the first create is slow to answer: the others meet the cap
            return Answer(json_response(200, f'{{"id": "gen_{posts[0]}", "status": "queued"}}'))
        return Answer(json_response(200, '{"id": "gen_1", "status": "failed"}'))

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "name: t\n"
        f"api: {{key_env: {KEY_ENV}}}\n"
        "pricing: {wan-2-2: 8}\n"
        "defaults: {model: wan-2-2, duration: 5}\n"
        "limits: {concurrency: 2, requests_per_second: 500, downloads: 1}\n"
        "output: {dir: out}\n"
        "jobs:\n" + "".join(f"  - {{id: job-{n}, prompt: prompt {n}}}\n" for n in range(3))
    )
    monkeypatch.setenv(KEY_ENV, "sk-wan-test")
    with serve(script) as server:
        argv = ["run", str(manifest), "--base-url", server.base_url, "-q", "--max-videos", "1"]
        code = cli.main([*argv, "--poll-interval", "0.02"])
    assert code == 5 and posts[0] == 1
    out = capsys.readouterr().out
    assert "submitted this run: 1 new task, about 40 credits" in out
    lines = (out_dir(manifest) / ".wanbatch" / "log.jsonl").read_text().splitlines()
    caps = [entry for line in lines if (entry := json.loads(line))["event"] == "run.cap_reached"]
    assert len(caps) == 1
    assert caps[0]["videos_submitted"] == 1 and caps[0]["credits_submitted"] == 40
    assert caps[0]["detail"] == "--max-videos 1 reached"
    assert read_journal(out_dir(manifest)).records["job-0"].task_id == "gen_1"
