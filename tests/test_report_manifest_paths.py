"""The journal names the manifests runs used by absolute path, so that `report` draws the whole
batch from any folder; a path an older journal kept as typed is found as well as it can be, and
one that cannot be found is said, not silently left out of the gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wanbatch import cli
from wanbatch.journal import Journal, read_journal

KEY_ENV = "WAN_API_KEY"
JOBS = "jobs:\n  - {id: a, prompt: a fox}\n  - {id: b, prompt: a celebrity}\n  - {id: c, prompt: a hen}\n"


def cards(output: Path) -> int:
    return (output / "report.html").read_text(encoding="utf-8").count('class="card"')


def test_run_records_the_manifest_by_absolute_path(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run m.yaml` from the manifest's folder: the journal's run header holds /abs/.../m.yaml."""
    sim = make_sim()
    (tmp_path / "m.yaml").write_text(JOBS.replace("celebrity", "cat"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    argv = ["run", "m.yaml", "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    assert cli.main(argv) == 0
    manifests = read_journal(tmp_path / "renders" / "m").manifests
    assert manifests == [str(tmp_path.resolve() / "m.yaml")]


def test_report_of_the_retry_manifest_from_another_folder_draws_every_card(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The README's flow: run (one job fails), then `report .../retry.yaml` from elsewhere: the
    gallery shows the batch's 3 cards, not only the retry manifest's 1."""
    sim = make_sim(flagged_words=("celebrity",))
    project = tmp_path / "project"
    project.mkdir()
    (project / "m.yaml").write_text(JOBS, encoding="utf-8")
    monkeypatch.chdir(project)
    monkeypatch.setenv(KEY_ENV, sim.api_key)
    argv = ["run", "m.yaml", "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
    assert cli.main(argv) == 1  # one job failed for good
    output = project / "renders" / "m"
    assert cards(output) == 3 and (output / "retry.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert cli.main(["report", str(output / "retry.yaml")]) == 0
    assert cards(output) == 3
    assert "leaves out" not in capsys.readouterr().err


def _old_journal(output: Path, typed: str) -> None:
    """A journal as older versions wrote it: the manifest path as the user typed it."""
    journal = Journal.open(output, base_url="http://127.0.0.1:9/v1", manifest=typed)
    journal.close()


def test_an_old_relative_path_is_found_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A journal that says `m.yaml` (typed in the project folder): `report other.yaml` from
    elsewhere still draws m.yaml's jobs, found beside the output tree, and says nothing is lost."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "m.yaml").write_text(JOBS, encoding="utf-8")
    output = project / "renders" / "m"
    _old_journal(output, "m.yaml")
    (project / "other.yaml").write_text(
        "output: {dir: renders/m}\njobs:\n  - {id: d, prompt: a dog}\n", encoding="utf-8"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.yaml").write_text("jobs:\n  - {id: z, prompt: a stranger}\n")  # a decoy
    monkeypatch.chdir(elsewhere)
    assert cli.main(["report", str(project / "other.yaml")]) == 0
    page = (output / "report.html").read_text(encoding="utf-8")
    assert cards(output) == 4 and "a stranger" not in page
    assert "leaves out" not in capsys.readouterr().err


def test_a_manifest_that_cannot_be_found_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A journal naming a manifest that is gone: the report is written from what is there, and
    stderr says which manifest's jobs are missing from it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "m.yaml").write_text(JOBS, encoding="utf-8")
    output = project / "renders" / "m"
    _old_journal(output, "gone.yaml")
    _old_journal(output, str(tmp_path / "moved" / "abs.yaml"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", str(project / "m.yaml")]) == 0
    assert cards(output) == 3
    err = capsys.readouterr().err
    assert "gone.yaml" in err and "abs.yaml" in err and "leaves out" in err, err
