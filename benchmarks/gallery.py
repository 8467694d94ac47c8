"""The gallery of a large run (issue 15, item 4): page bytes, writing time and first paint.

For N jobs (10,000 and 100,000 by default; ``--sizes 1000000`` for a million, "after" only: the
"before" page would be about 0.9 GB) a manifest of N jobs with prompts of about 120 characters
and a journal's worth of records (4 % failed with a reason, 2 % rendering, 2 % new, the rest
downloaded, with task ids and times) are made once under /tmp. Then, alternating "before" and
"after" for ``--rounds`` rounds:

1. the gallery is written by the package (``wanbatch.gallery``) in a fresh process: seconds of
   ``gallery_lines`` / ``gallery_files`` to disk (the manifest load and records excluded), the
   process's peak RSS, and the bytes of report.html (and report.data.js);
2. headless Chromium (the system ``/usr/bin/chromium`` through Playwright, as the tests) opens
   report.html as a file (file://, as a user would) in a fresh context and reports, in ms from
   the navigation's start: first contentful paint, largest contentful paint (the first screen's
   cards), "filters ready" (for "after": the data file is in and the selects are on; for
   "before": DOMContentLoaded, when the script at the end of its body has run) and the load
   event; then the time from choosing "failed" in the state filter to the next frame,
   with the count of jobs it shows; and the JS heap in use. Each milestone is waited for up to
   ``--cap`` seconds (a row says "> cap" where it did not come).

"before" is the package at ``BEFORE_COMMIT`` (the start of this branch), extracted with
``git archive`` to /tmp and imported from there. No video file exists: every card of a
downloaded job names its video, but with this many no video is fetched up front.

    python benchmarks/gallery.py                       # 10,000 and 100,000, 3 rounds
    python benchmarks/gallery.py --sizes 1000000 --rounds 1 --only after
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import PYTHON, ROOT, save, table
from playwright.sync_api import TimeoutError as PlaywrightTimeout

sys.path.insert(0, str(ROOT / "tests"))
import browser  # tests/browser.py: the system Chromium, launched as the tests do

BEFORE_COMMIT = "f02e753"  # the start of the gallery branch of issue 15
BEFORE_TREE = Path("/tmp/wanbatch-gallery-before")
WORK = Path("/tmp/wanbatch-gallery-bench")

WRITE = r"""
import json, sys, time
from pathlib import Path
from wanbatch.manifest import load_manifest
from wanbatch.models import JobRecord, JobState
import wanbatch.gallery as gallery

manifest = load_manifest(sys.argv[1])
out = Path(sys.argv[2])
T = 1_767_000_000.0
records = {}
for i, spec in enumerate(manifest.jobs):
    k = i % 100
    if 6 <= k < 8:
        continue  # new: no record
    at = T + i * 0.01
    fields = dict(job_id=spec.id, task_id=f"task-{i:08d}-{(i * 7919) % 100000:05d}",
                  submitted_at=at)
    if k < 4:
        fields.update(state=JobState.FAILED, finished_at=at + 40.0, code="content_policy",
                      reason=f"The prompt of job {i} was flagged by the content policy.")
    elif k < 6:
        fields.update(state=JobState.RUNNING)
    else:
        fields.update(state=JobState.DOWNLOADED, finished_at=at + 61.5, path=spec.output_path,
                      size=2_500_000 + i, sha256="ab" * 32, downloaded_at=at + 64.0)
    records[spec.id] = JobRecord(**fields)
out.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()
if hasattr(gallery, "gallery_files"):
    files = gallery.gallery_files(manifest, records, generated_at=T, rendered={})
    if files.data is not None:
        with open(out / gallery.DATA_NAME, "w", encoding="utf-8") as handle:
            handle.writelines(files.data)
    with open(out / "report.html", "w", encoding="utf-8") as handle:
        handle.writelines(files.page)
else:
    with open(out / "report.html", "w", encoding="utf-8") as handle:
        handle.writelines(gallery.gallery_lines(manifest, records, generated_at=T, rendered={}))
