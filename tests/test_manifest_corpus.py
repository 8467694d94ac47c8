"""Malformed manifests: each exits 2 from `wanbatch validate`, naming file, line or row, and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wanbatch import cli

GOOD_JOB = "jobs:\n  - id: a\n    prompt: a forest\n"

# (case id, file name, content, expected location, expected key or phrase)
CORPUS: list[tuple[str, str, Any, str, str]] = [
    (
        "unknown-top-key",
        "m.yaml",
        "nmae: x\n" + GOOD_JOB,
        "1",
        "nmae: unknown key; did you mean 'name'",
    ),
    (
        "unknown-job-key",
        "m.yaml",
        "jobs:\n  - id: a\n    prompt: p\n    duraton: 5\n",
        "4",
        "jobs[0].duraton: unknown key; did you mean 'duration'",
    ),
    ("missing-prompt", "m.yaml", "jobs:\n  - id: a\n    duration: 5\n", "2", "jobs[0].prompt"),
    (
        "empty-prompt",
        "m.yaml",
        "jobs:\n  - id: a\n    prompt: '  '\n",
        "3",
        "jobs[0].prompt: must be non-empty text",
    ),
    (
        "prompt-not-text",
        "m.yaml",
        "jobs:\n  - id: a\n    prompt: [1, 2]\n",
        "3",
        "jobs[0].prompt",
    ),
    (
        "unknown-model",
        "m.yaml",
        "jobs:\n  - prompt: p\n    model: wan-9\n",
        "3",
        "jobs[0].model: unknown model 'wan-9'",
    ),
    (
        "duration-zero",
        "m.yaml",
        "jobs:\n  - prompt: p\n    duration: 0\n",
        "3",
        "jobs[0].duration: must be positive",
    ),
    (
        "duration-negative",
        "m.yaml",
        "jobs:\n  - prompt: p\n    duration: -4\n",
        "3",
        "jobs[0].duration",
    ),
    (
        "duration-text",
        "m.yaml",
        "jobs:\n  - prompt: p\n    duration: five\n",
        "3",
        "jobs[0].duration: must be a whole number",
    ),
    (
        "duration-float",
        "m.yaml",
        "jobs:\n  - prompt: p\n    duration: 2.5\n",
        "3",
        "jobs[0].duration",
    ),
    (
        "duration-too-long",
        "m.yaml",
        "jobs:\n  - prompt: p\n    duration: 6000\n",
        "3",
        "jobs[0].duration: must be at most",
    ),
    (
        "aspect-bad",
        "m.yaml",
        "jobs:\n  - prompt: p\n    aspect_ratio: wide\n",
        "3",
        "jobs[0].aspect_ratio: must be W:H",
    ),
    (
        "aspect-zero",
        "m.yaml",
        "jobs:\n  - prompt: p\n    aspect_ratio: '0:9'\n",
        "3",
        "jobs[0].aspect_ratio",
    ),
    (
        "image-not-url",
        "m.yaml",
        "jobs:\n  - prompt: p\n    image: /tmp/x.png\n",
        "3",
        "jobs[0].image: must be an http(s) URL",
    ),
    ("id-bad-chars", "m.yaml", "jobs:\n  - id: 'a b/c'\n    prompt: p\n", "2", "jobs[0].id"),
    ("id-leading-dot", "m.yaml", "jobs:\n  - id: .hidden\n    prompt: p\n", "2", "jobs[0].id"),
    (
        "id-too-long",
        "m.yaml",
        "jobs:\n  - id: " + "x" * 101 + "\n    prompt: p\n",
        "2",
        "jobs[0].id: is 101 characters",
    ),
    (
        "id-duplicate",
        "m.yaml",
        "jobs:\n  - id: a\n    prompt: p\n  - id: a\n    prompt: q\n",
        "4",
        "jobs[1].id: id 'a' is used twice",
    ),
    (
        "id-duplicate-after-matrix",
        "m.yaml",
        "matrix:\n  aspect_ratio: ['16:9', '9:16']\njobs:\n  - id: a-9x16\n    prompt: p\n    aspect_ratio: '9:16'\n  - id: a\n    prompt: q\n",
        "7",
        "used twice",
    ),
    (
        "template-unknown-field",
        "m.yaml",
        "output:\n  path: '{id}-{colour}.mp4'\n" + GOOD_JOB,
        "2",
        "output.path: unknown field {colour}",
    ),
    (
        "template-escapes",
        "m.yaml",
        "output:\n  path: '../{id}.mp4'\n" + GOOD_JOB,
        "2",
        "output.path",
    ),
    (
        "template-absolute",
        "m.yaml",
        "output:\n  path: '/etc/{id}.mp4'\n" + GOOD_JOB,
        "2",
        "output.path",
    ),
    (
        "template-without-id",
        "m.yaml",
        "output:\n  path: 'video.mp4'\n" + GOOD_JOB,
        "2",
        "output.path: must contain {id}",
    ),
    (
        "limits-zero",
        "m.yaml",
        "limits:\n  concurrency: 0\n" + GOOD_JOB,
        "2",
        "limits.concurrency: must be positive",
    ),
    (
        "limits-rps-text",
        "m.yaml",
        "limits:\n  requests_per_second: fast\n" + GOOD_JOB,
        "2",
        "limits.requests_per_second",
    ),
    (
        "pricing-negative",
        "m.yaml",
        "pricing:\n  wan-2-2: -1\n" + GOOD_JOB,
        "2",
        "pricing.wan-2-2",
    ),
    (
        "pricing-unknown-model",
        "m.yaml",
        "pricing:\n  wan-3: 5\n" + GOOD_JOB,
        "2",
        "pricing.wan-3: unknown model",
    ),
    ("yaml-syntax", "m.yaml", "jobs:\n  - prompt: [unclosed\n", "3", "YAML syntax"),
    ("top-level-list", "m.yaml", "- prompt: p\n", "1", "put the jobs under `jobs:`"),
    ("empty-file", "m.yaml", "", "", "the manifest is empty"),
    ("binary", "m.yaml", b"\x00\x01\x02jobs", "", "binary file"),
    ("not-utf8", "m.yaml", b"jobs:\n  - prompt: caf\xe9\n", "2", "not UTF-8"),
    ("jobs-not-list", "m.yaml", "jobs: {prompt: p}\n", "1", "jobs: must be a list"),
    ("duplicate-key", "m.yaml", "name: a\nname: b\n" + GOOD_JOB, "2", "name: duplicate key"),
    (
        "matrix-not-list",
        "m.yaml",
        "matrix:\n  aspect_ratio: '16:9'\n" + GOOD_JOB,
        "2",
        "matrix.aspect_ratio: must be a non-empty list",
    ),
    (
        "matrix-unknown-axis",
        "m.yaml",
        "matrix:\n  colour: [red]\n" + GOOD_JOB,
        "2",
        "matrix.colour: unknown key",
    ),
    (
        "jobs-from-missing",
        "m.yaml",
        "jobs_from: nowhere.csv\n",
        "1",
        "jobs_from: file not found",
    ),
    (
        "api-key-env-bad",
        "m.yaml",
        "api:\n  key_env: 'not a var'\n" + GOOD_JOB,
        "2",
        "api.key_env",
    ),
    (
        "api-base-url-bad",
        "m.yaml",
        "api:\n  base_url: ftp://x\n" + GOOD_JOB,
        "2",
        "api.base_url",
    ),
    ("csv-no-prompt-column", "m.csv", "id,model\na,wan-2-2\n", "1", "prompt"),
    ("csv-unknown-column", "m.csv", "prompt,promt2\np,q\n", "1", "promt2: unknown column"),
    (
        "csv-bad-duration",
        "m.csv",
        "prompt,duration\nfine,5\nbad,five\n",
        "3",
        "jobs[1].duration",
    ),
    (
        "csv-bad-model-row",
        "m.csv",
        "prompt,model\na,wan-2-2\nb,wan-2-2\nc,wan-x\n",
        "4",
        "jobs[2].model",
    ),
    ("wrong-suffix", "m.txt", GOOD_JOB, "", "a manifest is a .yaml, .yml or .csv file"),
]


@pytest.mark.parametrize(
    ("name", "content", "location", "expected"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_malformed_manifest_is_refused_precisely(
    tmp_path: Path, capsys: Any, name: str, content: Any, location: str, expected: str
) -> None:
    """Exit 2, no traceback, and the message names the file, the line or row, and the key."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(path) in err
    assert expected in err
    if location:
        assert f"{path}:{location}:" in err


