"""Which jobs a command looks at: ``--only ID_OR_GLOB`` and ``--where FIELD=VALUE``. Pure.

``--only`` is repeatable and any one may match (an exact id, or a shell glob: ``forest-*``,
``shot-?``, ``[ab]*``). ``--where`` is repeatable and every one must hold; a field is one of
``FIELDS`` or ``extra.KEY``, and values compare as text (``duration=5``); a field a job
lacks reads as empty (``image=`` selects the jobs without an image). A selector that
matches no job at all is an error naming it: a typo must not quietly select nothing (a run
would then do nothing, and say "0/0 done").
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from wanbatch.errors import UsageError
from wanbatch.models import JobSpec
from wanbatch.words import natural_key

FIELDS = ("id", "model", "prompt", "duration", "aspect_ratio", "image", "source")


def select(
    jobs: Sequence[JobSpec],
    only: Sequence[str] = (),
    where: Sequence[tuple[str, str]] = (),
) -> tuple[JobSpec, ...]:
    """The jobs matching every ``where`` and any ``only`` (all jobs when both are empty)."""
    if not only and not where:
        return tuple(jobs)
    for name, value in where:
        if name not in FIELDS and not name.startswith("extra."):
            raise UsageError(
                f"--where {name}={value}: no such field; use one of {', '.join(FIELDS)}"
                " or extra.KEY"
            )
    chosen = tuple(
        job
        for job in jobs
        if (not only or any(_id_matches(job.id, pattern) for pattern in only))
        and all(_text(field_of(job, name)) == value for name, value in where)
    )
    unmatched = [
        pattern for pattern in only if not any(_id_matches(job.id, pattern) for job in jobs)
    ]
    if unmatched:
        raise UsageError(f"--only {unmatched[0]}: no job has a matching id")
    if not chosen:
        for name, value in where:  # the one that matches no job at all, if there is one
            if not any(_text(field_of(job, name)) == value for job in jobs):
                seen = sorted({_text(field_of(job, name)) for job in jobs}, key=natural_key)
                shown = ", ".join(seen[:8]) + (" ..." if len(seen) > 8 else "")
                raise UsageError(
                    f"--where {name}={value}: no job matches (values match exactly, as text;"
                    f" the jobs have {shown})"
                )
        said = [f"--only {pattern}" for pattern in only] + [
            f"--where {name}={value}" for name, value in where
        ]
        raise UsageError(f"{' '.join(said)}: no job matches all of them")
    return chosen


def field_of(job: JobSpec, name: str) -> Any:
    """A job's field by the name ``--where`` uses; None where the job has none."""
    if name.startswith("extra."):
        return job.extra.get(name.removeprefix("extra."))
    return getattr(job, name, None)


def _id_matches(job_id: str, pattern: str) -> bool:
    return job_id == pattern or fnmatchcase(job_id, pattern)


def _text(value: Any) -> str:
    if value is None:  # a field the job lacks: ``--where image=`` selects the jobs without one
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
