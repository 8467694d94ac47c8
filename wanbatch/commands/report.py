"""``wanbatch report``: write report.html (and retry.yaml) from the journal; sends nothing.

A run writes the same report when it ends (``write_report``). The gallery covers every job of
the output tree: the jobs of each manifest earlier runs used (the campaign before its
retry.yaml), then this one's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import TextIO

from wanbatch.commands import options
from wanbatch.commands.loading import chosen, load, video_check
from wanbatch.download import sidecar_path
from wanbatch.errors import DiskError, WanbatchError
from wanbatch.gallery import DATA_NAME, GALLERY_NAME, RETRY_NAME, gallery_files, retry_manifest
from wanbatch.jobstate import as_rendered, video_path
from wanbatch.journal import Replay, read_journal
from wanbatch.manifest import load_manifest
from wanbatch.models import JobRecord, JobSpec, JobState, Manifest
from wanbatch.outtree import atomic_write, read_all
from wanbatch.settings import Flags
from wanbatch.words import count

NAME = "report"
HELP = "write report.html (a gallery of the results) and retry.yaml into the output tree; sends nothing"
DESCRIPTION = (
    "Write report.html, a gallery of every video with its prompt and state, and retry.yaml,"
    " the failed jobs as a manifest, into the output tree. Sends nothing; a run writes them"
    " too when it ends."
)


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    options.job_fields(parser)
    options.subsets(parser)


def execute(flags: Flags, out: TextIO) -> int:
    manifest = load(flags)
    subset = chosen(manifest, flags)
    shown = None if subset is manifest else {job.id for job in subset.jobs}
    html, retry_file = write_report(manifest, shown=shown)
    print(f"gallery: {html}", file=out)
    if subset is not manifest:
        print(f"  (only the {count(len(subset.jobs), 'job')} --only/--where chose)", file=out)
    if retry_file is not None:
        print(f"failed jobs as a manifest: {retry_file} (`wanbatch retry {retry_file}`)", file=out)
    else:
        print("no failed jobs: no retry.yaml", file=out)
    return 0


def write_report(
    manifest: Manifest, replay: Replay | None = None, *, shown: Collection[str] | None = None
) -> tuple[Path, Path | None]:
    """Write ``report.html`` into the output tree, and ``retry.yaml`` when jobs failed.

    ``replay`` is what the journal says (read from disk when not given). The gallery holds the
    jobs of the manifests earlier runs used too (``shown``: only the jobs with these ids, a
    subset asked for); retry.yaml always holds every failed job of the tree. Both files are replaced whole (written beside, then renamed). A
    stale retry.yaml is removed when nothing failed. A file that cannot be written is a
    ``DiskError`` naming it.
    """
    try:
        return _write_report(manifest, replay, shown)
    except OSError as exc:  # a folder in the way, a full or read-only disk
        where = f" ({exc.filename})" if exc.filename else ""
        raise DiskError(
            f"could not write the report in {manifest.output_dir}: {exc.strerror or exc}{where};"
            " the videos and the journal are untouched"
        ) from exc


def _write_report(
    manifest: Manifest, replay: Replay | None, shown: Collection[str] | None
) -> tuple[Path, Path | None]:
    if replay is None:
        replay = read_journal(manifest.output_dir)
    sources, missing = _sources(manifest, replay.manifests)
    for note in missing:
        print(f"wanbatch: {note}", file=sys.stderr)
    batch = _whole_batch(manifest, sources)
    folder = manifest.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / GALLERY_NAME
    intact = video_check(folder)
    asked = _asked_for(batch, sources, replay.records)
    in_gallery = batch
    if shown is not None:
        in_gallery = dataclasses.replace(batch, jobs=tuple(j for j in batch.jobs if j.id in shown))
    gallery = gallery_files(
        in_gallery, replay.records, generated_at=time.time(), video_intact=intact, rendered=asked
    )
    data_file = folder / DATA_NAME
    if gallery.data is not None:  # first, so that the page never names a data file not there
        atomic_write(data_file, (line.encode("utf-8") for line in gallery.data))
    atomic_write(html, (line.encode("utf-8") for line in gallery.page))
    if gallery.data is None:
        data_file.unlink(missing_ok=True)  # a large run's, now stale
    retry_text = retry_manifest(batch, replay.records, asked)
    retry_file = folder / RETRY_NAME
    if retry_text is None:
        retry_file.unlink(missing_ok=True)
        return html, None
    atomic_write(retry_file, retry_text.encode("utf-8"))
    return html, retry_file


def _sources(manifest: Manifest, recorded: list[str]) -> tuple[list[Manifest], list[str]]:
    """The manifests earlier runs used (the first one first, e.g. the campaign before its
    retry.yaml), then ``manifest`` if it is not among them; and a note for each earlier
    manifest that was moved or no longer loads, which is left out."""
    sources: list[Manifest] = []
    missing: list[str] = []
    own_retry = manifest.output_dir / RETRY_NAME  # removed by wanbatch once nothing failed
    for text in recorded:
        found = _recorded_manifest(text, manifest)
        if isinstance(found, str) and Path(text) == own_retry and not own_retry.exists():
            continue  # its jobs are the campaign's, which the gallery holds
        if isinstance(found, str):
            missing.append(
                f"the gallery leaves out the jobs of {text}, which an earlier run in "
                f"{manifest.output_dir} used: {found}"
            )
        else:
            sources.append(found)
    if manifest not in sources:
        sources.append(manifest)
    return sources, missing


def _whole_batch(manifest: Manifest, sources: list[Manifest]) -> Manifest:
    """Every job of the output tree: the jobs of ``sources``, the first manifest's first."""
    jobs: dict[str, JobSpec] = {}
    for source in sources:
        for job in source.jobs:
            jobs.setdefault(job.id, job)
    first = sources[0]
    return dataclasses.replace(
        first,
        output_dir=manifest.output_dir,
        pricing=first.pricing or manifest.pricing,
        jobs=tuple(jobs.values()),
    )


