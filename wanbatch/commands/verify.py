"""``wanbatch verify``: every downloaded video checked against the size and sha256 its journal
records; a file that does not match is moved aside, so that the next run downloads it again.

Why moved aside (``NAME.mp4`` -> ``NAME.mp4.corrupt``, never deleted): a run takes a video that
is on disk with its recorded size as done (``jobstate.standing``; it does not hash a whole tree
at every start), so a corrupted file of the right size would stand for ever. Once it is out of
the way, the journal is true as it is (the job was downloaded) and the disk says the video is
missing: the next run journals it as rendered again, asks its task for a fresh video URL and
downloads it (``scheduler``'s missing videos). No task is created, nothing is paid twice, the
journal's format is unchanged, and every view (status, plan, the gallery) already says "to
download" for it. A file of the wrong size is moved aside too (the run would otherwise write over
it). The move is made under the output tree's lock, each file only if its journal record and its
file are still the ones checked; while a run holds the lock, nothing is moved (verify again after
it).

Files are hashed a chunk at a time (``outtree.hash_file``), never held in memory.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from wanbatch.commands import options
from wanbatch.commands.loading import chosen, load
from wanbatch.errors import JournalLockedError
from wanbatch.jobstate import video_path
from wanbatch.journal import locked, read_journal
from wanbatch.models import JobRecord, JobState
from wanbatch.outtree import fsync_dir, hash_file
from wanbatch.providers import provider_for
from wanbatch.settings import Flags

NAME = "verify"
HELP = "check every downloaded video against its recorded size and sha256"
DESCRIPTION = (
    "Check every downloaded video against the size and sha256 the journal recorded when it was"
    " downloaded. Each file that does not match (missing, of another size, or other bytes) is"
    " listed with its job and path, and moved aside to NAME.corrupt (never deleted), so that the"
    " next `wanbatch run` downloads it again from its task: no new task, nothing paid twice."
    " Exit code: 0 when every file matches, 1 when some do not (2 for a usage or manifest"
    " error). Sends nothing."
)
EPILOG = (
    "exit codes: 0 every file matches; 1 some do not; 2 usage or manifest error, or a journal"
    " that cannot be read; 70 a bug."
)
CORRUPT_SUFFIX = ".corrupt"
clock = time.time  # now, for the providers that delete outputs (tests move it on)
_MOVED_NOTE = "the next `wanbatch run` downloads them again from their tasks (no new task)"


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A downloaded job whose file is not what the journal recorded."""

    id: str
    path: str  # relative to the output folder
    problem: str  # missing | size | sha256 | not_a_file | unreadable | outside
    detail: str
    expected_size: int | None
    actual_size: int | None
    expected_sha256: str | None
    actual_sha256: str | None
    moved_to: str | None = None


@dataclass(frozen=True, slots=True)
class _Found:
    mismatch: Mismatch | None
    identity: tuple[int, int, int, int] | None  # (dev, inode, size, mtime) of the file checked
    hashed: bool


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    options.as_json(parser, "print the result as JSON (counts, every mismatch, the exit code)")
    options.job_fields(parser, prices=False)
    options.subsets(parser)


def execute(flags: Flags, out: TextIO) -> int:
    manifest = chosen(load(flags), flags)
    root = manifest.output_dir
    records = read_journal(root).records
    checked, not_downloaded = 0, 0
    unhashed: list[str] = []
    found: list[tuple[Mismatch, JobRecord, tuple[int, int, int, int] | None]] = []
    for job in manifest.jobs:
        record = records.get(job.id)
        if record is None or record.state is not JobState.DOWNLOADED:
            not_downloaded += 1
            continue
        checked += 1
        result = check(root, job.id, video_path(job, record), record)
        if result.mismatch is not None:
            found.append((result.mismatch, record, result.identity))
        elif not result.hashed:
            unhashed.append(job.id)
    lifetime = provider_for(manifest.api).capabilities.url_lifetime_seconds
    mismatches, note = move_aside(root, found, gone=_output_deleted(lifetime, clock()))
    code = 1 if mismatches else 0
    if flags.as_json:
        payload: dict[str, Any] = {
            "manifest": str(manifest.path),
            "output_dir": str(root),
            "checked": checked,
            "matching": checked - len(mismatches),
            "not_downloaded": not_downloaded,
            "unhashed": unhashed,
            "mismatches": [asdict(mismatch) for mismatch in mismatches],
            "exit_code": code,
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False), file=out)
        return code
    lines = [line_of(mismatch) for mismatch in mismatches]
    if lines:
        lines.append("")
    moved = sum(mismatch.moved_to is not None for mismatch in mismatches)
    lines.append(count_line(checked, len(mismatches), not_downloaded, moved))
    if unhashed:
        lines.append(f"{_files(len(unhashed))} had no recorded sha256: only their size was checked")
    if note:
        lines.append(note)
    out.write("\n".join(lines) + "\n")
    return code


