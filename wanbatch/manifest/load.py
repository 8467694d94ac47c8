"""Manifest text (YAML or CSV) -> a validated ``Manifest`` with every job expanded. Pure.

The schema lives here and only here. Every problem found is collected in one pass and raised as
one ``ManifestError``; each names the file, the line (YAML) or row (CSV) and the dotted key, and
an unknown key gets a did-you-mean. Nothing here touches the network; the only I/O is reading
the manifest and the file named by ``jobs_from``.

Job ids: a job's ``id`` if given; otherwise a slug of the prompt's first words plus ``-`` and
the first 12 hex digits of the sha256 of the job's normalised fields (model, prompt, duration,
aspect_ratio, image, extra), so the same manifest yields the same ids everywhere. A matrix
appends one readable suffix per axis that has more than one value: ``-9x16``, ``-wan-2-1``,
``-8s``.

YAML is read within bounds and its values checked by ``yamlsafe``; output paths are checked
against the files wanbatch writes by ``outputnames``. This file is over 400 lines on purpose:
the whole schema (every key, its check and its message) is kept in one place.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import itertools
import os
import re
import string
from array import array
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from wanbatch import outputnames, yamlsafe
from wanbatch.errors import ManifestError, ManifestProblem
from wanbatch.models import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_DURATION,
    DEFAULT_KEY_ENV,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_ROOT,
    DEFAULT_PATH_TEMPLATE,
    DEFAULT_PROVIDER,
    GATEWAY_CLASSES,
    GATEWAY_FIELDS,
    KNOWN_MODELS,
    MAX_DURATION,
    MAX_JOB_ID_LENGTH,
    PATH_TEMPLATE_FIELDS,
    ApiSettings,
    GatewayDescription,
    JobSpec,
    Limits,
    Manifest,
    job_fingerprint,
)
from wanbatch.providers import PROVIDERS, provider_for

TOP_KEYS = ("name", "api", "pricing", "defaults", "limits", "output", "matrix", "jobs_from", "jobs")
API_KEYS = ("provider", "base_url", "key_env", "models", "gateway")
GATEWAY_KEYS = (
    "create", "get", "id", "status", "video_url", "error_message", "error_code", "statuses",
    "body", "sizes", "models", "headers", "auth_header", "auth_scheme", "idempotency_keys",
    "webhook",
)  # fmt: skip
JOB_FIELDS = ("prompt", "model", "duration", "aspect_ratio", "image", "extra")
JOB_KEYS = ("id", *JOB_FIELDS)
DEFAULT_KEYS = JOB_FIELDS
LIMIT_KEYS = (
    "concurrency",
    "requests_per_second",
    "downloads",
    "job_deadline_seconds",
    "list_grace_seconds",
)
OUTPUT_KEYS = ("dir", "path")
MATRIX_KEYS = ("model", "duration", "aspect_ratio")
CSV_COLUMNS = ("id", "prompt", "model", "duration", "aspect_ratio", "image")
_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
_RATIO_RE = re.compile(r"^([1-9][0-9]{0,4}):([1-9][0-9]{0,4})\Z")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_IMAGE_RE = re.compile(r"^https?://[^/\s]+\S*\Z")
_SLUG_WORD_RE = re.compile(r"[a-z0-9]+")
_SLUG_WORDS = 6
_SLUG_CHARS = 40
_ID_HASH_DIGITS = 12
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Overrides:
    """Values from the command line; they win over the manifest (a job's own fields still win)."""

    model: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    output_dir: str | None = None  # relative to the working directory, like any flag
    concurrency: int | None = None
    requests_per_second: float | None = None


@dataclass(slots=True)
class _Problems:
    """Collects problems with their locations."""

    file: str
    lines: dict[str, int] = field(default_factory=dict)  # dotted key -> line (YAML)
    rows: bool = False  # locations are CSV rows
    found: list[ManifestProblem] = field(default_factory=list)
    inner: list[_Problems] = field(default_factory=list)  # files named by jobs_from
    # CSV: the row of ``jobs[i]`` at i (4 bytes a job, where a dict of keys took 150)
    job_rows: array[int] = field(default_factory=lambda: array("L"))

    def all(self) -> list[ManifestProblem]:
        return [*self.found, *(problem for other in self.inner for problem in other.found)]

    def where(self, key: str) -> str:
        probe = key
        while probe:
            if probe in self.lines:
                return f"{'row' if self.rows else 'line'} {self.lines[probe]}"
            if self.job_rows and probe.startswith("jobs[") and probe.endswith("]"):
                digits = probe[5:-1]
                if digits.isascii() and digits.isdigit() and int(digits) < len(self.job_rows):
                    return f"row {self.job_rows[int(digits)]}"
            probe = probe.rpartition(".")[0] if "." in probe else probe.rpartition("[")[0]
        return ""

    def add(self, key: str, message: str, *, location: str | None = None) -> None:
        where = self.where(key) if location is None else location
        self.found.append(ManifestProblem(self.file, where, key, message))


# --- reading ---------------------------------------------------------------------------------


def _read_text(path: Path, problems: _Problems, key: str = "") -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.add(key, f"file not found: {path}")
        return None
    except OSError as exc:
        problems.add(key, f"cannot read {path}: {exc.strerror or exc}")
        return None
    if b"\x00" in data:
        problems.add(key, f"{path.name} is a binary file, not a YAML or CSV manifest")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(key, f"{path.name} is not UTF-8 text (bad byte at offset {exc.start})")
        return None
    return text


def _load_yaml(text: str, problems: _Problems, prefix: str = "") -> Any:
    """The document's value, or None with problems added: syntax, bounds (``yamlsafe``) and
    values a manifest may not hold, each with its line and key."""
    try:
        loader, node = yamlsafe.compose(text)
        try:
            if node is not None:  # before construction, which folds merge keys into mappings
                _record_lines(node, prefix, problems)
            value = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yamlsafe.BoundsError as exc:
        key = f"{prefix}.{exc.key}" if prefix and exc.key else prefix or exc.key
        mark = exc.problem_mark
        problems.add(key, str(exc.problem), location=f"line {mark.line + 1}" if mark else "")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = f"line {mark.line + 1}" if mark is not None else ""
        problems.add(prefix, f"YAML syntax: {exc.problem or exc}", location=location)
        return None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        problems.add(prefix, f"YAML cannot be read: {exc}")
        return None
    before = len(problems.found)
    for key, line, message in yamlsafe.bad_values(value, prefix):
        problems.add(key, message, location=None if line is None else f"line {line}")
    return None if len(problems.found) != before else value


def _record_lines(node: yaml.Node, path: str, problems: _Problems) -> None:
    """Remember the line of every key and list item; flag duplicate keys. The keys a merge key
    (``<<: *base``) brings in come after the mapping's own, which win over them."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged += (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.add(child, "duplicate key", location=f"line {line}")
            seen.add(key)
            problems.lines.setdefault(child, line)
            _record_lines(value_node, child, problems)
        for source in merged:
            if isinstance(source, yaml.MappingNode):
                _record_lines(source, path, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            problems.lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, problems)


@dataclass(frozen=True, slots=True)
class _CsvRow:
    """A CSV row kept small until its job is read (``mapping``): the cells of the known columns
    in ``columns``' order, stripped (the prompt as written), None where empty, the duration a
    number where it is one. Repeated cells (a model, a ratio) are one string for all rows."""

    columns: tuple[str, ...]
    values: tuple[Any, ...]

    def mapping(self) -> dict[str, Any]:
        return {
            column: value
            for column, value in zip(self.columns, self.values, strict=True)
            if value is not None
        }


def _load_csv(text: str, problems: _Problems, prefix: str) -> list[_CsvRow]:
    """CSV rows as jobs (``_CsvRow``); row numbers as a spreadsheet shows them (header = row 1).
    Read row by row: a million rows are never held as lists of cells."""
    before = len(problems.found)
    try:
        return _csv_rows(csv.reader(_lines(text)), problems, prefix)
    except csv.Error as exc:
        del problems.found[before:]
        problems.job_rows = array("L")
        problems.add(prefix, f"CSV cannot be read: {exc}")
        return []


_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+\Z")


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their ends, as ``io.StringIO(text, newline="")`` gives them
    (ended by \\n, \\r\\n or \\r), without its copy of the text at 4 bytes a character."""
    return (match.group() for match in _LINE_RE.finditer(text))


def _csv_rows(reader: Any, problems: _Problems, prefix: str) -> list[_CsvRow]:
    first = next(reader, None)
    if first is None or not any(cell.strip() for cell in first):
        problems.add(prefix, "the CSV has no header row (it needs at least a 'prompt' column)")
        return []
    header = [cell.strip() for cell in first]
    for column in header:
        if column not in CSV_COLUMNS:
            problems.add(
                f"{prefix}{column}" if not prefix else f"{prefix}.{column}",
                f"unknown column{_did_you_mean(column, CSV_COLUMNS)}",
                location="row 1",
            )
    if "prompt" not in header:
        problems.add(prefix or "prompt", "the CSV needs a 'prompt' column", location="row 1")
    if len(set(header)) != len(header):
        problems.add(prefix, "the CSV header names a column twice", location="row 1")
    kept = [(at, column) for at, column in enumerate(header) if column in CSV_COLUMNS]
    columns = tuple(column for _, column in kept)
    width = len(header)
    # one object for each distinct cell of a column (the prompt's are not looked up)
    same: list[dict[str, Any] | None] = [None if c == "prompt" else {} for _, c in kept]
    jobs: list[_CsvRow] = []
    rows = problems.job_rows
    for number, cells in enumerate(reader, start=2):
        values: list[Any] = []
        for (at, column), seen in zip(kept, same, strict=True):
            cell = cells[at] if at < len(cells) else ""
            if seen is None:
                values.append(cell if cell.strip() != "" else None)
                continue
            value = seen.get(cell)
            if value is None and cell not in seen:
                stripped = cell.strip()
                if stripped == "":
                    value = None
                elif column == "duration":
                    value = _int_from_text(stripped)
                else:
                    value = stripped
                if len(seen) < 10_000:
                    seen[cell] = value
            values.append(value)
        if all(value is None for value in values) and not any(cell.strip() for cell in cells):
            continue  # blank lines are not jobs
        if prefix:
            problems.lines[f"{prefix}[{len(jobs)}]"] = number
        else:
            rows.append(number)
        if len(cells) > width:
            key = f"{prefix}[{len(jobs)}]" if prefix else f"jobs[{len(jobs)}]"
            problems.add(key, f"{len(cells)} cells but the header has {width} columns")
        jobs.append(_CsvRow(columns, tuple(values)))
    return jobs


def _int_from_text(text: str) -> Any:
    stripped = text.strip()
    if re.fullmatch(r"[+-]?[0-9]{1,18}", stripped):  # longer: reported as text, not converted
        return int(stripped)
    return text


# --- the schema --------------------------------------------------------------------------------


def _did_you_mean(key: str, allowed: Sequence[str]) -> str:
    match = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if match:
        return f"; did you mean '{match[0]}'?"
    return f"; known keys: {', '.join(allowed)}"


def _check_keys(
    value: Mapping[Any, Any], allowed: Sequence[str], path: str, problems: _Problems
) -> None:
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            name = str(key)
            problems.add(
                f"{path}.{name}" if path else name, f"unknown key{_did_you_mean(name, allowed)}"
            )


def _mapping(value: Any, path: str, problems: _Problems) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, f"must be a mapping of keys to values, not {_kind(value)}")
        return {}
    return value


