"""A run's output as one self-contained HTML contact sheet, and a manifest of its failures. Pure.

``render_gallery`` turns a manifest and the journal's records into ``<output>/report.html``: one
card per job in manifest order, each with its video playing in place (downloaded jobs), its
prompt and fields, its state, render and download times, and for failures the server's reason.
A card's state is ``jobstate.standing``, the word plan and status use; a video gone from disk
is "to download", not done. A card shows the fields its task was asked for (``rendered``, given
by the caller for jobs whose manifest entry was edited since), and notes what the manifest says
now where that differs.
Three selects filter the cards by state, model and aspect ratio. The page has inline CSS and
JavaScript only, a system font stack and no URL other than the videos' relative paths, so it
opens from disk with no network. Every piece of manifest or server text is HTML-escaped.

``retry_manifest`` writes a YAML manifest (to be saved as ``<output>/retry.yaml``) that renders
exactly the failed jobs again, with the same ids, fields and output paths.

This module does no I/O: callers write the returned text. It runs past 400 lines because the
page's own CSS and JavaScript (about 200 lines) live here with the markup they style.
"""

from __future__ import annotations

import html
import json
import math
import string
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml

from wanbatch.jobstate import LABELS, Standing, VideoCheck, is_changed, standing, video_path
from wanbatch.models import (
    DEFAULT_PROVIDER,
    KNOWN_MODELS,
    JobRecord,
    JobSpec,
    JobState,
    Limits,
    Manifest,
)
from wanbatch.providers.gateway import as_manifest

GALLERY_NAME = "report.html"
RETRY_NAME = "retry.yaml"
# Above this many videos a card asks for nothing until it nears the viewport (see the script).
EAGER_METADATA_LIMIT = 120
_REASON_COMMENT_CHARS = 300

_IN_FLIGHT = (Standing.UNCONFIRMED, Standing.IN_FLIGHT)
UNKNOWN_FIELDS = None  # in ``rendered``: the job was rendered from fields no longer known


# --- the gallery -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Card:
    spec: JobSpec  # what the card shows: the fields its task was asked for
    record: JobRecord | None
    state: Standing
    has_video: bool  # its video is on disk: it plays on the card
    manifest_spec: JobSpec  # what the manifest says now
    fields_known: bool = True  # False: rendered from fields the manifest no longer holds

    @property
    def path(self) -> str:
        return video_path(self.spec, self.record)


def _make_card(
    spec: JobSpec,
    record: JobRecord | None,
    video_intact: VideoCheck,
    rendered: Mapping[str, JobSpec | None] | None,
) -> _Card:
    rendered_spec = spec if rendered is None else rendered.get(spec.id, spec)
    base = standing(spec, record, video_intact, check_changed=False)
    # Only a job asked for other fields than the manifest's can be changed: with ``rendered``
    # given, the others are not hashed again (a fingerprint per job of a 100,000-job page).
    edited = rendered is None or spec.id in rendered
    state = Standing.CHANGED if edited and is_changed(spec, record) else base
    return _Card(
        spec=rendered_spec if rendered_spec is not None else spec,
        record=record,
        state=state,
        has_video=base is Standing.DONE,
        manifest_spec=spec,
        fields_known=rendered_spec is not None,
    )


def render_gallery(
    manifest: Manifest,
    records: Mapping[str, JobRecord],
    *,
    generated_at: float,
    title: str | None = None,
    video_intact: VideoCheck | None = None,
    rendered: Mapping[str, JobSpec | None] | None = None,
) -> str:
    """The whole page as one string (see ``gallery_lines``)."""
    return "".join(
        gallery_lines(
            manifest,
            records,
            generated_at=generated_at,
            title=title,
            video_intact=video_intact,
            rendered=rendered,
        )
    )


