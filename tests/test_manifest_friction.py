"""Issue 14's manifest friction, each observed by a user: CSV headers in any case, `;` and tab
delimiters, extra columns, UTF-16 and cp1252 exports, a misnamed prompt column, an unquoted
16:9 in YAML, a top-level list, duplicate ids, accented slugs, a bad flag reported once, prices
from flags, and `file:line:` locations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wanbatch import cli
from wanbatch.errors import ManifestError
from wanbatch.manifest import Overrides, load_manifest


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path, overrides: Overrides | None = None) -> list[str]:
    """The problems of a manifest that must be refused, each as printed."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, overrides)
    return [str(problem) for problem in caught.value.problems]


# --- 1, 2: header case and delimiters ------------------------------------------------------------


def test_csv_headers_are_read_in_any_case(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "ID,Prompt,Duration,ASPECT_RATIO\na,a fox,4,9:16\n")
    (job,) = load_manifest(path).jobs
    assert (job.id, job.prompt, job.duration, job.aspect_ratio) == ("a", "a fox", 4, "9:16")


def test_a_header_named_twice_in_two_cases_is_named_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "prompt,Prompt\na,b\n")
    assert any("names a column twice" in problem for problem in refused(path))


@pytest.mark.parametrize("delimiter", [";", "\t", ","], ids=["semicolon", "tab", "comma"])
def test_csv_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    rows = [["id", "prompt", "duration"], ["a", "a fox, in snow", "4"], ["b", "waves", "3"]]
    text = "".join(
        delimiter.join(f'"{cell}"' if "," in cell else cell for cell in row) + "\n" for row in rows
    )
    path = write(tmp_path, "m.csv", text)
    jobs = load_manifest(path).jobs
    assert [(job.id, job.prompt, job.duration) for job in jobs] == [
        ("a", "a fox, in snow", 4),
        ("b", "waves", 3),
    ]


def test_a_one_column_csv_with_commas_in_quoted_prompts_is_not_split(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", 'prompt\n"a fox; in snow"\n"waves\tat dusk"\n')
    assert [job.prompt for job in load_manifest(path).jobs] == ["a fox; in snow", "waves\tat dusk"]


# --- 3: extra columns ----------------------------------------------------------------------------


def test_an_unknown_column_names_itself_the_file_and_the_flag(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "prompt,notes\na fox,shot on monday\n")
    (problem,) = refused(path)
    assert problem.startswith(f"{path}:1: notes:")
    assert "--ignore-columns notes" in problem


def test_ignore_columns_keeps_extra_columns_out_of_the_jobs(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "prompt,Notes,owner\na fox,shot on monday,ann\n")
    (job,) = load_manifest(path, Overrides(ignore_columns=("notes", "OWNER"))).jobs
    assert job.prompt == "a fox" and job.extra == {}


def test_a_column_named_with_a_hash_is_a_note(tmp_path: Path) -> None:
    """The manifest-side way: a header starting with `#` is a column for people, not wanbatch."""
    path = write(tmp_path, "m.csv", "prompt,# notes\na fox,shot on monday\n")
    (job,) = load_manifest(path).jobs
    assert job.prompt == "a fox"


def test_ignore_columns_applies_to_a_jobs_from_csv(tmp_path: Path) -> None:
    write(tmp_path, "more.csv", "prompt,notes\na fox,x\n")
    path = write(tmp_path, "m.yaml", "jobs_from: more.csv\n")
    assert any("--ignore-columns notes" in problem for problem in refused(path))
    assert len(load_manifest(path, Overrides(ignore_columns=("notes",))).jobs) == 1


# --- 4: encodings --------------------------------------------------------------------------------


def test_a_utf16_export_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Excel's "Unicode text" export: UTF-16 with a BOM, tab-separated."""
    path = tmp_path / "m.csv"
    path.write_bytes("prompt\tduration\r\nüber café\t4\r\n".encode("utf-16"))
    (job,) = load_manifest(path).jobs
    assert (job.prompt, job.duration) == ("über café", 4)


def test_utf16_without_a_byte_order_mark_says_save_as_csv_utf8(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes("prompt\na fox\n".encode("utf-16-le"))
    (problem,) = refused(path)
    assert "UTF-16" in problem and "save as CSV UTF-8" in problem


def test_a_cp1252_export_says_save_as_csv_utf8_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes("prompt\na fox\ncaf\u00e9 au lait\n".encode("cp1252"))
    (problem,) = refused(path)
    assert problem.startswith(f"{path}:3:")
    assert "save as CSV UTF-8" in problem and "cp1252" in problem


def test_an_encoding_problem_is_a_clean_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes("prompt\ncaf\u00e9\n".encode("cp1252"))
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "save as CSV UTF-8" in err


# --- 5: a misnamed prompt column -----------------------------------------------------------------


def test_a_misnamed_prompt_column_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "text,duration\na fox,4\nwaves,3\nsnow,5\n")
    problems = refused(path)
    assert len(problems) == 1, problems
    assert "'text'" in problems[0] and "prompt" in problems[0]
    assert not any("every job needs a prompt" in problem for problem in problems)


# --- 6, 7: YAML shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("jobs:\n  - prompt: p\n    aspect_ratio: 16:9\n", '"16:9"'),
        ("defaults:\n  aspect_ratio: 9:16\njobs:\n  - prompt: p\n", '"9:16"'),
        ("matrix:\n  aspect_ratio: [16:9, '1:1']\njobs:\n  - prompt: p\n", '"16:9"'),
        (
            "api:\n  provider: gateway\n  base_url: https://g.example/v1\n"
            "  gateway:\n    sizes: {21:9: 2560x1080}\njobs:\n  - prompt: p\n",
            '"21:9"',
        ),
    ],
    ids=["job", "defaults", "matrix", "gateway-sizes"],
)
def test_an_unquoted_ratio_says_quote_it(tmp_path: Path, text: str, quoted: str) -> None:
    path = write(tmp_path, "m.yaml", text)
    problems = refused(path)
    assert any(f"quote it: {quoted}" in problem for problem in problems), problems
    assert len([problem for problem in problems if "quote it" in problem]) == 1, problems


