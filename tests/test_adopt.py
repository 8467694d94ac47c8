"""A journal gone, videos and sidecars on disk: the sidecars' task ids are adopted, nothing paid twice.

The simulator here does not honour Idempotency-Key, so a job created again would be a second task
(``tasks_created`` grows); ``creates_total`` counts every create request it received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wanbatch import cli
from wanbatch.journal import journal_path, read_journal
from wanbatch.models import JobEvent, JobState

from test_runner import out_dir, stats, videos, write_manifest


def plan_json(manifest: Path, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_deleted_journal_after_a_run_adopts_every_video(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """Journal deleted after a whole run: plan shows every job done, a run creates and downloads
    nothing, and the new journal holds each job as downloaded from its sidecar's task."""
    sim = make_sim(honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=4)
    assert run_cli("run", manifest, sim) == 0
    before_videos = videos(manifest)
    journal_path(out_dir(manifest)).unlink()
    plan = plan_json(manifest, capsys)
    assert plan["counts"]["new"] == 0 and plan["counts"]["done"] == 4
    assert plan["to_submit"]["jobs"] == 0
    before = stats(sim)
    assert run_cli("run", manifest, sim) == 0
    after = stats(sim)
    assert after["creates_total"] == before["creates_total"]
    assert after["tasks_created"] == 4
    assert after["cdn_requests_total"] == before["cdn_requests_total"]
    assert videos(manifest) == before_videos
    records = read_journal(out_dir(manifest)).records
    for index in range(4):
        record = records[f"job-{index}"]
        sidecar = json.loads((out_dir(manifest) / f"job-{index}.json").read_text())
        assert record.state is JobState.DOWNLOADED
        assert record.task_id == sidecar["task_id"] and record.sha256 == sidecar["sha256"]
    assert b"adopted" in journal_path(out_dir(manifest)).read_bytes()


