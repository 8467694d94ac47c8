"""Job ids and fingerprints are keys of existing journals: a manifest read by any later version
must give the same ones. These were computed by the code before the issue 15 speed-ups."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wanbatch import manifest
from wanbatch.errors import ManifestError
from wanbatch.manifest import load_manifest
from wanbatch.models import JobSpec, fingerprint_of

CSV = """id,prompt,model,duration,aspect_ratio,image
,A red fox runs through snow at dawn,,,,
,"\u00dcn\u00efc\u00f6d\u00e9 prompt, with ""quotes"" and commas",wan-2-1,8,9:16,
given-1,A lighthouse at night,,3,1:1,https://example.com/a.png
,  spaced prompt  ,, 7 ,,
"""

YAML = """name: pin
defaults:
  extra: {seed: 7, negative_prompt: "blur"}
matrix:
  aspect_ratio: ["16:9", "9:16"]
  duration: [5, 10]
jobs:
  - prompt: A cat on a skateboard
  - prompt: \u6771\u4eac\u306e\u591c\u666f
    extra: {seed: 1}
  - id: named
    prompt: Waves
    model: wan-2-1
"""

CSV_PINNED = [
    ("a-red-fox-runs-through-snow-1beb746e86ef", "1beb746e86ef3e02", "row 2"),
    # Issue 14: slugs keep accented letters as ASCII (NFKD), so this id's slug changed from
    # "n-c-d-prompt-with-quotes"; its fingerprint did not. Plain ASCII prompts keep their ids.
    ("unicode-prompt-with-quotes-and-commas-9a6d34a7f13c", "9a6d34a7f13c1a0e", "row 3"),
    ("given-1", "2db787737f20b888", "row 4"),
    ("spaced-prompt-b965be07cb57", "b965be07cb575645", "row 5"),
]

YAML_PINNED = [
    ("a-cat-on-a-skateboard-f1ca00b0fd54-5s-16x9", "f1ca00b0fd544845", "line 8"),
    ("a-cat-on-a-skateboard-7f91849022cf-5s-9x16", "7f91849022cf602b", "line 8"),
    ("a-cat-on-a-skateboard-9a224a7d0e8e-10s-16x9", "9a224a7d0e8e22ee", "line 8"),
    ("a-cat-on-a-skateboard-853da5e4945e-10s-9x16", "853da5e4945e27e3", "line 8"),
    ("job-6eca70d77214-5s-16x9", "6eca70d77214de45", "line 9"),
    ("job-216c54da8502-5s-9x16", "216c54da850292c2", "line 9"),
    ("job-b49992f6e66c-10s-16x9", "b49992f6e66cf1a3", "line 9"),
    ("job-035283add487-10s-9x16", "035283add4870569", "line 9"),
    ("named-5s-16x9", "f1c16e5e9c5a3ccc", "line 11"),
    ("named-5s-9x16", "e11103004990ad31", "line 11"),
    ("named-10s-16x9", "004c37d032598ac1", "line 11"),
    ("named-10s-9x16", "e60045ec60dd5380", "line 11"),
]


def _seen(path: Path) -> list[tuple[str, str, str]]:
    manifest = load_manifest(path)
    assert [job.index for job in manifest.jobs] == list(range(len(manifest.jobs)))
    assert all(job.output_path == f"{job.id}.mp4" for job in manifest.jobs)
    return [
        (job.id, job.fingerprint(), job.source.removeprefix(f"{path} ")) for job in manifest.jobs
    ]


def test_csv_ids_and_fingerprints_are_pinned(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(CSV, encoding="utf-8")
    assert _seen(path) == CSV_PINNED


def test_yaml_matrix_ids_and_fingerprints_are_pinned(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(YAML, encoding="utf-8")
    assert _seen(path) == YAML_PINNED


def test_fingerprint_of_fields_is_pinned() -> None:
    fields = {"model": "wan-2-2", "prompt": "A red fox runs through snow at dawn"}
    assert fingerprint_of({**fields, "duration": 5, "aspect_ratio": "16:9"}) == "1beb746e86ef3e02"
    # the canonical JSON's sha256: the order of the keys does not matter
    assert fingerprint_of({"aspect_ratio": "16:9", "duration": 5, **fields}) == "1beb746e86ef3e02"


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    prompt=_TEXT,
    model=_TEXT,
    duration=st.integers(min_value=-(10**20), max_value=10**20),
    ratio=_TEXT,
    image=st.none() | _TEXT,
    extra=st.dictionaries(_TEXT, st.integers() | _TEXT | st.booleans(), max_size=3),
)
def test_the_fast_fingerprint_is_the_canonical_json_one(
    prompt: str, model: str, duration: int, ratio: str, image: str | None, extra: dict[str, Any]
) -> None:
    job = JobSpec("x", prompt, model, duration, ratio, image=image, extra=extra)
    assert job.fingerprint() == fingerprint_of(job.fields())
    assert job.fingerprint() == job.fingerprint()  # kept, and the same


def test_a_changed_copy_has_its_own_fingerprint() -> None:
    job = JobSpec("x", "a fox", "wan-2-2", 5, "16:9")
    first = job.fingerprint()
    moved = dataclasses.replace(job, prompt="a hare")
    assert moved.fingerprint() != first
    assert moved.fingerprint() == fingerprint_of(moved.fields())
    assert dataclasses.replace(job, index=3).fingerprint() == first


_CSV_TEXT = st.text(st.sampled_from(["a", " ", ",", '"', "\r", "\n", "\u2028", "\x0c", "é"]))


@settings(max_examples=500, deadline=None)
@given(text=_CSV_TEXT)
def test_csv_lines_are_read_as_from_a_file_opened_with_newline_empty(text: str) -> None:
    def rows(lines: Iterable[str]) -> list[list[str]] | str:
        try:
            return list(csv.reader(lines))
        except csv.Error as exc:
            return str(exc)

    assert rows(manifest._lines(text)) == rows(io.StringIO(text, newline=""))


def test_a_csv_with_old_mac_line_ends_loads(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b'prompt,duration\r"a fox\r\nin snow",4\rwaves,3\r')
    jobs = load_manifest(path).jobs
    assert [(job.prompt, job.duration) for job in jobs] == [("a fox\r\nin snow", 4), ("waves", 3)]
    assert [job.source.rpartition(" ")[2] for job in jobs] == ["2", "3"]


def test_an_id_or_name_ending_in_a_newline_is_refused(tmp_path: Path) -> None:
    """``$`` matches before a final newline: "abc\\n" passed for an id (a file "abc\\n.mp4")."""
    path = tmp_path / "m.yaml"
    path.write_text('jobs:\n  - id: "abc\\n"\n    prompt: a fox\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="ids use only letters"):
        load_manifest(path)
    path.write_text('name: "spring\\n"\njobs:\n  - prompt: a fox\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="it names a folder"):
        load_manifest(path)
