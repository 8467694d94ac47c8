"""The gallery page, and for a large run the data file its script draws the other cards from. Pure.

Up to ``INLINE_LIMIT`` jobs, every card is in the page, in manifest order, and the filters hide
the cards that do not match. Above it, the page holds the summary, the filters and the first
``PAGE_SIZE`` cards, failed jobs first, so that it paints at once however large the run; every
job is a compact row in ``report.data.js`` beside the page, which the page's script loads with a
``<script>`` element (``fetch`` of a local file is refused by browsers, a script is not). Once it
is in, the filters search every job and the cards come in pages. The data file carries the
page's token: a page and a data file of different reports do not mix.

The data file is JSON in a single-quoted JavaScript string given to ``JSON.parse``. Every ``<``,
``>``, ``&``, U+2028 and U+2029 in it is written as a ``\\u`` escape (a lone surrogate as
U+FFFD, as the page shows it), every backslash and quote escaped again for the string, so no
text in it can end the string or a script element, open a comment, or break a line, whatever a
prompt or a server's message holds.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from wanbatch.gallery.assets import CSS, JS
from wanbatch.gallery.cards import (
    CHANGED_LEAD,
    LONE_SURROGATE,
    MISSING_WORDS,
    STILL,
    UNKNOWN_NOTE,
    Card,
    card_html,
    e,
    number,
    ratio,
    row,
    utc,
)
from wanbatch.jobstate import LABELS, MISSING_VIDEO, Standing
from wanbatch.models import Manifest

GALLERY_NAME = "report.html"
DATA_NAME = "report.data.js"
DATA_CALL = "wanbatchGallery"  # the function the data file calls with its contents
# Above this many videos a card asks for nothing until it nears the viewport (see the script).
EAGER_METADATA_LIMIT = 120
# Above this many jobs the cards come from the data file, PAGE_SIZE at a time.
INLINE_LIMIT = 2000
PAGE_SIZE = 100

# The summary's counts, in this order; the others only when some job stands so.
_COUNTED = (
    Standing.DONE,
    Standing.FAILED,
    Standing.IN_FLIGHT,
    Standing.UNCONFIRMED,
    Standing.TO_DOWNLOAD,
    Standing.NEW,
    Standing.CHANGED,
)
_ALWAYS_COUNTED = frozenset(_COUNTED[:3] + _COUNTED[4:6])
_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_CHUNK = 1000  # rows encoded, escaped and yielded at a time: a line of the data file


@dataclass(frozen=True, slots=True)
class Layout:
    """How the page shows its cards: all inline, or paged from the data file."""

    paged: bool
    page_size: int
    preload: str
    token: str


def layout(cards: Sequence[Card], generated_at: float, inline_limit: int, page_size: int) -> Layout:
    videos = sum(1 for card in cards if card.has_video)
    return Layout(
        paged=len(cards) > inline_limit,
        page_size=max(1, page_size),
        preload="metadata" if videos <= EAGER_METADATA_LIMIT else "none",
        token=f"{generated_at:.6f}/{len(cards)}",
    )


def display_order(cards: Sequence[Card], how: Layout) -> list[Card]:
    """The order of the cards on the page: manifest order, failed jobs first when paged."""
    if not how.paged:
        return list(cards)
    failed = [card for card in cards if card.state is Standing.FAILED]
    return failed + [card for card in cards if card.state is not Standing.FAILED]


def page_lines(
    manifest: Manifest,
    cards: Sequence[Card],
    ordered: Sequence[Card],
    how: Layout,
    *,
    generated_at: float,
    title: str | None,
) -> Iterator[str]:
    """The lines of ``report.html``."""
    page_title = title if title is not None else f"{manifest.name}: wanbatch gallery"
    inline = ordered[: how.page_size] if how.paged else ordered
    if how.paged:
        main = (
            f'<main id="cards" data-source="{e(DATA_NAME)}" data-token="{e(how.token)}"'
            f' data-page-size="{how.page_size}">'
        )
    else:
        main = '<main id="cards">'
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="dark light">',
        '<meta name="generator" content="wanbatch">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{e(page_title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{e(page_title)}</h1>",
        _header_line(manifest, generated_at),
        _summary(manifest, cards),
        _filters(cards, how),
        "</header>",
        main,
    ]
    tail = ["</main>", '<p id="no-match" hidden>No job matches these filters.</p>']
    if how.paged:
        tail.append(
            f'<p id="data-note" role="status">Loading all {len(cards):,} jobs from'
            f" <code>{e(DATA_NAME)}</code> for the filters and the other pages&hellip;</p>"
        )
    tail += [f"<script>{JS}</script>", "</body>", "</html>"]
    # Line by line, so that a large page is written without being held.
    for line in head:
        yield line + "\n"
    for card in inline:
        yield card_html(card, how.preload) + "\n"
    for line in tail:
        yield line + "\n"


def data_lines(cards: Sequence[Card], ordered: Sequence[Card], how: Layout) -> Iterator[str]:
    """The lines of ``report.data.js``: ``wanbatchGallery(JSON.parse('{...}'))`` with a row per
    job in the page's order (see ``cards.row``), a thousand a line, and the tables they index."""
    states, models, aspects = _kinds(cards)
    state_at = {state: index for index, state in enumerate(states)}
    model_at = {model: index for index, model in enumerate(models)}
    aspect_at = {aspect: index for index, aspect in enumerate(aspects)}
    head = {
        "token": how.token,
        "pageSize": how.page_size,
        "preload": how.preload,
        "states": [[state.value, LABELS[state]] for state in states],
        "models": models,
        "aspects": [[aspect, ratio(aspect)] for aspect in aspects],
        "unknownNote": UNKNOWN_NOTE,
        "changedLead": CHANGED_LEAD,
        "still": STILL,
        "missingWords": MISSING_WORDS,
        "missingNote": MISSING_VIDEO,
    }
    # The rows are JSON in one JavaScript string given to JSON.parse: a browser reads that about
    # a third quicker than the same rows as a literal (2.2 s against 3.2 s at 100,000 jobs).
    opening = _quoted(js_json(head)[:-1])  # without its closing brace: the rows follow
    yield f'{DATA_CALL}(JSON.parse(\'{opening},"jobs":[\\\n'
    for start in range(0, len(ordered), _CHUNK):
        rows = [
            row(
                card,
                state_at[card.state],
                model_at[card.spec.model],
                aspect_at[card.spec.aspect_ratio],
            )
            for card in ordered[start : start + _CHUNK]
        ]
        more = ",\\\n" if start + _CHUNK < len(ordered) else "\\\n"  # a line continuation
        yield _quoted(_escaped(_ENCODER.encode(rows)[1:-1])) + more  # without the brackets
    yield "]}'));\n"