def _kind(value: Any) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _positive_int(
    value: Any, path: str, problems: _Problems, *, maximum: int | None = None
) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"must be a whole number, not {_kind(value)} {value!r}")
        return None
    if value <= 0:
        problems.add(path, f"must be positive, not {value}")
        return None
    if maximum is not None and value > maximum:
        problems.add(path, f"must be at most {maximum}, not {value}")
        return None
    return value


def _positive_number(value: Any, path: str, problems: _Problems) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        problems.add(path, f"must be a number, not {_kind(value)} {value!r}")
        return None
    if value <= 0 or value == float("inf"):
        problems.add(path, f"must be a positive finite number, not {value}")
        return None
    return float(value)


def _text(value: Any, path: str, problems: _Problems) -> str | None:
    if not isinstance(value, str):
        problems.add(path, f"must be text, not {_kind(value)}")
        return None
    return value


# --- loading ---------------------------------------------------------------------------------


def load_manifest(path: str | os.PathLike[str], overrides: Overrides | None = None) -> Manifest:
    """Read, validate and expand a manifest; raises one ``ManifestError`` listing every problem."""
    overrides = overrides or Overrides()
    manifest_path = Path(path)
    problems = _Problems(file=str(path))
    suffix = manifest_path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        problems.add("", "a manifest is a .yaml, .yml or .csv file")
        raise ManifestError(problems.found)
    text = _read_text(manifest_path, problems)
    if text is None:
        raise ManifestError(problems.found)
    folder = manifest_path.resolve().parent
    if suffix == ".csv":
        problems.rows = True
        raw: dict[str, Any] = {"jobs": _load_csv(text, problems, "")}
    else:
        loaded = _load_yaml(text, problems)
        if problems.found:
            raise ManifestError(problems.found)
        if loaded is None:
            problems.add("", "the manifest is empty")
            raise ManifestError(problems.found)
        if not isinstance(loaded, dict):
            problems.add(
                "",
                f"the top level must be a mapping of keys (name, jobs, ...), not {_kind(loaded)}",
            )
            raise ManifestError(problems.found)
        raw = loaded
    del text  # the jobs are read out of it: 87 MB for a million CSV rows
    manifest = _build(raw, manifest_path, folder, overrides, problems)
    if problems.all() or manifest is None:
        raise ManifestError(problems.all())
    return manifest


