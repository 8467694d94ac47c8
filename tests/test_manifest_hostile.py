"""Hostile YAML values: each is refused by `validate` (and so by `plan`/`run`) with file, line and
key, never a traceback; alias bombs and recursive aliases are refused within bounded memory."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wanbatch import cli
from wanbatch.errors import ManifestError
from wanbatch.manifest import load_manifest

JOB = "jobs:\n  - id: a\n    prompt: p\n"
EXTRA = JOB + "    extra:\n"  # the extra mapping's entries go on line 5

# (case id, YAML text, expected location, expected key, expected phrase)
HOSTILE: list[tuple[str, str, str, str, str]] = [
    ("date", EXTRA + "      when: 2024-01-01\n", "5", "jobs[0].extra.when", "date"),
    ("datetime", EXTRA + "      at: 2024-01-01 10:00:00\n", "5", "jobs[0].extra.at", "date"),
    ("impossible-date", EXTRA + "      at: 2024-02-30\n", "5", "jobs[0].extra.at", "date"),
    ("binary", EXTRA + "      blob: !!binary aGVsbG8=\n", "5", "jobs[0].extra.blob", "binary"),
    ("set", EXTRA + "      tags: !!set {a, b}\n", "5", "jobs[0].extra.tags", "set"),
    ("omap", EXTRA + "      o: !!omap [a: 1]\n", "5", "jobs[0].extra.o", "ordered"),
    ("nan", EXTRA + "      seed: .nan\n", "5", "jobs[0].extra.seed", "finite"),
    ("inf", EXTRA + "      seed: -.inf\n", "5", "jobs[0].extra.seed", "finite"),
    ("nan-in-list", EXTRA + "      w: [1, .NaN]\n", "5", "jobs[0].extra.w[1]", "finite"),
    (
        "lone-surrogate",
        JOB + '    extra: {note: "x\\ud800"}\n',
        "4",
        "jobs[0].extra.note",
        "UTF-8",
    ),
    ("surrogate-prompt", 'jobs:\n  - prompt: "\\udfff"\n', "2", "jobs[0].prompt", "UTF-8"),
    ("surrogate-key", JOB + '    extra: {"\\udc80": 1}\n', "4", "jobs[0].extra", "UTF-8"),
    ("date-as-key", JOB + "    extra: {2024-01-01: 1}\n", "4", "jobs[0].extra", "date"),
    ("recursive-list", "jobs: &a [*a]\n", "1", "jobs", "refers to itself"),
    (
        "recursive-mapping",
        "jobs:\n  - &j\n    prompt: p\n    extra: *j\n",
        "4",
        "jobs[0].extra",
        "refers to itself",
    ),
    (
        "huge-integer",
        "jobs:\n  - prompt: p\n    duration: " + "9" * 5000 + "\n",
        "3",
        "",
        "YAML",
    ),
    (
        "deep-nesting",
        JOB + "    extra: {a: " + "[" * 3000 + "]" * 3000 + "}\n",
        "4",
        "jobs[0].extra.a[0][0]",
        "nested",
    ),
]


@pytest.mark.parametrize(
    ("text", "location", "key", "phrase"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_hostile_value_is_refused_with_file_line_and_key(
    tmp_path: Path, capsys: Any, command: str, text: str, location: str, key: str, phrase: str
) -> None:
    """Exit 2, no traceback; the message names the file, the line, the key and what is wrong."""
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert cli.main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{path}:{location}:" in err, err
    if key:
        assert f"{location}: {key}" in err, err
    assert phrase in err, err
    err.encode("utf-8")  # printable: a lone surrogate in a key is shown escaped


def test_hostile_value_in_a_jobs_from_file_names_that_file(tmp_path: Path, capsys: Any) -> None:
    """A date in the YAML named by jobs_from is reported against that file and its line."""
    (tmp_path / "more.yaml").write_text("- prompt: p\n  extra:\n    when: 2024-01-01\n")
    path = tmp_path / "m.yaml"
    path.write_text("jobs_from: more.yaml\n")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "more.yaml:3:" in err and "extra.when" in err and "date" in err


def test_dates_in_quotes_and_finite_numbers_still_load(tmp_path: Path, capsys: Any) -> None:
    """Quoted dates are text, finite floats and anchors/merge keys of modest size still work."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "defaults: &d {duration: 4}\n"
        "jobs:\n"
        "  - {id: a, prompt: p, extra: {when: '2024-01-01', cfg: 7.5, seed: 3}}\n"
        "  - {<<: *d, id: b, prompt: q, extra: {tags: [x, y]}}\n"
    )
    assert cli.main(["validate", str(path), "--list"]) == 0, capsys.readouterr().err


