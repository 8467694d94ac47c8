"""Make the README's screenshots from a real run of the main job.

    . .venv/bin/activate && pip install pyte    # a terminal emulator, for the first picture
    python docs/screenshots.py

1. Runs `wanbatch run jobs/campaign.yaml --simulate --output <tmp>` in a pseudo-terminal
   (120 x 30) and feeds everything it writes to `pyte`, a terminal emulator. The screen is kept
   as it stood just before the end, turned into an HTML page (its text and colours, nothing
   added) and photographed with headless chromium: docs/img/progress.png.
2. Photographs the run's own `report.html` (served from its output tree) the same way:
   docs/img/gallery.png, and as a phone shows it (390 x 844): docs/img/gallery-phone.png.

Nothing is staged: the job, the simulator and the output are what the README's first command
runs.
"""

from __future__ import annotations

import html
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import pyte

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import browser_session, screenshot  # noqa: E402

COLUMNS, LINES = 120, 30
OUT = ROOT / "docs" / "img"
PALETTE = {
    "black": "#1e1e1e",
    "red": "#f14c4c",
    "green": "#23d18b",
    "brown": "#e5e510",
    "yellow": "#e5e510",
    "blue": "#3b8eea",
    "magenta": "#d670d6",
    "cyan": "#29b8db",
    "white": "#e5e5e5",
    "default": "#d4d4d4",
}


def run_in_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
    """Run ``argv`` on a pseudo-terminal; every screen it drew (its text, as HTML), in order."""
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    master, slave = os.openpty()
    os.set_blocking(master, False)
    child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    frames: list[tuple[str, str]] = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            stream.feed(data)
            frames.append(("\n".join(screen.display), to_html(screen)))
        elif child.poll() is not None:
            break
    os.close(master)
    return child.wait(), frames


def to_html(screen: pyte.Screen) -> str:
    rows = []
    for y in range(screen.lines):
        line = screen.buffer[y]
        cells = []
        for x in range(screen.columns):
            char = line[x]
            colour = PALETTE.get(char.fg, PALETTE["default"])
            if char.fg.startswith(("#",)) or len(char.fg) == 6:
                colour = "#" + char.fg.lstrip("#")
            style = f"color:{colour}" + (";font-weight:bold" if char.bold else "")
            cells.append(f'<span style="{style}">{html.escape(char.data)}</span>')
        rows.append("".join(cells))
    body = "\n".join(rows)
    return (
        "<!doctype html><meta charset=utf-8><body style='margin:0;background:#1e1e1e'>"
        "<pre style='margin:0;padding:14px;font:14px/1.35 DejaVu Sans Mono,monospace;"
        f"color:#d4d4d4'>{body}</pre>"
    )


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "spring-campaign"
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS)}
        env.pop("NO_COLOR", None)
        argv = [sys.executable, "-m", "wanbatch", "run", "jobs/campaign.yaml", "--simulate"]
        argv += ["--output", str(output)]
        code, frames = run_in_terminal(argv, env)
        print(f"run exited {code}; {len(frames)} screens")
        # The last screen before every job was done, else the middle one.
        running = [html for text, html in frames if "13/13" not in text and "/13" in text]
        chosen = running[-1] if running else frames[len(frames) // 2][1]
        page = Path(folder) / "progress.html"
        page.write_text(chosen)
        with browser_session() as browser:
            screenshot(page, OUT / "progress.png", width=1140, height=480, browser=browser)
            screenshot(
                output / "report.html", OUT / "gallery.png", width=1280, height=900, browser=browser
            )
            screenshot(
                output / "report.html",
                OUT / "gallery-phone.png",
                width=390,
                height=844,
                browser=browser,
            )
    print(f"wrote {OUT / 'progress.png'}, {OUT / 'gallery.png'} and {OUT / 'gallery-phone.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
