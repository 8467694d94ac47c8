"""Property tests of the manifest loader.

Whatever the input, loading gives a ``Manifest`` whose jobs can be sent (unique ids, finite
JSON fields, paths inside the output dir that meet no other file) or a ``ManifestError`` whose
every problem is printable and names this file and a line or row inside it. Generated valid
manifests load with exactly the expected jobs; a valid manifest with one fault put in at a known
key is refused with a problem naming that key and its line.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wanbatch import outputnames
from wanbatch.errors import ManifestError
from wanbatch.manifest import SCHEMA, load_manifest
from wanbatch.models import KNOWN_MODELS, Manifest

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GENERATED = settings(SETTINGS, max_examples=150)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["wan-2-2", "wan-2-1", "16:9", "9:16", "{id}.mp4", "../x", "https://e.com/a.png"]
    ),
)
keys = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-5, max_value=5),
    st.booleans(),
    st.sampled_from(sorted({key.name for section in SCHEMA.values() for key in section})),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)


_LOCATION = re.compile(r"^([1-9][0-9]*)$")  # a line: files print as file:line:


def load_text(data: bytes, suffix: str) -> Manifest | ManifestError:
    """Load ``data`` as a manifest file and check what comes back, whichever it is."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"m{suffix}"
        path.write_bytes(data)
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            check_refusal(exc, path, data)
            return exc
        check_sendable(manifest)
        return manifest


def check_refusal(exc: ManifestError, path: Path, data: bytes) -> None:
    """Every problem names this file (or the one jobs_from names), a line or row inside it, and
    a message; the whole error prints as UTF-8."""
    assert exc.problems
    str(exc).encode("utf-8")
    # YAML breaks lines at NEL, LS and PS too; str.splitlines breaks at those and a few more,
    # so its count bounds the lines a parser can name.
    text = data.decode("utf-8", "replace")
    last_line = len(text.splitlines()) + text.count("\r\n") + 1
    for problem in exc.problems:
        assert problem.message.strip()
        assert problem.file == str(path) or problem.key == "" or "jobs_from" in str(exc)
        if problem.location:
            match = _LOCATION.match(problem.location)
            assert match, problem
            if problem.file == str(path):
                assert int(match.group(1)) <= last_line, (problem, last_line)


def check_sendable(manifest: Manifest) -> None:
    """Jobs that can be sent and written: unique ids, finite JSON fields, distinct safe paths."""
    assert manifest.jobs
    ids = [job.id for job in manifest.jobs]
    assert len(set(ids)) == len(ids)
    paths = [(job.id, job.output_path) for job in manifest.jobs]
    for job in manifest.jobs:
        json.dumps(job.fields(), allow_nan=False).encode("utf-8")  # raises on nan, surrogates
        assert job.fingerprint()
        assert job.output_path and not job.output_path.startswith(("/", ".."))
        assert ".." not in job.output_path.split("/")
    assert outputnames.collisions(paths) == []


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([".yaml", ".csv"]))
def test_arbitrary_bytes_never_crash(data: bytes, suffix: str) -> None:
    """Random bytes as YAML or CSV: a sendable Manifest or a ManifestError that names a place."""
    load_text(data, suffix)


@SETTINGS
@given(st.text(max_size=300), st.sampled_from([".yaml", ".csv"]))
@example("\x85\t", ".yaml")  # NEL is a YAML line break: the error is on line 2 of 1 "\n"-line
def test_arbitrary_text_never_crashes(text: str, suffix: str) -> None:
    """Random text as YAML or CSV: a sendable Manifest or a ManifestError that names a place."""
    load_text(text.encode("utf-8", "surrogatepass"), suffix)


@SETTINGS
@given(structures)
def test_arbitrary_yaml_structures_never_crash(value: Any) -> None:
    """Any YAML document (nested lists, mappings, scalars; surrogates and non-finite floats
    written as YAML escapes) loads sendable or is refused naming a place."""
    text = yaml.safe_dump(value, allow_unicode=False, sort_keys=False)
    load_text(text.encode("ascii"), ".yaml")


job_like = st.fixed_dictionaries(
    {"prompt": scalars},
    optional={
        key.name: structures if key.kind == "mapping" else scalars
        for key in SCHEMA["jobs[]"]
        if key.name != "prompt"
    },
)
manifest_like = st.fixed_dictionaries(
    {"jobs": st.lists(job_like, max_size=4)},
    optional={
        "name": scalars,
        "defaults": st.dictionaries(
            st.sampled_from([key.name for key in SCHEMA["defaults"]]), scalars
        ),
        "limits": st.dictionaries(st.sampled_from([key.name for key in SCHEMA["limits"]]), scalars),
        "output": st.dictionaries(st.sampled_from([key.name for key in SCHEMA["output"]]), scalars),
        "matrix": st.dictionaries(
            st.sampled_from([key.name for key in SCHEMA["matrix"]]), st.lists(scalars, max_size=3)
        ),
        "pricing": st.dictionaries(st.sampled_from(["wan-2-2", "wan-2-1", "x"]), scalars),
    },
)


@SETTINGS
@given(manifest_like)
def test_manifest_shaped_documents_never_crash(value: dict[str, Any]) -> None:
    """Manifest-shaped documents with random values load sendable or are refused naming a key
    that the document has (or one every job needs)."""
    text = yaml.safe_dump(value, allow_unicode=False, sort_keys=False)
    result = load_text(text.encode("ascii"), ".yaml")
    if isinstance(result, ManifestError):
        for problem in result.problems:
            root = re.split(r"[.\[]", problem.key, maxsplit=1)[0]
            assert root in ("", *value), (problem, list(value))


