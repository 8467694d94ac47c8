"""The manifest's schema table is what the loader accepts and fills in, and the package reads
files in one module only."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

import wanbatch.manifest
from wanbatch.errors import ManifestError
from wanbatch.manifest import SCHEMA, load_manifest
from wanbatch.manifest.schema import defaults, job_fields, keys

# A value each key accepts, to show the key itself is known (its value checked elsewhere).
SAMPLES: dict[str, Any] = {
    "name": "n",
    "api": {},
    "pricing": {},
    "defaults": {},
    "limits": {},
    "output": {},
    "matrix": {},
    "jobs_from": None,
    "jobs": None,
    "provider": "wanapi",
    "base_url": "https://api.example/v1",
    "key_env": "WAN_API_KEY",
    "models": ["wan-2-2"],
    "gateway": None,
    "prompt": "p",
    "model": "wan-2-2",
    "duration": 4,
    "aspect_ratio": "16:9",
    "image": "https://e.example/a.png",
    "extra": {"seed": 1},
    "concurrency": 2,
    "requests_per_second": 3,
    "downloads": 2,
    "job_deadline_seconds": 60,
    "list_grace_seconds": 5,
    "dir": "out",
    "path": "{id}.mp4",
    "id": "x",
}
_PLACES = {  # where a section's mapping sits in a document
    "": lambda body: {**body, "jobs": [{"prompt": "p"}]} if "jobs" not in body else body,
    "api": lambda body: {"api": body, "jobs": [{"prompt": "p"}]},
    "defaults": lambda body: {"defaults": body, "jobs": [{"prompt": "p"}]},
    "limits": lambda body: {"limits": body, "jobs": [{"prompt": "p"}]},
    "output": lambda body: {"output": body, "jobs": [{"prompt": "p"}]},
    "matrix": lambda body: {"matrix": {k: [v] for k, v in body.items()}, "jobs": [{"prompt": "p"}]},
    "jobs[]": lambda body: {"jobs": [{"prompt": "p", **body}]},
}


def _problems(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        load_manifest(path)
    except ManifestError as exc:
        return [str(problem) for problem in exc.problems]
    return []


@pytest.mark.parametrize("section", sorted(_PLACES))
def test_every_key_of_the_table_is_known_to_the_loader(tmp_path: Path, section: str) -> None:
    for key in keys(section):
        if SAMPLES[key] is None:
            continue
        document = _PLACES[section]({key: SAMPLES[key]})
        unknown = [p for p in _problems(tmp_path, document) if "unknown key" in p]
        assert unknown == [], (section, key, unknown)


@pytest.mark.parametrize("section", sorted(_PLACES))
def test_a_key_outside_the_table_is_unknown(tmp_path: Path, section: str) -> None:
    document = _PLACES[section]({"colour": "red"})
    assert any("colour: unknown key" in p for p in _problems(tmp_path, document))


def test_a_bare_job_gets_the_tables_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("jobs:\n  - prompt: p\n", encoding="utf-8")
    manifest = load_manifest(path)
    (job,) = manifest.jobs
    for field, value in defaults("jobs[]").items():
        assert getattr(job, field) == value
    for field, value in defaults("limits").items():
        assert getattr(manifest.limits, field) == value
    assert manifest.path_template == defaults("output")["path"]


def test_a_csv_may_have_every_column_of_the_table(tmp_path: Path) -> None:
    values = {k: SAMPLES[k] for k in keys("csv")}
    path = tmp_path / "m.csv"
    path.write_text(",".join(values) + "\n" + ",".join(map(str, values.values())) + "\n")
    (job,) = load_manifest(path).jobs
    assert job.id == "x" and job.duration == 4


def test_the_job_fields_are_the_fingerprinted_ones() -> None:
    assert job_fields() == ("prompt", "model", "duration", "aspect_ratio", "image", "extra")
    assert set(SCHEMA) >= {"", "api", "api.gateway", "defaults", "limits", "output", "matrix"}


_IO_CALLS = {"open", "read_bytes", "read_text", "is_file", "exists", "resolve", "stat", "iterdir"}


def test_only_the_reading_module_touches_files() -> None:
    package = Path(wanbatch.manifest.__file__).parent
    for module in sorted(package.glob("*.py")):
        if module.name == "reading.py":
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "reading":
                    continue  # through the reading module
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert called not in _IO_CALLS, f"{module.name}:{node.lineno} calls {called}"
