"""``wanbatch validate``: check a manifest and print its jobs, seconds and credits; sends nothing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from wanbatch import words
from wanbatch.commands import options
from wanbatch.commands.loading import chosen, load
from wanbatch.errors import ManifestError
from wanbatch.models import Manifest
from wanbatch.settings import Flags

NAME = "validate"
HELP = "check a manifest and print its jobs, seconds and credits; sends nothing"
DESCRIPTION = (
    "Check a manifest (YAML or CSV) without sending anything: every problem is listed with its"
    " file, line and key. Then the jobs it expands to, their seconds of video and the credits"
    " they would cost (with prices)."
)


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    options.as_json(parser, "print the plan (or the problems) as JSON")
    parser.add_argument("--list", dest="listing", action="store_true", help="print every job")
    options.job_fields(parser)
    options.subsets(parser)


def execute(flags: Flags, out: TextIO) -> int:
    listing = flags.listing
    try:
        manifest = chosen(load(flags), flags)
    except ManifestError as exc:
        if flags.as_json:
            print(json.dumps(problems_record(exc), indent=2, ensure_ascii=False), file=out)
        else:  # `file:line: key: message` from the first column, as compilers print (for editors)
            said = words.count(len(exc.problems), "problem")
            lines = [str(problem) for problem in exc.problems]
            print("\n".join([*lines, f"wanbatch: {said} in {flags.manifest}"]), file=sys.stderr)
        return exc.exit_code
    plan = describe(manifest)
    if flags.as_json:
        if listing:
            plan["jobs"] = [
                {"id": job.id, **job.fields(), "output_path": job.output_path, "source": job.source}
                for job in manifest.jobs
            ]
        print(json.dumps({"ok": True, **plan}, indent=2), file=out)
        return 0
    print(
        f"{manifest.path}: {words.count(plan['jobs_count'], 'job')}, {plan['seconds']} s of video"
        f" -> {plan['output_dir']}",
        file=out,
    )
    groups: dict[tuple[str, str], list[int]] = {}  # (model, ratio) -> [jobs, seconds]
    for job in manifest.jobs:  # one pass (a pass per group took 0.6 s of 100,000 jobs)
        group = groups.setdefault((job.model, job.aspect_ratio), [0, 0])
        group[0] += 1
        group[1] += job.duration
    for (model, ratio), (count, seconds) in sorted(groups.items()):
        print(
            f"  {model:<10} {ratio:>6}  {words.count(count, 'job'):>10}  {seconds:>7} s", file=out
        )
    if plan["credits"] is not None:
        print(f"  estimated credits: {plan['credits']:g}", file=out)
    else:
        print(
            "  estimated credits: unknown (add `pricing:` to the manifest, or pass --price"
            " MODEL=CREDITS_PER_S)",
            file=out,
        )
    if listing:
        out.write("\n".join(list_lines(manifest)) + "\n")
    return 0


# ``validate --json``: on a good manifest these keys, in this order (``--list`` adds ``jobs``);
# on a bad one ``{"ok": false, "problems": [...]}``, each problem with ``PROBLEM_KEYS`` (``line``
# a number, null when no line is known; ``key`` "" for the file itself). Exit 2 then.
VALIDATE_KEYS = (
    "ok",
    "manifest",
    "name",
    "jobs_count",
    "seconds",
    "by_model_and_aspect_ratio",
    "credits",
    "output_dir",
)
PROBLEM_KEYS = ("file", "line", "key", "message")
LIST_COLUMNS = ("id", "model", "seconds", "ratio", "output", "prompt")
PROMPT_WIDTH = 50


def list_lines(manifest: Manifest) -> list[str]:
    """``validate --list``: a header, then one aligned row a job (long prompts cut)."""
    rows = [LIST_COLUMNS] + [
        (
            job.id,
            job.model,
            str(job.duration),
            job.aspect_ratio,
            job.output_path,
            job.prompt
            if len(job.prompt) <= PROMPT_WIDTH
            else job.prompt[: PROMPT_WIDTH - 3] + "...",
        )
        for job in manifest.jobs
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(LIST_COLUMNS) - 1)]
    right = {2}  # seconds: numbers line up on the right
    return [
        "  "
        + "  ".join(
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=False))
        )
        + "  "
        + row[-1]
        for row in rows
    ]


def problems_record(error: ManifestError) -> dict[str, Any]:
    """``validate --json`` on a manifest with problems: ``{"ok": false, "problems": [...]}``,
    each problem with ``file``, ``line`` (a number, or null when none is known), ``key`` (""
    for the file itself) and ``message``."""
    return {
        "ok": False,
        "problems": [
            {
                "file": problem.file,
                "line": int(problem.location) if problem.location.isdigit() else None,
                "key": problem.key,
                "message": problem.message,
            }
            for problem in error.problems
        ],
    }


def describe(manifest: Manifest) -> dict[str, Any]:
    """The plan `validate` prints: counts, seconds, breakdown and the credits estimate."""
    breakdown: dict[str, dict[str, int]] = {}
    for job in manifest.jobs:
        entry = breakdown.setdefault(f"{job.model} {job.aspect_ratio}", {"jobs": 0, "seconds": 0})
        entry["jobs"] += 1
        entry["seconds"] += job.duration
    return {
        "manifest": str(manifest.path),
        "name": manifest.name,
        "jobs_count": len(manifest.jobs),
        "seconds": manifest.total_seconds,
        "by_model_and_aspect_ratio": breakdown,
        "credits": manifest.estimate_credits(),
        "output_dir": str(manifest.output_dir),
    }