@SETTINGS
@given(st.lists(st.lists(st.text(max_size=12), max_size=6), max_size=6))
def test_csv_grids_never_crash(rows: list[list[str]]) -> None:
    """CSV documents of random cells, with or without a header, never crash the loader."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["prompt", "id", "duration"])
    writer.writerows(rows)
    result = load_text(buffer.getvalue().encode("utf-8", "surrogatepass"), ".csv")
    filled = [row for row in rows if any(cell.strip() for cell in row)]
    if isinstance(result, Manifest):
        assert len(result.jobs) == len(filled)
        assert [job.prompt for job in result.jobs] == [row[0] for row in filled]


# --- generated valid manifests, and the same with one fault put in --------------------------

plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(lambda text: text.strip() != "")
extra_values = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    plain_text,
)
job_fields = st.fixed_dictionaries(
    {
        "prompt": plain_text,
        "duration": st.integers(1, 60),
        "model": st.sampled_from(KNOWN_MODELS),
    },
    optional={"extra": st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), extra_values)},
)
RATIOS = ["16:9", "9:16", "1:1", "4:3", "21:9"]


@st.composite
def valid_manifests(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A valid manifest and the ratios of its aspect_ratio matrix ([] without one)."""
    ids = draw(
        st.lists(
            st.from_regex(r"[a-z0-9][a-z0-9_-]{0,12}", fullmatch=True),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    document: dict[str, Any] = {"jobs": [{"id": job_id, **draw(job_fields)} for job_id in ids]}
    ratios: list[str] = []
    if draw(st.booleans()):
        ratios = draw(st.lists(st.sampled_from(RATIOS), min_size=1, max_size=3, unique=True))
        document["matrix"] = {"aspect_ratio": ratios}
    return document, ratios


def dump(document: dict[str, Any]) -> bytes:
    return yaml.safe_dump(document, allow_unicode=False, sort_keys=False).encode("ascii")


@GENERATED
@given(valid_manifests())
def test_a_generated_valid_manifest_loads_with_exactly_its_jobs(
    case: tuple[dict[str, Any], list[str]],
) -> None:
    """Every job, in order, with its id (plus one -WxH per ratio when the matrix has several),
    its fields as written, and the matrix's ratio or the default 16:9."""
    document, ratios = case
    result = load_text(dump(document), ".yaml")
    assert isinstance(result, Manifest), result
    expected: list[tuple[str, str]] = []
    for job in document["jobs"]:
        for ratio in ratios or ["16:9"]:
            suffix = f"-{ratio.replace(':', 'x')}" if len(ratios) > 1 else ""
            expected.append((job["id"] + suffix, ratio))
    assert [(job.id, job.aspect_ratio) for job in result.jobs] == expected
    per_job = len(ratios or ["16:9"])
    for index, loaded in enumerate(result.jobs):
        written = document["jobs"][index // per_job]
        assert loaded.prompt == written["prompt"]
        assert (loaded.duration, loaded.model) == (written["duration"], written["model"])
        assert dict(loaded.extra) == written.get("extra", {})
        assert loaded.output_path == f"{loaded.id}.mp4"


FAULTS: list[tuple[str, Any, str]] = [
    ("duration", 0, "must be positive"),
    ("duration", 61, "at most"),
    ("duration", "five", "whole number"),
    ("duration", True, "whole number"),
    ("duration", math.nan, "finite"),
    ("model", "wan-9", "unknown model"),
    ("aspect_ratio", "wide", "W:H"),
    ("prompt", "   ", "non-empty"),
    ("id", "../x", "ids use only"),
    ("colour", "red", "unknown key"),
    ("extra.seed", math.inf, "finite"),
    ("image", "file:///etc/passwd", "http(s) URL"),
]


def line_of(text: str, key: str) -> int:
    """The line of a dotted key in YAML text, found by PyYAML's own node tree."""
    node = yaml.compose(text)
    line = 0
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("["):
            node = node.value[int(part[1:-1])]
            line = node.start_mark.line + 1
        else:
            key_node, node = next((k, v) for k, v in node.value if k.value == part)
            line = key_node.start_mark.line + 1
    return line


@GENERATED
@given(valid_manifests(), st.sampled_from(FAULTS), st.data())
def test_one_fault_is_refused_naming_its_key_and_line(
    case: tuple[dict[str, Any], list[str]], fault: tuple[str, Any, str], data: st.DataObject
) -> None:
    """A valid manifest with one bad value at jobs[i].<field>: refused, and a problem names
    exactly that key, at the line PyYAML gives it, with what is wrong."""
    document, _ = case
    field, value, phrase = fault
    index = data.draw(st.integers(0, len(document["jobs"]) - 1))
    job = document["jobs"][index]
    if field == "extra.seed":
        job["extra"] = {**job.get("extra", {}), "seed": value}
    else:
        job[field] = value
    text = dump(document)
    result = load_text(text, ".yaml")
    assert isinstance(result, ManifestError), f"loaded: {text.decode()}"
    key = f"jobs[{index}].{field}"
    line = line_of(text.decode(), key)
    named = [p for p in result.problems if p.key == key]
    assert named, (key, result.problems)
    assert named[0].location == str(line) and phrase in named[0].message, named[0]
