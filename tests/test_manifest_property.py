"""Property tests: whatever the input, loading a manifest gives a Manifest or a ManifestError."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wanbatch.errors import ManifestError
from wanbatch.manifest import load_manifest
from wanbatch.models import Manifest

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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
    st.sampled_from(
        [
            "name",
            "api",
            "pricing",
            "defaults",
            "limits",
            "output",
            "matrix",
            "jobs_from",
            "jobs",
            "id",
            "prompt",
            "model",
            "duration",
            "aspect_ratio",
            "image",
            "extra",
            "dir",
            "path",
            "concurrency",
            "requests_per_second",
            "downloads",
            "base_url",
            "key_env",
            "models",
        ]
    ),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)


def load_text(data: bytes, suffix: str) -> object:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"m{suffix}"
        path.write_bytes(data)
        try:
            return load_manifest(path)
        except ManifestError as exc:
            assert exc.problems and all(p.file == str(path) for p in exc.problems[:1])
            return exc


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([".yaml", ".csv"]))
def test_arbitrary_bytes_never_crash(data: bytes, suffix: str) -> None:
    """Random bytes as YAML or CSV give a Manifest or a ManifestError, nothing else."""
    result = load_text(data, suffix)
    assert isinstance(result, Manifest | ManifestError)


@SETTINGS
@given(st.text(max_size=300), st.sampled_from([".yaml", ".csv"]))
def test_arbitrary_text_never_crashes(text: str, suffix: str) -> None:
    """Random text as YAML or CSV gives a Manifest or a ManifestError, nothing else."""
    result = load_text(text.encode("utf-8", "surrogatepass"), suffix)
    assert isinstance(result, Manifest | ManifestError)


@SETTINGS
@given(structures)
def test_arbitrary_yaml_structures_never_crash(value: Any) -> None:
    """Any YAML document (nested lists, mappings, scalars) gives a Manifest or a ManifestError."""
    text = yaml.safe_dump(value, allow_unicode=True, sort_keys=False)
    result = load_text(text.encode("utf-8", "surrogatepass"), ".yaml")
    assert isinstance(result, Manifest | ManifestError)


job_like = st.fixed_dictionaries(
    {"prompt": scalars},
    optional={
        "id": scalars,
        "model": scalars,
        "duration": scalars,
        "aspect_ratio": scalars,
        "image": scalars,
        "extra": structures,
    },
)
manifest_like = st.fixed_dictionaries(
    {"jobs": st.lists(job_like, max_size=4)},
    optional={
        "name": scalars,
        "defaults": st.dictionaries(
            st.sampled_from(["model", "duration", "aspect_ratio"]), scalars
        ),
        "limits": st.dictionaries(
            st.sampled_from(["concurrency", "requests_per_second", "downloads"]), scalars
        ),
        "output": st.dictionaries(st.sampled_from(["dir", "path"]), scalars),
        "matrix": st.dictionaries(
            st.sampled_from(["model", "duration", "aspect_ratio"]), st.lists(scalars, max_size=3)
        ),
        "pricing": st.dictionaries(st.sampled_from(["wan-2-2", "wan-2-1", "x"]), scalars),
    },
)


@SETTINGS
@given(manifest_like)
def test_manifest_shaped_documents_never_crash(value: dict[str, Any]) -> None:
    """Manifest-shaped documents with random values load or fail only with ManifestError."""
    text = yaml.safe_dump(value, allow_unicode=True, sort_keys=False)
    result = load_text(text.encode("utf-8", "surrogatepass"), ".yaml")
    assert isinstance(result, Manifest | ManifestError)
    if isinstance(result, Manifest):
        for job in result.jobs:
            assert job.output_path and not job.output_path.startswith(("/", ".."))


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
    assert isinstance(result, Manifest | ManifestError)
