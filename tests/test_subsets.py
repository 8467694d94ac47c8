"""Subsets: ``--only ID_OR_GLOB`` (repeatable, any may match) and ``--where FIELD=VALUE``
(repeatable, all hold) on run, retry, plan, status, report and validate. In-process CLI against
the simulator over loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_gallery import Page
from tests.test_runner import out_dir, stats, videos, write_manifest
from wanbatch import cli
from wanbatch.journal import read_journal
from wanbatch.models import JobState

ALL = [f"job-{i}" for i in range(6)]


def cards(manifest: Path) -> list[str | None]:
    page = (out_dir(manifest) / "report.html").read_text()
    return [card["data-job"] for card in Page(page).cards]


def json_of(capsys: Any, *argv: str) -> Any:
    capsys.readouterr()
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_run_only_renders_those_and_the_gallery_keeps_every_job(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """--only (an id and a glob): only those are created; the others are untouched in the
    journal; the gallery after it still holds a card for every job of the tree."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=6)
    assert run_cli("run", manifest, sim, "--only", "job-1", "--only", "job-[34]") == 0
    assert stats(sim)["tasks_created"] == 3
    assert sorted(videos(manifest)) == ["job-1", "job-3", "job-4"]
    records = read_journal(out_dir(manifest)).records
    for job_id in ("job-0", "job-2", "job-5"):
        assert job_id not in records or records[job_id].state is JobState.PLANNED
    assert cards(manifest) == ALL
    # and the rest is still there to do: a plain run renders the other three
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["tasks_created"] == 6


def test_a_subset_run_keeps_the_other_failures_in_retry_yaml(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """A run of other jobs must not drop a failed job from retry.yaml (nor its card)."""
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3, last_job_lines=["extra: {aspect_ratio: sideways}"])
    assert run_cli("run", manifest, sim, "--only", "job-2") == 1
    retry_file = out_dir(manifest) / "retry.yaml"
    assert "job-2" in retry_file.read_text()
    assert run_cli("run", manifest, sim, "--only", "job-0") == 0
    assert retry_file.exists() and "job-2" in retry_file.read_text()
    assert cards(manifest) == ["job-0", "job-1", "job-2"]


def test_run_where_selects_by_field(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=3, last_job_lines=["duration: 8"])
    assert run_cli("run", manifest, sim, "--where", "duration=8") == 0
    assert sorted(videos(manifest)) == ["job-2"]
    assert run_cli("run", manifest, sim, "--where", "duration=5", "--where", "id=job-0") == 0
    assert sorted(videos(manifest)) == ["job-0", "job-2"]


