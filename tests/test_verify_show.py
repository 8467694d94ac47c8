"""`wanbatch verify` and `wanbatch show`, in-process against the simulator over loopback.

verify: every downloaded video against the size and sha256 its journal records; a mismatch is
listed (exit 1) and moved aside to ``NAME.corrupt`` so that the next run fetches it again from
its task (no new create). show: one job's fields, standing, journal events and log lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wanbatch import cli
from wanbatch.journal import compact_journal, journal_path, locked
from wanbatch.simulator import SimulatorServer

from test_runner import out_dir, stats, write_manifest


def verify(manifest: Path, capsys: Any, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["verify", str(manifest), *extra])
    return code, capsys.readouterr().out


def show(manifest: Path, job: str, capsys: Any, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["show", str(manifest), job, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def forbidding(manifest: Path, job: str) -> Path:
    """``manifest`` with ``job``'s prompt one the simulator's content filter fails."""
    number = job.rpartition("-")[2]
    text = manifest.read_text().replace(f"a test prompt number {number}", "a forbidden prompt")
    manifest.write_text(text)
    return manifest


@pytest.fixture
def rendered(
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
    run_cli: Callable[..., int],
) -> tuple[Path, SimulatorServer]:
    """Three jobs rendered and downloaded."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 0
    return manifest, sim


# --- verify -------------------------------------------------------------------------------


def test_verify_passes_a_whole_tree(rendered: tuple[Path, SimulatorServer], capsys: Any) -> None:
    manifest, _ = rendered
    code, out = verify(manifest, capsys)
    assert code == 0, out
    assert "3 files checked: all 3 match" in out


def test_verify_finds_a_same_size_corruption_and_the_next_run_fetches_it_again(
    rendered: tuple[Path, SimulatorServer],
    run_cli: Callable[..., int],
    capsys: Any,
) -> None:
    manifest, sim = rendered
    video = out_dir(manifest) / "job-1.mp4"
    original = video.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # one byte flipped: the size is the same
    video.write_bytes(bytes(damaged))

    code, out = verify(manifest, capsys)
    assert code == 1, out
    [line] = [line for line in out.splitlines() if "job-1" in line]
    assert "job-1.mp4" in line and "sha256" in line
    assert "1 of 3 files does not match" in out
    aside = out_dir(manifest) / "job-1.mp4.corrupt"
    assert aside.read_bytes() == bytes(damaged)  # moved aside, never deleted
    assert not video.exists()

    created = stats(sim)["tasks_created"]
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["tasks_created"] == created  # fetched again from its task: not paid twice
    assert video.read_bytes() == original
    code, out = verify(manifest, capsys)
    assert code == 0, out


def test_verify_lists_a_missing_and_a_truncated_video(
    rendered: tuple[Path, SimulatorServer],
    run_cli: Callable[..., int],
    capsys: Any,
) -> None:
    manifest, sim = rendered
    out = out_dir(manifest)
    (out / "job-0.mp4").unlink()
    whole = (out / "job-2.mp4").read_bytes()
    (out / "job-2.mp4").write_bytes(whole[:-100])

    code, text = verify(manifest, capsys)
    assert code == 1, text
    lines = text.splitlines()
    [missing] = [line for line in lines if "job-0" in line]
    assert "job-0.mp4" in missing and "missing" in missing
    [short] = [line for line in lines if "job-2" in line]
    assert (
        "job-2.mp4" in short and f"{len(whole) - 100} bytes" in short and str(len(whole)) in short
    )
    assert "2 of 3 files do not match" in text
    assert (out / "job-2.mp4.corrupt").read_bytes() == whole[:-100]

    code, text = verify(manifest, capsys, "--json")
    assert code == 1
    payload = json.loads(text)
    assert payload["checked"] == 3 and payload["matching"] == 1
    problems = {row["id"]: row["problem"] for row in payload["mismatches"]}
    assert problems == {"job-0": "missing", "job-2": "missing"}  # job-2 was moved aside

    created = stats(sim)["tasks_created"]
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["tasks_created"] == created
    assert verify(manifest, capsys)[0] == 0


