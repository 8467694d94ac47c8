"""Manifest text (YAML or CSV) -> a validated ``Manifest`` with every job expanded.

Every problem found is collected in one pass and raised as one ``ManifestError``; each names the
file and line (``file:line:``) and the dotted key, and an unknown key gets a did-you-mean. The
only I/O is ``reading``'s: the manifest and the file named by ``jobs_from``.
"""

from __future__ import annotations

import os
from array import array
from collections import deque
from pathlib import Path
from typing import Any

from wanbatch.errors import ManifestError
from wanbatch.manifest import reading, schema, sections
from wanbatch.manifest.csvread import load_csv
from wanbatch.manifest.jobs import Checked, claimed_id, expand
from wanbatch.manifest.paths import check_collisions, check_template, render_path
from wanbatch.manifest.problems import Problems, check_keys, kind, mapping, ratio_hint
from wanbatch.manifest.sections import Overrides
from wanbatch.manifest.yamlread import load_yaml
from wanbatch.models import DEFAULT_OUTPUT_ROOT, DEFAULT_PATH_TEMPLATE, JobSpec, Manifest
from wanbatch.providers import provider_for

_SUFFIXES = (".yaml", ".yml", ".csv")


def load_manifest(path: str | os.PathLike[str], overrides: Overrides | None = None) -> Manifest:
    """Read, validate and expand a manifest; raises one ``ManifestError`` listing every problem."""
    overrides = overrides or Overrides()
    manifest_path = Path(path)
    problems = Problems(file=str(path))
    suffix = manifest_path.suffix.lower()
    if suffix not in _SUFFIXES:
        problems.add("", "a manifest is a .yaml, .yml or .csv file")
        raise ManifestError(problems.found)
    text = reading.manifest_text(manifest_path, problems)
    if text is None:
        raise ManifestError(problems.found)
    folder = reading.resolve(manifest_path).parent
    if suffix == ".csv":
        problems.rows = True
        raw: dict[str, Any] = {"jobs": load_csv(text, problems, overrides.ignore_columns)}
    else:
        loaded = load_yaml(text, problems)
        if problems.found:
            raise ManifestError(problems.found)
        if loaded is None:
            problems.add("", "the manifest is empty")
            raise ManifestError(problems.found)
        if isinstance(loaded, list):
            problems.add(
                "", "the top level is a list: put the jobs under `jobs:` (a line `jobs:` first, "
                "the list indented under it)", line=1,
            )  # fmt: skip
            raise ManifestError(problems.found)
        if not isinstance(loaded, dict):
            problems.add(
                "",
                f"the top level must be a mapping of keys (name, jobs, ...), not {kind(loaded)}",
                line=1,
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
    problems: Problems,
) -> Manifest | None:
    check_keys(raw, schema.keys(""), "", problems)
    name = sections.name(raw, manifest_path, problems)
    api = sections.api(mapping(raw.get("api"), "api", problems), problems)
    pricing = sections.pricing(
        mapping(raw.get("pricing"), "pricing", problems), overrides.pricing, api.models, problems
    )
    limits = sections.limits(mapping(raw.get("limits"), "limits", problems), overrides, problems)
    output = mapping(raw.get("output"), "output", problems)
    check_keys(output, schema.keys("output"), "output", problems)
    base = _job_defaults(mapping(raw.get("defaults"), "defaults", problems), problems)
    base.update(sections.flag_defaults(overrides, api.models, problems))
    matrix = sections.matrix(mapping(raw.get("matrix"), "matrix", problems), problems)
    entries = _job_entries(raw, folder, overrides, problems)
    raw.pop("jobs", None)  # held by ``entries`` now, and let go one by one below

    out_dir_text = output.get("dir", f"{DEFAULT_OUTPUT_ROOT}/{name}")
    if overrides.output_dir is not None:
        output_dir = reading.resolve(overrides.output_dir)
    elif isinstance(out_dir_text, str) and out_dir_text.strip() and "\x00" not in out_dir_text:
        output_dir = reading.resolve(folder / out_dir_text)
    else:
        problems.add("output.dir", "must be a non-empty path without NUL bytes")
        output_dir = folder / DEFAULT_OUTPUT_ROOT / name
    template = output.get("path", DEFAULT_PATH_TEMPLATE)
    template_ok = check_template(template, problems)

    adapter = provider_for(api)
    jobs: list[JobSpec] = []
    # Where each job came from, by its index in ``jobs``: i of its key jobs[i] and its problem
    # collector (its key and source are made again for the few that need them). A set of ids
    # finds a duplicate; which job it repeats is looked up only then (``first``). Ids that jobs
    # refused for their fields still claim are in ``refused`` (rare), with where they are.
    ats: array[int] = array("L")
    wheres: list[Problems] = []
    ids: set[str] = set()
    first: dict[str, int] | None = None
    refused: dict[str, str] = {}
    pending = deque(entries)  # each raw job is let go once read
    del entries
    checked: Checked = {}
    while pending:
        at, entry, where = pending.popleft()
        key = f"jobs[{at}]"
        if at < len(where.job_rows):
            source = f"{where.file} row {where.job_rows[at]}"  # where(key), at once
        else:
            line = where.line(key)
            source = where.file if line is None else f"{where.file} line {line}"
        drafts = expand(entry, key, base, matrix, api.models, where, checked)
        if not drafts and (claimed := claimed_id(entry, matrix)) is not None:
            if claimed in ids or claimed in refused:
                also = refused.get(claimed) or _where_is(claimed, jobs, ats, wheres)
                where.add(f"{key}.id", f"id '{claimed}' is used twice (also by {also})")
            else:
                refused[claimed] = where.where(key)
        for draft in drafts:
            job_id = draft[0]
            index = len(jobs)
            if job_id in ids or job_id in refused:
                if job_id in refused:
                    also = refused[job_id]
                else:
                    if first is None:
                        first = {job.id: i for i, job in enumerate(jobs)}
                    other = first[job_id]
                    also = wheres[other].where(f"jobs[{ats[other]}]")
                where.add(f"{key}.id", f"id '{job_id}' is used twice (also by {also})")
                continue
            ids.add(job_id)
            if first is not None:
                first[job_id] = index
            ats.append(at)
            wheres.append(where)
            output_path = ""
            if template_ok:
                output_path = render_path(str(template), draft, index, name, problems) or ""
            spec = JobSpec(
                job_id, *draft[1:7], index=index, output_path=output_path, source=source
            ).knowing(draft[7])
            jobs.append(spec)
            refusal = adapter.job_problem(spec)
            if refusal is not None:
                where.add(key, f"{api.provider} cannot render it: {refusal}")
    del ids
    check_collisions(jobs, ats, wheres, problems)
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