def test_an_unquoted_ratio_in_defaults_is_reported_once_not_once_a_job(tmp_path: Path) -> None:
    jobs = "".join(f"  - prompt: shot {n}\n" for n in range(20))
    path = write(tmp_path, "m.yaml", "defaults:\n  aspect_ratio: 16:9\njobs:\n" + jobs)
    (problem,) = refused(path)
    assert problem.startswith(f"{path}:2: defaults.aspect_ratio:") and 'quote it: "16:9"' in problem


def test_a_top_level_list_says_put_the_jobs_under_jobs(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "- prompt: a fox\n- prompt: waves\n")
    (problem,) = refused(path)
    assert problem.startswith(f"{path}:1:") and "put the jobs under `jobs:`" in problem


# --- 8: duplicate ids ----------------------------------------------------------------------------


def _twice(problems: list[str], job_id: str) -> str:
    found = [problem for problem in problems if f"'{job_id}' is used twice" in problem]
    assert len(found) == 1, problems
    return found[0]


def test_two_explicit_ids_are_reported_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "jobs:\n  - {id: a, prompt: p}\n  - {id: a, prompt: q}\n")
    problem = _twice(refused(path), "a")
    assert problem.startswith(f"{path}:3:") and f"also by {path}:2" in problem


def test_two_identical_csv_rows_are_reported_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "prompt\na fox\nwaves\na fox\n")
    (problem,) = refused(path)
    assert "is used twice" in problem
    assert problem.startswith(f"{path}:4:") and f"also by {path}:2" in problem


def test_a_matrix_id_meeting_an_explicit_one_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yaml",
        "matrix: {duration: [4, 8]}\njobs:\n  - {id: a, prompt: p}\n  - {id: a-4s, prompt: q, duration: 2}\n",
    )
    problem = _twice(refused(path), "a-4s")
    assert problem.startswith(f"{path}:4:") and f"also by {path}:3" in problem


def test_an_inline_id_meeting_a_jobs_from_csv_id_names_both_files(tmp_path: Path) -> None:
    more = write(tmp_path, "more.csv", "id,prompt\nx,from csv\n")
    path = write(tmp_path, "m.yaml", "jobs_from: more.csv\njobs:\n  - {id: x, prompt: inline}\n")
    problem = _twice(refused(path), "x")
    assert problem.startswith(f"{more}:2:") and f"also by {path}:3" in problem


def test_a_derived_id_meeting_a_given_one_is_reported(tmp_path: Path) -> None:
    first = load_manifest(write(tmp_path, "a.yaml", "jobs:\n  - prompt: a fox\n")).jobs[0].id
    path = write(
        tmp_path, "m.yaml", f"jobs:\n  - prompt: a fox\n  - {{id: {first}, prompt: other}}\n"
    )
    problem = _twice(refused(path), first)
    assert problem.startswith(f"{path}:3:") and f"also by {path}:2" in problem