def _build(
    raw: dict[str, Any],
    manifest_path: Path,
    folder: Path,
    overrides: Overrides,
    problems: _Problems,
) -> Manifest | None:
    _check_keys(raw, TOP_KEYS, "", problems)
    # The default name is the file's stem, made safe to name a folder.
    stem_name = re.sub(r"[^A-Za-z0-9._-]+", "-", manifest_path.stem).lstrip(".-")[
        :MAX_JOB_ID_LENGTH
    ]
    stem_name = stem_name or "manifest"
    name = raw.get("name", stem_name)
    if not isinstance(name, str) or not name.strip():
        problems.add("name", "must be non-empty text")
        name = stem_name
    elif not _ID_RE.match(name) or len(name) > MAX_JOB_ID_LENGTH:
        problems.add("name", "may use only letters, digits, '.', '_' and '-' (it names a folder)")
        name = stem_name

    api = _api(_mapping(raw.get("api"), "api", problems), problems)
    pricing = _pricing(_mapping(raw.get("pricing"), "pricing", problems), api.models, problems)
    limits = _limits(_mapping(raw.get("limits"), "limits", problems), overrides, problems)
    output = _mapping(raw.get("output"), "output", problems)
    _check_keys(output, OUTPUT_KEYS, "output", problems)

    defaults = _mapping(raw.get("defaults"), "defaults", problems)
    _check_keys(defaults, DEFAULT_KEYS, "defaults", problems)
    base: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "duration": DEFAULT_DURATION,
        "aspect_ratio": DEFAULT_ASPECT_RATIO,
    }
    base.update({key: value for key, value in defaults.items() if key in DEFAULT_KEYS})
    for key in ("model", "duration", "aspect_ratio"):
        flag = getattr(overrides, key)
        if flag is not None:
            base[key] = flag

    matrix = _matrix(_mapping(raw.get("matrix"), "matrix", problems), problems)
    entries = _job_entries(raw, folder, problems)
    raw.pop("jobs", None)  # held by ``entries`` now, and let go one by one below

    out_dir_text = output.get("dir", f"{DEFAULT_OUTPUT_ROOT}/{name}")
    if overrides.output_dir is not None:
        output_dir = Path(overrides.output_dir).resolve()
    elif isinstance(out_dir_text, str) and out_dir_text.strip() and "\x00" not in out_dir_text:
        output_dir = (folder / out_dir_text).resolve()
    else:
        problems.add("output.dir", "must be a non-empty path without NUL bytes")
        output_dir = folder / DEFAULT_OUTPUT_ROOT / name
    template = output.get("path", DEFAULT_PATH_TEMPLATE)
    template_ok = _check_template(template, problems)

    adapter = provider_for(api)
    jobs: list[JobSpec] = []
    # Where each job came from, by its index in ``jobs``: i of its key jobs[i] and its problem
    # collector (its key and source are made again for the few that need them). A set of ids
    # finds a duplicate; which job it repeats is looked up only then (``first``).
    ats: array[int] = array("L")
    wheres: list[_Problems] = []
    ids: set[str] = set()
    first: dict[str, int] | None = None
    pending = deque(entries)  # each raw job is let go once read
    del entries
    checked: _Checked = {}
    while pending:
        at, entry, where = pending.popleft()
        key = f"jobs[{at}]"
        if at < len(where.job_rows):
            source = f"{where.file} row {where.job_rows[at]}"  # where(key), at once
        else:
            source = f"{where.file} {where.where(key)}".strip()
        for draft in _expand(entry, key, base, matrix, api.models, where, checked):
            job_id = draft[0]
            index = len(jobs)
            if job_id in ids:
                if first is None:
                    first = {job.id: i for i, job in enumerate(jobs)}
                other = first[job_id]
                also = f"{wheres[other].file} {wheres[other].where(f'jobs[{ats[other]}]')}"
                where.add(f"{key}.id", f"id '{job_id}' is used twice (also by {also.strip()})")
                continue
            ids.add(job_id)
            if first is not None:
                first[job_id] = index
            ats.append(at)
            wheres.append(where)
            output_path = ""
            if template_ok:
                output_path = _render_path(str(template), draft, index, name, problems) or ""
            spec = JobSpec(
                job_id, *draft[1:7], index=index, output_path=output_path, source=source
            ).knowing(draft[7])
            jobs.append(spec)
            refused = adapter.job_problem(spec)
            if refused is not None:
                where.add(key, f"{api.provider} cannot render it: {refused}")
    del ids
    _check_collisions(jobs, ats, wheres, problems)
    if not jobs and not problems.all():
        problems.add("jobs", "the manifest has no jobs (give `jobs:` or `jobs_from:`)")
    if problems.all():
        return None
    return Manifest(
        path=manifest_path,
        name=name,
        api=api,
        limits=limits,
        output_dir=output_dir,
        path_template=str(template),
        pricing=pricing,
        jobs=tuple(jobs),
    )


