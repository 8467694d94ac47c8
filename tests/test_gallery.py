"""The HTML gallery and the retry manifest: the page's markup, then the page in a real browser.

A large run's gallery (more than ``INLINE_LIMIT`` jobs) holds a first page of cards and draws the
rest from ``report.data.js``: its markup, its data file's escaping, and in the browser its
filters, pages, file:// loading and that a card it draws is the card the page would hold."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from wanbatch import cli, gallery
from wanbatch.gallery import (
    EAGER_METADATA_LIMIT,
    GALLERY_NAME,
    RETRY_NAME,
    render_gallery,
    retry_manifest,
)
from wanbatch.jobstate import LABELS, MISSING_VIDEO, Standing, of_state
from wanbatch.manifest import load_manifest
from wanbatch.models import JobRecord, JobState, Manifest

import browser

NOW = 1_767_000_000.0
XSS_PROMPT = "<script>alert(1)</script> a \"quoted\" & 'single' prompt </article><img src=x onerror=alert(2)>"
XSS_REASON = '<b>rejected</b>: prompt "violates" policy & <script>alert(3)</script>'

MANIFEST = """\
name: gal
api:
  key_env: WANBATCH_TEST_KEY
pricing: {wan-2-2: 10, wan-2-1: 6}
defaults: {model: wan-2-2, duration: 5, aspect_ratio: "16:9"}
limits: {concurrency: 3, requests_per_second: 7.5, downloads: 2, job_deadline_seconds: 900}
output: {dir: out, path: "clips #1 & co/{model}/{id}.mp4"}
jobs:
  - id: done-a
    prompt: a drone shot over a misty forest at sunrise
  - id: done-b
    prompt: neon city street at night in the rain
    model: wan-2-1
    aspect_ratio: "9:16"
  - id: done-c
    prompt: fresh croissants coming out of the oven
    aspect_ratio: "1:1"
    duration: 8
  - id: failed-a
    prompt: {xss}
    image: https://example.com/first-frame.png
    extra: {seed: 42, style: "film"}
  - id: failed-b
    prompt: ocean waves at golden hour
    model: wan-2-1
  - id: running-a
    prompt: a white sneaker turning on a pedestal
  - id: submitted-a
    prompt: a paper boat on a puddle
    aspect_ratio: "9:16"
  - id: succeeded-a
    prompt: a cat asleep in the sun
  - id: queued-a
    prompt: a mountain lake at dawn
  - id: queued-b
    prompt: a lighthouse in a storm
    model: wan-2-1