def test_deleted_journal_and_video_polls_the_sidecars_task(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A sidecar whose video is gone: its task is asked again for the video, never created anew."""
    sim = make_sim(honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    task = json.loads((out_dir(manifest) / "job-1.json").read_text())["task_id"]
    journal_path(out_dir(manifest)).unlink()
    (out_dir(manifest) / "job-1.mp4").unlink()
    plan = plan_json(manifest, capsys)
    assert plan["counts"]["new"] == 0 and plan["counts"]["done"] == 1
    polls_before = stats(sim)["polls_by_task"].get(task, 0)
    assert run_cli("run", manifest, sim) == 0
    after = stats(sim)
    assert after["creates_total"] == 2 and after["tasks_created"] == 2
    assert after["polls_by_task"][task] > polls_before
    assert (out_dir(manifest) / "job-1.mp4").exists()


def test_same_size_damaged_video_is_fetched_again_from_its_task(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """A video whose bytes differ from its sidecar's sha256 is not adopted as done: the task is
    asked again and the video downloaded again, still without a create."""
    sim = make_sim(honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=1)
    assert run_cli("run", manifest, sim) == 0
    video = out_dir(manifest) / "job-0.mp4"
    good = video.read_bytes()
    video.write_bytes(bytes(len(good)))
    journal_path(out_dir(manifest)).unlink()
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["creates_total"] == 1
    assert video.read_bytes() == good


def test_deleted_journal_with_an_edited_job_is_a_changed_job(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A sidecar whose fields differ from the job's is the changed-job case: exit 2 naming it and
    nothing sent; --keep-changed keeps the old video without a create."""
    sim = make_sim(honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    journal_path(out_dir(manifest)).unlink()
    manifest.write_text(manifest.read_text().replace("number 1", "number one, edited"))
    plan = plan_json(manifest, capsys)
    assert plan["jobs"]["changed"] == ["job-1"] and plan["counts"]["new"] == 0
    assert run_cli("run", manifest, sim) == 2
    assert "job-1" in capsys.readouterr().err
    assert stats(sim)["creates_total"] == 2
    assert run_cli("run", manifest, sim, "--keep-changed") == 0
    assert stats(sim)["creates_total"] == 2


def test_a_video_without_sidecar_or_record_is_not_overwritten(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A video on disk that no journal record or sidecar accounts for: the run refuses (exit 2),
    names the file and the way out, sends nothing and leaves the file as it is."""
    sim = make_sim(honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    journal_path(out_dir(manifest)).unlink()
    (out_dir(manifest) / "job-0.json").unlink()
    video = out_dir(manifest) / "job-0.mp4"
    kept = video.read_bytes()
    requests = stats(sim)["requests_total"]
    capsys.readouterr()
    assert run_cli("run", manifest, sim) == 2
    err = capsys.readouterr().err
    assert "job-0" in err and "move" in err.lower()
    assert stats(sim)["requests_total"] == requests
    assert video.read_bytes() == kept
    video.rename(tmp_path / "aside.mp4")  # the way out the message names
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["creates_total"] == 3  # job-0 rendered anew, job-1 adopted


# --- the rules, pure -------------------------------------------------------------------------


def _job() -> Any:
    from wanbatch.models import JobSpec

    return JobSpec(
        id="a", prompt="p", model="wan-2-2", duration=5, aspect_ratio="16:9", output_path="a.mp4"
    )


def _sidecar(**changes: Any) -> dict[str, Any]:
    job = _job()
    data = {
        "id": "a",
        "fields": job.fields(),
        "task_id": "gen_1",
        "idempotency_key": "k1",
        "submitted_at": "2026-01-01T00:00:00.000+00:00",
        "size": 10,
        "sha256": "0" * 64,
    }
    data.update(changes)
    return data


def test_adoption_rules() -> None:
    """The table in recovery.py, case by case; adopted events fold through the lifecycle."""
    from wanbatch.lifecycle import replay
    from wanbatch.models import EventKind, JobRecord
    from wanbatch.recovery import Evidence, Sidecar, Verdict, adopt, parse_sidecar

    job = _job()
    sidecar = parse_sidecar(_sidecar())
    assert isinstance(sidecar, Sidecar) and sidecar.fingerprint == job.fingerprint()

    def verdict(record: JobRecord | None, evidence: Evidence) -> Any:
        return adopt(job, record, evidence, sidecar_name="a.json", now=5.0)

    done = verdict(None, Evidence(sidecar, None, 10, "0" * 64))
    assert done.verdict is Verdict.DOWNLOADED
    record = replay(list(done.events))["a"]
    assert record.state is JobState.DOWNLOADED and record.task_id == "gen_1"
    assert record.idempotency_key == "k1" and record.fingerprint == job.fingerprint()
    assert record.submitted_at == 1767225600.0
    assert all(event.reason == "adopted from a.json" for event in done.events)
    # The bytes are not the sidecar's, or the video is gone: poll the task, no create.
    for evidence in (
        Evidence(sidecar, None, 10, "1" * 64),
        Evidence(sidecar, None, 9),
        Evidence(sidecar),
    ):
        created = verdict(None, evidence)
        assert created.verdict is Verdict.CREATED
        assert replay(list(created.events))["a"].state is JobState.SUBMITTED
    # A create whose answer was lost, with this very key: the sidecar gives the answer.
    submitting = replay([JobEvent(EventKind.INTENT, "a", 1.0, idempotency_key="k1")])["a"]
    answered = verdict(submitting, Evidence(sidecar, None, 10))
    assert [event.kind for event in answered.events] == [
        EventKind.CREATED,
        EventKind.SUCCEEDED,
        EventKind.DOWNLOADED,
    ]
    other_attempt = replay([JobEvent(EventKind.INTENT, "a", 1.0, idempotency_key="k2")])["a"]
    assert verdict(other_attempt, Evidence(sidecar, None, 10)).verdict is Verdict.NONE
    # What the journal settles is never overridden.
    assert verdict(record, Evidence(sidecar, None, 10)).verdict is Verdict.NONE
    # A video nobody accounts for is refused; a broken sidecar alone is ignored.
    assert verdict(None, Evidence(None, None, 10)).verdict is Verdict.UNCLAIMED
    unreadable = verdict(None, Evidence(None, "not a JSON object", 10))
    assert unreadable.verdict is Verdict.UNCLAIMED and "not a JSON object" in unreadable.note
    assert verdict(None, Evidence(None, "not a JSON object")).verdict is Verdict.NONE
    foreign = parse_sidecar(_sidecar(id="b"))
    assert isinstance(foreign, Sidecar)
    stranger = verdict(None, Evidence(foreign, None, 10))
    assert stranger.verdict is Verdict.UNCLAIMED and "'b'" in stranger.note
    assert verdict(None, Evidence()).verdict is Verdict.NONE


def test_unusable_sidecars_are_named() -> None:
    from wanbatch.recovery import parse_sidecar

    assert parse_sidecar([]) == "not a JSON object"
    assert parse_sidecar(_sidecar(task_id="gen\n1")) == "no usable task id"
    assert parse_sidecar(_sidecar(task_id=7)) == "no usable task id"
    assert parse_sidecar(_sidecar(size="10")) == "no video size"
    assert parse_sidecar(_sidecar(size=True)) == "no video size"
    assert parse_sidecar(_sidecar(sha256="xyz")) == "a malformed sha256"
    assert parse_sidecar(_sidecar(fields=None)) == "no job fields"


def test_hostile_sidecars_are_unusable_not_fatal(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """A sidecar nested too deep or not UTF-8 is named as unusable; the run refuses to overwrite
    the video beside it (exit 2), with no traceback."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    journal_path(out_dir(manifest)).unlink()
    (out_dir(manifest) / "job-0.json").write_text("[" * 100_000)
    (out_dir(manifest) / "job-1.json").write_bytes(b'{"id": "\xff"}')
    capsys.readouterr()
    assert run_cli("run", manifest, sim) == 2
    err = capsys.readouterr().err
    assert "job-0" in err and "job-1" in err and "unreadable" in err
    assert stats(sim)["creates_total"] == 2


def test_planted_fifos_and_links_do_not_hang_adoption(tmp_path: Path) -> None:
    """No journal; a FIFO where a sidecar goes and a video that is a link to /dev/zero (with a
    sidecar that matches nothing): `plan` answers (in a child, so that a hang fails the test
    instead of holding it) and names nothing as adopted from them."""
    import os
    import subprocess
    import sys

    manifest = write_manifest(tmp_path, jobs=2)
    out = out_dir(manifest)
    out.mkdir(parents=True)
    os.mkfifo(out / "job-0.json")
    (out / "job-1.mp4").symlink_to("/dev/zero")
    (out / "job-1.json").write_text(json.dumps({"id": "job-1", "task_id": "gen_1", "size": 0}))
    child = subprocess.run(
        [sys.executable, "-m", "wanbatch", "plan", str(manifest), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in child.stderr, child.stderr
    assert child.returncode in (0, 2), child.stdout + child.stderr