def _where_is(job_id: str, jobs: list[JobSpec], ats: array[int], wheres: list[Problems]) -> str:
    index = next(i for i, job in enumerate(jobs) if job.id == job_id)
    return wheres[index].where(f"jobs[{ats[index]}]")


def _job_defaults(defaults: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The fields every job starts from: the schema's defaults, then the manifest's."""
    allowed = schema.keys("defaults")
    check_keys(defaults, allowed, "defaults", problems)
    base = schema.defaults("defaults")
    for key, value in defaults.items():
        if key == "aspect_ratio" and ratio_hint(value):  # once here, not once a job
            problems.add("defaults.aspect_ratio", f"must be W:H such as 16:9{ratio_hint(value)}")
        elif key in allowed:
            base[key] = value
    return base


_Entry = tuple[int, Any, Problems]  # i of its key jobs[i], raw job, where its problems go


def _job_entries(
    raw: dict[str, Any], folder: Path, overrides: Overrides, problems: Problems
) -> list[_Entry]:
    """Every job with its key, source and problem collector; inline jobs first."""
    entries: list[_Entry] = []
    jobs = raw.get("jobs")
    if jobs is not None:
        if not isinstance(jobs, list):
            problems.add("jobs", f"must be a list of jobs, not {kind(jobs)}")
        else:
            entries += [(index, job, problems) for index, job in enumerate(jobs)]
    if "jobs_from" in raw:
        entries += _jobs_from(raw["jobs_from"], folder, overrides, problems)
    return entries


def _jobs_from(value: Any, folder: Path, overrides: Overrides, problems: Problems) -> list[_Entry]:
    """Jobs from a CSV or YAML file beside the manifest; their problems name that file."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        problems.add("jobs_from", "must be the path of a CSV or YAML file of jobs")
        return []
    path = reading.resolve(folder / value)
    if path.suffix.lower() not in _SUFFIXES:
        problems.add("jobs_from", "must name a .csv, .yaml or .yml file")
        return []
    display = str(Path(problems.file).parent / value)
    inner = Problems(file=display, rows=path.suffix.lower() == ".csv")
    problems.inner.append(inner)
    if not reading.is_file(path):
        problems.add("jobs_from", f"file not found: {display}")
        return []
    text = reading.manifest_text(path, inner)
    found: list[Any] = []
    if text is not None:
        if inner.rows:
            found = load_csv(text, inner, overrides.ignore_columns)
        else:
            loaded = load_yaml(text, inner)
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