def _api(api: dict[str, Any], problems: _Problems) -> ApiSettings:
    _check_keys(api, API_KEYS, "api", problems)
    provider = api.get("provider", DEFAULT_PROVIDER)
    if provider not in PROVIDERS:
        problems.add("api.provider", f"must be one of {', '.join(PROVIDERS)}")
        provider = DEFAULT_PROVIDER
    base_url = api.get("base_url")
    if base_url is not None and (
        not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url)
    ):
        problems.add("api.base_url", "must be an http(s) URL such as https://api.wanapi.io/v1")
        base_url = None
    key_env = api.get("key_env", DEFAULT_KEY_ENV)
    if not isinstance(key_env, str) or not _ENV_RE.match(key_env):
        problems.add("api.key_env", "must name an environment variable, such as WAN_API_KEY")
        key_env = DEFAULT_KEY_ENV
    models: tuple[str, ...] = KNOWN_MODELS
    if "models" in api:
        listed = api["models"]
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(m, str) and m.strip() for m in listed)
        ):
            problems.add("api.models", "must be a non-empty list of model names")
        else:
            models = tuple(dict.fromkeys([*KNOWN_MODELS, *listed]))
    gateway = None
    if "gateway" in api and provider != "gateway":
        problems.add("api.gateway", "describes a gateway, but api.provider is not 'gateway'")
    elif provider == "gateway":
        gateway = _gateway(_mapping(api.get("gateway"), "api.gateway", problems), models, problems)
    return ApiSettings(
        provider=provider, base_url=base_url, key_env=key_env, models=models, gateway=gateway
    )


# --- api.gateway: an OpenAI-style video API described in the manifest (providers/gateway.py) ---

_JSON_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,7}\Z")
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}\Z")
_SIZE_RE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}\Z")
_ENV_REF_RE = re.compile(r"\$\{([^}]*)\}")
_SET_BY_WANBATCH = ("content-type", "content-length", "host", "idempotency-key", "user-agent")


