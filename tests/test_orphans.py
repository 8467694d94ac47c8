"""Issue 14: jobs whose derived ids changed leave orphans, and two manifests with one name refuse
to share an output tree.

A bare CSV's ids come from the prompt and the fields, so a rerun with another ``--duration``
gives new ids: ``plan`` names the old records and videos as orphans (text and ``--json``), and
``status`` counts them. Two different manifest files with the same ``name:`` writing into one tree
are refused at ``run`` (exit 2, nothing sent) and named by ``plan``; the tree's own retry.yaml,
the same manifest from another working directory, a manifest moved away, and a copy with the same
jobs are allowed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.test_runner import write_manifest
from wanbatch import cli
from wanbatch.commands.treecheck import run_manifests
from wanbatch.journal import encode_run_header, journal_path, read_journal
from wanbatch.manifest import load_manifest
from wanbatch.models import DEFAULT_KEY_ENV, JobRecord, JobState
from wanbatch.orphans import Orphan, find_orphans, tree_clashes

CSV = "prompt\na red fox in the snow\nwaves at dusk\n"


def _csv_run(tmp_path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setenv(DEFAULT_KEY_ENV, sim.api_key)
    path = tmp_path / "shots.csv"
    if not path.exists():
        path.write_text(CSV)
    argv = ["run", str(path), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    return cli.main([*argv, "--output", str(tmp_path / "out"), *extra])


def _plan(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["plan", str(path), *extra])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return code, printed.out


# --- orphans: the pure rule -------------------------------------------------------------------


def test_records_and_files_no_manifest_claims_are_orphans() -> None:
    records = {
        "keep": JobRecord(job_id="keep", state=JobState.DOWNLOADED, path="keep.mp4"),
        "old-5s": JobRecord(job_id="old-5s", state=JobState.DOWNLOADED, path="old-5s.mp4"),
        "gone": JobRecord(job_id="gone", state=JobState.FAILED),
    }
    files = ["keep.mp4", "old-5s.mp4", "stray.mp4", "sub/other.mp4", "notes.txt"]
    found = find_orphans(records, {"keep": "keep.mp4"}, files)
    assert found == [
        Orphan("gone", None, "failed"),
        Orphan("old-5s", "old-5s.mp4", "done"),
        Orphan(None, "stray.mp4", "no record"),
        Orphan(None, "sub/other.mp4", "no record"),
    ]  # notes.txt is not a video: the suffixes are those the jobs' videos use


def test_a_video_put_elsewhere_by_its_record_is_claimed() -> None:
    records = {"a": JobRecord(job_id="a", state=JobState.DOWNLOADED, path="moved/a.mp4")}
    assert find_orphans(records, {"a": "a.mp4"}, ["moved/a.mp4"]) == []


# --- orphans: plan and status ------------------------------------------------------------------


def test_a_csv_rerun_with_another_duration_names_the_old_videos_as_orphans(
    tmp_path: Path,
    sim: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _csv_run(tmp_path, sim, monkeypatch) == 0
    old = sorted(p.name for p in (tmp_path / "out").glob("*.mp4"))
    assert len(old) == 2
    assert _csv_run(tmp_path, sim, monkeypatch, "--duration", "8") == 0
    out = str(tmp_path / "out")
    code, text = _plan(tmp_path / "shots.csv", capsys, "--output", out, "--duration", "8")
    assert code == 0
    assert re.search(r"\b2\s+orphans", text), text
    for name in old:
        assert name in text
    assert "other fields" in text and "delete them (each with the .json beside it) or rerun" in text
    code, text = _plan(tmp_path / "shots.csv", capsys, "--output", out, "--duration", "8", "--json")
    orphans = json.loads(text)["orphans"]
    assert sorted(o["path"] for o in orphans) == old
    assert {o["state"] for o in orphans} == {"done"}
    assert all(o["id"] + ".mp4" == o["path"] for o in orphans)
    capsys.readouterr()
    assert (
        cli.main(["status", str(tmp_path / "shots.csv"), "--output", out, "--duration", "8"]) == 0
    )
    assert "2 orphaned records (see plan)" in capsys.readouterr().out
    # with the old flags, the new videos are the orphans
    code, text = _plan(tmp_path / "shots.csv", capsys, "--output", out, "--json")
    assert sorted(o["path"] for o in json.loads(text)["orphans"]) != old
    assert len(json.loads(text)["orphans"]) == 2


def test_no_orphans_is_an_empty_list_and_no_line(
    tmp_path: Path, sim: Any, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    code, text = _plan(manifest, capsys, "--json")
    assert json.loads(text)["orphans"] == []
    code, text = _plan(manifest, capsys, "--json", "--only", "job-0")  # job-1's video is claimed
    assert json.loads(text)["orphans"] == []
    code, text = _plan(manifest, capsys)
    assert "orphans (" not in text and "orphan (" not in text
    capsys.readouterr()
    assert cli.main(["status", str(manifest)]) == 0
    assert "orphaned" not in capsys.readouterr().out


def test_a_stray_video_and_the_retry_manifests_jobs(
    tmp_path: Path,
    make_sim: Callable[..., Any],
    run_cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A video no job claims is named; the jobs of the campaign, seen from its retry.yaml (a
    subset), are not orphans."""
    sim = make_sim(failure_rate=0.0)
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 0
    (tmp_path / "out" / "stray.mp4").write_bytes(b"x")
    (tmp_path / "out" / ".wanbatch" / "hidden.mp4").write_bytes(b"x")  # the state folder: skipped
    code, text = _plan(manifest, capsys, "--json")
    assert json.loads(text)["orphans"] == [{"id": None, "path": "stray.mp4", "state": "no record"}]
    retry = tmp_path / "out" / "again.yaml"  # as a retry.yaml, kept (a run removes retry.yaml)
    lines = write_manifest(tmp_path, jobs=1).read_text().replace("name: t", "name: t-retry")
    retry.write_text(lines.replace("dir: out", "dir: ."))
    write_manifest(tmp_path, jobs=3)
    assert run_cli("run", retry, sim) == 0  # the tree now knows both manifests
    code, text = _plan(retry, capsys, "--json")
    assert json.loads(text)["orphans"] == [{"id": None, "path": "stray.mp4", "state": "no record"}]


