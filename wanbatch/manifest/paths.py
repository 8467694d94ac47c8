"""Output paths: the ``output.path`` template checked, filled in for each job, and the paths
checked against each other and the files wanbatch writes (``outputnames``). Pure."""

from __future__ import annotations

import string
from array import array
from typing import Any

from wanbatch import outputnames
from wanbatch.manifest.jobs import Draft
from wanbatch.manifest.problems import Problems, did_you_mean
from wanbatch.models import DEFAULT_PATH_TEMPLATE, PATH_TEMPLATE_FIELDS, JobSpec


def check_template(template: Any, problems: Problems) -> bool:
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
                f"unknown field {{{field_name}}}{did_you_mean(field_name, PATH_TEMPLATE_FIELDS)}",
            )
            ok = False
    if ok and "{id" not in template and "{index" not in template:
        problems.add("output.path", "must contain {id} or {index} so every job gets its own file")
        ok = False
    return ok


def check_collisions(
    jobs: list[JobSpec], ats: array[int], wheres: list[Problems], problems: Problems
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


def render_path(
    template: str, draft: Draft, index: int, name: str, problems: Problems
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


def fixed_template(template: str, name: str) -> str:
    """``template`` with ``{name}`` written out, since the retry manifest has another name."""
    out: list[str] = []
    for literal, field_name, spec, _conversion in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field_name is None:
            continue
        if field_name == "name":
            value = format(name, spec or "")
            out.append(value.replace("{", "{{").replace("}", "}}"))
        else:
            out.append("{" + field_name + (":" + spec if spec else "") + "}")
    return "".join(out)


def fill(template: str, spec: JobSpec, index: int) -> str | None:
    """The path the loader will give ``spec`` at ``index`` under ``template`` (None if it fails)."""
    try:
        return template.format(
            id=spec.id,
            model=spec.model,
            aspect_ratio=spec.aspect_ratio.replace(":", "x"),
            duration=spec.duration,
            index=index,
        )
    except (ValueError, KeyError, IndexError):
        return None
