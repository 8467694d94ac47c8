"""The flags commands share, each written once, and the argparse types that check their values.

Each command module lists the groups it takes, so ``--help`` shows only flags that do something
for that command. A flag's ``dest`` is the name of its ``settings.Flags`` field.
"""

from __future__ import annotations

import argparse

from wanbatch.settings import PROGRESS_EVERY_SECONDS

# -- value types -------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds from "90", "90s", "30m", "6h" or "1d"; 0 is allowed (it means "never")."""
    number, unit = text.strip(), 1.0
    if number[-1:].lower() in _UNITS:
        number, unit = number[:-1], _UNITS[number[-1].lower()]
    try:
        value = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (90s, 30m, 6h)") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a duration of 0 or more")
    return value


def positive_duration(text: str) -> float:
    """A duration above 0 (a wait of 0 between rounds would go round in a tight loop)."""
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a duration above 0 (e.g. 10m)")
    return value


def price(text: str) -> tuple[str, float]:
    """``MODEL=CREDITS_PER_S`` for --price."""
    model, sep, amount = text.partition("=")
    if not sep or not model.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not MODEL=CREDITS_PER_S (e.g. wan-2-2=10)")
    try:
        value = float(amount)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {amount!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: credits per second must be 0 or more")
    return model.strip(), value


def field_value(text: str) -> tuple[str, str]:
    """``FIELD=VALUE`` for --where."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE (e.g. model=wan-2-2)")
    return name.strip(), value


def column_names(text: str) -> list[str]:
    """``notes,owner`` for --ignore-columns."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one column (e.g. notes,owner)")
    return names


# -- groups ------------------------------------------------------------------------------------


def manifest_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="the manifest: a YAML file or a CSV of prompts")


def job_fields(parser: argparse.ArgumentParser, *, prices: bool = True) -> None:
    """Flags that change what the jobs are: every command that reads the manifest takes them,
    so that it sees the same jobs (and ids) as the run. ``prices``: the command shows or uses
    credits (not status, show, verify)."""
    group = parser.add_argument_group("what the jobs are")
    group.add_argument("--model", help="default model for jobs that name none (bare CSVs)")
    group.add_argument(
        "--duration", type=positive_int, metavar="S", help="default seconds of video"
    )
    group.add_argument("--aspect-ratio", metavar="W:H", help="default aspect ratio")
    group.add_argument("--output", metavar="DIR", help="output folder (manifest: output.dir)")
    if prices:
        group.add_argument(
            "--price",
            dest="prices",
            type=price,
            action="append",
            metavar="MODEL=CREDITS_PER_S",
            help="price of a model, for estimates and --max-credits (repeatable; adds to or"
            " overrides the manifest's pricing)",
        )
    group.add_argument(
        "--ignore-columns",
        type=column_names,
        action="extend",
        metavar="NAMES",
        help="CSV columns to leave out of the jobs, comma-separated (e.g. notes,owner)",
    )


def salvage(parser: argparse.ArgumentParser) -> None:
    """``run`` only: ``retry`` reads the journal before it could repair it."""
    parser.add_argument(
        "--salvage-journal",
        action="store_true",
        help="repair a damaged journal first: keep every record that still makes sense, keep the"
        " damaged file aside, take task ids from the sidecars, and list what was lost",
    )


def subsets(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("which jobs")
    group.add_argument(
        "--only",
        action="append",
        metavar="ID_OR_GLOB",
        help="only the jobs whose id matches (e.g. forest-*; repeatable)",
    )
    group.add_argument(
        "--where",
        type=field_value,
        action="append",
        metavar="FIELD=VALUE",
        help="only the jobs whose field has this value (e.g. model=wan-2-2; repeatable: all hold)",
    )


def as_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help=what)


