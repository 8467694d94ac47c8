"""The files wanbatch writes in an output tree, and output paths that would collide with them. Pure.

A job's video at ``T`` (relative to the output dir) brings ``T.part`` and ``T.part.json`` while it
downloads (``download.py``) and its sidecar ``T.with_suffix('.json')`` once it is in place, each
written through a ``.tmp`` beside it. The output root holds the gallery (``report.html``, and
``report.data.js`` for a large run), the failed jobs as a manifest (``retry.yaml``), each written
through a ``.tmp``, and the state folder ``.wanbatch/``. ``collisions`` finds every way a set
of output paths would make two of these one file (or one a file and the other a folder): a job
named ``report.html`` under ``{id}``, a job whose sidecar is another job's video, two sidecars in
one file. Names are compared case-folded: on macOS and Windows ``Shot.mp4`` and ``shot.mp4`` are
one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ROOT_FILES: tuple[tuple[str, str], ...] = (
    ("report.html", "the gallery"),
    ("report.html.tmp", "the gallery being written"),
    ("report.data.js", "the gallery's data"),
    ("report.data.js.tmp", "the gallery's data being written"),
    ("retry.yaml", "the failed jobs' manifest"),
    ("retry.yaml.tmp", "the failed jobs' manifest being written"),
    (".wanbatch", "the state folder"),
)


_WHAT = ("video", "partial download", "partial download's notes", "sidecar")
_WHATS = (*_WHAT, *(f"{what} being written" for what in _WHAT))


def job_files(output_path: str) -> tuple[tuple[str, str], ...]:
    """Every file a job with this output path may write, with what each is."""
    return tuple(zip(_names(output_path), _WHATS, strict=True))


def _names(output_path: str) -> tuple[str, ...]:
    """The files of ``job_files``, in its order. Plain string work, as ``pathlib`` names them
    (the sidecar is ``Path.with_suffix('.json')`` of the video): 100,000 jobs take a blink."""
    name = output_path.rpartition("/")[2]
    dot = name.rfind(".")
    stem = (
        output_path[: len(output_path) - len(name) + dot]
        if 0 < dot < len(name) - 1
        else output_path
    )
    video, part, meta, sidecar = (
        output_path,
        f"{output_path}.part",
        f"{output_path}.part.json",
        f"{stem}.json",
    )
    return (
        video,
        part,
        meta,
        sidecar,
        f"{video}.tmp",
        f"{part}.tmp",
        f"{meta}.tmp",
        f"{sidecar}.tmp",
    )


def _suffix(name: str) -> str:
    """``PurePosixPath(name).suffix``."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _parents(output_path: str) -> list[str]:
    """The folders above a relative path, outermost first: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = output_path.split("/")[:-1]
    return ["/".join(parts[: depth + 1]) for depth in range(len(parts))]


def collisions(paths: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """For ``(job id, output path)`` pairs in order: ``(job id, message)`` for each job whose
    files would meet wanbatch's own, its own video, or an earlier job's files or folders.

    Only each job's video and sidecar are remembered (a file of another job is one of these
    with ``.part``, ``.part.json`` or ``.tmp`` added, see ``_owner``): 100,000 jobs cost a few
    megabytes, not eight names each."""
    known = _Known({name.casefold(): name for name, _ in ROOT_FILES}, {}, {}, {})
    found: list[tuple[str, str]] = []
    for job_id, output_path in paths:
        folded = output_path.casefold()
        folded = output_path if folded == output_path else folded  # keep one copy
        names = _names(folded)
        problem = None
        if (
            not known.files.keys().isdisjoint(names)
            or not known.reserved.keys().isdisjoint(names)
            or (known.folders and not known.folders.keys().isdisjoint(names))
            or folded.endswith((".tmp", ".part", ".part.json"))
            or names[3].endswith(".part.json")
        ):  # otherwise no file of this job is one that _owner could find
            problem = _clash_of(job_id, output_path, names, known, paths)
        if problem is None and "/" in output_path:
            problem = _folder_clash(output_path, known, paths)
        if problem is None and names[3] == names[0]:  # the sidecar of x.json is x.json
            problem = f"its video {output_path} would be overwritten by its own sidecar (NAME.json)"
        if problem is not None:
            found.append(
                (job_id, problem if problem.startswith("jobs ") else f"job {job_id}: {problem}")
            )
            continue
        known.files[folded] = known.videos[folded] = job_id
        known.files[names[3]] = job_id
        if "/" in output_path:
            for parent in _parents(output_path):
                known.folders.setdefault(parent.casefold(), job_id)
    return found


@dataclass(frozen=True, slots=True)
class _Known:
    """What earlier jobs (and wanbatch itself) write, by case-folded name."""

    reserved: dict[str, str]  # folded root name -> root name
    files: dict[str, str]  # folded video or sidecar path -> job id
    videos: dict[str, str]  # folded video path -> job id
    folders: dict[str, str]  # folded folder -> the job id that first needed it


def _owner(name: str, known: _Known) -> str | None:
    """Who writes the file ``name`` (case-folded): a job id, "" for wanbatch, None for nobody.
    Every file of a job is its video V or sidecar S, or V.part / V.part.json, each maybe .tmp."""
    if name in known.reserved:
        return ""
    for _ in range(2):  # the name, then the name without .tmp
        owner = known.files.get(name)
        if owner is None and name.endswith(".part"):
            owner = known.videos.get(name[:-5])
        elif owner is None and name.endswith(".part.json"):
            owner = known.videos.get(name[:-10])
        if owner is not None or not name.endswith(".tmp"):
            return owner
        name = name[:-4]
    return None


def _clash_of(
    job_id: str,
    output_path: str,
    names: tuple[str, ...],
    known: _Known,
    paths: Sequence[tuple[str, str]],
) -> str | None:
    for index, folded in enumerate(names):
        owner = _owner(folded, known)
        if owner is None and folded not in known.folders:
            continue
        name, what = job_files(output_path)[index]
        if owner is None:
            other = known.folders[folded]
            return f"its {what} {name} is a folder that job {other} needs ({name}/...)"
        other_name, other_what = _file_of(owner, folded, known, paths)
        if not owner:
            return f"its {what} {name} would overwrite {other_what}, which wanbatch writes itself"
        case = " (names that differ only in case are one file on macOS and Windows)"
        note = case if other_name != name else ""
        return (
            f"jobs {owner} and {job_id} would write one file: {other_name} is the {other_what} "
            f"of {owner}, {name} the {what} of {job_id}{note}"
        )
    return None


def _folder_clash(output_path: str, known: _Known, paths: Sequence[tuple[str, str]]) -> str | None:
    for parent in _parents(output_path):
        folded = parent.casefold()
        if folded in known.folders:
            continue  # checked when the first job that needed it came
        owner = _owner(folded, known)
        if owner is not None:
            other_name, other_what = _file_of(owner, folded, known, paths)
            whose = f"job {owner}'s {other_what}" if owner else other_what
            return f"its folder {parent}/ would be a file: {whose} ({other_name})"
    return None


def _file_of(
    owner: str, folded: str, known: _Known, paths: Sequence[tuple[str, str]]
) -> tuple[str, str]:
    """The name and kind of the file ``folded`` that ``owner`` ("" for wanbatch) writes."""
    if not owner:
        name = known.reserved[folded]
        return name, f"{dict(ROOT_FILES)[name]} ({name})"
    output_path = next(path for job_id, path in paths if job_id == owner)
    return next((n, w) for n, w in job_files(output_path) if n.casefold() == folded)