def test_verify_json_is_a_stable_record(
    rendered: tuple[Path, SimulatorServer], capsys: Any
) -> None:
    manifest, _ = rendered
    video = out_dir(manifest) / "job-2.mp4"
    data = bytearray(video.read_bytes())
    data[-1] ^= 1
    video.write_bytes(bytes(data))
    code, text = verify(manifest, capsys, "--json")
    assert code == 1
    payload = json.loads(text)
    assert set(payload) == {
        "manifest", "output_dir", "checked", "matching", "not_downloaded", "unhashed",
        "mismatches", "exit_code",
    }  # fmt: skip
    assert payload["exit_code"] == 1 and payload["unhashed"] == []
    [row] = payload["mismatches"]
    assert set(row) == {
        "id", "path", "problem", "detail", "expected_size", "actual_size",
        "expected_sha256", "actual_sha256", "moved_to",
    }  # fmt: skip
    assert row["id"] == "job-2" and row["problem"] == "sha256" and row["path"] == "job-2.mp4"
    assert row["expected_size"] == row["actual_size"] == len(data)
    assert row["moved_to"] == "job-2.mp4.corrupt"
    code, text = verify(manifest, capsys, "--json")  # moved aside: missing until a run
    assert code == 1
    [row] = json.loads(text)["mismatches"]
    assert row["problem"] == "missing" and row["moved_to"] is None and row["actual_size"] is None


def test_verify_takes_only_and_counts_jobs_not_downloaded(
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
    run_cli: Callable[..., int],
    capsys: Any,
) -> None:
    sim = make_sim(flagged_words=("forbidden",))
    manifest = forbidding(write_manifest(tmp_path, jobs=3), "job-2")
    assert run_cli("run", manifest, sim) == 1
    code, text = verify(manifest, capsys)
    assert code == 0, text
    assert "2 files checked: all 2 match" in text and "1 job not downloaded" in text
    (out_dir(manifest) / "job-0.mp4").unlink()
    code, text = verify(manifest, capsys, "--only", "job-1")
    assert code == 0 and "1 file checked: it matches" in text