def gallery_lines(
    manifest: Manifest,
    records: Mapping[str, JobRecord],
    *,
    generated_at: float,
    title: str | None = None,
    video_intact: VideoCheck | None = None,
    rendered: Mapping[str, JobSpec | None] | None = None,
) -> Iterator[str]:
    """The lines of the HTML page for ``<output_dir>/report.html``: one card per job.

    ``records`` maps job id to its journal record; a job without one is new. ``video_intact``
    is the disk check (None: the journal is believed). ``rendered`` maps the id of every job
    whose task was asked for other fields than the manifest's to those (``UNKNOWN_FIELDS`` if
    they are not known); None: the manifest's fields are shown, and edits found by hashing. ``generated_at`` (epoch seconds) is printed in the header; times are shown in UTC
    so the page is the same wherever it was made.
    """
    check = video_intact or (lambda spec, record: True)
    cards = [_make_card(spec, records.get(spec.id), check, rendered) for spec in manifest.jobs]
    page_title = title if title is not None else f"{manifest.name}: wanbatch gallery"
    videos = sum(1 for card in cards if card.has_video)
    preload = "metadata" if videos <= EAGER_METADATA_LIMIT else "none"
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="dark light">',
        '<meta name="generator" content="wanbatch">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{_e(page_title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(page_title)}</h1>",
        _header_line(manifest, generated_at),
        _summary(manifest, cards),
        _filters(cards),
        "</header>",
        '<main id="cards">',
    ]
    tail = [
        "</main>",
        '<p id="no-match" hidden>No job matches these filters.</p>',
        f"<script>{_JS}</script>",
        "</body>",
        "</html>",
    ]
    # Line by line, so that a 100,000-job page (about 120 MB) is written without being held.
    for line in head:
        yield line + "\n"
    for card in cards:
        yield _card(card, preload) + "\n"
    for line in tail:
        yield line + "\n"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _utc(at: float) -> str:
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


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _src(path: str) -> str:
    """A relative URL for ``path`` (relative to the output dir), each segment percent-encoded."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def _header_line(manifest: Manifest, generated_at: float) -> str:
    return (
        '<p class="meta">'
        f"<span>manifest <code>{_e(manifest.path.name)}</code></span>"
        f"<span>output <code>{_e(manifest.output_dir)}</code></span>"
        f"<span>generated {_e(_utc(generated_at))}</span>"
        "</p>"
    )


def _summary(manifest: Manifest, cards: Sequence[_Card]) -> str:
    done = [card.spec for card in cards if card.has_video]
    failed = sum(1 for card in cards if card.state is Standing.FAILED)
    in_flight = sum(1 for card in cards if card.state in _IN_FLIGHT)
    to_download = sum(1 for card in cards if card.state is Standing.TO_DOWNLOAD)
    new = sum(1 for card in cards if card.state is Standing.NEW)
    changed = sum(1 for card in cards if card.state is Standing.CHANGED)
    done_seconds = sum(spec.duration for spec in done)
    stats = [
        ("done", f"{len(done):,}", "done"),
        ("failed", f"{failed:,}", "failed"),
        ("in-flight", f"{in_flight:,}", "in flight"),
        ("to-download", f"{to_download:,}", LABELS[Standing.TO_DOWNLOAD]),
        ("new", f"{new:,}", LABELS[Standing.NEW]),
    ]
    if changed:
        stats.append(("changed", f"{changed:,}", LABELS[Standing.CHANGED]))
    stats.append(("seconds", f"{done_seconds:,} / {manifest.total_seconds:,}", "seconds of video"))
    credits = manifest.estimate_credits(tuple(done))
    if credits is not None:
        total = manifest.estimate_credits()
        shown = f"{_number(credits)} / {_number(total or 0.0)}"
        stats.append(("credits", shown, "credits (estimated)"))
    items = "".join(
        f'<div class="stat stat-{key}"><strong id="count-{key}">{_e(value)}</strong>'
        f"<span>{_e(label)}</span></div>"
        for key, value, label in stats
    )
    return f'<section class="summary" aria-label="summary">{items}</section>'


def _filters(cards: Sequence[_Card]) -> str:
    states = [state for state in Standing if any(card.state is state for card in cards)]
    models = list(dict.fromkeys(card.spec.model for card in cards))
    aspects = list(dict.fromkeys(card.spec.aspect_ratio for card in cards))
    selects = [
        _select("filter-state", "State", [(s.value, LABELS[s]) for s in states]),
        _select("filter-model", "Model", [(m, m) for m in sorted(models)]),
        _select("filter-aspect", "Aspect ratio", [(a, a) for a in aspects]),
    ]
    total = len(cards)
    return (
        '<nav class="filters" aria-label="filters">'
        + "".join(selects)
        + f'<p class="shown">showing <strong id="shown-count">{total:,}</strong>'
        f" of {total:,} jobs</p>"
        "</nav>"
    )


def _select(ident: str, label: str, options: Sequence[tuple[str, str]]) -> str:
    rendered = "".join(
        f'<option value="{_e(value)}">{_e(text)}</option>' for value, text in options
    )
    return (
        f'<label for="{ident}">{_e(label)}'
        f'<select id="{ident}"><option value="all">all</option>{rendered}</select></label>'
    )


def _card(card: _Card, preload: str) -> str:
    spec, record, state = card.spec, card.record, card.state
    width, _, height = spec.aspect_ratio.partition(":")
    ratio = f"{int(width)} / {int(height)}" if width.isdigit() and height.isdigit() else "16 / 9"
    if card.has_video:
        media = (
            f'<video controls muted playsinline preload="{preload}" src="{_e(_src(card.path))}"'
            f' style="aspect-ratio: {ratio}"></video>'
        )
    else:
        media = (
            f'<div class="placeholder" style="aspect-ratio: {ratio}">'
            f"<span>{_e(LABELS[state])}</span></div>"
        )
    rows: list[tuple[str, str]] = [
        ("model", _e(spec.model)),
        ("duration", f"{spec.duration} s"),
        ("aspect", _e(spec.aspect_ratio)),
    ]
    if spec.image is not None:
        # Shown as text, not linked or loaded: the page makes no request off the output tree.
        rows.append(("image", f"<code>{_e(spec.image)}</code>"))
    if spec.extra:
        extra = json.dumps(dict(spec.extra), sort_keys=True, ensure_ascii=False, default=str)
        rows.append(("extra", f"<code>{_e(extra)}</code>"))
    rows.append(("file", f"<code>{_e(card.path)}</code>"))
    if record is not None:
        if record.size is not None:
            rows.append(("size", _e(_size(record.size))))
        if record.task_id:
            rows.append(("task", f"<code>{_e(record.task_id)}</code>"))
        if record.submitted_at is not None:
            rows.append(("submitted", _e(_utc(record.submitted_at))))
        if record.submitted_at is not None and record.finished_at is not None:
            rows.append(("render time", _e(_seconds(record.finished_at - record.submitted_at))))
        downloaded_at = getattr(record, "downloaded_at", None)
        if isinstance(downloaded_at, int | float):
            shown = _utc(downloaded_at)
            if record.finished_at is not None:
                shown += f" ({_seconds(downloaded_at - record.finished_at)} after render)"
            rows.append(("downloaded", _e(shown)))
        if record.attempt:
            rows.append(("attempt", str(record.attempt + 1)))
    fields = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    failure = _changed_note(card)
    if state is Standing.FAILED:
        reason = record.reason if record is not None and record.reason else "no reason given"
        code = (
            f' <code class="code">{_e(record.code)}</code>'
            if record is not None and record.code
            else ""
        )
        failure += f'<p class="reason" role="note"><strong>failed:</strong> {_e(reason)}{code}</p>'
    return (
        f'<article class="card" data-state="{_e(state.value)}" data-model="{_e(spec.model)}"'
        f' data-aspect="{_e(spec.aspect_ratio)}" data-job="{_e(spec.id)}">'
        f'<div class="media">{media}</div>'
        '<div class="body">'
        f'<h2><span class="job-id">{_e(spec.id)}</span>'
        f'<span class="badge badge-{_e(state.value)}">{_e(LABELS[state])}</span></h2>'
        f'<p class="prompt">{_e(spec.prompt)}</p>'
        f"{failure}"
        f"<dl>{fields}</dl>"
        "</div>"
        "</article>"
    )


_NOTED_FIELDS = ("prompt", "model", "duration", "aspect_ratio", "image", "extra")


def _changed_note(card: _Card) -> str:
    """What the manifest says now where it differs from what the card shows (the fields the
    task was asked for)."""
    if not card.fields_known:
        return (
            '<p class="changed" role="note"><strong>edited since:</strong> this job was'
            " submitted with other fields than the manifest's, no longer known here; the"
            " manifest's are shown.</p>"
        )
    now, then = card.manifest_spec.fields(), card.spec.fields()
    differ = [name for name in _NOTED_FIELDS if now.get(name) != then.get(name)]
    if not differ:
        return ""
    items = "".join(f"<dt>{name}</dt><dd>{_e(_plain_value(now.get(name)))}</dd>" for name in differ)
    return (
        '<div class="changed" role="note"><p><strong>the manifest now says</strong> (the card'
        f" shows what the task was asked for):</p><dl>{items}</dl></div>"
    )


def _plain_value(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


_CSS = """
:root{color-scheme:dark;--bg:#16181c;--panel:#1f2227;--panel2:#272b31;--text:#e6e8eb;
--muted:#9aa1ab;--line:#32363d;--accent:#7aa2f7;--ok:#5fbf86;--bad:#ef6b6b;--warn:#e0b352;
--idle:#8a919b}
@media (prefers-color-scheme:light){:root{color-scheme:light;--bg:#f4f5f7;--panel:#fff;
--panel2:#eef0f3;--text:#1d2025;--muted:#5d6470;--line:#dde0e5;--accent:#3863d8;--ok:#22864f;
--bad:#c8322f;--warn:#a8720a;--idle:#6b7280}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
font-size:12px;word-break:break-all}
header{position:sticky;top:0;z-index:2;background:var(--bg);border-bottom:1px solid var(--line);
padding:16px 24px 12px}
@media (max-height:700px){header{position:static}}
h1{margin:0 0 4px;font-size:20px;font-weight:650}
.meta{margin:0 0 12px;color:var(--muted);display:flex;flex-wrap:wrap;gap:4px 18px}
.summary{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:12px}
.stat{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:6px 12px;
min-width:96px}
.stat strong{display:block;font-size:18px;font-variant-numeric:tabular-nums}
.stat span{color:var(--muted);font-size:12px}
.stat-done strong{color:var(--ok)}.stat-failed strong{color:var(--bad)}
.stat-in-flight strong{color:var(--warn)}
.filters{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px}
.filters label{display:flex;align-items:center;gap:6px;color:var(--muted)}
select{background:var(--panel);color:var(--text);border:1px solid var(--line);border-radius:6px;
padding:4px 8px;font:inherit}
.shown{margin:0 0 0 auto;color:var(--muted)}
.shown strong{color:var(--text)}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:16px;
padding:20px 24px 40px}
.card{display:flex;flex-direction:column;background:var(--panel);border:1px solid var(--line);
border-radius:10px;overflow:hidden;content-visibility:auto;contain-intrinsic-size:auto 420px}
.card[hidden],#no-match[hidden]{display:none}
.media{background:#000;display:flex;align-items:center;justify-content:center;
aspect-ratio:16/10}
.media video,.placeholder{display:block;max-width:100%;max-height:100%;width:auto;height:100%}
.placeholder{background:var(--panel2);display:flex;align-items:center;justify-content:center;
color:var(--muted);text-transform:uppercase;letter-spacing:.08em;font-size:12px}
.card[data-state=failed] .placeholder{color:var(--bad)}
.body{padding:10px 12px 12px}
h2{margin:0 0 6px;font-size:14px;display:flex;gap:8px;align-items:baseline;
justify-content:space-between}
.job-id{font-weight:600;word-break:break-all}
.badge{flex:none;font-size:11px;font-weight:600;padding:1px 8px;border-radius:99px;
background:var(--panel2);color:var(--idle)}
.badge-done{color:var(--ok)}.badge-failed{color:var(--bad)}
.badge-unconfirmed,.badge-in_flight,.badge-to_download,.badge-changed{color:var(--warn)}
.changed{margin:0 0 8px;padding:6px 8px;border-left:3px solid var(--warn);
background:var(--panel2);border-radius:4px;overflow-wrap:anywhere}
.changed p{margin:0 0 4px}
.prompt{margin:0 0 8px;white-space:pre-wrap;overflow-wrap:anywhere}
.reason{margin:0 0 8px;padding:6px 8px;border-left:3px solid var(--bad);background:var(--panel2);
border-radius:4px;overflow-wrap:anywhere}
.reason .code{color:var(--muted)}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0;font-size:12px}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
#no-match{text-align:center;color:var(--muted);padding:40px}
"""

_JS = """
(function () {
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  var selects = {
    state: document.getElementById("filter-state"),
    model: document.getElementById("filter-model"),
    aspect: document.getElementById("filter-aspect")
  };
  var shown = document.getElementById("shown-count");
  var none = document.getElementById("no-match");
  function apply() {
    var count = 0;
    cards.forEach(function (card) {
      var match = Object.keys(selects).every(function (key) {
        var value = selects[key].value;
        return value === "all" || card.dataset[key] === value;
      });
      card.hidden = !match;
      if (match) {
        count += 1;
      } else {
        var video = card.querySelector("video");
        if (video && !video.paused) { video.pause(); }
      }
    });
    shown.textContent = count.toLocaleString("en-US");
    none.hidden = count !== 0;
  }
  Object.keys(selects).forEach(function (key) {
    selects[key].addEventListener("change", apply);
  });
  // With many videos the page asks for none up front; fetch metadata as cards near the viewport.
  if ("IntersectionObserver" in window) {
    var lazy = cards.map(function (card) { return card.querySelector("video[preload=none]"); })
      .filter(function (video) { return video !== null; });
    if (lazy.length) {
      var observer = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) {
            entry.target.preload = "metadata";
            observer.unobserve(entry.target);
          }
        });
      }, {rootMargin: "400px"});
      lazy.forEach(function (video) { observer.observe(video); });
    }
  }
  apply();
})();
"""


# --- the retry manifest ----------------------------------------------------------------------


def retry_manifest(
    manifest: Manifest,
    records: Mapping[str, JobRecord],
    rendered: Mapping[str, JobSpec | None] | None = None,
) -> str | None:
    """A YAML manifest that renders exactly the failed jobs again, or None if none failed.

    A job is written with the fields its failed task was asked for (``rendered``, as for the
    gallery), so that an edit made in an earlier retry.yaml is not lost.

    It is meant to be saved in the output dir (as ``retry.yaml``): its ``output.dir`` is ``.``,
    so every video lands where the original run would have put it, and it shares the original
    run's journal there. Ids, prompts and fields are written out in full (no defaults, no matrix),
    so the loader gives back the same jobs; api, pricing and limits are kept.
    """
    asked = rendered or {}
    failed = [
        asked.get(spec.id) or spec
        for spec in manifest.jobs
        if (record := records.get(spec.id)) is not None and record.state is JobState.FAILED
    ]
    if not failed:
        return None
    template = _fixed_template(manifest.path_template, manifest.name)
    moved = [
        spec
        for index, spec in enumerate(failed)
        if _fill(template, spec, index) != spec.output_path
    ]
    head: dict[str, Any] = {"name": _retry_name(manifest.name)}
    api: dict[str, Any] = {}
    if manifest.api.provider != DEFAULT_PROVIDER:
        api["provider"] = manifest.api.provider
    if manifest.api.gateway is not None and (gateway := as_manifest(manifest.api.gateway)):
        api["gateway"] = gateway
    if manifest.api.base_url is not None:
        api["base_url"] = manifest.api.base_url
    api["key_env"] = manifest.api.key_env
    if tuple(manifest.api.models) != KNOWN_MODELS:
        api["models"] = list(manifest.api.models)
    head["api"] = api
    if manifest.pricing:
        head["pricing"] = {model: _plain(price) for model, price in manifest.pricing.items()}
    head["limits"] = _limits(manifest.limits)
    head["output"] = {"dir": ".", "path": template}
    comment = [
        f"# Retry manifest: the {len(failed)} failed job(s) of '{_one_line(manifest.name)}'",
        f"# (from {_one_line(str(manifest.path))}), written by wanbatch.",
        "# It lives in the output dir and shares that run's journal, where these jobs are",
        "# recorded as failed: resubmit them with `wanbatch retry retry.yaml`.",
    ]
    if moved:
        comment += [
            f"# Note: the path template {_one_line(manifest.path_template)!r} uses {{index}}, so",
            f"# {len(moved)} job(s) will be written to a new path, not where they were planned.",
        ]
    text = "\n".join(comment) + "\n"
    text += yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=1000)
    text += "jobs:\n"
    for spec in failed:
        record = records[spec.id]
        reason = record.reason or "no reason given"
        if record.code:
            reason += f" [{record.code}]"
        text += f"  # {_one_line(spec.id)} failed: {_one_line(reason)}\n"
        job = yaml.safe_dump([_job(spec)], sort_keys=False, allow_unicode=True, width=1000)
        text += "".join(f"  {line}\n" for line in job.splitlines())
    return text


def _retry_name(name: str) -> str:
    suffix = "-retry"
    return name[: 100 - len(suffix)] + suffix


def _plain(value: float) -> int | float:
    return int(value) if math.isfinite(value) and value == int(value) else value


def _limits(limits: Limits) -> dict[str, int | float]:
    written: dict[str, int | float] = {"concurrency": limits.concurrency}
    if limits.requests_per_second is not None:  # unset: the run finds the server's rate
        written["requests_per_second"] = _plain(limits.requests_per_second)
    written["downloads"] = limits.downloads
    written["job_deadline_seconds"] = _plain(limits.job_deadline_seconds)
    return written


def _job(spec: JobSpec) -> dict[str, Any]:
    fields = spec.fields()  # the rendering fields, as the fingerprint sees them
    return {"id": spec.id, "prompt": fields.pop("prompt"), **fields}


def _one_line(text: str) -> str:
    """``text`` made safe for a YAML comment: printable characters on one line, cut short."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(cleaned) > _REASON_COMMENT_CHARS:
        cleaned = cleaned[: _REASON_COMMENT_CHARS - 3] + "..."
    return cleaned


def _fixed_template(template: str, name: str) -> str:
    """``template`` with ``{name}`` written out, since the retry manifest has another name."""
    out: list[str] = []
    for literal, field_name, spec, _conversion in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field_name is None:
            continue
        if field_name == "name":
            value = format(name, spec or "")
            out.append(value.replace("{", "{{").replace("}", "}}"))
        else:
            out.append("{" + field_name + (":" + spec if spec else "") + "}")
    return "".join(out)


def _fill(template: str, spec: JobSpec, index: int) -> str | None:
    """The path the loader will give ``spec`` at ``index`` under ``template`` (None if it fails)."""
    try:
        return template.format(
            id=spec.id,
            model=spec.model,
            aspect_ratio=spec.aspect_ratio.replace(":", "x"),
            duration=spec.duration,
            index=index,
        )
    except (ValueError, KeyError, IndexError):
        return None
