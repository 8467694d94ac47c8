"""A run's output as a self-contained HTML contact sheet, and a manifest of its failures. Pure.

``gallery_files`` turns a manifest and the journal's records into ``<output>/report.html`` (and,
for a run of more than ``INLINE_LIMIT`` jobs, ``<output>/report.data.js`` beside it): a card per
job, each with its video in place (downloaded jobs; a still from 0.1 s in until it is played),
its prompt and fields, its state, render and download times, and for failures the server's
reason. A card's state is ``jobstate.standing``, named in ``jobstate.LABELS``, the words plan and
status use; a video gone from disk is "to download", not done, and its card says "file missing".
A card shows the fields its task was asked for (``rendered``, given by the caller for jobs whose
manifest entry was edited since), and notes what the manifest says now where that differs.
Three selects and a text search filter the cards, across every job, and the address keeps them.

A small run's page holds every card. A large run's page holds the summary, the filters and the
first page of cards, failed jobs first, and its script draws the rest from the data file, a page
at a time (``page.py``): the page opens at once at 100,000 jobs or a million. The page has
inline CSS and JavaScript only, a system font stack and no URL other than the videos' and the
data file's relative paths, so the folder opens from disk (file://) with no network. Every piece
of manifest or server text is HTML-escaped in the page and set only as text by the script.

``retry_manifest`` (the manifest package's, re-exported here) writes a YAML manifest (to be saved
as ``<output>/retry.yaml``) that renders exactly the failed jobs again, with the same ids, fields
and output paths.

The package does no I/O: callers write the returned text, the data file before the page.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wanbatch.gallery import page
from wanbatch.gallery.cards import make_card
from wanbatch.gallery.page import (
    DATA_NAME,
    EAGER_METADATA_LIMIT,
    GALLERY_NAME,
    INLINE_LIMIT,
    PAGE_SIZE,
    data_lines,
    display_order,
    js_json,
    layout,
    page_lines,
)
from wanbatch.jobstate import VideoCheck
from wanbatch.manifest import RETRY_NAME, retry_manifest
from wanbatch.models import JobRecord, JobSpec, Manifest

__all__ = [
    "DATA_NAME",
    "EAGER_METADATA_LIMIT",
    "GALLERY_NAME",
    "INLINE_LIMIT",
    "PAGE_SIZE",
    "RETRY_NAME",
    "UNKNOWN_FIELDS",
    "Gallery",
    "gallery_files",
    "js_json",
    "render_gallery",
    "retry_manifest",
]

UNKNOWN_FIELDS = None  # in ``rendered``: the job was rendered from fields no longer known


@dataclass(frozen=True, slots=True)
class Gallery:
    """The gallery's files as lines: the page, and the data file (None: none is needed, and a
    stale one may be removed)."""

    page: Iterator[str]
    data: Iterator[str] | None


def gallery_files(
    manifest: Manifest,
    records: Mapping[str, JobRecord],
    *,
    generated_at: float,
    title: str | None = None,
    video_intact: VideoCheck | None = None,
    rendered: Mapping[str, JobSpec | None] | None = None,
    inline_limit: int | None = None,
    page_size: int | None = None,
) -> Gallery:
    """The lines of ``report.html`` and of ``report.data.js``, a card per job.

    ``records`` maps job id to its journal record; a job without one is new. ``video_intact``
    is the disk check (None: the journal is believed). ``rendered`` maps the id of every job
    whose task was asked for other fields than the manifest's to those (``UNKNOWN_FIELDS`` if
    they are not known); None: the manifest's fields are shown, and edits found by hashing.
    ``generated_at`` (epoch seconds) is printed in the header; times are shown in UTC so the
    page is the same wherever it was made. Above ``inline_limit`` jobs the page shows
    ``page_size`` cards at a time from the data file (None: ``page.INLINE_LIMIT`` and
    ``page.PAGE_SIZE``, read at the call).
    """
    check = video_intact or (lambda spec, record: True)
    cards = [make_card(spec, records.get(spec.id), check, rendered) for spec in manifest.jobs]
    how = layout(
        cards,
        generated_at,
        page.INLINE_LIMIT if inline_limit is None else inline_limit,
        page.PAGE_SIZE if page_size is None else page_size,
    )
    ordered = display_order(cards, how)
    lines = page_lines(manifest, cards, ordered, how, generated_at=generated_at, title=title)
    return Gallery(page=lines, data=data_lines(cards, ordered, how) if how.paged else None)


def render_gallery(
    manifest: Manifest,
    records: Mapping[str, JobRecord],
    *,
    generated_at: float,
    title: str | None = None,
    video_intact: VideoCheck | None = None,
    rendered: Mapping[str, JobSpec | None] | None = None,
    inline_limit: int | None = None,
    page_size: int | None = None,
) -> str:
    """The whole page as one string (see ``gallery_files``)."""
    return "".join(
        gallery_files(
            manifest,
            records,
            generated_at=generated_at,
            title=title,
            video_intact=video_intact,
            rendered=rendered,
            inline_limit=inline_limit,
            page_size=page_size,
        ).page
    )