def test_retry_only_resubmits_those(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    sim = make_sim(failure_rate=1.0)
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 1
    sim.set_config(failure_rate=0.0)
    assert run_cli("retry", manifest, sim, "--yes", "--only", "job-1") == 0
    assert stats(sim)["tasks_created"] == 4
    assert sorted(videos(manifest)) == ["job-1"]
    records = read_journal(out_dir(manifest)).records
    assert records["job-0"].state is JobState.FAILED and records["job-2"].state is JobState.FAILED
    retry_text = (out_dir(manifest) / "retry.yaml").read_text()
    assert "job-0" in retry_text and "job-2" in retry_text and "job-1" not in retry_text
    assert cards(manifest) == ["job-0", "job-1", "job-2"]


def test_plan_and_status_only(tmp_path: Path, capsys: Any) -> None:
    manifest = write_manifest(tmp_path, jobs=6)
    plan = json_of(capsys, "plan", str(manifest), "--json", "--only", "job-[12]")
    assert plan["jobs"]["new"] == ["job-1", "job-2"] and plan["to_submit"]["jobs"] == 2
    status = json_of(capsys, "status", str(manifest), "--json", "--only", "job-5")
    assert [row["id"] for row in status["jobs"]] == ["job-5"] and status["total"] == 1
    status = json_of(capsys, "status", str(manifest), "--json", "--where", "model=wan-2-2")
    assert status["total"] == 6


def test_validate_only(tmp_path: Path, capsys: Any) -> None:
    manifest = write_manifest(tmp_path, jobs=6)
    plan = json_of(capsys, "validate", str(manifest), "--json", "--list", "--only", "job-?")
    assert plan["jobs_count"] == 6
    plan = json_of(capsys, "validate", str(manifest), "--json", "--list", "--only", "job-0")
    assert plan["jobs_count"] == 1 and [job["id"] for job in plan["jobs"]] == ["job-0"]


def test_report_only_keeps_retry_yaml_whole(tmp_path: Path, make_sim: Any, run_cli: Any) -> None:
    """`report --only`: a gallery of those jobs; retry.yaml keeps every failed job of the tree."""
    sim = make_sim(failure_rate=1.0)
    manifest = write_manifest(tmp_path, jobs=3)
    assert run_cli("run", manifest, sim) == 1
    assert cli.main(["report", str(manifest), "--only", "job-0"]) == 0
    retry_text = (out_dir(manifest) / "retry.yaml").read_text()
    assert all(job_id in retry_text for job_id in ("job-0", "job-1", "job-2"))
    assert cards(manifest) == ["job-0"]  # the gallery shows what was asked for


@pytest.mark.parametrize("command", ["run", "retry", "plan", "status", "report", "validate"])
@pytest.mark.parametrize(
    ("selector", "named"),
    [(["--only", "shot-*"], "--only shot-*"), (["--where", "model=wan-9"], "model=wan-9")],
)
def test_a_selector_matching_nothing_is_an_error_naming_it(
    tmp_path: Path, capsys: Any, command: str, selector: list[str], named: str
) -> None:
    manifest = write_manifest(tmp_path, jobs=2)
    capsys.readouterr()
    yes = ["--yes"] if command in ("run", "retry") else []
    assert cli.main([command, str(manifest), *selector, *yes]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert not out_dir(manifest).exists() or not any(out_dir(manifest).glob("*.mp4"))


def test_where_on_an_unknown_field_names_the_fields(tmp_path: Path, capsys: Any) -> None:
    manifest = write_manifest(tmp_path, jobs=1)
    capsys.readouterr()
    assert cli.main(["plan", str(manifest), "--where", "colour=red"]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and "model" in err and "extra.KEY" in err


def test_where_on_an_extra_field(tmp_path: Path, capsys: Any) -> None:
    manifest = write_manifest(tmp_path, jobs=3, last_job_lines=["extra: {seed: 7}"])
    plan = json_of(capsys, "plan", str(manifest), "--json", "--where", "extra.seed=7")
    assert plan["jobs"]["new"] == ["job-2"]


# --- the pure rule ------------------------------------------------------------------------------


def jobs_of(tmp_path: Path) -> Any:
    from wanbatch.manifest import load_manifest

    manifest = write_manifest(tmp_path, jobs=3, last_job_lines=["duration: 8"])
    return load_manifest(manifest).jobs


def test_select_names_the_where_that_matches_no_job(tmp_path: Path) -> None:
    from wanbatch.errors import UsageError
    from wanbatch.selection import select

    jobs = jobs_of(tmp_path)
    with pytest.raises(UsageError) as caught:
        select(jobs, where=[("model", "wan-2-2"), ("duration", "9")])
    assert str(caught.value).startswith("--where duration=9: no job matches")
    assert "model=wan-2-2" not in str(caught.value)


def test_select_names_a_combination_that_matches_no_job(tmp_path: Path) -> None:
    """Each selector matches some job, together none: the message names them all."""
    from wanbatch.errors import UsageError
    from wanbatch.selection import select

    jobs = jobs_of(tmp_path)
    assert [job.id for job in select(jobs, only=["job-2"], where=[("duration", "8")])] == ["job-2"]
    with pytest.raises(UsageError) as caught:
        select(jobs, only=["job-0"], where=[("duration", "8")])
    message = str(caught.value)
    assert "--only job-0" in message and "--where duration=8" in message


def test_where_with_an_empty_value_selects_jobs_without_the_field(tmp_path: Path) -> None:
    """``--where image=``: the jobs with no image (a field a job lacks reads as empty)."""
    from wanbatch.selection import select

    jobs = jobs_of(tmp_path)
    assert [job.id for job in select(jobs, where=[("image", "")])] == ["job-0", "job-1", "job-2"]
    assert [job.id for job in select(jobs, where=[("extra.seed", "")])] == [
        "job-0",
        "job-1",
        "job-2",
    ]


def test_where_messages_name_what_was_typed_and_the_values_there_are() -> None:
    """`--where colour=red` names `colour=red`; `--where duration=5s` says values match exactly
    and shows the values the jobs have (5, 8), so the fix is plain."""
    from wanbatch.errors import UsageError
    from wanbatch.models import JobSpec
    from wanbatch.selection import select

    jobs = [JobSpec(f"j{n}", "p", "wan-2-2", duration, "16:9") for n, duration in enumerate((5, 8))]
    with pytest.raises(UsageError, match="--where colour=red: no such field"):
        select(jobs, where=[("colour", "red")])
    with pytest.raises(UsageError) as caught:
        select(jobs, where=[("duration", "5s")])
    assert "the jobs have 5, 8" in str(caught.value) and "exactly" in str(caught.value)
