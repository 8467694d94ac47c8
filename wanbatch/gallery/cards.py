"""One job of the gallery: its card's parts, as HTML (in the page) or as a compact row (in the
data file the page's script draws further cards from). Pure.

Both forms come from ``parts``, so a card drawn by the script shows what a card in the page
shows: the same fields, formatted here once. The script's drawing is checked against the
page's markup in the browser tests. Every piece of manifest or server text is HTML-escaped in
the markup; in a row it is plain text, which the script only ever sets as text.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

from wanbatch.jobstate import (
    LABELS,
    MISSING_VIDEO,
    Standing,
    VideoCheck,
    is_changed,
    standing,
    video_missing,
    video_path,
)
from wanbatch.models import JobRecord, JobSpec

# The fields a card shows as code.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
CODE_NAMES = frozenset({"image", "extra", "file", "task"})
_NOTED_FIELDS = ("prompt", "model", "duration", "aspect_ratio", "image", "extra")
UNKNOWN_NOTE = (
    " this job was submitted with other fields than the manifest's, no longer known here;"
    " the manifest's are shown."
)
CHANGED_LEAD = " (the card shows what the task was asked for):"
# A card's still: a video shows the frame this far in before it is played (a media fragment;
# a generated video may open on a black frame, and Safari paints no frame at 0 s unasked);
# the page's script rewinds it to 0 s when it is first played.
STILL = "#t=0.1"
MISSING_WORDS = "file missing"  # in the box of a video recorded downloaded but not on disk


class Card(NamedTuple):  # a tuple: made a hundred thousand times, cheaply
    spec: JobSpec  # what the card shows: the fields its task was asked for
    record: JobRecord | None
    state: Standing
    has_video: bool  # its video is on disk: it plays on the card
    manifest_spec: JobSpec  # what the manifest says now
    fields_known: bool = True  # False: rendered from fields the manifest no longer holds
    missing: bool = False  # recorded downloaded, its video not on disk when the page was made

    @property
    def path(self) -> str:
        return video_path(self.spec, self.record)


def make_card(
    spec: JobSpec,
    record: JobRecord | None,
    video_intact: VideoCheck,
    rendered: Mapping[str, JobSpec | None] | None,
) -> Card:
    rendered_spec = spec if rendered is None else rendered.get(spec.id, spec)
    base = standing(spec, record, video_intact, check_changed=False)
    # Only a job asked for other fields than the manifest's can be changed: with ``rendered``
    # given, the others are not hashed again (a fingerprint per job of a 100,000-job page).
    edited = rendered is None or spec.id in rendered
    state = Standing.CHANGED if edited and is_changed(spec, record) else base
    return Card(
        spec=rendered_spec if rendered_spec is not None else spec,
        record=record,
        state=state,
        has_video=base is Standing.DONE,
        manifest_spec=spec,
        fields_known=rendered_spec is not None,
        missing=video_missing(record, base),
    )


def e(text: object) -> str:
    """``text`` HTML-escaped; a lone surrogate (a server's JSON may decode to one) as U+FFFD,
    so that the page can be written as UTF-8."""
    return LONE_SURROGATE.sub("\ufffd", html.escape(str(text), quote=True))


def utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _seconds(value: float) -> str:
    if value < 0:
        value = 0.0
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def number(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def src(path: str) -> str:
    """A relative URL for ``path`` (relative to the output dir), each segment percent-encoded."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def ratio(aspect_ratio: str) -> str:
    """The CSS aspect-ratio of a card's media box."""
    width, _, height = aspect_ratio.partition(":")
    return f"{int(width)} / {int(height)}" if width.isdigit() and height.isdigit() else "16 / 9"


def fields(card: Card) -> list[tuple[str, str]]:
    """The card's listed fields as (name, plain text), in order (``CODE_NAMES`` as code)."""
    spec, record = card.spec, card.record
    rows = [
        ("model", spec.model),
        ("duration", f"{spec.duration} s"),
        ("aspect", spec.aspect_ratio),
    ]
    if spec.image is not None:
        # Shown as text, not linked or loaded: the page makes no request off the output tree.
        rows.append(("image", spec.image))
    if spec.extra:
        rows.append(("extra", _plain_value(dict(spec.extra))))
    rows.append(("file", card.path))
    if record is not None:
        if record.size is not None:
            rows.append(("size", _size(record.size)))
        if record.task_id:
            rows.append(("task", record.task_id))
        if record.submitted_at is not None:
            rows.append(("submitted", utc(record.submitted_at)))
        if record.submitted_at is not None and record.finished_at is not None:
            rows.append(("render time", _seconds(record.finished_at - record.submitted_at)))
        downloaded_at = getattr(record, "downloaded_at", None)
        if isinstance(downloaded_at, int | float):
            shown = utc(downloaded_at)
            if record.finished_at is not None:
                shown += f" ({_seconds(downloaded_at - record.finished_at)} after render)"
            rows.append(("downloaded", shown))
        if record.attempt:
            rows.append(("attempt", str(record.attempt + 1)))
    return rows


def failure(card: Card) -> tuple[str, str | None] | None:
    """A failed card's reason and code, or None."""
    if card.state is not Standing.FAILED:
        return None
    record = card.record
    reason = record.reason if record is not None and record.reason else "no reason given"
    return reason, (record.code if record is not None and record.code else None)


def changes(card: Card) -> list[tuple[str, str]] | None:
    """What the manifest says now where it differs from what the card shows (the fields the
    task was asked for): None if it does not; an empty list if those fields are not known."""
    if not card.fields_known:
        return []
    if card.spec is card.manifest_spec:
        return None
    now, then = card.manifest_spec.fields(), card.spec.fields()
    differ = [name for name in _NOTED_FIELDS if now.get(name) != then.get(name)]
    return [(name, _plain_value(now.get(name))) for name in differ] or None


def _plain_value(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


# --- as markup --------------------------------------------------------------------------------


def card_html(card: Card, preload: str) -> str:
    spec, state = card.spec, card.state
    box = f'style="aspect-ratio: {ratio(spec.aspect_ratio)}"'
    if card.has_video:
        media = (
            f'<video controls muted playsinline preload="{preload}"'
            f' src="{e(src(card.path) + STILL)}" {box}></video>'
        )
    elif card.missing:
        media = f'<div class="placeholder missing" {box}><span>{e(MISSING_WORDS)}</span></div>'
    else:
        media = f'<div class="placeholder" {box}><span>{e(LABELS[state])}</span></div>'
    listed = "".join(
        f"<dt>{name}</dt><dd><code>{e(text)}</code></dd>"
        if name in CODE_NAMES
        else f"<dt>{name}</dt><dd>{e(text)}</dd>"
        for name, text in fields(card)
    )
    notes = _changes_html(changes(card))
    if card.missing:
        notes += (
            f'<p class="missing-note" role="note"><strong>{e(MISSING_WORDS)}:</strong>'
            f" {e(MISSING_VIDEO)}</p>"
        )
    failed = failure(card)
    if failed is not None:
        reason, code = failed
        shown_code = f' <code class="code">{e(code)}</code>' if code else ""
        notes += (
            f'<p class="reason" role="note"><strong>failed:</strong> {e(reason)}{shown_code}</p>'
        )
    return (
        f'<article class="card" data-state="{e(state.value)}" data-model="{e(spec.model)}"'
        f' data-aspect="{e(spec.aspect_ratio)}" data-job="{e(spec.id)}">'
        f'<div class="media">{media}</div>'
        '<div class="body">'
        f'<h2><span class="job-id">{e(spec.id)}</span>'
        f'<span class="badge badge-{e(state.value)}">{e(LABELS[state])}</span></h2>'
        f'<p class="prompt">{e(spec.prompt)}</p>'
        f"{notes}"
        f"<dl>{listed}</dl>"
        "</div>"
        "</article>"
    )


def _changes_html(changed: list[tuple[str, str]] | None) -> str:
    if changed is None:
        return ""
    if not changed:
        return f'<p class="changed" role="note"><strong>edited since:</strong>{UNKNOWN_NOTE}</p>'
    items = "".join(f"<dt>{name}</dt><dd>{e(value)}</dd>" for name, value in changed)
    return (
        '<div class="changed" role="note"><p><strong>the manifest now says</strong>'
        f"{CHANGED_LEAD}</p><dl>{items}</dl></div>"
    )


# --- as a row of the data file ----------------------------------------------------------------


def row(card: Card, state: int, model: int, aspect: int) -> list[Any]:
    """The card as a compact JSON row of raw values, which the page's script formats as
    ``fields`` does (only for the cards it draws, a page at a time): ``[id, prompt, state,
    model, aspect, duration, video, file, image, extra, size, task, submitted, finished,
    downloaded, attempt, reason, code, changes]`` with the tables' indexes, trailing nulls left
    out. ``video`` is 1 when it plays, 2 when its file was missing, else 0. ``changes`` is 1 when the fields asked for are not known, else
    ``[[name, text], ...]`` (see ``changes``)."""
    spec, record = card.spec, card.record
    changed = changes(card)
    out: list[Any] = [
        spec.id,
        spec.prompt,
        state,
        model,
        aspect,
        spec.duration,
        1 if card.has_video else 2 if card.missing else 0,
        card.path,
        spec.image,
        _plain_value(dict(spec.extra)) if spec.extra else None,
    ]
    if record is not None:
        downloaded_at = getattr(record, "downloaded_at", None)
        out += (
            record.size,
            record.task_id or None,
            record.submitted_at,
            record.finished_at,
            downloaded_at if isinstance(downloaded_at, int | float) else None,
            record.attempt + 1 if record.attempt else None,
        )
    else:
        out += (None, None, None, None, None, None)
    failed = failure(card)
    out += (
        failed[0] if failed else None,
        failed[1] if failed else None,
        None if changed is None else (changed or 1),
    )
    while out[-1] is None:
        out.pop()
    return out
