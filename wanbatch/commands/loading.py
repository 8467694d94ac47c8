"""What every command does first: the manifest, loaded with the flags, and the jobs asked for.

``load`` reads the manifest with the flags that change what the jobs are (``settings.overrides``)
and checks its API address; ``chosen`` narrows it to ``--only``/``--where``. ``video_check``
is the disk fact the views ask (as the run does): is a job's video there, whole.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from wanbatch.jobstate import VideoCheck, video_path
from wanbatch.journal import Replay, read_journal
from wanbatch.manifest import load_manifest
from wanbatch.models import JobRecord, JobSpec, Manifest
from wanbatch.salvage import adopted_view
from wanbatch.selection import select
from wanbatch.settings import Flags, overrides, refuse_credentials


def load(flags: Flags) -> Manifest:
    """The whole manifest, as the flags make it."""
    manifest = load_manifest(flags.manifest, overrides(flags))
    if manifest.api.base_url is not None:  # it is copied into retry.yaml, even when overridden
        refuse_credentials(manifest.api.base_url, manifest.api.key_env)
    return manifest


def chosen(manifest: Manifest, flags: Flags) -> Manifest:
    """``manifest`` with only the jobs ``--only`` and ``--where`` select (itself without them)."""
    if not flags.only and not flags.where:
        return manifest
    return dataclasses.replace(manifest, jobs=select(manifest.jobs, flags.only, flags.where))


@dataclass(frozen=True, slots=True)
class TreeView:
    """What the read commands look at: the manifest (whole, and the jobs --only/--where chose),
    the journal as written, the same with the sidecars' adoptions, and the disk's word."""

    whole: Manifest
    manifest: Manifest
    journal: Replay
    replay: Replay
    intact: VideoCheck


def tree_view(flags: Flags) -> TreeView:
    """Read the manifest, the journal and the sidecars; change nothing."""
    whole = load(flags)
    manifest = chosen(whole, flags)
    journal = read_journal(manifest.output_dir)
    replay = adopted_view(manifest, journal)
    return TreeView(whole, manifest, journal, replay, video_check(manifest.output_dir))


def video_check(output_dir: Path) -> VideoCheck:
    """Is a job's video in the output tree with its recorded size. (On a string path: no
    ``Path`` built for each of 100,000 jobs.)"""
    root = str(output_dir)

    def intact(job: JobSpec, record: JobRecord) -> bool:
        if record.size is None:
            return False
        try:
            return os.stat(os.path.join(root, video_path(job, record))).st_size == record.size
        except OSError:
            return False

    return intact