def check(root: Path, job_id: str, path: str, record: JobRecord) -> _Found:
    """``path``'s file against ``record``'s size and sha256."""

    def mismatch(
        problem: str, detail: str, size: int | None = None, digest: str | None = None
    ) -> _Found:
        found = Mismatch(job_id, path, problem, detail, record.size, size, record.sha256, digest)
        return _Found(found, identity, hashed=digest is not None)

    identity = None
    normal = os.path.normpath(path)
    if os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
        return mismatch("outside", "the journal's path leads outside the output folder")
    target = root / normal
    try:
        facts = os.lstat(target)
    except FileNotFoundError:
        return mismatch("missing", "missing")
    except OSError as exc:
        return mismatch("unreadable", f"cannot be read: {exc.strerror or exc}")
    identity = (facts.st_dev, facts.st_ino, facts.st_size, facts.st_mtime_ns)
    if not stat.S_ISREG(facts.st_mode):
        return mismatch("not_a_file", "is not a regular file (a link, a folder or a device)")
    if facts.st_size != record.size:
        return mismatch(
            "size",
            f"{_bytes(facts.st_size)}, the journal records {_bytes(record.size)}",
            facts.st_size,
        )
    if record.sha256 is None:
        return _Found(None, identity, hashed=False)
    try:
        digest = hash_file(target)
    except OSError as exc:
        return mismatch("unreadable", f"cannot be read: {exc.strerror or exc}", facts.st_size)
    if digest != record.sha256:
        return mismatch(
            "sha256",
            f"sha256 {digest[:12]}..., the journal records {record.sha256[:12]}... (same size:"
            " its bytes changed)",
            facts.st_size,
            digest,
        )
    return _Found(None, identity, hashed=True)


MOVABLE = ("size", "sha256")  # a regular file with the wrong bytes; never a link, a folder,
# or a file that could not be read (it may be whole: it is listed, and left where it is)


def _output_deleted(lifetime: float | None, now: float) -> Callable[[JobRecord], bool]:
    """Has the provider deleted this job's output (it keeps them ``lifetime`` seconds)? Then a
    run could not download the video again, only render it anew (and pay): it is not moved."""

    def gone(record: JobRecord) -> bool:
        finished = record.finished_at or record.downloaded_at
        return lifetime is not None and (finished is None or now - finished > lifetime)

    return gone


def move_aside(
    root: Path,
    found: list[tuple[Mismatch, JobRecord, tuple[int, int, int, int] | None]],
    gone: Callable[[JobRecord], bool] = lambda record: False,
) -> tuple[list[Mismatch], str | None]:
    """Move each mismatched file that is there aside, under the lock; the mismatches as they end
    up (with ``moved_to``), and a note when something could not be moved."""
    out: dict[str, Mismatch] = {item[0].id: item[0] for item in found}
    kept = [item for item in found if item[0].problem in MOVABLE and gone(item[1])]
    for mismatch, _, _ in kept:
        out[mismatch.id] = Mismatch(
            **{
                **asdict(mismatch),
                "detail": mismatch.detail + "; left in place: its provider has deleted the"
                " output, so a run would render it again and pay (`wanbatch retry` after"
                " deleting the file, if you want it)",
            }
        )
    movable = [
        item
        for item in found
        if item[2] is not None and item[0].problem in MOVABLE and not gone(item[1])
    ]
    if not movable:
        return list(out.values()), None
    try:
        with locked(root):
            now = read_journal(root).records
            for mismatch, record, identity in movable:
                if now.get(mismatch.id) != record or _identity(root / mismatch.path) != identity:
                    continue  # changed since it was checked (a run just fetched it)
                moved = _move(root / os.path.normpath(mismatch.path))
                relative = os.path.relpath(moved, root)
                out[mismatch.id] = Mismatch(**{**asdict(mismatch), "moved_to": relative})
            fsync_dirs = {(root / m.path).parent for m, _, _ in movable}
            for folder in fsync_dirs:
                fsync_dir(folder)
    except JournalLockedError as exc:
        said = str(exc).rstrip(".")
        return list(out.values()), f"nothing was moved aside: {said}. Verify again after it."
    except OSError as exc:  # no lock file can be made, or the folder refuses the move
        where = f" ({exc.filename})" if exc.filename else ""
        return (
            list(out.values()),
            f"not everything could be moved aside: {exc.strerror or exc}{where}",
        )
    return list(out.values()), None


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        facts = os.lstat(path)
    except OSError:
        return None
    return (facts.st_dev, facts.st_ino, facts.st_size, facts.st_mtime_ns)


def _move(path: Path) -> Path:
    """``path`` renamed to the first free ``NAME.corrupt`` (``.corrupt.2``, ...): never over a
    file (a hard link then an unlink; a plain rename where links are not supported)."""
    for number in range(1, 1000):
        aside = path.with_name(path.name + CORRUPT_SUFFIX + ("" if number == 1 else f".{number}"))
        try:
            os.link(path, aside, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if os.path.lexists(aside):
                continue
            os.rename(path, aside)
            return aside
        os.unlink(path)
        return aside
    raise FileExistsError(errno.EEXIST, "no free name to move it aside to", str(path))


def line_of(mismatch: Mismatch) -> str:
    moved = f": moved aside to {mismatch.moved_to}" if mismatch.moved_to else ""
    return f"{mismatch.id}  {mismatch.path}  {mismatch.detail}{moved}"


def count_line(checked: int, wrong: int, not_downloaded: int, moved: int | None = None) -> str:
    rest = f" ({_jobs(not_downloaded)} not downloaded)" if not_downloaded else ""
    if not checked:
        return f"no video downloaded yet: nothing to check{rest}"
    if not wrong:
        matching = "it matches" if checked == 1 else f"all {checked} match"
        return f"{_files(checked)} checked: {matching}{rest}"
    verb = "does" if wrong == 1 else "do"
    line = f"{wrong} of {_files(checked)} {verb} not match{rest}"
    if moved is None or moved:  # only what was moved aside is fetched again by a run
        return f"{line}; {_MOVED_NOTE}"
    return f"{line}; nothing was moved aside"


def _files(number: int) -> str:
    return f"{number} file" if number == 1 else f"{number} files"


def _jobs(number: int) -> str:
    return f"{number} job" if number == 1 else f"{number} jobs"


def _bytes(number: int | None) -> str:
    return "no size" if number is None else f"{number} bytes"