# --- shared trees: the pure rule --------------------------------------------------------------


def test_the_shared_tree_rule(tmp_path: Path) -> None:
    first = write_manifest(tmp_path, jobs=2)
    (tmp_path / "b").mkdir()
    other = tmp_path / "b" / "m.yaml"
    other.write_text(first.read_text().replace("dir: out", f"dir: {tmp_path / 'out'}"))
    mine, same_jobs = load_manifest(first), load_manifest(other)
    assert tree_clashes(mine, [same_jobs]) == []  # a copy with the same jobs
    other.write_text(other.read_text().replace("number 1", "number one"))
    differs = load_manifest(other)
    assert tree_clashes(mine, [differs]) == [differs]
    assert tree_clashes(mine, [mine]) == []  # itself
    other.write_text(other.read_text().replace("name: t", "name: u"))
    renamed = load_manifest(other)
    assert tree_clashes(mine, [renamed]) == []  # another name: a choice, not a default


# --- shared trees: run and plan --------------------------------------------------------------


def _twin(tmp_path: Path, name: str = "m2.yaml", change: bool = True) -> Path:
    """A second manifest beside m.yaml, with the same name and output dir."""
    text = (tmp_path / "m.yaml").read_text()
    if change:  # one job more: a run of it alone would send that job
        text += "  - id: job-extra\n    prompt: one more test prompt\n"
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_second_manifest_with_the_same_name_is_refused(
    tmp_path: Path,
    sim: Any,
    run_cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", first, sim) == 0
    created = sim.stats()["tasks_created"]
    second = _twin(tmp_path)
    capsys.readouterr()
    assert run_cli("run", second, sim) == 2
    err = capsys.readouterr().err
    assert str(first.resolve()) in err and str(second) in err, err
    assert "output.dir" in err and "--output" in err and "Nothing was sent" in err
    assert sim.stats()["tasks_created"] == created
    assert run_cli("run", second, sim, "--only", "job-0") == 2
    assert sim.stats()["tasks_created"] == created
    code, text = _plan(second, capsys)
    assert code == 0 and "A run would be refused" in text and str(first.resolve()) in text
    code, text = _plan(second, capsys, "--json")
    assert json.loads(text)["shared_with"] == [str(first.resolve())]
    # what to do: another tree for one of them
    assert run_cli("run", second, sim, "--output", str(tmp_path / "out2")) == 0
    # or the old file moved away
    first.rename(tmp_path / "old.yaml.bak")
    assert run_cli("run", second, sim) == 0


def test_the_trees_retry_manifest_the_same_file_and_a_copy_are_allowed(
    tmp_path: Path,
    make_sim: Callable[..., Any],
    run_cli: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = make_sim(failure_rate=1.0)
    first = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", first, sim) == 1
    retry = tmp_path / "out" / "retry.yaml"
    assert retry.is_file()
    assert run_cli("retry", retry, sim, "--yes") == 1  # the tree's own retry.yaml
    assert run_cli("run", first, sim) == 1  # and back to the campaign
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the same manifest from another working directory
    assert run_cli("run", Path("..") / "m.yaml", sim) == 1
    copy = _twin(tmp_path, "copy.yaml", change=False)  # a copy with the same jobs
    assert run_cli("run", copy, sim) == 1
    assert run_cli("run", copy, sim, "--only", "job-0") == 1  # its whole manifest is compared
    code, text = _plan(copy, capsys, "--json")
    assert json.loads(text)["shared_with"] == []
    out = tmp_path / "out"
    assert run_manifests(out) == read_journal(out).manifests  # the scan sees what a replay sees
    assert len(run_manifests(out)) == 3  # m.yaml, retry.yaml, copy.yaml
    shutil.move(str(first), str(tmp_path / "renamed.yaml"))  # moved by the user
    assert run_cli("run", tmp_path / "renamed.yaml", sim) == 1


def test_the_run_records_are_read_without_a_replay(tmp_path: Path) -> None:
    """A damaged run record is skipped (the session names it), a torn last line ignored."""
    path = journal_path(tmp_path)
    path.parent.mkdir(parents=True)
    good, other = (
        encode_run_header("http://x", "/a/m.yaml"),
        encode_run_header("http://x", "/b.yaml"),
    )
    damaged = other.replace(b"/b.yaml", b"/c.yaml")  # its checksum no longer matches
    path.write_bytes(good + damaged + good + other[:-1])
    assert run_manifests(tmp_path) == ["/a/m.yaml"]
    assert run_manifests(tmp_path / "nowhere") == []