def _gateway(
    raw: dict[str, Any], models: tuple[str, ...], problems: _Problems
) -> GatewayDescription:
    """``api.gateway``: each key checked, defaults kept where a key is absent or wrong."""
    _check_keys(raw, GATEWAY_KEYS, "api.gateway", problems)
    default = GatewayDescription()
    changes: dict[str, Any] = {}
    for key, fallback in (("create", "POST"), ("get", "GET")):
        if key in raw:
            checked = _gateway_call(raw[key], f"api.gateway.{key}", fallback, problems)
            if checked is not None:
                changes[f"{key}_method"], changes[f"{key}_path"] = checked
    for key in ("id", "status", "video_url", "error_message", "error_code", "webhook"):
        if key not in raw:
            continue
        value = raw[key]
        nullable = key in ("error_message", "error_code", "webhook")
        if value is None and nullable:
            changes[key] = None
        elif not isinstance(value, str) or not _JSON_PATH_RE.match(value):
            problems.add(
                f"api.gateway.{key}",
                "must be a dotted path into the JSON, such as data.id or output.video_url"
                + (", or null" if nullable else ""),
            )
        else:
            changes[key] = value
    if "statuses" in raw:
        changes["statuses"] = _gateway_statuses(raw["statuses"], problems)
    if "body" in raw:
        changes["body"] = _gateway_body(raw["body"], problems)
    if "sizes" in raw:
        sizes = _mapping(raw["sizes"], "api.gateway.sizes", problems)
        for ratio, size in sizes.items():
            if not isinstance(ratio, str) or not _RATIO_RE.match(ratio):
                problems.add(f"api.gateway.sizes.{ratio}", "must be an aspect ratio such as 16:9")
            elif not isinstance(size, str) or not _SIZE_RE.match(size):
                problems.add(f"api.gateway.sizes.{ratio}", "must be WIDTHxHEIGHT such as 1280x720")
        changes["sizes"] = {str(k): str(v) for k, v in sizes.items()}
    if "models" in raw:
        named = _mapping(raw["models"], "api.gateway.models", problems)
        for model, theirs in named.items():
            if model not in models:
                problems.add(
                    f"api.gateway.models.{model}",
                    f"unknown model{_did_you_mean(str(model), models)}",
                )
            elif not isinstance(theirs, str) or not theirs.strip():
                problems.add(f"api.gateway.models.{model}", "must be the gateway's model name")
        changes["models"] = {str(k): str(v) for k, v in named.items()}
    if "headers" in raw:
        changes["headers"] = _gateway_headers(raw["headers"], problems)
    if "auth_header" in raw:
        name = raw["auth_header"]
        if not isinstance(name, str) or not _HEADER_RE.match(name):
            problems.add("api.gateway.auth_header", "must be a header name, such as Authorization")
        else:
            changes["auth_header"] = name
    if "auth_scheme" in raw:
        scheme = raw["auth_scheme"]
        if not isinstance(scheme, str) or (scheme and not _HEADER_RE.match(scheme)):
            problems.add(
                "api.gateway.auth_scheme", 'must be one word such as Bearer, or "" for the bare key'
            )
        else:
            changes["auth_scheme"] = scheme
    if "idempotency_keys" in raw:
        if not isinstance(raw["idempotency_keys"], bool):
            problems.add("api.gateway.idempotency_keys", "must be true or false")
        else:
            changes["idempotency_keys"] = raw["idempotency_keys"]
    return dataclasses.replace(default, **changes)


def _gateway_call(
    value: Any, key: str, fallback: str, problems: _Problems
) -> tuple[str, str] | None:
    """``"POST videos"`` or ``"videos"`` -> (method, path); the get's path needs ``{id}``."""
    methods = ("POST", "PUT") if fallback == "POST" else ("GET", "POST")
    example = "POST videos" if fallback == "POST" else "videos/{id}"
    if not isinstance(value, str) or not value.strip():
        problems.add(key, f"must be a method and a path such as {example!r}")
        return None
    method, _, path = value.strip().partition(" ")
    method, path = (method.upper(), path.strip()) if path else (fallback, method)
    wanted = "{id}" if fallback == "GET" else ""
    if method not in methods:
        problems.add(key, f"the method must be {' or '.join(methods)}, not {method!r}")
    elif path.startswith("/") or "://" in path:
        problems.add(key, f"{path!r}: the path is relative to api.base_url (no leading /)")
    elif re.search(r"\s|#|\\", path) or ".." in path.split("?")[0].split("/"):
        problems.add(key, f"{path!r} is not a usable path")
    elif path.replace("{id}", "").count("{") or path.replace("{id}", "").count("}"):
        problems.add(key, f"{path!r}: the only placeholder a path may hold is {{id}}")
    elif wanted and path.count(wanted) != 1:
        problems.add(key, f"{path!r} must hold {{id}} once, where the task id goes")
    elif not wanted and "{id}" in path:
        problems.add(key, f"{path!r}: the create's path cannot hold {{id}}")
    else:
        return method, path
    return None


def _gateway_statuses(value: Any, problems: _Problems) -> dict[str, tuple[str, ...]]:
    statuses = _mapping(value, "api.gateway.statuses", problems)
    out: dict[str, tuple[str, ...]] = {name: () for name in GATEWAY_CLASSES}
    seen: dict[str, str] = {}
    for name, words in statuses.items():
        key = f"api.gateway.statuses.{name}"
        if name not in GATEWAY_CLASSES:
            problems.add(key, f"unknown class{_did_you_mean(str(name), GATEWAY_CLASSES)}")
            continue
        listed = [words] if isinstance(words, str) else words
        if not isinstance(listed, list) or not all(
            isinstance(w, str) and w.strip() for w in listed
        ):
            problems.add(key, "must be a list of status words, such as [completed]")
            continue
        for word in listed:
            folded = word.strip().lower()
            if folded in seen and seen[folded] != name:
                problems.add(key, f"{word!r} is also listed under {seen[folded]}")
            seen[folded] = name
        out[name] = tuple(w.strip() for w in listed)
    for name in ("succeeded", "failed"):
        if statuses and not out[name]:
            problems.add("api.gateway.statuses", f"needs the {name} words (a task must end)")
    return out


def _gateway_body(value: Any, problems: _Problems) -> dict[str, Any]:
    body = _mapping(value, "api.gateway.body", problems)
    if value is not None and not body:
        problems.add("api.gateway.body", "must name at least the prompt's place: {prompt}")
    paths = [str(path) for path in body]
    for path, template in body.items():
        key = f"api.gateway.body.{path}"
        if not isinstance(path, str) or not _JSON_PATH_RE.match(path):
            problems.add(key, "must be a dotted path in the request, such as input.prompt")
        elif any(other.startswith(path + ".") for other in paths):
            problems.add(key, "holds a value and other fields at once")
        if isinstance(template, dict | list):
            problems.add(key, "must be one value: text with {placeholders}, a number or true/false")
        elif isinstance(template, str):
            try:
                parsed = list(string.Formatter().parse(template))
            except ValueError as exc:
                problems.add(key, f"is not a valid template: {exc}")
                continue
            for _, name, spec, conversion in parsed:
                if name is not None and (name not in GATEWAY_FIELDS or spec or conversion):
                    problems.add(
                        key, f"unknown field {{{name}}}{_did_you_mean(name, GATEWAY_FIELDS)}"
                    )
    return body


