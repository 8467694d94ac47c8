"""The command line in-process: `main(argv) -> int`, help, version, validate's plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wanbatch import __version__, cli

CAMPAIGN = str(Path(__file__).resolve().parent.parent / "jobs" / "campaign.yaml")


def test_validate_prints_the_plan(capsys: Any) -> None:
    """`validate` prints job count, seconds, the breakdown, the credits estimate and the output dir."""
    assert cli.main(["validate", CAMPAIGN]) == 0
    out = capsys.readouterr().out
    assert "13 jobs, 73 s of video" in out
    assert "wan-2-1" in out and "9:16" in out
    assert "estimated credits: 650" in out
    assert "renders/spring-campaign" in out


def test_validate_json_and_list(capsys: Any) -> None:
    """`validate --json --list` is JSON with the totals and every expanded job."""
    assert cli.main(["validate", CAMPAIGN, "--json", "--list"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["jobs_count"] == 13 and plan["seconds"] == 73 and plan["credits"] == 650
    assert plan["by_model_and_aspect_ratio"]["wan-2-2 16:9"] == {"jobs": 4, "seconds": 24}
    assert {job["id"] for job in plan["jobs"]} >= {"forest-drone-16x9", "picnic-9x16"}


def test_validate_list_prints_every_job(capsys: Any) -> None:
    """`validate --list` prints each job id and output path."""
    assert cli.main(["validate", CAMPAIGN, "--list"]) == 0
    out = capsys.readouterr().out
    assert out.count(".mp4") == 13 and "product-spin-9x16" in out


def test_help_lists_every_command(capsys: Any) -> None:
    """`--help` exits 0 and names every command of the spec."""
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "validate", "status", "retry", "plan", "report", "sim"):
        assert command in out


def test_version(capsys: Any) -> None:
    """`--version` prints the version and exits 0."""
    assert cli.main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["run"],
        ["run", CAMPAIGN, "--concurrency", "0"],
        ["run", CAMPAIGN, "--rps", "x"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: Any) -> None:
    """Missing or bad arguments exit 2 with argparse's message, before anything is read or sent."""
    assert cli.main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_missing_manifest_is_a_clear_error(tmp_path: Path, capsys: Any) -> None:
    """A manifest path that does not exist exits 2 and says so."""
    assert cli.main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_report_before_any_run_shows_every_job_new(tmp_path: Path, capsys: Any) -> None:
    """`report` with no journal yet: a gallery of new cards, no retry.yaml; sends nothing."""
    output = tmp_path / "out"
    assert cli.main(["report", CAMPAIGN, "--output", str(output)]) == 0
    assert "no failed jobs" in capsys.readouterr().out
    html = (output / "report.html").read_text()
    assert html.count('class="card"') == 13 and html.count('data-state="new"') == 13
    assert not (output / "retry.yaml").exists()


def test_sim_help_is_the_simulators(capsys: Any) -> None:
    """`wanbatch sim --help` shows the simulator's own options."""
    assert cli.main(["sim", "--help"]) == 0
    assert "--generation-seconds" in capsys.readouterr().out
    assert cli.main(["sim", "--slots", "many"]) == 2
