"""A journal damaged mid-file: refused with exit 2 and the way out; `run --salvage-journal` keeps
every record that still makes sense, moves the damaged file aside, adopts task ids from the
sidecars and says what was lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_journal import ev, write_sample

from wanbatch import cli
from wanbatch.journal import journal_path, read_journal, replay_bytes, state_dir
from wanbatch.models import EventKind, JobState
from wanbatch.salvage import repair

from test_runner import out_dir, stats, videos, write_manifest


def flip(data: bytes, line: int) -> bytes:
    """``data`` with one byte changed inside line ``line`` (1-based)."""
    lines = data.split(b"\n")
    target = bytearray(lines[line - 1])
    middle = len(target) // 2
    target[middle] = ord("#") if target[middle] != ord("#") else ord("%")
    lines[line - 1] = bytes(target)
    return b"\n".join(lines)


# --- the pure repair -------------------------------------------------------------------------


def test_repair_keeps_every_record_around_the_damage(tmp_path: Path) -> None:
    """Line 3 (job a's `created`) damaged: the records before it and job b's after it are kept;
    a's later events cannot follow without it, so a stays where the journal last knew it."""
    damaged = flip(write_sample(tmp_path), 3)
    fixed, report = repair(damaged)
    replay = replay_bytes(fixed, "j")  # a valid journal again
    assert [line for line, _, _ in report.lost] == [3]
    assert replay.records["b"].state is JobState.SUBMITTING
    assert replay.records["a"].state is JobState.SUBMITTING
    assert replay.records["a"].idempotency_key == "k1"
    assert "a" in report.uncertain
    assert replay.base_url is not None


def test_repair_reanchors_a_job_at_a_task_id_found_after_the_damage(tmp_path: Path) -> None:
    """Line 2 (job a's `intent`) damaged: its `created` after the damage still names the task,
    so a is kept with that task (and what followed) instead of being created again."""
    damaged = flip(write_sample(tmp_path), 2)
    fixed, report = repair(damaged)
    replay = replay_bytes(fixed, "j")
    record = replay.records["a"]
    assert record.task_id == "gen_1" and record.state is JobState.DOWNLOADED
    assert record.sha256 == "00"
    assert "gen_1" in report.uncertain["a"]
    assert b"salvaged" in fixed


def test_repair_of_a_whole_journal_changes_nothing(tmp_path: Path) -> None:
    data = write_sample(tmp_path)
    fixed, report = repair(data)
    assert fixed == data and not report.lost and not report.uncertain


def test_repair_after_a_requeue_anchors_at_the_newest_task() -> None:
    """A retried job whose `requeued` line is lost: the newer task is kept, not the failed one."""
    from wanbatch.journal import encode_event, encode_run_header

    events = [
        ev(EventKind.INTENT, idempotency_key="k1", fingerprint="f"),
        ev(EventKind.CREATED, task_id="gen_1"),
        ev(EventKind.FAILED, reason="boom"),
        ev(EventKind.REQUEUED, fingerprint="f"),
        ev(EventKind.INTENT, idempotency_key="k2", fingerprint="f"),
        ev(EventKind.CREATED, task_id="gen_2"),
    ]
    data = encode_run_header("http://x", "m.yaml") + b"".join(map(encode_event, events))
    fixed, report = repair(flip(data, 5))  # the requeued line
    record = replay_bytes(fixed, "j").records["a"]
    assert record.task_id == "gen_2" and record.state is JobState.SUBMITTED
    assert record.idempotency_key == "k2"


# --- end to end against the simulator --------------------------------------------------------


def test_damaged_journal_is_refused_with_exit_2_naming_the_way_out(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """Without the flag: exit 2 (not 5, "rerun resumes"), the line, `--salvage-journal`; nothing sent."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 0
    path = journal_path(out_dir(manifest))
    path.write_bytes(flip(path.read_bytes(), 5))
    requests = stats(sim)["requests_total"]
    capsys.readouterr()
    assert run_cli("run", manifest, sim) == 2
    err = capsys.readouterr().err
    assert "line 5" in err and "--salvage-journal" in err
    assert stats(sim)["requests_total"] == requests
    assert cli.main(["plan", str(manifest)]) == 2
    assert "--salvage-journal" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["intent", "created", "succeeded", "downloaded", "line 5"])
def test_salvage_keeps_the_rest_and_pays_for_nothing(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any, kind: str
) -> None:
    """Whichever record is damaged, `run --salvage-journal` finishes every job with no create,
    keeps the damaged journal aside byte for byte, and names the lost line."""
    sim = make_sim(honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=6)
    assert run_cli("run", manifest, sim) == 0
    kept_videos = videos(manifest)
    path = journal_path(out_dir(manifest))
    lines = path.read_bytes().split(b"\n")
    if kind == "line 5":
        line = 5
    else:
        line = next(i for i, text in enumerate(lines, 1) if f'"ev":"{kind}"'.encode() in text)
    damaged = flip(path.read_bytes(), line)
    path.write_bytes(damaged)
    creates = stats(sim)["creates_total"]
    capsys.readouterr()
    assert run_cli("run", manifest, sim, "--salvage-journal") == 0
    out = capsys.readouterr().out
    assert f"line {line}" in out
    assert stats(sim)["creates_total"] == creates
    assert stats(sim)["tasks_created"] == 6
    assert videos(manifest) == kept_videos
    aside = [p for p in state_dir(out_dir(manifest)).iterdir() if ".damaged" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged
    records = read_journal(out_dir(manifest)).records
    assert {r.state for r in records.values()} == {JobState.DOWNLOADED}
    # A later run is an ordinary resume: nothing to salvage, nothing sent.
    requests = stats(sim)["requests_total"]
    assert run_cli("run", manifest, sim, "--salvage-journal") == 0
    assert stats(sim)["requests_total"] == requests


def test_salvage_names_the_uncertain_jobs(
    tmp_path: Path, make_sim: Any, run_cli: Any, capsys: Any
) -> None:
    """The job of a damaged `created` line is named as uncertain, then adopted from its sidecar."""
    sim = make_sim(honour_idempotency=False)
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 0
    path = journal_path(out_dir(manifest))
    lines = path.read_bytes().split(b"\n")
    line = next(i for i, text in enumerate(lines, 1) if b'"ev":"created"' in text)
    job = json.loads(lines[line - 1])["job"]
    path.write_bytes(flip(path.read_bytes(), line))
    capsys.readouterr()
    assert run_cli("run", manifest, sim, "--salvage-journal") == 0
    out = capsys.readouterr().out
    assert job in out and "adopted" in out
    assert stats(sim)["creates_total"] == 3


def test_a_damaged_lines_job_is_named_only_when_printable() -> None:
    from wanbatch.recovery import job_hint

    assert job_hint(b'{"v":1,"ev":"created","job":"job-3","crc":"zz"}') == "job-3"
    assert job_hint(b'{"v":1,"ev":"created","job":"a\x1b[2Jb","crc":"zz"}') is None
    assert job_hint(b"\x00\x01garbage") is None
