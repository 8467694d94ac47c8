"""The disk side of ``recovery.py``: sidecars and videos read for adoption, a damaged journal
repaired and moved aside. The rules themselves are in ``recovery.py`` (pure).

- ``adopt_into(journal, manifest)``: before a run, journal the jobs the sidecars prove (videos are
  hashed against their sidecar); refuses (``UnclaimedVideoError``) when a video on disk is
  accounted for by nothing.
- ``adopted_view(manifest, replay)``: the same adoption in memory, for ``plan`` and ``status``,
  which never write (sizes are compared, videos are not hashed).
- ``salvage_journal(output_dir)``: under the output tree's lock, a damaged journal is copied
  aside (``journal.jsonl.damaged-<time>``, never deleted) and replaced, atomically, by the lines
  that still make sense.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from wanbatch.compaction import SNAPSHOT, from_snapshot
from wanbatch.download import sidecar_path
from wanbatch.errors import JournalCorruptError, JournalWriteError, UnclaimedVideoError
from wanbatch.journal import (
    Journal,
    Replay,
    decode_event,
    encode_event,
    journal_path,
    locked,
    replay_bytes,
    unseal,
)
from wanbatch.models import JobRecord, Manifest
from wanbatch.outtree import fsync_dir, read_all
from wanbatch.recovery import (
    Adoption,
    Evidence,
    Line,
    SalvagePlan,
    Verdict,
    adopt,
    adopted_records,
    describe_salvage,
    job_hint,
    may_adopt,
    parse_sidecar,
    salvage_lines,
)
from wanbatch.words import count, plural

_MAX_SIDECAR_BYTES = 1 << 20  # a sidecar is a few hundred bytes; anything far larger is not one
_HASH_CHUNK = 1 << 20

# --- adoption ---------------------------------------------------------------------------------


def gather(
    manifest: Manifest, records: dict[str, JobRecord], *, hash_videos: bool
) -> list[Adoption]:
    """The adoptions the disk supports for jobs the journal does not settle (``may_adopt``)."""
    listings: dict[str, frozenset[str]] = {}  # folder (relative) -> the names in it
    out: list[Adoption] = []
    now = time.time()
    for job in manifest.jobs:
        record = records.get(job.id)
        if not may_adopt(record):
            continue
        folder = os.path.dirname(job.output_path)
        names = listings.get(folder)
        if names is None:
            names = listings[folder] = _listing(manifest.output_dir / folder)
        if not names:  # a fresh output tree: no Path built per job
            continue
        target = manifest.output_dir / job.output_path
        sidecar = sidecar_path(target)
        has_video, has_sidecar = target.name in names, sidecar.name in names
        if not (has_video or has_sidecar):
            continue
        evidence = _evidence(target, sidecar, has_video, has_sidecar, hash_videos)
        name = os.path.relpath(sidecar, manifest.output_dir)
        adoption = adopt(
            job, record, evidence, sidecar_name=name, now=now, provider=manifest.api.provider
        )
        if adoption.verdict is not Verdict.NONE:
            out.append(adoption)
    return out


def _listing(folder: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:  # no folder yet (or not one): nothing of ours is in it
        return frozenset()


def _evidence(
    target: Path, sidecar: Path, has_video: bool, has_sidecar: bool, hash_video: bool
) -> Evidence:
    parsed, problem = None, None
    if has_sidecar:
        try:
            # Not through a link, and a planted FIFO answers at once instead of hanging.
            data = read_all(sidecar, _MAX_SIDECAR_BYTES + 1)
            if len(data) > _MAX_SIDECAR_BYTES:
                raise ValueError("far too large for a sidecar")
            found = parse_sidecar(json.loads(data))
        except (OSError, ValueError, RecursionError) as exc:  # bad JSON or UTF-8; nesting too deep
            found = f"unreadable ({exc})"
        if isinstance(found, str):
            problem = found
        else:
            parsed = found
    size = digest = None
    if has_video:
        try:
            facts = target.lstat()  # a link or a device is no video of ours
            if not stat.S_ISREG(facts.st_mode):
                raise OSError(f"{target.name} is not a regular file")
            size = facts.st_size
            if hash_video and parsed is not None and parsed.size == size:
                digest = _sha256(target)
        except OSError:
            size = digest = None
    return Evidence(parsed, problem, size, digest)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", opener=_no_follow) as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def adopt_into(journal: Journal, manifest: Manifest) -> list[Adoption]:
    """Journal what the sidecars prove (before a run, no request sent); refuse unclaimed videos."""
    adoptions = gather(manifest, journal.records, hash_videos=True)
    unclaimed = [adoption for adoption in adoptions if adoption.verdict is Verdict.UNCLAIMED]
    if unclaimed:
        shown = "; ".join(f"{a.job_id}: {a.note}" for a in unclaimed[:5])
        more = f" (and {len(unclaimed) - 5} more)" if len(unclaimed) > 5 else ""
        raise UnclaimedVideoError(
            f"{count(len(unclaimed), 'job')} {plural(len(unclaimed), 'has', 'have')} a video on disk that no journal record or sidecar "
            f"accounts for: {shown}{more}. Nothing was sent: rendering {plural(len(unclaimed), 'it', 'them')}"
            " would pay again and overwrite the files. Move those videos out of the output folder"
            " to render the jobs anew, or put their sidecars back."
        )
    journal.append_now([event for adoption in adoptions for event in adoption.events])
    return adoptions


def adopted_view(manifest: Manifest, replay: Replay) -> Replay:
    """``replay`` with the adoptions a run would make, in memory (sizes only, no hashing)."""
    adoptions = gather(manifest, replay.records, hash_videos=False)
    if not adoptions:
        return replay
    records = adopted_records(replay.records, adoptions)
    return Replay(base_url=replay.base_url, records=records, manifests=replay.manifests)


def describe_adoptions(adoptions: list[Adoption]) -> list[str]:
    """Console lines: which jobs were taken from their sidecars."""
    lines = []
    for verdict, words in (
        (Verdict.DOWNLOADED, "done (video and sidecar agree)"),
        (Verdict.CREATED, "to fetch from their task again"),
    ):
        chosen = [a for a in adoptions if a.verdict is verdict]
        if chosen:
            names = ", ".join(f"{a.job_id} ({a.note})" for a in chosen[:5])
            more = " ..." if len(chosen) > 5 else ""
            lines.append(
                f"wanbatch: adopted {count(len(chosen), 'job')} from"
                f" {plural(len(chosen), 'its sidecar', 'their sidecars')}, no create sent, "
                f"{words}: {names}{more}"
            )
    return lines


# --- salvage ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SalvageReport:
    journal: Path
    damaged_copy: Path
    plan: SalvagePlan

    def lines(self) -> list[str]:
        head = f"wanbatch: salvaged {self.journal}; the damaged file is kept as {self.damaged_copy}"
        return [head, *("  " + line for line in describe_salvage(self.plan))]


def repair(data: bytes) -> tuple[bytes, SalvagePlan]:
    """The journal ``data`` with what still makes sense, and what was lost (pure)."""
    plan = salvage_lines(_scan(data))
    parts = [item if isinstance(item, bytes) else encode_event(item) for item in plan.output]
    return b"".join(parts), plan


def _scan(data: bytes) -> list[Line]:
    lines: list[Line] = []
    offset, number = 0, 0
    while (end := data.find(b"\n", offset)) >= 0:
        number += 1
        raw = data[offset : end + 1]
        try:
            record = unseal(raw[:-1])
            if record.get("ev") == "run":
                str(record["base_url"])
                lines.append(Line(number, raw))
            elif record.get("ev") == SNAPSHOT:
                lines.append(Line(number, raw, snapshot=from_snapshot(record)))
            else:
                lines.append(Line(number, raw, event=decode_event(record)))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            problem = str(exc) or type(exc).__name__
            lines.append(Line(number, raw, problem=problem, job_hint=job_hint(raw)))
        offset = end + 1
    return lines  # a torn last line (no newline) is left out, as replay does


def salvage_journal(output_dir: Path) -> SalvageReport | None:
    """Repair a damaged journal in place, keeping the damaged file aside; None if it is whole."""
    path = journal_path(output_dir)
    try:
        return _salvage(path, output_dir)
    except OSError as exc:  # a folder in the way, a full or read-only disk
        raise JournalWriteError(
            f"cannot salvage the journal {path}: {exc.strerror or exc}"
            f"{f' ({exc.filename})' if exc.filename else ''}. Nothing was sent; the journal"
            " was not replaced. Fix the output folder and rerun."
        ) from exc


def _salvage(path: Path, output_dir: Path) -> SalvageReport | None:
    with locked(output_dir):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            replay_bytes(data, str(path))
            return None
        except JournalCorruptError:
            pass
        fixed, plan = repair(data)
        replay_bytes(fixed, str(path))  # what is written must replay; raises if not
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        counter = 1
        while aside.exists():
            counter += 1
            aside = path.with_name(f"{path.name}.damaged-{stamp}-{counter}")
        _write_synced(aside, data, "xb")  # the damaged bytes, kept under a new name
        tmp = path.with_name(path.name + ".salvaged.tmp")
        _write_synced(tmp, fixed, "wb")
        os.replace(tmp, path)  # a crash leaves either the damaged journal or the salvaged one
        fsync_dir(path.parent)
    return SalvageReport(path, aside, plan)


def _write_synced(path: Path, data: bytes, mode: str) -> None:
    with open(path, mode) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
