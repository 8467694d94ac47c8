"""A real headless browser for the tests: Debian's ``chromium`` driven by Python ``playwright``.

``chromium_path()`` finds ``/usr/bin/chromium`` (or ``chromium`` on PATH); when there is none and
we run as root it installs Debian's package with apt-get (no recommends, about five minutes at
most). Playwright's own browser downloads are never used: ``launch`` is given the system binary.
Where no browser can be had the test is skipped with the reason, except under CI (the ``CI``
environment variable set), where it fails instead: CI must never skip the browser test.

``serve(folder)`` serves a folder on a loopback port (stdlib ``ThreadingHTTPServer``, with range
requests so that media seeking works); ``screenshot(html, png)`` photographs a page for the docs.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import quote

import pytest

from debian import install

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
LAUNCH_ARGS = [
    "--no-sandbox",  # containers and root: the setuid sandbox is not available
    "--autoplay-policy=no-user-gesture-required",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--mute-audio",
]


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason`` locally; fail under CI, which must run the browser tests."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"no headless browser: {reason}")


def find_chromium() -> str | None:
    """The path of a Chromium binary, or None."""
    for candidate in CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@functools.cache
def _chromium_or_reason() -> tuple[str | None, str]:
    found = find_chromium()
    if found:
        return found, ""
    reason = install("chromium")
    found = find_chromium()
    if found:
        return found, ""
    return None, reason or "chromium was installed but its binary is not on PATH"


def chromium_path() -> str:
    """A Chromium binary, installing it if need be; skips (fails in CI) when there is none."""
    found, reason = _chromium_or_reason()
    if found is None:
        unavailable(reason)
    return found


@contextlib.contextmanager
def browser_session(extra_args: tuple[str, ...] = ()) -> Iterator[Browser]:
    """A launched headless Chromium for the length of the ``with`` block (``extra_args``: more
    command-line switches, e.g. ``--enable-precise-memory-info`` for a benchmark)."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the `playwright` Python package is not installed (pip install playwright)")
    executable = chromium_path()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=executable, args=[*LAUNCH_ARGS, *extra_args], headless=True
            )
        except PlaywrightError as exc:
            unavailable(f"{executable} does not start: {str(exc).splitlines()[0]}")
        try:
            yield browser
        finally:
            browser.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with single byte ranges (for media), without logging to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        range_header = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not range_header or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        try:
            unit, _, spec = range_header.partition("=")
            first_text, _, last_text = spec.split(",")[0].strip().partition("-")
            if unit.strip() != "bytes":
                raise ValueError(unit)
            if first_text:
                first = int(first_text)
                last = min(int(last_text), size - 1) if last_text else size - 1
            else:
                first, last = max(0, size - int(last_text)), size - 1
        except ValueError:
            return super().send_head()
        if first >= size or first > last:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        handle = path.open("rb")
        handle.seek(first)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = last - first + 1
        return handle

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            super().copyfile(source, outputfile)
            return
        while remaining > 0:
            chunk = source.read(min(65536, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port); yields the base URL, ending in '/'."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="gallery-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def screenshot(
    html_path: Path,
    png_path: Path,
    width: int = 1280,
    height: int = 900,
    *,
    color_scheme: Literal["dark", "light"] = "dark",
    browser: Browser | None = None,
) -> Path:
    """Photograph the page at ``html_path`` (served with its folder) into ``png_path``.

    Waits until every video in view shows its first frame, so the contact sheet has pictures.
    ``color_scheme`` is what the page's ``prefers-color-scheme`` sees (the headless default is
    light). Launches its own browser unless given one. For the README, from the repo root::

        python -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; \
            from browser import screenshot; \
            screenshot(Path('renders/spring-campaign/report.html'), Path('docs/gallery.png'))"
    """
    if browser is None:
        with browser_session() as launched:
            return screenshot(
                html_path, png_path, width, height, color_scheme=color_scheme, browser=launched
            )
    html_path = Path(html_path).resolve()
    png_path = Path(png_path)
    with serve(html_path.parent) as base:
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=color_scheme
        )
        try:
            page = context.new_page()
            page.goto(base + quote(html_path.name), wait_until="load")
            page.wait_for_function(
                """() => Array.from(document.querySelectorAll('video')).every(v => {
                       const r = v.getBoundingClientRect();
                       return r.top > innerHeight || v.readyState >= 2 || v.error;
                   })""",
                timeout=15_000,
            )
            page.wait_for_timeout(1_000)  # the media controls' loading spinners fade out
            png_path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(png_path))
        finally:
            context.close()
    return png_path