@pytest.mark.parametrize(
    "jobs",
    [
        "  - {id: a, prompt: p}\n  - {id: a, prompt: q, duration: 0}\n",
        "  - {id: a, prompt: q, duration: 0}\n  - {id: a, prompt: p}\n",
        "  - {id: a, prompt: q, model: wan-9}\n  - {id: a, prompt: p, duration: 0}\n",
    ],
    ids=["second-refused", "first-refused", "both-refused"],
)
def test_a_duplicate_id_is_reported_even_when_a_job_is_refused(tmp_path: Path, jobs: str) -> None:
    """Both problems in one pass: not the field now and the duplicate after it is fixed."""
    path = write(tmp_path, "m.yaml", "jobs:\n" + jobs)
    problem = _twice(refused(path), "a")
    assert problem.startswith(f"{path}:3:") and f"also by {path}:2" in problem


# --- 9: accented slugs ---------------------------------------------------------------------------


def test_slugs_fold_accented_letters_to_ascii(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "jobs:\n  - prompt: über café\n  - prompt: Straße in Köln\n")
    ids = [job.id for job in load_manifest(path).jobs]
    assert re.fullmatch(r"uber-cafe-[0-9a-f]{12}", ids[0]), ids
    assert re.fullmatch(r"stra-e-in-koln-[0-9a-f]{12}", ids[1]), ids


def test_plain_ascii_slugs_do_not_change(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "jobs:\n  - prompt: A red fox runs through snow at dawn\n")
    (job,) = load_manifest(path).jobs
    assert job.id == "a-red-fox-runs-through-snow-1beb746e86ef"


# --- 10, 11: flags -------------------------------------------------------------------------------


def test_a_bad_model_flag_is_reported_once_as_a_flag(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "prompt\n" + "".join(f"shot {n}\n" for n in range(500)))
    problems = refused(path, Overrides(model="wan-3"))
    assert len(problems) == 1, problems[:3]
    assert problems[0].startswith("--model wan-3: unknown model")


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        (Overrides(duration=999), "--duration 999:"),
        (Overrides(aspect_ratio="wide"), "--aspect-ratio wide:"),
    ],
    ids=["duration", "aspect-ratio"],
)
def test_other_bad_default_flags_are_reported_once(
    tmp_path: Path, overrides: Overrides, flag: str
) -> None:
    path = write(tmp_path, "m.csv", "prompt\na\nb\nc\n")
    problems = refused(path, overrides)
    assert len(problems) == 1 and problems[0].startswith(flag), problems


def test_price_flags_price_a_bare_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "prompt,duration\na,4\nb,6\n")
    manifest = load_manifest(path, Overrides(pricing={"wan-2-2": 2.5}))
    assert manifest.pricing == {"wan-2-2": 2.5}
    assert manifest.estimate_credits() == 25.0


def test_price_flags_override_and_extend_the_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "pricing: {wan-2-2: 1, wan-2-1: 3}\njobs:\n  - prompt: p\n")
    manifest = load_manifest(path, Overrides(pricing={"wan-2-2": 2.0}))
    assert manifest.pricing == {"wan-2-2": 2.0, "wan-2-1": 3.0}


@pytest.mark.parametrize(
    ("pricing", "flag"),
    [
        ({"wan-9": 1.0}, "--price wan-9=1.0: unknown model"),
        ({"wan-2-2": -1.0}, "--price wan-2-2=-1.0:"),
    ],
    ids=["unknown-model", "negative"],
)
def test_a_bad_price_flag_is_named_as_a_flag(
    tmp_path: Path, pricing: dict[str, float], flag: str
) -> None:
    path = write(tmp_path, "m.csv", "prompt\na\n")
    (problem,) = refused(path, Overrides(pricing=pricing))
    assert problem.startswith(flag), problem


# --- 12: file:line: ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("m.yaml", "jobs:\n  - prompt: p\n    duration: 0\n", 3),
        ("m.yaml", "name: a\nlimits:\n  concurrency: zero\njobs:\n  - prompt: p\n", 3),
        ("m.csv", "prompt,duration\na,4\nb,-1\n", 3),
        ("m.csv", 'prompt,duration\n"a\nfox",4\nb,-1\n', 4),  # the row's line, not its row
    ],
    ids=["yaml-job", "yaml-limits", "csv-row", "csv-after-a-two-line-cell"],
)
def test_problems_start_with_file_colon_line(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = write(tmp_path, name, text)
    (problem,) = refused(path)
    assert problem.startswith(f"{path}:{line}: "), problem


def test_a_problem_without_a_line_starts_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "")
    (problem,) = refused(path)
    assert problem.startswith(f"{path}: "), problem


def test_a_column_without_a_name_is_refused_not_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "prompt,\na fox,keep me\n")
    (problem,) = refused(path)
    assert problem.startswith(f"{path}:1: ") and "has no name" in problem