def _gateway_headers(value: Any, problems: _Problems) -> dict[str, str]:
    headers = _mapping(value, "api.gateway.headers", problems)
    out: dict[str, str] = {}
    for name, text in headers.items():
        key = f"api.gateway.headers.{name}"
        if not isinstance(name, str) or not _HEADER_RE.match(name):
            problems.add(key, "is not a header name")
        elif name.lower() in _SET_BY_WANBATCH or name.lower() == "authorization":
            problems.add(key, "is set by wanbatch (the key goes by auth_header and key_env)")
        elif not isinstance(text, str) or not text.isprintable():
            problems.add(key, "must be one line of text")
        elif text.split(" ")[0].lower() in ("bearer", "basic", "key", "token"):
            problems.add(key, "holds a credential: put it in the environment, ${NAME}")
        elif bad := [ref for ref in _ENV_REF_RE.findall(text) if not _ENV_RE.match(ref)]:
            problems.add(key, f"${{{bad[0]}}} does not name an environment variable")
        elif "$" in _ENV_REF_RE.sub("", text):
            problems.add(key, "a $ must start an environment variable, written ${NAME}")
        else:
            out[name] = text
    return out


def _pricing(
    pricing: dict[str, Any], models: tuple[str, ...], problems: _Problems
) -> dict[str, float]:
    out: dict[str, float] = {}
    for model, price in pricing.items():
        key = f"pricing.{model}"
        if not isinstance(model, str) or model not in models:
            problems.add(key, f"unknown model{_did_you_mean(str(model), models)}")
            continue
        if (
            isinstance(price, bool)
            or not isinstance(price, int | float)
            or not price >= 0
            or price == float("inf")
        ):
            problems.add(key, f"must be a number of credits per second, not {price!r}")
            continue
        out[model] = float(price)
    return out


def _limits(limits: dict[str, Any], overrides: Overrides, problems: _Problems) -> Limits:
    _check_keys(limits, LIMIT_KEYS, "limits", problems)
    default = Limits()
    concurrency = default.concurrency
    if "concurrency" in limits:
        concurrency = (
            _positive_int(limits["concurrency"], "limits.concurrency", problems) or concurrency
        )
    rps = default.requests_per_second
    if "requests_per_second" in limits:
        rps = (
            _positive_number(limits["requests_per_second"], "limits.requests_per_second", problems)
            or rps
        )
    downloads = default.downloads
    if "downloads" in limits:
        downloads = _positive_int(limits["downloads"], "limits.downloads", problems) or downloads
    deadline = default.job_deadline_seconds
    if "job_deadline_seconds" in limits:
        deadline = (
            _positive_number(
                limits["job_deadline_seconds"], "limits.job_deadline_seconds", problems
            )
            or deadline
        )
    grace = default.list_grace_seconds
    if "list_grace_seconds" in limits:
        grace = (
            _positive_number(limits["list_grace_seconds"], "limits.list_grace_seconds", problems)
            or grace
        )
    if overrides.concurrency is not None:
        concurrency = overrides.concurrency
    if overrides.requests_per_second is not None:
        rps = overrides.requests_per_second
    return Limits(
        concurrency=concurrency,
        requests_per_second=rps,
        downloads=downloads,
        job_deadline_seconds=deadline,
        list_grace_seconds=grace,
    )


def _matrix(matrix: dict[str, Any], problems: _Problems) -> dict[str, list[Any]]:
    _check_keys(matrix, MATRIX_KEYS, "matrix", problems)
    out: dict[str, list[Any]] = {}
    for key in MATRIX_KEYS:
        if key not in matrix:
            continue
        values = matrix[key]
        if not isinstance(values, list) or not values:
            problems.add(f"matrix.{key}", "must be a non-empty list of values")
            continue
        if len({repr(v) for v in values}) != len(values):
            problems.add(f"matrix.{key}", "lists a value twice")
            continue
        out[key] = values
    return out


_Entry = tuple[int, Any, "_Problems"]  # i of its key jobs[i], raw job, where its problems go


def _job_entries(raw: dict[str, Any], folder: Path, problems: _Problems) -> list[_Entry]:
    """Every job with its key, source and problem collector; inline jobs first."""
    entries: list[_Entry] = []
    jobs = raw.get("jobs")
    if jobs is not None:
        if not isinstance(jobs, list):
            problems.add("jobs", f"must be a list of jobs, not {_kind(jobs)}")
        else:
            entries += [(index, job, problems) for index, job in enumerate(jobs)]
    if "jobs_from" in raw:
        entries += _jobs_from(raw["jobs_from"], folder, problems)
    return entries


