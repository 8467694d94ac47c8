"""What an output tree holds that no manifest claims, and manifests that must not share it. Pure.

A job's id is given or derived from its prompt and fields (``manifest/jobs.py``): a bare CSV run
again with another ``--duration`` gets new ids, and the old ids' records and videos stay in the
tree. ``find_orphans`` names them, in one pass over the journal's records and one over the files
found in the tree (the commands walk it; ``commands/treecheck.py``).

``tree_clashes`` is the rule by which ``run`` refuses a second manifest with the same ``name:``
writing into a tree another one already uses (the default output dir is ``output/<name>`` beside
the manifest, so two files with one name in one folder meet there by accident).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from wanbatch.jobstate import of_state
from wanbatch.models import JobRecord, Manifest

NO_RECORD = "no record"  # the state of a video file no journal record names
HINT = (
    "made by other fields (a CSV's ids change with --duration, --model or --aspect-ratio) or by"
    " a manifest since edited or moved: delete them (each with the .json beside it) or rerun"
    " with the old flags"
)


@dataclass(frozen=True, slots=True)
class Orphan:
    """A record or a video of the output tree that no job of its manifests claims."""

    id: str | None  # None: a file no record names
    path: str | None  # relative to the output dir; None: a record of a job never downloaded
    state: str  # where the record stands (``jobstate.of_state``: plan's words), or NO_RECORD

    def as_json(self) -> dict[str, str | None]:
        return {"id": self.id, "path": self.path, "state": self.state}


def find_orphans(
    records: Mapping[str, JobRecord], claimed: Mapping[str, str], files: Iterable[str]
) -> list[Orphan]:
    """The orphans of a tree: its records whose id no manifest has, then its video files that no
    job claims and no orphaned record names.

    ``claimed`` maps every job id the tree's manifests have to its output path; ``files`` are the
    tree's files, relative to it with ``/``. A file is a video when its suffix is one the claimed
    output paths use (``.mp4`` by default), so sidecars, partial downloads and a user's own notes
    are never named. A video a record put elsewhere (``record.path``) is claimed by that record.
    """
    taken = set(claimed.values())
    orphaned: list[Orphan] = []
    for job_id, record in records.items():  # one pass
        if job_id in claimed:
            if record.path:
                taken.add(record.path)
            continue
        orphaned.append(Orphan(job_id, record.path, str(of_state(record.state))))
    named = {orphan.path for orphan in orphaned}
    suffixes = {_suffix(path) for path in claimed.values()} - {""} or {".mp4"}
    strays = [
        Orphan(None, path, NO_RECORD)
        for path in files
        if _suffix(path) in suffixes and path not in taken and path not in named
    ]
    orphaned.sort(key=lambda orphan: orphan.id or "")
    strays.sort(key=lambda orphan: orphan.path or "")
    return orphaned + strays


def _suffix(path: str) -> str:
    """``PurePosixPath(path).suffix``, as plain string work (100,000 paths)."""
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def orphan_lines(orphans: Sequence[Orphan], shown: int = 5) -> list[str]:
    """``plan``'s lines for the orphans (none when there are none)."""
    if not orphans:
        return []
    names = [orphan.path or f"{orphan.id} ({orphan.state})" for orphan in orphans[:shown]]
    more = " ..." if len(orphans) > shown else ""
    noun = "orphan" if len(orphans) == 1 else "orphans"
    return [
        f"  {len(orphans):>6}  {noun}, claimed by no job of this tree's manifests:"
        f" {', '.join(names)}{more}",
        f"  {'':>6}  ({HINT})",
    ]


def tree_clashes(manifest: Manifest, others: Sequence[Manifest]) -> list[Manifest]:
    """The manifests among ``others`` (those earlier runs in ``manifest``'s output tree used,
    loaded now with the same flags, paths resolved) that ``manifest`` must not share the tree with.

    The rule: another manifest clashes when all of these hold:
    - it is another file (the same file run from another working directory is itself: journals
      name manifests by their resolved path);
    - it still exists and loads (the caller passes only those: a manifest moved or renamed by
      the user leaves nothing behind to clash with);
    - it has the same ``name:`` (two names in one tree were chosen, not defaulted into);
    - it still writes into this tree by itself (an ``output.dir`` set in one of them since, or
      ``--output`` now, parts them);
    - neither of the two lives inside the tree (the retry.yaml wanbatch writes there shares the
      tree on purpose, as does a copy of it kept there);
    - their jobs differ (ids, fields or output paths): a copy with the same jobs is the same batch.
    """
    tree = PurePath(manifest.output_dir)
    if tree in PurePath(manifest.path).parents:
        return []
    mine: set[tuple[str, str, str]] | None = None
    clashes: list[Manifest] = []
    for other in others:
        if (
            other.path == manifest.path
            or other.name != manifest.name
            or other.output_dir != manifest.output_dir
            or tree in PurePath(other.path).parents
        ):
            continue
        if mine is None:  # built only for a manifest that may clash
            mine = _jobs(manifest)
        if _jobs(other) != mine:
            clashes.append(other)
    return clashes


def _jobs(manifest: Manifest) -> set[tuple[str, str, str]]:
    return {(job.id, job.fingerprint(), job.output_path) for job in manifest.jobs}


def clash_message(manifest: Manifest, clashes: Sequence[Manifest]) -> str:
    """Why ``run`` refuses (and ``plan`` warns), naming both files and what to do."""
    other = clashes[0].path
    return (
        f"{manifest.path} and {other} are both named '{manifest.name}' and write into the same"
        f" output tree {manifest.output_dir} (an earlier run there used {other}), but their jobs"
        " differ: each would count the other's videos and failures as its own. Give one of them"
        " its own tree: set `output.dir` in one (or another `name:`), or pass --output DIR; if"
        f" {other} is an older version of {manifest.path}, move it away or delete it."
    )