seconds = time.perf_counter() - started
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024}))
"""

OPEN_JS = """async () => {
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const largest = await new Promise(done => {
    new PerformanceObserver(list => done(list.getEntries().at(-1).startTime))
      .observe({type: 'largest-contentful-paint', buffered: true});
    setTimeout(() => done(null), 2000);
  });
  return {fcp: paint ? paint.startTime : null, lcp: largest};
}"""

FILTER_JS = """async () => {
  const select = document.getElementById('filter-state');
  const started = performance.now();
  select.value = 'failed';
  select.dispatchEvent(new Event('change'));
  await new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)));
  return {ms: performance.now() - started,
          shown: document.getElementById('shown-count').textContent,
          heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null};
}"""


def before_tree() -> Path:
    if not (BEFORE_TREE / "wanbatch" / "gallery.py").is_file():
        BEFORE_TREE.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BEFORE_COMMIT, "wanbatch"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(BEFORE_TREE)], input=archive, check=True)
    return BEFORE_TREE


def write_manifest(jobs: int) -> Path:
    folder = WORK / f"m{jobs}"
    path = folder / "gallery.yaml"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["id,prompt"] + [
        f'j{i:07d},"a slow dolly shot number {i} across a quiet harbour at dawn: fishing boats,'
        ' gulls over the water and soft film grain"'
        for i in range(jobs)
    ]
    (folder / "jobs.csv").write_text("\n".join(rows) + "\n")
    path.write_text(
        "name: gallery-bench\npricing: {wan-2-2: 10}\noutput: {dir: out, path: '{id}.mp4'}\n"
        "jobs_from: jobs.csv\n"
    )
    return path


def write_gallery(version: str, manifest: Path, out: Path) -> dict[str, Any]:
    """Write the gallery with ``version``'s package in a fresh process."""
    # "before" runs from its tree, whose wanbatch/ is then the first on sys.path.
    cwd = before_tree() if version == "before" else ROOT
    done = subprocess.run(
        [PYTHON, "-c", WRITE, str(manifest), str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{version}: writing the gallery failed:\n{done.stderr}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["page_mb"] = (out / "report.html").stat().st_size / 1e6
    data = out / "report.data.js"
    found["data_mb"] = data.stat().st_size / 1e6 if data.is_file() else 0.0
    return found


def open_gallery(chromium: Any, page: Path, version: str, cap: float) -> dict[str, Any]:
    """Open ``page`` from disk; what is not there within ``cap`` seconds is None ("> cap")."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        tab.set_default_timeout(cap * 1000)
        tab.goto(page.as_uri(), wait_until="commit")
        tab.wait_for_function("performance.getEntriesByName('first-contentful-paint').length")
        seen: dict[str, Any] = tab.evaluate(OPEN_JS)
        seen.update(ready=None, load=None, ms=None, shown=None, heap_mb=None)
        try:
            tab.wait_for_load_state("domcontentloaded")
            if version == "after":  # the data file is in: the filters are on
                tab.wait_for_function(
                    "!document.getElementById('filter-state').disabled", polling="raf"
                )
                seen["ready"] = tab.evaluate("performance.now()")
            else:  # the page's script, at the end of its body, has run
                seen["ready"] = tab.evaluate(
                    "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
                )
        except PlaywrightTimeout:
            return seen
        seen.update(tab.evaluate(FILTER_JS))
        try:
            tab.wait_for_load_state("load")
            seen["load"] = tab.evaluate(
                "performance.getEntriesByType('navigation')[0].loadEventEnd"
            )
        except PlaywrightTimeout:
            pass
        return seen
    finally:
        context.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["before", "after"], default=None)
    parser.add_argument(
        "--cap", type=float, default=120.0, help="seconds to wait for each browser milestone"
    )
    args = parser.parse_args(argv)
    versions = [args.only] if args.only else ["before", "after"]
    rows: list[dict[str, Any]] = []
    with browser.browser_session(("--enable-precise-memory-info",)) as chromium:
        for jobs in args.sizes:
            manifest = write_manifest(jobs)
            for round_ in range(args.rounds):
                order = versions if round_ % 2 == 0 else versions[::-1]
                for version in order:
                    out = WORK / f"{version}-{jobs}"
                    row: dict[str, Any] = {"version": version, "jobs": jobs, "round": round_}
                    row.update(write_gallery(version, manifest, out))
                    row.update(open_gallery(chromium, out / "report.html", version, args.cap))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    summary = summarise(rows)
    print(
        table(
            summary,
            [
                "version",
                "jobs",
                "page MB",
                "data MB",
                "write s",
                "write peak RSS MB",
                "first paint ms (median / worst)",
                "largest paint ms",
                "load ms",
                "filters ready ms",
                "filter 'failed' ms",
                "JS heap MB",
            ],
        )
    )
    save("gallery", False, rows, summary=summary, when=time.strftime("%H:%M UTC", time.gmtime()))


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in dict.fromkeys((row["version"], row["jobs"]) for row in rows):
        group = [row for row in rows if (row["version"], row["jobs"]) == key]

        def mw(name: str, digits: int = 0, rows: list[dict[str, Any]] = group) -> str:
            values = [row[name] for row in rows if row.get(name) is not None]
            if not values:
                return "-"
            return f"{statistics.median(values):,.{digits}f} / {max(values):,.{digits}f}"

        def capped(name: str, rows: list[dict[str, Any]] = group) -> str:
            missed = sum(1 for row in rows if row.get(name) is None)
            return mw(name) if not missed else f"> cap in {missed} of {len(rows)}"

        out.append(
            {
                "version": key[0],
                "jobs": f"{key[1]:,}",
                "page MB": f"{group[0]['page_mb']:.2f}",
                "data MB": f"{group[0]['data_mb']:.1f}",
                "write s": mw("seconds", 2),
                "write peak RSS MB": mw("peak_rss_mb"),
                "first paint ms (median / worst)": mw("fcp"),
                "largest paint ms": mw("lcp"),
                "load ms": capped("load"),
                "filters ready ms": capped("ready"),
                "filter 'failed' ms": capped("ms"),
                "JS heap MB": mw("heap_mb"),
            }
        )
    return out


if __name__ == "__main__":
    main()
