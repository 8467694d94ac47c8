"""The output tree's other manifests and its video files: the I/O behind ``orphans.py``.

``recorded`` loads the manifests earlier runs in the tree used (the journal's run records name
them), with the job flags of this command; ``tree_files`` walks the tree once; ``tree_orphans``
and ``refuse_shared_tree`` give them to the pure rules.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from wanbatch.errors import UsageError, WanbatchError
from wanbatch.journal import Replay, journal_path, read_journal, unseal
from wanbatch.manifest import load_manifest
from wanbatch.models import Manifest
from wanbatch.orphans import Orphan, clash_message, find_orphans, tree_clashes
from wanbatch.outputnames import ROOT_FILES
from wanbatch.settings import Flags, overrides

_SKIPPED = frozenset(name for name, _ in ROOT_FILES)  # at the root: the state folder, the gallery


def resolved(manifest: Manifest) -> Manifest:
    """``manifest`` with its path resolved, as journals name it."""
    return dataclasses.replace(manifest, path=manifest.path.resolve())


def recorded(manifest: Manifest, replay: Replay, flags: Flags) -> list[Manifest]:
    """The other manifests earlier runs in the tree used that still exist and load, each loaded
    with this command's job flags (``--duration``...; not ``--output``, which is this one's),
    paths resolved. Journals name them by resolved path; an older journal's relative path is
    looked for from the working directory, the output dir and each folder above it."""
    here = manifest.path.resolve()
    found: list[Manifest] = []
    seen = {here}
    given = dataclasses.replace(overrides(flags), output_dir=None)
    for text in replay.manifests:
        path = Path(text)
        bases = [Path.cwd(), manifest.output_dir, *manifest.output_dir.parents]
        for candidate in [path] if path.is_absolute() else [base / path for base in bases]:
            try:
                candidate = candidate.resolve()
                if candidate in seen:  # this manifest, or one already loaded
                    break
                if not candidate.is_file():
                    continue
            except (OSError, RuntimeError):  # a name too long, a loop of links: not there
                continue
            seen.add(candidate)
            try:
                found.append(resolved(load_manifest(candidate, given)))
            except WanbatchError:  # it no longer loads: nothing to compare or claim
                continue
            break
    return found


def tree_files(output_dir: Path) -> Iterator[str]:
    """Every file in the output tree, relative to it with ``/``; one walk, links not followed,
    the state folder and the gallery's files at the root left out."""
    pending = [("", str(output_dir))]
    while pending:
        prefix, folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not prefix and entry.name in _SKIPPED:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    yield f"{prefix}{entry.name}"
            except OSError:
                continue


def tree_orphans(
    whole: Manifest, replay: Replay, flags: Flags, *, files: bool = True
) -> list[Orphan]:
    """The orphans of ``whole``'s output tree: claimed are the jobs of ``whole`` and of every
    manifest earlier runs there used that still loads (a retry.yaml's campaign, and back).
    ``files=False``: the records alone, the tree not walked."""
    claimed = {job.id: job.output_path for job in whole.jobs}
    for other in recorded(whole, replay, flags) if replay.manifests else []:
        for job in other.jobs:
            claimed.setdefault(job.id, job.output_path)
    found = tree_files(whole.output_dir) if files else iter(())
    return find_orphans(replay.records, claimed, found)


def shared_with(whole: Manifest, flags: Flags, replay: Replay | None = None) -> list[Manifest]:
    """The manifests ``whole`` must not share its output tree with (``orphans.tree_clashes``)."""
    replay = replay if replay is not None else read_journal(whole.output_dir)
    if not replay.manifests:
        return []
    return tree_clashes(resolved(whole), recorded(whole, replay, flags))


def refuse_shared_tree(manifest: Manifest, flags: Flags, whole: Callable[[], Manifest]) -> None:
    """Raise ``UsageError`` (exit 2, before anything is sent) when the manifest shares its tree
    with another of the same name. ``whole()`` gives every job of it (``manifest`` may be the
    --only subset), asked only when the journal names another manifest."""
    here = str(manifest.path.resolve())
    if all(text == here for text in run_manifests(manifest.output_dir)):
        return  # the common case: no other manifest, decided without replaying the journal
    try:
        replay = read_journal(manifest.output_dir)
    except WanbatchError:  # a damaged journal: the session salvages it (or says why not)
        return
    full = whole()
    clashes = shared_with(full, flags, replay)
    if clashes:
        raise UsageError(f"{clash_message(full, clashes)} Nothing was sent.")


_RUN_RECORD = (
    b'"ev":"run"'  # how ``journal`` writes a run record (compact JSON; no job event has it)
)


def run_manifests(output_dir: Path) -> list[str]:
    """The manifests the journal's run records name, found without replaying it: the lines
    holding a run record, each checked by its checksum (a damaged one is skipped: the session
    says what is wrong with the journal). A 100,000-job journal takes milliseconds, where a
    replay takes seconds."""
    try:
        data = journal_path(output_dir).read_bytes()
    except OSError:  # no journal yet, or one the session will name
        return []
    found: list[str] = []
    at = data.find(_RUN_RECORD)
    while at >= 0:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        if end < 0:
            break  # a torn last line
        try:
            manifest = unseal(data[start:end]).get("manifest")
        except ValueError:
            manifest = None
        if isinstance(manifest, str) and manifest not in found:
            found.append(manifest)
        at = data.find(_RUN_RECORD, end)
    return found