def _quoted(text: str) -> str:
    """``text`` (with no line break) as the inside of a single-quoted JavaScript string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _kinds(cards: Sequence[Card]) -> tuple[list[Standing], list[str], list[str]]:
    """The states (in ``Standing`` order), models and aspect ratios (as first met) of the cards."""
    present = {card.state for card in cards}
    models = list(dict.fromkeys(card.spec.model for card in cards))
    aspects = list(dict.fromkeys(card.spec.aspect_ratio for card in cards))
    return [state for state in Standing if state in present], models, aspects


def js_json(value: object) -> str:
    """``value`` as JSON that is safe anywhere in JavaScript or inside an HTML script element."""
    return _escaped(_ENCODER.encode(value))


def _escaped(text: str) -> str:
    """``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\u`` escapes; a lone surrogate as U+FFFD
    (as the page shows it, see ``cards.e``)."""
    return _UNSAFE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    return "\\ufffd" if LONE_SURROGATE.match(char) else f"\\u{ord(char):04x}"


def _header_line(manifest: Manifest, generated_at: float) -> str:
    return (
        '<p class="meta">'
        f"<span>manifest <code>{e(manifest.path.name)}</code></span>"
        f"<span>output <code>{e(manifest.output_dir)}</code></span>"
        f"<span>generated {e(utc(generated_at))}</span>"
        "</p>"
    )


def _summary(manifest: Manifest, cards: Sequence[Card]) -> str:
    """The counts by state (in jobstate's words), the seconds of video and the credits."""
    done = [card.spec for card in cards if card.has_video]
    count = Counter(card.state for card in cards)
    stats = [
        (state.value.replace("_", "-"), f"{count[state]:,}", LABELS[state])
        for state in _COUNTED
        if count[state] or state in _ALWAYS_COUNTED
    ]
    done_seconds = sum(spec.duration for spec in done)
    stats.append(("seconds", f"{done_seconds:,} / {manifest.total_seconds:,}", "seconds of video"))
    credits = manifest.estimate_credits(tuple(done))
    if credits is not None:
        total = manifest.estimate_credits()
        shown = f"{number(credits)} / {number(total or 0.0)}"
        stats.append(("credits", shown, "credits (estimated)"))
    items = "".join(
        f'<div class="stat stat-{key}"><strong id="count-{key}">{e(value)}</strong>'
        f"<span>{e(label)}</span></div>"
        for key, value, label in stats
    )
    return f'<section class="summary" aria-label="summary">{items}</section>'


def _filters(cards: Sequence[Card], how: Layout) -> str:
    states, models, aspects = _kinds(cards)
    # Paged, the filters wait for the data file: until then they could only filter one page.
    disabled = how.paged
    selects = [
        _select(
            "filter-state", "State", "states", [(s.value, LABELS[s]) for s in states], disabled
        ),
        _select("filter-model", "Model", "models", [(m, m) for m in sorted(models)], disabled),
        _select("filter-aspect", "Aspect ratio", "ratios", [(a, a) for a in aspects], disabled),
    ]
    off = " disabled" if disabled else ""
    search = (
        '<label for="filter-text" class="search"><span class="name">Search</span>'
        '<input type="search" id="filter-text" placeholder="id or prompt" autocomplete="off"'
        f' spellcheck="false"{off}></label>'
    )
    total = len(cards)
    pager = ""
    if how.paged:
        pages = -(-total // how.page_size)
        pager = (
            '<span class="pager"><button type="button" id="page-prev" disabled>&lsaquo;'
            f' previous</button><span id="page-at">page 1 of {pages:,}</span>'
            '<button type="button" id="page-next" disabled>next &rsaquo;</button></span>'
            '<p class="order">failed jobs first</p>'
        )
    return (
        '<nav class="filters" aria-label="filters">'
        + "".join(selects)
        + search
        + pager
        + '<p class="shown"><span class="wordy">showing </span>'
        f'<strong id="shown-count">{total:,}</strong> of {total:,}'
        '<span class="wordy"> jobs</span></p>'
        "</nav>"
    )


def _select(
    ident: str, label: str, plural: str, options: Sequence[tuple[str, str]], disabled: bool
) -> str:
    rendered = "".join(f'<option value="{e(value)}">{e(text)}</option>' for value, text in options)
    off = " disabled" if disabled else ""
    return (
        f'<label for="{ident}"><span class="name">{e(label)}</span>'
        f'<select id="{ident}" autocomplete="off"{off}>'
        f'<option value="all">all {e(plural)}</option>{rendered}</select></label>'
    )