def console(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("console")
    group.add_argument("--json-logs", action="store_true", help="log JSON lines to the console too")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more console detail")
    group.add_argument("-q", "--quiet", action="store_true", help="only errors and the summary")
    group.add_argument(
        "--progress-every",
        type=positive_float,
        metavar="S",
        help="when output is not a terminal (or --json-logs): a progress line every S seconds"
        f" (default {PROGRESS_EVERY_SECONDS:g})",
    )


def run_flags(parser: argparse.ArgumentParser) -> None:
    """What ``run`` and ``retry`` take: where to send, how fast, what a run may do."""
    api = parser.add_argument_group("the API")
    api.add_argument(
        "--simulate", action="store_true", help="use the built-in simulator: no key, no network"
    )
    api.add_argument("--base-url", metavar="URL", help="API base URL (env WAN_API_BASE_URL)")
    api.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow the key over plain http:// to a non-loopback host",
    )
    pace = parser.add_argument_group("pace")
    pace.add_argument(
        "--concurrency", type=positive_int, metavar="N", help="tasks in flight at most"
    )
    pace.add_argument(
        "--rps",
        dest="requests_per_second",
        type=positive_float,
        metavar="X",
        help="API requests per second at most",
    )
    pace.add_argument(
        "--poll-interval",
        type=positive_float,
        metavar="S",
        help="poll each task every S seconds (default: planned from the render times seen)",
    )
    pace.add_argument(
        "--job-deadline",
        type=positive_float,
        metavar="S",
        help="a job not rendered S seconds after submission is stalled",
    )
    guard = parser.add_argument_group("cost and changes")
    guard.add_argument(
        "--max-videos",
        type=positive_int,
        metavar="N",
        help="cost guard: create at most N new tasks this run, then finish what is in flight",
    )
    guard.add_argument(
        "--max-credits",
        type=positive_float,
        metavar="X",
        help="cost guard: submit at most X estimated credits this run (needs prices: the"
        " manifest's `pricing` or --price)",
    )
    guard.add_argument("--yes", action="store_true", help="do not ask before submitting")
    guard.add_argument(
        "--resubmit-changed",
        action="store_true",
        help="render jobs edited since they were submitted anew (costs credits)",
    )
    guard.add_argument(
        "--keep-changed", action="store_true", help="keep what edited jobs already rendered"
    )
    guard.add_argument(
        "--resend-unknown",
        action="store_true",
        help="on a provider without idempotency keys (dashscope, fal, replicate...): send"
        " again a create whose answer was lost even when wanbatch could not settle whether it"
        " made a task (the provider lists no tasks, or its list cannot tell). Each such job may"
        " be paid twice: look in the provider's console first",
    )
    night = parser.add_argument_group("long runs")
    night.add_argument(
        "--max-outage",
        type=duration,
        metavar="DURATION",
        help="give up when the API or video host has been unreachable this long (e.g. 90s, 30m,"
        " 6h; default 6h; 0 = never): meanwhile one probe at a time, no retries spent",
    )
    night.add_argument(
        "--until-done",
        action="store_true",
        help="do not stop on what time can cure (an outage past --max-outage, retries used up,"
        " stalled jobs): wait and resume again, until every job is done or failed for good,"
        " a cost cap is reached, the key is rejected or Ctrl-C",
    )
    night.add_argument(
        "--wait-credits",
        type=positive_duration,
        metavar="DURATION",
        help="when credits run out (402), wait this long and resume, again and again, instead"
        " of ending with exit 4 (top up meanwhile)",
    )
    results = parser.add_argument_group("results")
    results.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="print the run's summary as JSON on stdout (the progress view stays on stderr)",
    )
    results.add_argument(
        "--summary-json",
        metavar="FILE",
        help="also write the run's summary as JSON to FILE",
    )
    results.add_argument(
        "--on-finish",
        metavar="CMD",
        help="run CMD (through the shell) when the run ends, with the summary JSON on its stdin",
    )
    notices = parser.add_argument_group("webhook notices")
    notices.add_argument(
        "--notify-url",
        metavar="PUBLIC_URL",
        help="the provider calls this URL when a task ends, and that task is polled at once"
        " (needs --listen; polls go on as a slower fallback)",
    )
    notices.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where the notice receiver listens (what --notify-url reaches, e.g. 0.0.0.0:8080)",
    )
    notices.add_argument(
        "--notify-secret-env",
        metavar="NAME",
        help="the environment variable holding the notices' signing secret (Replicate:"
        " whsec_...); signed notices that do not verify are refused",
    )