def test_verify_help_names_its_exit_codes(capsys: Any) -> None:
    assert cli.main(["verify", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "0 when every file matches" in text and "1 when" in text
    assert ".corrupt" in text


# --- show ---------------------------------------------------------------------------------


def test_show_tells_a_failed_job_its_fields_events_and_log(
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
    run_cli: Callable[..., int],
    capsys: Any,
) -> None:
    sim = make_sim(flagged_words=("forbidden",))
    manifest = forbidding(write_manifest(tmp_path, jobs=2), "job-1")
    assert run_cli("run", manifest, sim) == 1
    assert run_cli("retry", manifest, sim, "--yes") == 1  # fails again: two attempts

    code, out, err = show(manifest, "job-1", capsys)
    assert code == 0, err
    assert "a forbidden prompt" in out and "wan-2-2" in out
    assert "failed" in out and "`wanbatch retry` resubmits it" in out
    events = [line.split()[2] for line in out.splitlines() if line.startswith("  20")]
    assert events.count("intent") == 2 and events.count("requeued") == 1
    assert events.count("failed") == 2
    assert events.index("requeued") > events.index("failed")
    assert "log" in out and "job.finished" in out

    code, out, _ = show(manifest, "job-1", capsys, "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["id"] == "job-1"
    assert payload["fields"]["prompt"] == "a forbidden prompt"
    assert payload["standing"] == "failed" and payload["record"]["state"] == "failed"
    assert payload["record"]["attempt"] == 1 and payload["record"]["size"] is None  # every key
    kinds = [event["ev"] for event in payload["events"]]
    assert kinds.count("intent") == 2 and "requeued" in kinds
    assert all(isinstance(event["at"], float) for event in payload["events"])
    assert payload["log"]["lines"] and payload["log"]["left_out"] == 0
    assert all(line.get("job") == "job-1" for line in payload["log"]["lines"])


def test_show_a_compacted_journal_shows_the_snapshot(
    rendered: tuple[Path, SimulatorServer], capsys: Any
) -> None:
    manifest, _ = rendered
    assert compact_journal(out_dir(manifest))
    assert b'"ev":"snapshot"' in journal_path(out_dir(manifest)).read_bytes()
    code, out, err = show(manifest, "job-2", capsys)
    assert code == 0, err
    assert "snapshot" in out and "done" in out
    code, out, _ = show(manifest, "job-2", capsys, "--json")
    [event] = json.loads(out)["events"]
    assert event["ev"] == "snapshot" and event["state"] == "downloaded"
    assert event["sha256"]


def test_show_an_unknown_job_suggests_the_near_ones(
    rendered: tuple[Path, SimulatorServer], capsys: Any
) -> None:
    manifest, _ = rendered
    code, _, err = show(manifest, "jbo-1", capsys)
    assert code == 2
    assert "no job jbo-1" in err and "did you mean job-1" in err


def test_show_takes_a_glob_that_matches_one_job(
    rendered: tuple[Path, SimulatorServer], capsys: Any
) -> None:
    manifest, _ = rendered
    code, out, _ = show(manifest, "*-2", capsys, "--json")
    assert code == 0 and json.loads(out)["id"] == "job-2"
    code, _, err = show(manifest, "job-*", capsys)
    assert code == 2 and "matches 3 jobs" in err


def test_verify_moves_nothing_while_a_run_holds_the_lock(
    rendered: tuple[Path, SimulatorServer], capsys: Any
) -> None:
    manifest, _ = rendered
    video = out_dir(manifest) / "job-0.mp4"
    data = bytearray(video.read_bytes())
    data[9] ^= 1
    video.write_bytes(bytes(data))
    with locked(out_dir(manifest)):  # as a live run holds it
        code, out = verify(manifest, capsys)
    assert code == 1 and "job-0" in out
    assert "nothing was moved aside" in out and "Verify again after it" in out
    assert video.read_bytes() == bytes(data)
    code, out = verify(manifest, capsys)
    assert code == 1 and "moved aside to job-0.mp4.corrupt" in out


def test_verify_never_writes_over_a_file_moved_aside_before(
    rendered: tuple[Path, SimulatorServer], capsys: Any
) -> None:
    manifest, _ = rendered
    video = out_dir(manifest) / "job-0.mp4"
    earlier = out_dir(manifest) / "job-0.mp4.corrupt"
    earlier.write_bytes(b"kept from before")
    video.write_bytes(video.read_bytes()[:10])
    code, out = verify(manifest, capsys)
    assert code == 1 and "moved aside to job-0.mp4.corrupt.2" in out
    assert earlier.read_bytes() == b"kept from before"


def test_show_a_job_no_run_has_sent(tmp_path: Path, capsys: Any) -> None:
    manifest = write_manifest(tmp_path, jobs=2)
    code, out, err = show(manifest, "job-0", capsys)
    assert code == 0, err
    assert "stands: new: a run submits it" in out
    assert "journal: nothing recorded yet" in out and "no line names it" in out
    code, out, _ = show(manifest, "job-0", capsys, "--json")
    payload = json.loads(out)
    assert payload["record"] is None and payload["events"] == []
    code, out = verify(manifest, capsys)
    assert code == 0 and "no video downloaded yet: nothing to check (2 jobs not downloaded)" in out
    assert payload["log"] == {
        "path": str(out_dir(manifest) / ".wanbatch" / "log.jsonl"),
        "total": 0,
        "left_out": 0,
        "lines": [],
    }


def test_verify_never_moves_a_link_or_a_file_it_could_not_judge(
    rendered: tuple[Path, SimulatorServer], capsys: Any
) -> None:
    """Only a regular file whose bytes are wrong is moved aside. A link to a good video (the
    user's own arrangement) is listed, and left where it is."""
    manifest, _ = rendered
    out = out_dir(manifest)
    (out / "job-0.mp4").rename(out / "kept.mp4")
    (out / "job-0.mp4").symlink_to(out / "kept.mp4")
    code, text = verify(manifest, capsys)
    assert code == 1 and "job-0" in text
    assert (out / "job-0.mp4").is_symlink()
    assert not list(out.glob("*.corrupt*"))


def test_verify_leaves_a_video_whose_output_the_provider_deleted(
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
    run_cli: Callable[..., int],
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replicate deletes an output an hour after it finished. Moving a damaged video aside
    then would make the next run render it again, and pay: it is listed and left in place."""
    from wanbatch.commands import verify as verify_command

    sim = make_sim(provider="replicate")
    manifest = write_manifest(tmp_path, jobs=1, provider="replicate")
    assert run_cli("run", manifest, sim) == 0
    video = out_dir(manifest) / "job-0.mp4"
    data = bytearray(video.read_bytes())
    data[-1] ^= 0xFF
    video.write_bytes(bytes(data))
    later = verify_command.clock() + 2 * 3600
    monkeypatch.setattr(verify_command, "clock", lambda: later)
    code, text = verify(manifest, capsys)
    assert code == 1 and "job-0" in text and "deleted" in text
    assert video.exists() and not list(out_dir(manifest).glob("*.corrupt*"))


def test_show_names_include_lost_only_for_a_lost_task(
    tmp_path: Path,
    make_sim: Callable[..., SimulatorServer],
    run_cli: Callable[..., int],
    capsys: Any,
) -> None:
    """A prompt the content filter refused: `retry` resubmits it; --include-lost is for a task
    the server lost, and is not named for this one."""
    sim = make_sim(flagged_words=("forbidden",))
    manifest = forbidding(write_manifest(tmp_path, jobs=1), "job-0")
    assert run_cli("run", manifest, sim) == 1
    code, text, _ = show(manifest, "job-0", capsys)
    assert code == 0 and "`wanbatch retry` resubmits it" in text
    assert "--include-lost" not in text