def billion_laughs(levels: int = 9, width: int = 9, *, merge: bool = False) -> str:
    """The classic alias bomb: each level lists the previous one `width` times (or merges it
    `width` times with `<<:`, which PyYAML copies into every mapping that merges it)."""
    lines = ["a0: &a0 {k: v}" if merge else "a0: &a0 [lol]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        body = f"{{<<: [{refs}], k{level}: v}}" if merge else f"[{refs}]"
        lines.append(f"a{level}: &a{level} {body}")
    lines.append("jobs:\n  - prompt: p\n    extra:")
    lines.append(f"      bomb: *a{levels}")
    return "\n".join(lines) + "\n"


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    limit = 1024 * 1024 * 1024  # 1 GiB of address space; the bomb wants several
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("merge", [False, True], ids=["lists", "merge-keys"])
def test_alias_bomb_is_refused_within_bounded_memory(tmp_path: Path, merge: bool) -> None:
    """9**9 expanded nodes from 11 lines: refused naming the alias' line, in a child process held
    to 1 GiB (the loader used to walk every expanded path: 20 s and 2 GB, or a MemoryError here)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(merge=merge), encoding="utf-8")
    child = subprocess.run(
        [sys.executable, "-m", "wanbatch", "validate", str(path)],
        capture_output=True,
        text=True,
        preexec_fn=_limit_memory,
        env={**os.environ, "PYTHONFAULTHANDLER": ""},
        check=False,
    )
    assert child.returncode == 2, child.stderr[-2000:]
    assert "Traceback" not in child.stderr
    assert re.search(
        rf"{re.escape(str(path))}:\d+: a\d(\.<<)?\[\d\]: .*alias bomb", child.stderr
    ), child.stderr[-2000:]


def test_many_small_aliases_are_fine(tmp_path: Path, capsys: Any) -> None:
    """A manifest that merges one defaults block into 2,000 jobs is not mistaken for a bomb."""
    jobs = "".join(f"  - {{<<: *d, id: j{i}, prompt: p{i}}}\n" for i in range(2000))
    path = tmp_path / "m.yaml"
    path.write_text("x-defaults: &d {duration: 4, extra: {seed: 1, cfg: 2}}\njobs:\n" + jobs)
    # x-defaults is an unknown top key: refused for that reason alone, and not as a bomb.
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1 problem" in err and "x-defaults: unknown key" in err, err


# --- output paths that collide with what wanbatch itself writes (item 16) ----------------------

# (case id, manifest text, phrases the message must hold)
COLLIDING: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "job-named-like-the-gallery",
        "output: {path: '{id}'}\njobs:\n  - {id: report.html, prompt: p}\n",
        ("report.html", "gallery"),
    ),
    (
        "job-named-like-the-gallery-data",
        "output: {path: '{id}'}\njobs:\n  - {id: report.data.js, prompt: p}\n",
        ("report.data.js",),
    ),
    (
        "job-named-like-the-retry-manifest",
        "output: {path: '{id}'}\njobs:\n  - {id: retry.yaml, prompt: p}\n",
        ("retry.yaml",),
    ),
    (
        "gallery-name-in-another-case",
        "output: {path: '{id}'}\njobs:\n  - {id: Report.HTML, prompt: p}\n",
        ("Report.HTML", "gallery"),
    ),
    (
        "gallery-name-as-a-folder",
        "output: {path: '{id}/video.mp4'}\njobs:\n  - {id: report.html, prompt: p}\n",
        ("report.html",),
    ),
    (
        "video-is-its-own-sidecar",
        "output: {path: '{id}'}\njobs:\n  - {id: shot.json, prompt: p}\n",
        ("shot.json", "sidecar"),
    ),
    (
        "template-makes-every-video-a-sidecar",
        "output: {path: '{id}.json'}\njobs:\n  - {id: a, prompt: p}\n",
        ("a.json", "sidecar"),
    ),
    (
        "one-jobs-sidecar-is-anothers-video",
        "output: {path: '{id}'}\njobs:\n  - {id: a, prompt: p}\n  - {id: a.json, prompt: q}\n",
        ("a.json", "sidecar", "jobs a and a.json"),
    ),
    (
        "two-sidecars-in-one-file",
        "output: {path: '{id}'}\njobs:\n  - {id: a.b, prompt: p}\n  - {id: a.c, prompt: q}\n",
        ("a.json", "jobs a.b and a.c"),
    ),
    (
        "a-video-named-like-a-partial-download",
        "output: {path: '{id}'}\njobs:\n  - {id: x, prompt: p}\n  - {id: x.part, prompt: q}\n",
        ("x.part", "jobs x and x.part"),
    ),
    (
        "a-video-named-like-a-temporary-file",
        "output: {path: '{id}'}\njobs:\n  - {id: a, prompt: p}\n  - {id: a.json.tmp, prompt: q}\n",
        ("a.json.tmp", "jobs a and a.json.tmp"),
    ),
    (
        "a-file-where-another-job-needs-a-folder",
        "api: {models: [x, x0/y]}\noutput: {path: '{model}{index}'}\n"
        "jobs:\n  - {prompt: p, model: x}\n  - {prompt: q, model: x0/y}\n",
        ("x0", "folder"),
    ),
    (
        "two-videos-that-differ-only-in-case",
        "jobs:\n  - {id: Shot, prompt: p}\n  - {id: shot, prompt: q}\n",
        ("shot.mp4", "case"),
    ),
]


@pytest.mark.parametrize(
    ("text", "phrases"), [case[1:] for case in COLLIDING], ids=[case[0] for case in COLLIDING]
)
def test_output_paths_that_collide_with_wanbatchs_own_files_are_refused(
    tmp_path: Path, capsys: Any, text: str, phrases: tuple[str, ...]
) -> None:
    """validate exits 2 naming the file, a line and the key (output.path, or the job when the
    template is the default), and says which file would be overwritten by what."""
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    key = "output.path" if "output:" in text else "jobs[1]"
    assert re.search(rf"{re.escape(str(path))}:\d+: ", err) and f": {key}" in err, err
    for phrase in phrases:
        assert phrase in err, err


@pytest.mark.parametrize(
    ("template", "ids"),
    [
        ("{id}.mp4", ["report", "retry", "a", "a.json", "a.mp4", "x.part", "shot.json"]),
        ("{id}", ["clip", "clip2.mp4", "x.mp4"]),
        ("{name}/{index}-{id}.mp4", ["report.html", "retry.yaml"]),
    ],
)
def test_output_paths_clear_of_wanbatchs_files_still_load(
    tmp_path: Path, capsys: Any, template: str, ids: list[str]
) -> None:
    """The default template cannot collide; nor do ids that only look like wanbatch's names."""
    jobs = "".join(f"  - {{id: '{job_id}', prompt: p{n}}}\n" for n, job_id in enumerate(ids))
    path = tmp_path / "m.yaml"
    path.write_text(f"output: {{path: '{template}'}}\njobs:\n{jobs}", encoding="utf-8")
    assert cli.main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_reserved_names_are_the_names_wanbatch_writes(tmp_path: Path) -> None:
    """The names the manifest refuses cover every file the download stage and the gallery write."""
    from wanbatch import download, gallery, outputnames
    from wanbatch.models import STATE_DIR_NAME

    for name in ("v.mp4", "v", "a.b.c", "dir/v.mp4", "a.", "a..b", "x.json", "d.e/f", "d/e.f/g.h"):
        target = tmp_path / name
        written = {str(tmp_path / p) for p, _ in outputnames.job_files(name)}
        for made in (
            target,
            download.part_path(target),
            download._meta_path(target),
            download.sidecar_path(target),
        ):
            assert str(made) in written
            assert str(made.with_name(made.name + ".tmp")) in written
    roots = {name for name, _ in outputnames.ROOT_FILES}
    assert {gallery.GALLERY_NAME, gallery.RETRY_NAME, STATE_DIR_NAME} <= roots


def test_a_merge_key_is_overridden_by_the_jobs_own_key(tmp_path: Path, capsys: Any) -> None:
    """YAML merge keys: a key written in the job wins over the merged one, and is no duplicate."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "defaults: {model: wan-2-2}\n"
        "jobs:\n"
        "  - &base {id: a, prompt: p, duration: 4, model: wan-2-1}\n"
        "  - {<<: *base, id: b, duration: 5}\n"
        "  - <<: [*base]\n"
        "    id: c\n"
        "    duraton: 6\n"
    )
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "duplicate" not in err and "1 problem" in err, err
    assert f"{path}:7: jobs[2].duraton: unknown key" in err, err


def _brute_force_collisions(paths: list[tuple[str, str]]) -> list[str]:
    """The ids `collisions` must name, found the slow way: every file of every job kept."""
    from wanbatch import outputnames

    files = {name.casefold() for name, _ in outputnames.ROOT_FILES}
    folders: set[str] = set()
    refused: list[str] = []
    for job_id, output_path in paths:
        mine = {name.casefold() for name, _ in outputnames.job_files(output_path)}
        parts = output_path.casefold().split("/")
        parents = {"/".join(parts[:depth]) for depth in range(1, len(parts))}
        sidecar = outputnames.job_files(output_path)[3][0]
        if mine & files or mine & folders or parents & files or sidecar == output_path:
            refused.append(job_id)
            continue
        files |= mine
        folders |= parents
    return refused


SEGMENTS = ["a", "A", "a.json", "a.mp4", "a.part", "a.part.json", "a.tmp", "a.json.tmp"]
SEGMENTS += ["a.mp4.part", "a.mp4.part.json", "b.x", "b.json", "report.html", "retry.yaml.tmp"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join),
        max_size=8,
    )
)
def test_collisions_agree_with_the_brute_force_check(outputs: list[str]) -> None:
    """The lean check (a video and a sidecar kept per job) refuses exactly the jobs that a check
    keeping every file of every job refuses."""
    from wanbatch import outputnames

    paths = [(f"j{index}", path) for index, path in enumerate(outputs)]
    found = outputnames.collisions(paths)
    assert [job_id for job_id, _ in found] == _brute_force_collisions(paths)
    for job_id, message in found:
        assert job_id in message


def test_a_nested_extra_key_that_is_not_text_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Found by the property test: keys 0 and "" in one nested mapping of `extra` made the
    fingerprint's sorted JSON raise TypeError (a traceback)."""
    path = tmp_path / "m.yaml"
    path.write_text('jobs:\n  - prompt: p\n    extra:\n      a: {"": 1, 0: 2}\n', encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    (problem,) = caught.value.problems
    assert problem.key == "jobs[0].extra" and "quote them" in problem.message