""".replace("{xss}", yaml.safe_dump(XSS_PROMPT, width=1000).splitlines()[0])

STATES = {
    "done-a": JobState.DOWNLOADED,
    "done-b": JobState.DOWNLOADED,
    "done-c": JobState.DOWNLOADED,
    "failed-a": JobState.FAILED,
    "failed-b": JobState.FAILED,
    "running-a": JobState.RUNNING,
    "submitted-a": JobState.SUBMITTED,
    "succeeded-a": JobState.SUCCEEDED,
    "queued-b": JobState.PLANNED,
    # queued-a has no record at all
}

# ``downloaded_at`` is being added to JobRecord; until it is there, a subclass carries it.
if "downloaded_at" in {f.name for f in dataclasses.fields(JobRecord)}:
    TimedRecord: Any = JobRecord
else:
    TimedRecord = dataclasses.make_dataclass(
        "TimedRecord",
        [("downloaded_at", float | None, dataclasses.field(default=None))],
        bases=(JobRecord,),
        frozen=True,
        slots=True,
    )


def load(folder: Path, text: str = MANIFEST) -> Manifest:
    path = folder / "m.yaml"
    path.write_text(text)
    return load_manifest(path)


def make_records(manifest: Manifest) -> dict[str, JobRecord]:
    """A record for each job of STATES, as the journal would fold them, plus a stale one."""
    records: dict[str, JobRecord] = {}
    for index, spec in enumerate(manifest.jobs):
        state = STATES.get(spec.id)
        if state is None:
            continue
        fields: dict[str, Any] = {"job_id": spec.id, "state": state}
        if state is not JobState.PLANNED:
            fields.update(task_id=f"gen_{index:04d}", submitted_at=NOW - 600 + index)
        if state in (JobState.SUCCEEDED, JobState.DOWNLOADED, JobState.FAILED):
            fields["finished_at"] = NOW - 600 + index + 42.5
        if state is JobState.DOWNLOADED:
            fields.update(path=spec.output_path, size=1815, sha256="ab" * 32)
            fields["downloaded_at"] = NOW - 600 + index + 45.0
        if spec.id == "failed-a":
            fields.update(reason=XSS_REASON, code="content_policy")
        records[spec.id] = TimedRecord(**fields)
    records["gone-job"] = JobRecord(job_id="gone-job", state=JobState.FAILED, reason="old")
    return records


class Page(HTMLParser):
    """The parts of the gallery the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cards: list[dict[str, str | None]] = []
        self.videos: list[dict[str, str | None]] = []
        self.selects: dict[str, list[str]] = {}
        self.urls: list[tuple[str, str]] = []  # (tag, src or href)
        self.tags: list[str] = []
        self.data: list[str] = []
        self._select: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if tag == "article":
            self.cards.append(found)
        elif tag == "video":
            self.videos.append(found)
        elif tag == "select":
            self._select = found["id"]
            assert self._select is not None
            self.selects[self._select] = []
        elif tag == "option" and self._select is not None:
            self.selects[self._select].append(found["value"] or "")
        for name in ("src", "href", "poster", "action", "srcset"):
            if found.get(name) is not None:
                self.urls.append((tag, found[name] or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        self.data.append(data)


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    return load(tmp_path)


@pytest.fixture
def records(manifest: Manifest) -> dict[str, JobRecord]:
    return make_records(manifest)


@pytest.fixture
def page_text(manifest: Manifest, records: dict[str, JobRecord]) -> str:
    return render_gallery(manifest, records, generated_at=NOW)


# --- the page's markup --------------------------------------------------------------------------


def test_one_card_per_job_in_order_with_filter_attributes(
    manifest: Manifest, page_text: str
) -> None:
    """Every manifest job has one card with its state, model and aspect; stale records none."""
    cards = Page(page_text).cards
    assert [card["data-job"] for card in cards] == [spec.id for spec in manifest.jobs]
    for card, spec in zip(cards, manifest.jobs, strict=True):
        assert card["class"] == "card"
        assert card["data-state"] == of_state(STATES.get(spec.id, JobState.PLANNED)).value
        assert card["data-model"] == spec.model
        assert card["data-aspect"] == spec.aspect_ratio
    assert "gone-job" not in page_text


def test_videos_for_downloaded_jobs_only_at_quoted_relative_paths(
    manifest: Manifest, page_text: str
) -> None:
    """A downloaded job plays its file from beside report.html; others show their state."""
    page = Page(page_text)
    done = [spec for spec in manifest.jobs if STATES.get(spec.id) is JobState.DOWNLOADED]
    expected = [
        "/".join(quote(part, safe="") for part in s.output_path.split("/")) + "#t=0.1" for s in done
    ]
    assert [video["src"] for video in page.videos] == expected
    assert expected[0] == "clips%20%231%20%26%20co/wan-2-2/done-a.mp4#t=0.1"  # a still at 0.1 s
    for video in page.videos:
        assert "controls" in video and "muted" in video
        assert video["preload"] in ("metadata", "none")
    text = " ".join(page.data)
    for label in ("rendering", "new", "to download", "failed"):
        assert label in text


def test_failed_cards_show_the_reason_and_code(page_text: str) -> None:
    body = " ".join(Page(page_text).data)
    assert XSS_REASON in body  # as text, once parsed
    assert "content_policy" in body
    assert "no reason given" in body  # failed-b has none


def test_manifest_and_server_text_is_escaped(manifest: Manifest, page_text: str) -> None:
    """A prompt or reason holding markup is shown as text and never becomes markup."""
    assert page_text.count("<script") == 1  # the page's own script
    assert "alert(" not in page_text.split("<script>")[1].split("</script>")[0]
    assert "<img" not in page_text and "<b>" not in page_text
    assert html_escaped(XSS_PROMPT) in page_text
    page = Page(page_text)
    assert XSS_PROMPT in page.data
    assert page.tags.count("article") == len(manifest.jobs)
    titled = render_gallery(manifest, {}, generated_at=NOW, title='<i>"spring"</i> & co')
    assert "<title>&lt;i&gt;&quot;spring&quot;&lt;/i&gt; &amp; co</title>" in titled


def test_a_lone_surrogate_in_server_text_does_not_stop_the_page(
    manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """A reason decoded from a server's JSON may hold a lone surrogate ("\\ud800"): the page and
    the data file are still written (UTF-8), showing U+FFFD in its place."""
    records["failed-b"] = dataclasses.replace(records["failed-b"], reason="bad \ud800 text")
    for limit in (100, 1):
        files = gallery.gallery_files(manifest, records, generated_at=NOW, inline_limit=limit)
        page_text = "".join(files.page).encode("utf-8").decode("utf-8")
        assert "bad \ufffd text" in page_text
        if files.data is not None:
            by_id = {row[0]: row for row in data_of("".join(files.data))["jobs"]}
            assert by_id["failed-b"][16] == "bad \ufffd text"


def html_escaped(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


def test_page_is_self_contained(manifest: Manifest, page_text: str) -> None:
    """No script, style, font or image from anywhere: the only URLs are the videos' own files."""
    page = Page(page_text)
    assert page.urls, "the videos at least"
    for tag, url in page.urls:
        assert not re.match(r"^\s*(https?:|//|ftp:|file:)", url, re.I), (tag, url)
        assert tag in ("video", "link"), (tag, url)
        if tag == "link":
            assert url == "data:,"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page_text, re.I)
    assert "@import" not in page_text and "url(" not in page_text
    assert '<link rel="stylesheet"' not in page_text and "@font-face" not in page_text
    # The first-frame URL is shown as text, not fetched.
    assert "https://example.com/first-frame.png" in " ".join(page.data)


def test_summary_counts_seconds_and_credits(manifest: Manifest, page_text: str) -> None:
    def stat(key: str) -> str:
        found = re.search(rf'id="count-{key}">([^<]*)<', page_text)
        assert found, key
        return found.group(1)

    assert stat("done") == "3" and stat("failed") == "2"
    assert stat("in-flight") == "2" and stat("to-download") == "1" and stat("new") == "2"
    assert stat("seconds") == f"18 / {manifest.total_seconds}"  # 5 + 5 + 8 of 53
    assert stat("credits") == f"{10 * 5 + 6 * 5 + 10 * 8} / {manifest.estimate_credits():,.0f}"
    unpriced = load(manifest.path.parent, MANIFEST.replace("pricing:", "# pricing:"))
    assert 'id="count-credits"' not in render_gallery(unpriced, {}, generated_at=NOW)


def test_filters_offer_every_state_model_and_aspect(page_text: str) -> None:
    selects = Page(page_text).selects
    assert selects["filter-state"] == [
        "all",
        "new",
        "in_flight",
        "to_download",
        "done",
        "failed",
    ]
    assert selects["filter-model"] == ["all", "wan-2-1", "wan-2-2"]
    assert selects["filter-aspect"] == ["all", "16:9", "9:16", "1:1"]
    assert re.search(r'id="shown-count">10<', page_text)


def test_render_and_download_times(page_text: str) -> None:
    body = " ".join(Page(page_text).data)
    assert "render time" in body and "42.5 s" in body
    assert "downloaded" in body and "2.5 s after render" in body
    assert time.strftime("%Y-%m-%d", time.gmtime(NOW)) in body  # generated at, in UTC


def test_a_thousand_jobs_stay_light(tmp_path: Path) -> None:
    """1,000 downloaded jobs: no video loads until it nears the viewport; the page stays small."""
    jobs = "".join(f"  - {{id: j{i}, prompt: prompt number {i}}}\n" for i in range(1000))
    manifest = load(tmp_path, f"name: big\noutput: {{dir: out}}\njobs:\n{jobs}")
    records = {
        spec.id: JobRecord(job_id=spec.id, state=JobState.DOWNLOADED, path=spec.output_path)
        for spec in manifest.jobs
    }
    started = time.perf_counter()
    text = render_gallery(manifest, records, generated_at=NOW)
    assert time.perf_counter() - started < 2.0
    page = Page(text)
    assert len(page.cards) == len(page.videos) == 1000
    assert {video["preload"] for video in page.videos} == {"none"}
    assert len(text) < 1000 * 1500


# --- a large run: a first page in the page, every job in report.data.js -------------------------


def many(folder: Path, count: int) -> tuple[Manifest, dict[str, JobRecord]]:
    """``count`` jobs: every 7th failed, every 3rd else downloaded, the others new."""
    jobs = "".join(f"  - {{id: j{i:05d}, prompt: prompt number {i}}}\n" for i in range(count))
    manifest = load(folder, f"name: big\noutput: {{dir: out}}\njobs:\n{jobs}")
    records: dict[str, JobRecord] = {}
    for index, spec in enumerate(manifest.jobs):
        if index % 7 == 3:
            records[spec.id] = JobRecord(
                job_id=spec.id, state=JobState.FAILED, reason=f"reason {index}", code="bad"
            )
        elif index % 3 == 0:
            records[spec.id] = JobRecord(
                job_id=spec.id, state=JobState.DOWNLOADED, path=spec.output_path
            )
    return manifest, records


def data_of(text: str) -> dict[str, Any]:
    """The object report.data.js hands the page: JSON in a single-quoted JavaScript string, its
    lines joined by line continuations, given to JSON.parse."""
    opening, closing = "wanbatchGallery(JSON.parse('{", "}'));\n"
    assert text.startswith(opening) and text.endswith(closing), text[:80]
    literal = text[len(opening) - 1 : -len(closing) + 1]
    assert not re.search(r"(?<!\\)'", literal.replace("\\\\", "")), "a quote ends the string"
    inside = re.sub(r"\\(\n|.)", lambda found: "" if found[1] == "\n" else found[1], literal)
    found: dict[str, Any] = json.loads(inside)
    return found


def test_a_large_run_puts_a_first_page_in_the_page_failed_jobs_first(tmp_path: Path) -> None:
    """Past INLINE_LIMIT jobs the page holds one page of cards, failed jobs first, and stays
    small; the summary and the filters still count every job. (It held every card: 81 MB at
    100,000 jobs.)"""
    count = 2500
    manifest, records = many(tmp_path, count)
    text = render_gallery(manifest, records, generated_at=NOW)
    page = Page(text)
    assert len(text) < 200_000, f"{len(page.cards)} cards in {len(text):,} characters"
    assert len(page.cards) == gallery.PAGE_SIZE < count
    failed = [spec.id for i, spec in enumerate(manifest.jobs) if i % 7 == 3]
    assert [card["data-job"] for card in page.cards] == failed[: gallery.PAGE_SIZE]
    assert re.search(rf'id="count-failed">{len(failed):,}<', text)
    assert re.search(rf'id="shown-count">{count:,}<', text)
    assert page.selects["filter-state"] == ["all", "new", "done", "failed"]
    pages = -(-count // gallery.PAGE_SIZE)
    assert f'id="page-at">page 1 of {pages:,}<' in text


def test_the_data_file_holds_every_job_in_the_pages_order(tmp_path: Path) -> None:
    """A row per job, failed first; the tables the rows index; the page's token."""
    manifest, records = many(tmp_path, 40)
    files = gallery.gallery_files(manifest, records, generated_at=NOW, inline_limit=10, page_size=5)
    text = "".join(files.page)
    assert files.data is not None
    data = data_of("".join(files.data))
    token = re.search(r'data-token="([^"]+)"', text)
    assert token and data["token"] == token.group(1)
    assert f'data-source="{gallery.DATA_NAME}"' in text and 'data-page-size="5"' in text
    ids = [row[0] for row in data["jobs"]]
    failed = [spec.id for i, spec in enumerate(manifest.jobs) if i % 7 == 3]
    assert ids == failed + [spec.id for spec in manifest.jobs if spec.id not in failed]
    assert ids[:5] == [card["data-job"] for card in Page(text).cards]
    states = [value for value, _ in data["states"]]
    by_id = dict(zip(ids, data["jobs"], strict=True))
    assert states[by_id["j00003"][2]] == "failed" and by_id["j00003"][16:] == ["reason 3", "bad"]
    assert states[by_id["j00000"][2]] == "done" and by_id["j00000"][5:8] == [5, 1, "j00000.mp4"]
    assert states[by_id["j00001"][2]] == "new" and by_id["j00001"] == [
        "j00001",
        "prompt number 1",
        states.index("new"),
        0,
        0,
        5,
        0,
        "j00001.mp4",
    ]
    assert data["models"] == ["wan-2-2"] and data["aspects"] == [["16:9", "16 / 9"]]
    # A small run has no data file, and its page names none.
    small = gallery.gallery_files(manifest, records, generated_at=NOW, inline_limit=40)
    assert small.data is None and "data-source" not in "".join(small.page)


def test_the_data_file_cannot_end_its_script_or_break_a_line(tmp_path: Path) -> None:
    """Prompts and server messages holding </script>, <!--, U+2028/U+2029 or a lone surrogate
    come back intact from the JSON, while the file holds none of them as such."""
    nasty = "</script><script>alert(1)</script> <!-- a\u2028b\u2029c & d > e 'f' \\ C:\\new"
    text = MANIFEST.replace("a cat asleep in the sun", json.dumps(nasty))
    manifest = load(tmp_path, text)
    records = make_records(manifest)
    records["failed-b"] = JobRecord(
        job_id="failed-b", state=JobState.FAILED, reason=nasty + " \ud800", code="</script>"
    )
    files = gallery.gallery_files(manifest, records, generated_at=NOW, inline_limit=1)
    assert files.data is not None
    written = "".join(files.data)
    written.encode("utf-8")  # the lone surrogate is escaped, so the file can be written
    for unsafe in ("<", ">", "&", "\u2028", "\u2029", "\ud800"):
        assert unsafe not in written, unsafe
    assert len(written.splitlines()) == 3  # the head, the rows (a line a thousand), the end
    by_id = {row[0]: row for row in data_of(written)["jobs"]}
    assert by_id["succeeded-a"][1] == nasty
    assert by_id["failed-a"][1] == XSS_PROMPT and by_id["failed-a"][16] == XSS_REASON
    assert by_id["failed-b"][16:18] == [nasty + " \ufffd", "</script>"]
    page_text = "".join(files.page)
    assert page_text.count("<script") == 1 and "alert(" not in page_text.split("<script>")[1]


def test_report_writes_the_data_file_for_a_large_run_and_removes_it_after(
    manifest: Manifest, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`wanbatch report` writes report.data.js beside report.html when the run is large, and
    removes a stale one when it is not; the page names the data file it was written with."""
    data_file = manifest.output_dir / gallery.DATA_NAME
    monkeypatch.setattr(gallery.page, "INLINE_LIMIT", 3)
    assert cli.main(["report", str(manifest.path)]) == 0
    page_text = (manifest.output_dir / GALLERY_NAME).read_text(encoding="utf-8")
    token = re.search(r'data-token="([^"]+)"', page_text)
    assert token and data_of(data_file.read_text(encoding="utf-8"))["token"] == token.group(1)
    monkeypatch.setattr(gallery.page, "INLINE_LIMIT", 2000)
    assert cli.main(["report", str(manifest.path)]) == 0
    assert not data_file.exists()
    assert len(Page((manifest.output_dir / GALLERY_NAME).read_text()).cards) == 10
    capsys.readouterr()


def test_the_data_file_is_a_name_no_job_may_take() -> None:
    from wanbatch.outputnames import ROOT_FILES

    names = {name for name, _ in ROOT_FILES}
    assert {gallery.DATA_NAME, gallery.DATA_NAME + ".tmp"} <= names


# --- the retry manifest -------------------------------------------------------------------------


def test_retry_manifest_reruns_exactly_the_failed_jobs(
    manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """Saved as out/retry.yaml it loads with the real loader: same jobs, fields and paths."""
    text = retry_manifest(manifest, records)
    assert text is not None
    assert text.startswith("# Retry manifest")
    assert "content_policy" in text and "\n  # failed-b failed: no reason given\n" in text
    path = manifest.output_dir / RETRY_NAME
    path.parent.mkdir(parents=True)
    path.write_text(text)
    retry = load_manifest(path)
    failed = [spec for spec in manifest.jobs if STATES.get(spec.id) is JobState.FAILED]
    assert [spec.id for spec in retry.jobs] == ["failed-a", "failed-b"]
    assert retry.name == "gal-retry"
    assert retry.output_dir == manifest.output_dir
    for new, old in zip(retry.jobs, failed, strict=True):
        assert new.output_path == old.output_path
        assert new.fields() == old.fields()
        assert new.fingerprint() == old.fingerprint()
    assert retry.jobs[0].prompt == XSS_PROMPT
    assert retry.api == manifest.api
    assert retry.limits == manifest.limits
    assert retry.pricing == manifest.pricing


def test_no_retry_manifest_when_nothing_failed(manifest: Manifest) -> None:
    assert retry_manifest(manifest, {}) is None
    done = {spec.id: JobRecord(job_id=spec.id, state=JobState.DOWNLOADED) for spec in manifest.jobs}
    assert retry_manifest(manifest, done) is None
    # A failure of a job no longer in the manifest is not retried.
    stale = {"gone": JobRecord(job_id="gone", state=JobState.FAILED)}
    assert retry_manifest(manifest, stale) is None


def test_retry_of_matrix_jobs_with_derived_ids_and_name_in_path(tmp_path: Path) -> None:
    """Expanded, derived-id jobs come back with the same ids; {name} keeps the original name."""
    text = """\
name: spring
api: {base_url: "https://api.example.com/v1", key_env: MY_KEY, models: [wan-3-0]}
defaults: {model: wan-2-2, duration: 5, extra: {quality: high}}
output: {dir: renders/spring, path: "{name}/{aspect_ratio}/{id}-{duration}s.mp4"}
matrix: {aspect_ratio: ["16:9", "9:16"], model: [wan-2-2, wan-3-0]}
jobs:
  - prompt: "line one\\nline two: with a colon # and a hash"
    extra: {seed: 7}
  - prompt: "- looks like a list item"
    duration: 8
  - prompt: "true"
    aspect_ratio: "4:3"
"""
    manifest = load(tmp_path, text)
    assert len(manifest.jobs) == 10
    failed = [manifest.jobs[i] for i in (1, 4, 9)]
    reasons = ["bad\nmulti-line\treason\x00 with control chars \u2028", "", "x" * 5000]
    records = {
        spec.id: JobRecord(job_id=spec.id, state=JobState.FAILED, reason=reason or None)
        for spec, reason in zip(failed, reasons, strict=True)
    }
    produced = retry_manifest(manifest, records)
    assert produced is not None
    assert yaml.safe_load(produced)["output"] == {
        "dir": ".",
        "path": "spring/{aspect_ratio}/{id}-{duration}s.mp4",
    }
    path = manifest.output_dir / RETRY_NAME
    path.parent.mkdir(parents=True)
    path.write_text(produced)
    retry = load_manifest(path)
    assert [spec.id for spec in retry.jobs] == [spec.id for spec in failed]
    assert [spec.output_path for spec in retry.jobs] == [spec.output_path for spec in failed]
    assert [spec.fields() for spec in retry.jobs] == [spec.fields() for spec in failed]
    assert retry.api == manifest.api
    assert all(len(line) < 400 for line in produced.splitlines())


def test_retry_with_an_index_template_says_the_paths_move(tmp_path: Path) -> None:
    """{index} cannot be kept by a shorter manifest: it still loads, and a comment says so."""
    jobs = "".join(f"  - {{id: j{i}, prompt: p {i}}}\n" for i in range(4))
    manifest = load(tmp_path, f"output: {{path: '{{index:03d}}-{{id}}.mp4'}}\njobs:\n{jobs}")
    records = {"j2": JobRecord(job_id="j2", state=JobState.FAILED, reason="nope")}
    produced = retry_manifest(manifest, records)
    assert produced is not None and "new path" in produced
    path = manifest.output_dir / RETRY_NAME
    path.parent.mkdir(parents=True)
    path.write_text(produced)
    assert [spec.output_path for spec in load_manifest(path).jobs] == ["000-j2.mp4"]


# --- the page in a real browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser.browser_session() as launched:
        yield launched


@pytest.fixture
def site(
    tmp_path: Path, manifest: Manifest, records: dict[str, JobRecord]
) -> Iterator[tuple[str, Path]]:
    """The output tree with real H.264 clips at the jobs' paths and report.html, served."""
    assets = resources.files("wanbatch.simulator").joinpath("assets")
    for index, spec in enumerate(manifest.jobs):
        if STATES.get(spec.id) is JobState.DOWNLOADED:
            target = manifest.output_dir / spec.output_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(assets.joinpath(f"clip{index % 8}.mp4").read_bytes())
    report = manifest.output_dir / GALLERY_NAME
    report.write_text(render_gallery(manifest, records, generated_at=NOW), encoding="utf-8")
    with browser.serve(manifest.output_dir) as base:
        yield base + GALLERY_NAME, report


class Console:
    """Console errors, page errors, failed requests and dialogs seen by a page."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        page.on("console", self.on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        page.on("requestfailed", lambda req: self.problems.append(f"requestfailed: {req.url}"))
        page.on("dialog", self.on_dialog)

    def on_console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def on_dialog(self, dialog: Any) -> None:
        self.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def page(chromium: Any, site: tuple[str, Path]) -> Iterator[tuple[Any, Console]]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    console = Console(opened)
    opened.goto(site[0], wait_until="load")
    yield opened, console
    context.close()


def shown(page: Any) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "article.card:not([hidden])", "cards => cards.map(c => c.dataset.job)"
    )


def visible(page: Any) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "article.card",
        "cards => cards.filter(c => c.offsetParent !== null).map(c => c.dataset.job)",
    )


def test_browser_page_loads_clean_with_one_card_per_job(
    page: tuple[Any, Console], manifest: Manifest
) -> None:
    """No console error, no failed request, no dialog; one card per job; the prompt is text."""
    tab, console = page
    tab.wait_for_function(
        "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 1)",
        timeout=15_000,
    )
    assert tab.locator("article.card").count() == len(manifest.jobs)
    assert visible(tab) == [spec.id for spec in manifest.jobs]
    assert tab.locator("#shown-count").inner_text() == str(len(manifest.jobs))
    assert tab.locator('[data-job="failed-a"] .prompt').inner_text() == XSS_PROMPT
    assert tab.locator("script").count() == 1 and tab.locator("img").count() == 0
    assert console.problems == []


def test_browser_filters_hide_cards_and_update_the_count(
    page: tuple[Any, Console], manifest: Manifest
) -> None:
    tab, console = page
    tab.select_option("#filter-state", "failed")
    assert shown(tab) == visible(tab) == ["failed-a", "failed-b"]
    assert tab.locator("#shown-count").inner_text() == "2"
    tab.select_option("#filter-model", "wan-2-1")
    assert shown(tab) == ["failed-b"]
    assert tab.locator("#shown-count").inner_text() == "1"
    tab.select_option("#filter-aspect", "9:16")
    assert shown(tab) == [] and tab.locator("#no-match").is_visible()
    assert tab.locator("#shown-count").inner_text() == "0"
    tab.select_option("#filter-state", "all")
    assert shown(tab) == ["done-b"]
    tab.select_option("#filter-model", "all")
    assert shown(tab) == ["done-b", "submitted-a"]
    tab.select_option("#filter-aspect", "all")
    assert shown(tab) == [spec.id for spec in manifest.jobs]
    assert not tab.locator("#no-match").is_visible()
    assert tab.locator("#shown-count").inner_text() == str(len(manifest.jobs))
    assert console.problems == []


def test_browser_video_plays_its_file(page: tuple[Any, Console]) -> None:
    """The H.264 clip decodes and plays in place: metadata, a frame, then time advancing."""
    tab, console = page
    video = tab.locator('[data-job="done-b"] video')
    video.scroll_into_view_if_needed()
    info = video.evaluate(
        """async v => {
            if (v.readyState < 1) {
                await new Promise((ok, bad) => {
                    v.addEventListener('loadedmetadata', ok, {once: true});
                    v.addEventListener('error', () => bad(new Error('media error ' + v.error.code)));
                });
            }
            await v.play();
            const start = performance.now();
            while (v.currentTime === 0 && performance.now() - start < 5000) {
                await new Promise(r => setTimeout(r, 50));
            }
            return {time: v.currentTime, duration: v.duration, width: v.videoWidth,
                    height: v.videoHeight, error: v.error && v.error.code, src: v.currentSrc};
        }"""
    )
    assert info["error"] is None, info
    assert info["duration"] > 0 and info["width"] > 0 and info["height"] > 0, info
    assert info["time"] > 0, info
    assert info["src"].endswith("clips%20%231%20%26%20co/wan-2-1/done-b.mp4#t=0.1")
    assert console.problems == []


def test_browser_opens_the_report_from_disk(chromium: Any, site: tuple[str, Path]) -> None:
    """Opened as a file (as a user would), the videos still load beside it."""
    context = chromium.new_context()
    try:
        tab = context.new_page()
        console = Console(tab)
        tab.goto(site[1].as_uri(), wait_until="load")
        tab.wait_for_function(
            "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 1)",
            timeout=15_000,
        )
        assert tab.locator("article.card").count() == 10
        assert console.problems == []
    finally:
        context.close()


def test_browser_many_videos_load_only_near_the_viewport(tmp_path: Path, chromium: Any) -> None:
    """Past EAGER_METADATA_LIMIT videos, a video is fetched only when its card nears the view."""
    count = EAGER_METADATA_LIMIT + 30
    jobs = "".join(f"  - {{id: j{i:03d}, prompt: prompt number {i}}}\n" for i in range(count))
    manifest = load(tmp_path, f"name: big\noutput: {{dir: out}}\njobs:\n{jobs}")
    clip = resources.files("wanbatch.simulator").joinpath("assets/clip3.mp4").read_bytes()
    manifest.output_dir.mkdir()
    records = {}
    for spec in manifest.jobs:
        (manifest.output_dir / spec.output_path).write_bytes(clip)
        records[spec.id] = JobRecord(
            job_id=spec.id, state=JobState.DOWNLOADED, path=spec.output_path
        )
    (manifest.output_dir / GALLERY_NAME).write_text(
        render_gallery(manifest, records, generated_at=NOW)
    )
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        console = Console(tab)
        fetched: list[str] = []
        tab.on("request", lambda req: fetched.append(req.url) if req.url.endswith(".mp4") else None)
        with browser.serve(manifest.output_dir) as base:
            tab.goto(base + GALLERY_NAME, wait_until="load")
            first = tab.locator('[data-job="j000"] video')
            last = tab.locator(f'[data-job="j{count - 1:03d}"] video')
            tab.wait_for_function(
                "document.querySelector('[data-job=j000] video').readyState >= 1", timeout=15_000
            )
            assert first.evaluate("v => v.preload") == "metadata"
            assert last.evaluate("v => [v.preload, v.readyState]") == ["none", 0]
            assert 0 < len(set(fetched)) < count / 2
            last.scroll_into_view_if_needed()
            tab.wait_for_function(  # metadata, and a frame: its still
                f"document.querySelector('[data-job=j{count - 1:03d}] video').readyState >= 2",
                timeout=15_000,
            )
            assert len(set(fetched)) < count
        assert console.problems == []
    finally:
        context.close()


def test_screenshot_helper(tmp_path: Path, chromium: Any, site: tuple[str, Path]) -> None:
    png = browser.screenshot(site[1], tmp_path / "shot.png", 1000, 700, browser=chromium)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# --- a large run's gallery in the browser ------------------------------------------------------


def write_site(
    manifest: Manifest, records: dict[str, JobRecord], **options: Any
) -> tuple[Path, Path]:
    """Clips at the downloaded jobs' paths, report.html and report.data.js: (page, data file)."""
    assets = resources.files("wanbatch.simulator").joinpath("assets")
    for index, spec in enumerate(manifest.jobs):
        record = records.get(spec.id)
        if record is not None and record.state is JobState.DOWNLOADED:
            target = manifest.output_dir / (record.path or spec.output_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(assets.joinpath(f"clip{index % 8}.mp4").read_bytes())
    files = gallery.gallery_files(manifest, records, generated_at=NOW, **options)
    assert files.data is not None
    manifest.output_dir.mkdir(parents=True, exist_ok=True)
    data_file = manifest.output_dir / gallery.DATA_NAME
    data_file.write_text("".join(files.data), encoding="utf-8")
    report = manifest.output_dir / GALLERY_NAME
    report.write_text("".join(files.page), encoding="utf-8")
    return report, data_file


def open_tab(chromium: Any, url: str, *, ready: bool = True) -> tuple[Any, Any, Console]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    console = Console(tab)
    tab.goto(url, wait_until="load")
    if ready:  # the data file is in: the filters are on
        tab.wait_for_function("!document.getElementById('filter-state').disabled", timeout=15_000)
    return context, tab, console


def test_browser_paged_gallery_filters_every_job_and_turns_pages(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """Three cards a page, failed first; the filters search all ten jobs, the pager turns;
    prompts and reasons drawn from the data file are text, never markup."""
    report, _ = write_site(manifest, records, inline_limit=3, page_size=3)
    with browser.serve(report.parent) as base:
        context, tab, console = open_tab(chromium, base + GALLERY_NAME)
        try:
            at = tab.locator("#page-at")
            assert shown(tab) == ["failed-a", "failed-b", "done-a"]
            assert tab.locator("#shown-count").inner_text() == "10"
            assert at.inner_text() == "page 1 of 4" and not tab.locator("#data-note").is_visible()
            assert tab.locator("#page-prev").is_disabled()
            tab.click("#page-next")
            assert shown(tab) == visible(tab) == ["done-b", "done-c", "running-a"]
            assert at.inner_text() == "page 2 of 4"
            tab.click("#page-next")
            tab.click("#page-next")
            assert shown(tab) == ["queued-b"] and tab.locator("#page-next").is_disabled()
            tab.select_option("#filter-state", "failed")
            assert shown(tab) == ["failed-a", "failed-b"] and at.inner_text() == "page 1 of 1"
            assert tab.locator("#shown-count").inner_text() == "2"
            assert tab.locator('[data-job="failed-a"] .prompt').inner_text() == XSS_PROMPT
            reason = tab.locator('[data-job="failed-a"] .reason').inner_text()
            assert XSS_REASON in reason and "content_policy" in reason
            assert "no reason given" in tab.locator('[data-job="failed-b"] .reason').inner_text()
            tab.select_option("#filter-model", "wan-2-1")
            assert shown(tab) == ["failed-b"]
            tab.select_option("#filter-aspect", "9:16")
            assert shown(tab) == [] and tab.locator("#no-match").is_visible()
            assert tab.locator("#shown-count").inner_text() == "0"
            tab.select_option("#filter-state", "all")
            assert shown(tab) == ["done-b"]
            tab.select_option("#filter-model", "all")
            assert shown(tab) == ["done-b", "submitted-a"]
            tab.select_option("#filter-aspect", "all")
            assert shown(tab) == ["failed-a", "failed-b", "done-a"]
            assert tab.locator("#shown-count").inner_text() == "10"
            assert tab.locator("img").count() == 0
            assert console.problems == []
        finally:
            context.close()


def test_browser_drawn_cards_are_the_cards_the_page_holds(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """A card the script draws from the data file is, node for node, the card the page holds:
    videos, fields, reasons, and both notes of a job edited since it was submitted. The script
    formats raw times and sizes as Python does, ties rounded to even included (42.25 s is
    "42.2 s", 1,250 bytes "1.2 KB", 3,598.5 s "59 min 58 s"), and quotes video paths alike."""
    tricky = {
        "done-a": dict(finished_at=NOW + 42.25, downloaded_at=NOW + 42.25 + 90.5, size=1250),
        "done-b": dict(finished_at=NOW + 3598.5, downloaded_at=NOW + 3598.5 + 0.25, size=0),
        "done-c": dict(finished_at=NOW + 7322.5, size=999_950, attempt=2),
        "failed-b": dict(finished_at=NOW + 0.25, size=12_345_678_901_234),
    }
    for job_id, changes in tricky.items():
        records[job_id] = dataclasses.replace(records[job_id], submitted_at=NOW, **changes)
    odd = "clips #1 & co/it's (done)!*~ é.mp4"
    records["done-c"] = dataclasses.replace(records["done-c"], path=odd)
    breaker = "it's C:\\new\\x \\' \u2028 \u2029 </script><!-- \ud800 & done"
    records["failed-b"] = dataclasses.replace(records["failed-b"], reason=breaker)
    older = dataclasses.replace(manifest.jobs[0], prompt="an older prompt", duration=4)
    rendered = {"done-a": older, "queued-a": None}
    report, _ = write_site(manifest, records, inline_limit=3, page_size=10, rendered=rendered)
    with browser.serve(report.parent) as base:
        context, tab, console = open_tab(chromium, base + GALLERY_NAME)
        try:
            cards = "() => Array.from(document.querySelectorAll('article')).map(c => c.outerHTML)"
            held = tab.evaluate(cards)
            assert len(held) == 10 and tab.locator("#cards .changed").count() == 2
            tab.select_option("#filter-state", "failed")
            tab.select_option("#filter-state", "all")
            drawn = tab.evaluate(cards)
            assert tab.evaluate("document.querySelector('article').outerHTML") == drawn[0]
            for was, now in zip(held, drawn, strict=True):
                assert now == was
            text = " ".join(tab.locator("#cards").all_inner_texts())
            for shown_text in ("42.2 s", "1.2 KB", "59 min 58 s", "2 h 02 min", "0.2 s after"):
                assert shown_text in text, shown_text
            assert "12.3 GB" in text or "12345.7 GB" in text
            assert tab.locator("#cards .changed").count() == 2
            assert console.problems == []
        finally:
            context.close()


def test_browser_paged_gallery_opens_from_disk(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """Opened as a file, the page loads its data file beside it (a script, not fetch)."""
    report, _ = write_site(manifest, records, inline_limit=3, page_size=3)
    context, tab, console = open_tab(chromium, report.as_uri())
    try:
        tab.select_option("#filter-state", "done")
        assert shown(tab) == ["done-a", "done-b", "done-c"]
        tab.wait_for_function(
            "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 1)",
            timeout=15_000,
        )
        assert console.problems == []
    finally:
        context.close()


def test_browser_paged_gallery_says_when_its_data_file_is_missing_or_foreign(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """Without its data file, or with another report's, the page shows its first cards, keeps
    the filters off, and says why."""
    report, data_file = write_site(manifest, records, inline_limit=3, page_size=3)
    other = gallery.gallery_files(manifest, records, generated_at=NOW + 1, inline_limit=3)
    assert other.data is not None
    for data, said in ((None, "is missing"), ("".join(other.data), "belongs to another report")):
        if data is None:
            data_file.unlink()
        else:
            data_file.write_text(data, encoding="utf-8")
        context, tab, _ = open_tab(chromium, report.as_uri(), ready=False)
        try:
            note = tab.locator("#data-note")
            tab.wait_for_function(
                f"document.getElementById('data-note').textContent.includes({said!r})",
                timeout=15_000,
            )
            assert note.is_visible() and gallery.DATA_NAME in note.inner_text()
            assert shown(tab) == ["failed-a", "failed-b", "done-a"]
            assert tab.locator("#filter-state").is_disabled()
        finally:
            context.close()


# --- the daily look: stills, missing files, filters in the URL, search, a phone's header -------


def fade_in_clip() -> bytes:
    """A real H.264 clip (160x90, 12 frames at 12 fps) whose first frame is black and the others
    orange, as a generated video that fades in from black: a card showing its first frame looks
    like a black player."""
    import io

    import av

    width, height, fps = 160, 90, 12
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream: Any = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(fps):
            frame = av.VideoFrame(width, height, "yuv420p")
            levels = (16, 128, 128) if index == 0 else (150, 60, 200)
            for plane, level in zip(frame.planes, levels, strict=True):
                plane.update(bytes([level]) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


CENTRE_PIXEL = """v => {
    const canvas = document.createElement('canvas');
    canvas.width = v.videoWidth; canvas.height = v.videoHeight;
    const context = canvas.getContext('2d');
    context.drawImage(v, 0, 0);
    return Array.from(context.getImageData(v.videoWidth >> 1, v.videoHeight >> 1, 1, 1).data);
}"""


def test_browser_cards_show_a_still_of_their_video_before_play(
    chromium: Any, site: tuple[str, Path], manifest: Manifest
) -> None:
    """Without a press on play, every card's video has a decoded frame, and the frame is a
    still from a little into the clip: a video that fades in from black does not look like a
    black player (its first frame is black). (It showed the first frame: [0, 0, 0, 255].)"""
    done_a = manifest.output_dir / manifest.jobs[0].output_path
    done_a.write_bytes(fade_in_clip())
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        console = Console(tab)
        tab.goto(site[0], wait_until="load")
        tab.wait_for_function(
            "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)",
            timeout=15_000,
        )
        video = tab.locator('[data-job="done-a"] video')
        tab.wait_for_function(
            "!document.querySelector('[data-job=done-a] video').seeking", timeout=15_000
        )
        assert video.evaluate("v => v.paused") is True
        red, green, blue, _ = video.evaluate(CENTRE_PIXEL)
        assert red + green + blue > 150, (red, green, blue)
        for other in ("done-b", "done-c"):
            pixel = tab.locator(f'[data-job="{other}"] video').evaluate(CENTRE_PIXEL)
            assert sum(pixel[:3]) > 150, (other, pixel)
        assert console.problems == []
    finally:
        context.close()


def test_browser_play_starts_at_the_beginning_not_at_the_still(page: tuple[Any, Console]) -> None:
    """The still is a frame 0.1 s in; pressing play plays the video from its start."""
    tab, console = page
    video = tab.locator('[data-job="done-a"] video')
    played = video.evaluate(
        """async v => {
            if (v.readyState < 2) {
                await new Promise(ok => v.addEventListener('loadeddata', ok, {once: true}));
            }
            const still = v.currentTime;
            await v.play();
            const start = performance.now();
            while (v.currentTime < 0.3 && performance.now() - start < 5000) {
                await new Promise(r => setTimeout(r, 20));
            }
            v.pause();
            return {still: still, from: v.played.length ? v.played.start(0) : null};
        }"""
    )
    assert played["still"] > 0 and played["from"] is not None, played
    assert played["from"] < 0.05, played
    assert console.problems == []


def test_a_video_missing_when_the_report_was_written_is_shown_missing(
    manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """The journal says downloaded, the disk does not: the card has no player but a "file
    missing" box and says what a run does; its state is the shared word (to download)."""
    files = gallery.gallery_files(
        manifest,
        records,
        generated_at=NOW,
        video_intact=lambda spec, record: spec.id != "done-b",
    )
    text = "".join(files.page)
    page = Page(text)
    assert [video["src"] for video in page.videos if "done-b" in (video["src"] or "")] == []
    card = text.split('data-job="done-b"')[1].split("</article>")[0]
    assert 'class="placeholder missing"' in card and ">file missing<" in card
    assert html_escaped(MISSING_VIDEO) in card
    assert f">{LABELS[Standing.TO_DOWNLOAD]}</span></h2>" in card
    paged = gallery.gallery_files(
        manifest,
        records,
        generated_at=NOW,
        inline_limit=1,
        video_intact=lambda spec, record: spec.id != "done-b",
    )
    assert paged.data is not None
    by_id = {row[0]: row for row in data_of("".join(paged.data))["jobs"]}
    assert by_id["done-b"][6] == 2 and by_id["done-a"][6] == 1
    assert by_id["queued-a"][6] == 0


def test_browser_a_video_missing_on_disk_shows_file_missing(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    """One file gone when the report was written, one deleted after: both cards say "file
    missing" in place of a broken player, in the small page and in cards the paged page draws."""
    missing_then = lambda spec, record: spec.id != "done-b"  # noqa: E731
    for options in ({"inline_limit": 100}, {"inline_limit": 3, "page_size": 3}):
        report, data_file = write_site(
            manifest, records, video_intact=missing_then, inline_limit=3, page_size=3
        )
        if options["inline_limit"] == 100:  # the small page, without a data file
            data_file.unlink()
            report.write_text(
                render_gallery(manifest, records, generated_at=NOW, video_intact=missing_then),
                encoding="utf-8",
            )
        (manifest.output_dir / manifest.jobs[2].output_path).unlink()  # done-c, after
        with browser.serve(report.parent) as base:
            context, tab, _ = open_tab(chromium, base + GALLERY_NAME, ready=False)
            try:
                if options["inline_limit"] == 3:
                    tab.wait_for_function(
                        "!document.getElementById('filter-state').disabled", timeout=15_000
                    )
                    tab.locator("#filter-text").fill("done-")
                for job in ("done-b", "done-c"):
                    tab.wait_for_function(
                        f"document.querySelector('[data-job={job}] .media').textContent"
                        ".includes('file missing')",
                        timeout=15_000,
                    )
                    media = tab.locator(f'[data-job="{job}"] .media')
                    assert media.locator("video").count() == 0, (options, job)
                    assert media.locator(".placeholder").is_visible()
                    assert (
                        "file missing"
                        in tab.locator(f'[data-job="{job}"] .missing-note').inner_text()
                    )
                tab.wait_for_function(
                    "document.querySelector('[data-job=done-a] video').readyState >= 2",
                    timeout=15_000,
                )
            finally:
                context.close()


def test_browser_search_filters_by_id_and_prompt_with_the_state_filter(
    page: tuple[Any, Console],
) -> None:
    """A text box narrows the cards to those whose id or prompt holds its text, any case,
    together with the selects, and the count follows."""
    tab, console = page
    search = tab.locator("#filter-text")
    search.fill("FOREST")
    assert shown(tab) == ["done-a"] and tab.locator("#shown-count").inner_text() == "1"
    search.fill("done-")
    assert shown(tab) == ["done-a", "done-b", "done-c"]
    search.fill("a")
    tab.select_option("#filter-state", "failed")
    assert shown(tab) == ["failed-a", "failed-b"]
    search.fill("ocean")
    assert shown(tab) == ["failed-b"] and tab.locator("#shown-count").inner_text() == "1"
    search.fill("<script>")  # failed-a's prompt, as text
    assert shown(tab) == ["failed-a"]
    search.fill("no such words")
    assert shown(tab) == [] and tab.locator("#no-match").is_visible()
    search.fill("")
    assert shown(tab) == ["failed-a", "failed-b"]
    assert console.problems == []


def test_browser_paged_search_finds_jobs_on_pages_not_drawn(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord]
) -> None:
    report, _ = write_site(manifest, records, inline_limit=3, page_size=3)
    context, tab, console = open_tab(chromium, report.as_uri())
    try:
        assert "queued-b" not in shown(tab)
        tab.locator("#filter-text").fill("LIGHTHOUSE")
        assert shown(tab) == ["queued-b"] and tab.locator("#shown-count").inner_text() == "1"
        assert tab.locator("#page-at").inner_text() == "page 1 of 1"
        tab.locator("#filter-text").fill("-a")
        tab.select_option("#filter-state", "new")
        assert shown(tab) == ["queued-a"]
        assert console.problems == []
    finally:
        context.close()


def test_browser_filters_are_kept_in_the_url(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord], site: tuple[str, Path]
) -> None:
    """The state, model, aspect and text filters are in the page's address (#state=...&q=...):
    a reload or a shared link shows the same cards, and back undoes a filter; in the small page
    and the paged one, opened from disk."""
    report, _ = write_site(manifest, records, inline_limit=3, page_size=3)
    small = site[1].parent / "small.html"
    small.write_text(render_gallery(manifest, records, generated_at=NOW), encoding="utf-8")
    for url in (small.as_uri(), report.as_uri()):
        context, tab, console = open_tab(chromium, url)
        try:
            tab.select_option("#filter-state", "failed")
            assert tab.evaluate("location.hash") == "#state=failed"
            tab.locator("#filter-text").fill("Ocean")
            assert shown(tab) == ["failed-b"]
            assert tab.evaluate("location.hash") == "#state=failed&q=Ocean"
            tab.reload(wait_until="load")
            tab.wait_for_function("!document.getElementById('filter-state').disabled")
            assert shown(tab) == ["failed-b"], url
            assert tab.locator("#filter-state").input_value() == "failed"
            assert tab.locator("#filter-text").input_value() == "Ocean"
            assert tab.locator("#shown-count").inner_text() == "1"
            shared = url + "#state=done&model=wan-2-1&q=NEON"
            tab.goto(shared, wait_until="load")
            tab.wait_for_function("!document.getElementById('filter-state').disabled")
            assert shown(tab) == ["done-b"]
            assert tab.locator("#filter-model").input_value() == "wan-2-1"
            tab.select_option("#filter-model", "all")
            tab.go_back()
            tab.wait_for_function("document.getElementById('filter-model').value === 'wan-2-1'")
            assert shown(tab) == ["done-b"]
            tab.goto(url + "#state=no-such-state&aspect=%3Cb%3E", wait_until="load")
            tab.wait_for_function("!document.getElementById('filter-state').disabled")
            assert tab.locator("#filter-state").input_value() == "all"
            assert tab.locator("#shown-count").inner_text() == "10"
            tab.goto(url + "#q=" + quote("<img src=x onerror=alert(2)>"), wait_until="load")
            tab.wait_for_function("document.getElementById('shown-count').textContent === '1'")
            assert shown(tab) == ["failed-a"] and tab.locator("img").count() == 0
            assert console.problems == []
        finally:
            context.close()


def test_browser_header_fits_a_phone(
    chromium: Any, manifest: Manifest, records: dict[str, JobRecord], site: tuple[str, Path]
) -> None:
    """At 390x844 (a phone) the header, with its title, counts, filters and search, takes at most
    a fifth of the screen, in the small page and the paged one. (The small page's took 437 px, 52 %.)"""
    report, _ = write_site(manifest, records, inline_limit=3, page_size=3)
    small = site[1].parent / "small.html"
    small.write_text(render_gallery(manifest, records, generated_at=NOW), encoding="utf-8")
    for url in (small.as_uri(), report.as_uri()):
        context = chromium.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        try:
            tab = context.new_page()
            tab.goto(url, wait_until="load")
            tab.wait_for_function("!document.getElementById('filter-state').disabled")
            box = tab.locator("header").bounding_box()
            assert box is not None and box["height"] <= 0.2 * 844, (url, box)
            for part in ("h1", "#filter-state", "#filter-model", "#filter-aspect", "#filter-text"):
                found = tab.locator(part).bounding_box()
                assert found is not None and found["width"] > 0, part
                assert found["x"] >= 0 and found["x"] + found["width"] <= 390, (part, found)
            assert tab.locator("#shown-count").is_visible()
            assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        finally:
            context.close()


def test_summary_and_filters_take_their_state_words_from_jobstate(
    manifest: Manifest, records: dict[str, JobRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every state word the page shows (summary, filter, badge, placeholder) is jobstate's."""
    words = {state: f"word-{state.value}" for state in Standing}
    monkeypatch.setattr("wanbatch.jobstate.LABELS", words)
    for module in ("page", "cards"):
        monkeypatch.setattr(f"wanbatch.gallery.{module}.LABELS", words, raising=False)
    text = render_gallery(manifest, records, generated_at=NOW)
    summary = text.split('<section class="summary"')[1].split("</section>")[0]
    for state in (Standing.DONE, Standing.FAILED, Standing.IN_FLIGHT, Standing.NEW):
        assert f"<span>word-{state.value}</span>" in summary, state
    for default in ("done", "failed", "in flight", "rendering", "new"):
        assert f"<span>{default}</span>" not in summary
    assert ">word-failed</option>" in text and ">word-in_flight</span></h2>" in text
    # A job whose create went unanswered is counted apart from those rendering, in its word.
    records["queued-a"] = JobRecord(job_id="queued-a", state=JobState.SUBMITTING)
    text = render_gallery(manifest, records, generated_at=NOW)
    assert re.search(r'id="count-unconfirmed">1</strong><span>word-unconfirmed<', text)
    assert re.search(r'id="count-in-flight">2</strong><span>word-in_flight<', text)