def _jobs_from(value: Any, folder: Path, problems: _Problems) -> list[_Entry]:
    """Jobs from a CSV or YAML file beside the manifest; their problems name that file."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        problems.add("jobs_from", "must be the path of a CSV or YAML file of jobs")
        return []
    path = (folder / value).resolve()
    if path.suffix.lower() not in (".csv", ".yaml", ".yml"):
        problems.add("jobs_from", "must name a .csv, .yaml or .yml file")
        return []
    display = str(Path(problems.file).parent / value)
    inner = _Problems(file=display, rows=path.suffix.lower() == ".csv")
    problems.inner.append(inner)
    if not path.is_file():
        problems.add("jobs_from", f"file not found: {display}")
        return []
    text = _read_text(path, inner)
    found: list[Any] = []
    if text is not None:
        if inner.rows:
            found = _load_csv(text, inner, "")
        else:
            loaded = _load_yaml(text, inner)
            if (
                isinstance(loaded, dict)
                and set(loaded) == {"jobs"}
                and isinstance(loaded["jobs"], list)
            ):
                found = loaded["jobs"]
            elif isinstance(loaded, list):
                inner.lines = {f"jobs{key}": line for key, line in inner.lines.items()}
                found = loaded
            elif not inner.found:
                inner.add("", "must hold a list of jobs (or a mapping with only `jobs:`)")
    return [(index, job, inner) for index, job in enumerate(found)]


# --- jobs --------------------------------------------------------------------------------------


# A job as _expand gives it: id, prompt, model, duration, aspect_ratio, image, extra, fingerprint.
_Draft = tuple[str, str, str, int, str, str | None, Mapping[str, Any], str]
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})  # one empty mapping for every job without


def _expand(
    entry: Any,
    key: str,
    base: dict[str, Any],
    matrix: dict[str, list[Any]],
    models: tuple[str, ...],
    problems: _Problems,
    checked: _Checked,
) -> list[_Draft]:
    """One raw job -> its validated jobs, one per matrix combination."""
    if isinstance(entry, _CsvRow):
        entry = entry.mapping()  # its keys are known columns: nothing for _check_keys
    elif not isinstance(entry, dict):
        problems.add(key, f"a job must be a mapping with at least `prompt:`, not {_kind(entry)}")
        return []
    else:
        _check_keys(entry, JOB_KEYS, key, problems)
    fields = dict(base)
    if isinstance(base.get("extra"), dict) and isinstance(entry.get("extra"), dict):
        fields["extra"] = {**base["extra"], **entry["extra"]}
        entry = {k: v for k, v in entry.items() if k != "extra"}
    fields.update({k: v for k, v in entry.items() if k in JOB_FIELDS})
    if "prompt" not in fields:
        problems.add(f"{key}.prompt", "every job needs a prompt")
        return []
    axes = [(axis, values) for axis, values in matrix.items() if axis not in entry]
    given_id = entry.get("id")
    if given_id is not None:
        given_id = _check_id(given_id, f"{key}.id", problems)
        if given_id is None:
            return []
    if not axes:  # most jobs: no matrix to expand
        draft = _validate_job(fields, key, models, problems, checked)
        if draft is None:
            return []
        return _named(draft, given_id, [], key, problems)
    drafts: list[_Draft] = []
    for combo in itertools.product(*[values for _, values in axes]):
        chosen = dict(fields)
        suffix_parts = []
        for (axis, values), value in zip(axes, combo, strict=True):
            chosen[axis] = value
            if len(values) > 1:
                suffix_parts.append(_suffix(axis, value))
        draft = _validate_job(chosen, key, models, problems, checked)
        if draft is not None:
            drafts += _named(draft, given_id, suffix_parts, key, problems)
    return drafts


def _named(
    draft: _Draft, given_id: str | None, suffix_parts: list[str], key: str, problems: _Problems
) -> list[_Draft]:
    """``draft`` with its id (given, else derived), or nothing when that id is not one."""
    if not given_id and not suffix_parts:  # a slug and hex digits: always an id (_ID_RE)
        return [(_derived_id(draft[1], draft[7]), *draft[1:])]
    base_id = given_id or _derived_id(draft[1], draft[7])
    job_id = "-".join([base_id, *suffix_parts]) if suffix_parts else base_id
    if _check_id(job_id, f"{key}.id", problems) is None:
        return []
    return [(job_id, *draft[1:])]


# (model, duration, aspect_ratio as written) found good -> the aspect ratio stripped
_Checked = dict[tuple[str, int, str], str]


def _validate_job(
    fields: dict[str, Any],
    key: str,
    models: tuple[str, ...],
    problems: _Problems,
    checked: _Checked,
) -> _Draft | None:
    """The job's fields checked (its id not yet given: ""), with their fingerprint. A model,
    duration and aspect ratio found good together once (``checked``) are not checked again."""
    prompt, model = fields.get("prompt"), fields.get("model")
    duration, ratio = fields.get("duration"), fields.get("aspect_ratio")
    image, extra = fields.get("image"), fields.get("extra", _NO_EXTRA)
    if (
        type(prompt) is str
        and type(model) is str
        and type(duration) is int
        and type(ratio) is str
        and (image is None or (type(image) is str and _IMAGE_RE.match(image)))
        and (extra is _NO_EXTRA or (type(extra) is dict and all(type(k) is str for k in extra)))
        and prompt.strip()
    ):
        stripped = checked.get((model, duration, ratio))
        if stripped is not None:
            extra = extra or _NO_EXTRA
            found = job_fingerprint(prompt, model, duration, stripped, image, extra)
            return ("", prompt, model, duration, stripped, image, extra, found)
    draft = _check_job(fields, key, models, problems)
    exact = type(model) is str and type(duration) is int and type(ratio) is str
    if draft is not None and exact and len(checked) < 10_000:
        checked[(model, duration, ratio)] = draft[4]  # type: ignore[index]
    return draft


def _check_job(
    fields: dict[str, Any], key: str, models: tuple[str, ...], problems: _Problems
) -> _Draft | None:
    before = len(problems.found)
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.add(f"{key}.prompt", "must be non-empty text")
    model = fields.get("model")
    if not isinstance(model, str) or model not in models:
        problems.add(f"{key}.model", f"unknown model {model!r}{_did_you_mean(str(model), models)}")
    duration = _positive_int(
        fields.get("duration"), f"{key}.duration", problems, maximum=MAX_DURATION
    )
    ratio = fields.get("aspect_ratio")
    if not isinstance(ratio, str) or not _RATIO_RE.match(ratio.strip()):
        problems.add(f"{key}.aspect_ratio", f"must be W:H such as 16:9, not {ratio!r}")
    image = fields.get("image")
    if image is not None and (not isinstance(image, str) or not _IMAGE_RE.match(image)):
        problems.add(f"{key}.image", "must be an http(s) URL of the first frame")
    extra = fields.get("extra", _NO_EXTRA)
    if not isinstance(extra, dict | MappingProxyType) or not all(isinstance(k, str) for k in extra):
        problems.add(f"{key}.extra", "must be a mapping of request fields")
        extra = _NO_EXTRA
    if len(problems.found) != before or duration is None:
        return None
    assert isinstance(prompt, str) and isinstance(model, str) and isinstance(ratio, str)
    ratio = ratio.strip()
    extra = extra or _NO_EXTRA
    fingerprint = job_fingerprint(prompt, model, duration, ratio, image, extra)
    return ("", prompt, model, duration, ratio, image, extra, fingerprint)


def _check_id(value: Any, key: str, problems: _Problems) -> str | None:
    if not isinstance(value, str | int) or isinstance(value, bool):
        problems.add(key, f"must be text, not {_kind(value)}")
        return None
    text = str(value)
    if len(text) > MAX_JOB_ID_LENGTH:
        problems.add(key, f"is {len(text)} characters; ids are at most {MAX_JOB_ID_LENGTH}")
        return None
    if not _ID_RE.match(text):
        problems.add(
            key,
            f"{text!r}: ids use only letters, digits, '.', '_' and '-', and do not start with '.'",
        )
        return None
    return text


def _slug(prompt: str) -> str:
    words = _SLUG_WORD_RE.findall(prompt.lower())[:_SLUG_WORDS]
    slug = "-".join(words)[:_SLUG_CHARS].strip("-")
    return slug or "job"


def _derived_id(prompt: str, fingerprint: str) -> str:
    # 48 bits: 100,000 prompts that share their first words collide with odds of about 1 in 50,000.
    return f"{_slug(prompt)}-{fingerprint[:_ID_HASH_DIGITS]}"


def _suffix(axis: str, value: Any) -> str:
    text = str(value)
    if axis == "aspect_ratio":
        return text.replace(":", "x")
    if axis == "duration":
        return f"{text}s"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


# --- output paths --------------------------------------------------------------------------------


def _check_template(template: Any, problems: _Problems) -> bool:
    if not isinstance(template, str) or not template.strip():
        problems.add("output.path", "must be a non-empty path template such as '{id}.mp4'")
        return False
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        problems.add("output.path", f"is not a valid template: {exc}")
        return False
    ok = True
    for _, field_name, _, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in PATH_TEMPLATE_FIELDS or conversion:
            problems.add(
                "output.path",
                f"unknown field {{{field_name}}}{_did_you_mean(field_name, PATH_TEMPLATE_FIELDS)}",
            )
            ok = False
    if ok and "{id" not in template and "{index" not in template:
        problems.add("output.path", "must contain {id} or {index} so every job gets its own file")
        ok = False
    return ok


def _check_collisions(
    jobs: list[JobSpec], ats: array[int], wheres: list[_Problems], problems: _Problems
) -> None:
    """Output paths that would meet each other or wanbatch's own files (``outputnames``); named
    at ``output.path`` when the manifest gives it, else at the job (the default template)."""
    rendered = [(job.id, job.output_path) for job in jobs if job.output_path]
    index_of: dict[str, int] | None = None
    for job_id, message in outputnames.collisions(rendered):
        if "output.path" in problems.lines:
            problems.add("output.path", message)
        else:
            if index_of is None:  # only when some job collides
                index_of = {job.id: i for i, job in enumerate(jobs)}
            i = index_of[job_id]
            wheres[i].add(f"jobs[{ats[i]}]", message)


def _render_path(
    template: str, draft: _Draft, index: int, name: str, problems: _Problems
) -> str | None:
    job_id, _, model, duration, ratio = draft[:5]
    if template == DEFAULT_PATH_TEMPLATE:  # "{id}.mp4": an id is one safe name (_ID_RE)
        return f"{job_id}.mp4"
    values = {
        "id": job_id,
        "name": name,
        "model": model,
        "aspect_ratio": ratio.replace(":", "x"),
        "duration": duration,
        "index": index,
    }
    try:
        rendered = template.format(**values)
    except (ValueError, KeyError, IndexError) as exc:
        problems.add("output.path", f"cannot be filled in for {job_id}: {exc}")
        return None
    parts = rendered.split("/")
    if (
        rendered.startswith(("/", "~"))
        or "\\" in rendered
        or any(part in ("", ".", "..") for part in parts)
        or any(part.startswith(".") for part in parts)
        or "\x00" in rendered
    ):
        problems.add(
            "output.path",
            f"for job {job_id} gives {rendered!r}, which leaves the output dir or names a hidden file",
        )
        return None
    return rendered  # what PurePosixPath would make of it: nothing it would fold is let through