def _recorded_manifest(text: str, manifest: Manifest) -> Manifest | str:
    """The manifest a run header names, or why it cannot be had.

    Journals name it by absolute path; older ones kept it as typed, relative to a folder no
    longer known: it is looked for from the working directory, the output dir and each folder
    above it, and a copy whose output dir is this one wins over one that merely exists.
    """
    path = Path(text)
    bases = [Path.cwd(), manifest.output_dir, *manifest.output_dir.parents]
    candidates = [path] if path.is_absolute() else [base / path for base in bases]
    elsewhere: Manifest | None = None
    reason = "the file is not there any more"
    for candidate in dict.fromkeys(candidate.resolve() for candidate in candidates):
        if candidate == manifest.path.resolve():
            return manifest
        if not candidate.is_file():
            continue
        try:
            loaded = load_manifest(candidate)
        except WanbatchError:
            reason = f"{candidate} no longer loads (`wanbatch validate` says why)"
            continue
        if loaded.output_dir == manifest.output_dir:
            return loaded
        elsewhere = elsewhere or loaded
    return elsewhere if elsewhere is not None else reason


def _asked_for(
    whole: Manifest, sources: list[Manifest], records: dict[str, JobRecord]
) -> dict[str, JobSpec | None]:
    """For each job whose task was asked for other fields than ``whole`` holds (a retry.yaml
    edited, --keep-changed): those fields, from the manifest of the tree with that fingerprint,
    else from the video's sidecar; None where neither has them."""
    asked: dict[str, JobSpec | None] = {}
    by_fingerprint: dict[tuple[str, str], JobSpec] | None = None
    for job in whole.jobs:
        record = records.get(job.id)
        if record is None or record.state is JobState.PLANNED or record.fingerprint is None:
            continue
        if record.fingerprint == job.fingerprint():
            continue
        if by_fingerprint is None:  # built only when some job was edited
            by_fingerprint = {
                (other.id, other.fingerprint()): other
                for source in sources
                for other in source.jobs
            }
        found = by_fingerprint.get((job.id, record.fingerprint))
        if found is None:
            found = as_rendered(job, _sidecar_fields(whole, job, record), record.fingerprint)
        asked[job.id] = found
    return asked


def _sidecar_fields(manifest: Manifest, job: JobSpec, record: JobRecord) -> object:
    try:
        # as adoption reads sidecars: not through a link, never waiting on a planted FIFO
        data = json.loads(read_all(sidecar_path(manifest.output_dir / video_path(job, record))))
    except (OSError, ValueError, RecursionError):
        return None
    return data.get("fields") if isinstance(data, dict) else None