def test_corpus_is_large_and_distinct() -> None:
    """The corpus holds at least 25 distinct malformed manifests."""
    assert len(CORPUS) >= 25
    assert len({case[0] for case in CORPUS}) == len(CORPUS)
    assert len(
        {case[2] if isinstance(case[2], bytes) else case[2].encode() for case in CORPUS}
    ) == len(CORPUS)


def test_every_problem_is_reported_in_one_pass(tmp_path: Path, capsys: Any) -> None:
    """A manifest with three problems lists all three at once."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "limits:\n  concurrency: -1\njobs:\n  - prompt: p\n    model: wan-9\n  - prompt: ''\n"
    )
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err
    for key in ("limits.concurrency", "jobs[0].model", "jobs[1].prompt"):
        assert key in err


def test_problems_in_a_jobs_from_file_name_that_file(tmp_path: Path, capsys: Any) -> None:
    """A bad row in the CSV named by jobs_from is reported against the CSV and its row."""
    (tmp_path / "more.csv").write_text("prompt,duration\nok,5\nbad,-2\n")
    path = tmp_path / "m.yaml"
    path.write_text("jobs_from: more.csv\n")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "more.csv:3: jobs[1].duration" in err


def test_nul_bytes_in_paths_are_manifest_errors(tmp_path: Path, capsys: Any) -> None:
    """A NUL byte in name, output.dir or jobs_from is a clear error, not a crash."""
    path = tmp_path / "m.yaml"
    path.write_text('name: "a\\0"\noutput: {dir: "o\\0"}\njobs_from: "x\\0.csv"\n' + GOOD_JOB)
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for key in ("name", "output.dir", "jobs_from"):
        assert f" {key}:" in err
