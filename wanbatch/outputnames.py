"""The files wanbatch writes in an output tree, and output paths that would collide with them. Pure.

A job's video at ``T`` (relative to the output dir) brings ``T.part`` and ``T.part.json`` while it
downloads (``download.py``) and its sidecar ``T.with_suffix('.json')`` once it is in place, each
written through a ``.tmp`` beside it. The output root holds the gallery (``report.html``), the
failed jobs as a manifest (``retry.yaml``), each written through a ``.tmp``, and the state folder
``.wanbatch/``. ``collisions`` finds every way a set of output paths would make two of these one
file (or one a file and the other a folder): a job named ``report.html`` under ``{id}``, a job
whose sidecar is another job's video, two sidecars in one file. Names are compared case-folded:
on macOS and Windows ``Shot.mp4`` and ``shot.mp4`` are one file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

ROOT_FILES: tuple[tuple[str, str], ...] = (
    ("report.html", "the gallery"),
    ("report.html.tmp", "the gallery being written"),
    ("retry.yaml", "the failed jobs' manifest"),
    ("retry.yaml.tmp", "the failed jobs' manifest being written"),
    (".wanbatch", "the state folder"),
)


def job_files(output_path: str) -> tuple[tuple[str, str], ...]:
    """Every file a job with this output path may write, with what each is."""
    target = PurePosixPath(output_path)
    part = target.with_name(target.name + ".part")
    meta = target.with_name(target.name + ".part.json")
    sidecar = target.with_suffix(".json") if target.suffix != ".json" else target
    files = [
        (target, "video"),
        (part, "partial download"),
        (meta, "partial download's notes"),
        (sidecar, "sidecar"),
    ]
    with_tmp = [
        *files,
        *((p.with_name(p.name + ".tmp"), f"{what} being written") for p, what in files),
    ]
    return tuple((str(path), what) for path, what in with_tmp)


def collisions(paths: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """For ``(job id, output path)`` pairs in order: ``(job id, message)`` for each job whose
    files would meet wanbatch's own, its own video, or an earlier job's files or folders."""
    owners: dict[str, tuple[str, str, str]] = {}  # folded name -> (name, job id or "", what)
    folders: dict[str, tuple[str, str]] = {}  # folded folder -> (folder, job id or "")
    for name, what in ROOT_FILES:
        owners[name.casefold()] = (name, "", f"{what} ({name})")
    found: list[tuple[str, str]] = []
    for job_id, output_path in paths:
        problem = _first_collision(job_id, output_path, owners, folders)
        if problem is not None:
            found.append(
                (job_id, problem if problem.startswith("jobs ") else f"job {job_id}: {problem}")
            )
    return found


def _first_collision(
    job_id: str,
    output_path: str,
    owners: dict[str, tuple[str, str, str]],
    folders: dict[str, tuple[str, str]],
) -> str | None:
    files = job_files(output_path)
    target = PurePosixPath(output_path)
    mine: dict[str, tuple[str, str]] = {}
    for name, what in files:
        folded = name.casefold()
        if folded in owners:
            return _clash(job_id, name, what, owners[folded])
        if folded in folders:
            folder, other = folders[folded]
            whose = f"job {other}" if other else "wanbatch"
            return f"its {what} {name} is a folder that {whose} needs ({folder}/...)"
        mine[folded] = (name, what)
    parents = [str(parent) for parent in target.parents if str(parent) != "."]
    for parent in parents:
        folded = parent.casefold()
        if folded in owners:
            name, other, what = owners[folded]
            whose = f"job {other}'s {what}" if other else what
            return f"its folder {parent}/ would be a file: {whose} ({name})"
    if target.suffix.casefold() == ".json":
        return f"its video {output_path} would be overwritten by its own sidecar (NAME.json)"
    for folded, (name, what) in mine.items():
        owners[folded] = (name, job_id, what)
    for parent in parents:
        folders.setdefault(parent.casefold(), (parent, job_id))
    return None


def _clash(job_id: str, name: str, what: str, owner: tuple[str, str, str]) -> str:
    other_name, other, other_what = owner
    if not other:
        return f"its {what} {name} would overwrite {other_what}, which wanbatch writes itself"
    case = " (names that differ only in case are one file on macOS and Windows)"
    note = case if other_name != name else ""
    return (
        f"jobs {other} and {job_id} would write one file: {other_name} is the {other_what} "
        f"of {other}, {name} the {what} of {job_id}{note}"
    )
