"""Command line: argv -> options -> the command -> an exit code. Thin on purpose.

``main(argv) -> int`` is what the tests call; ``entrypoint()`` is the console script. Every
wanbatch error is printed as one clear message (no traceback) and mapped to its exit code; an
exception group (from a task group) is unwrapped first, and the most severe of its errors is
reported. Anything else is a bug: one line names it and the file that holds its traceback, and
the exit code is ``INTERNAL_ERROR``. ``main`` guards stdout and stderr, so a reader who leaves
early (``| head``) or a terminal that closes stops nothing (``logs.guarded_console``).

Over 400 lines: the parser of every command, with each flag's help, is here until the command
layer is split into a module per command (an open issue).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from wanbatch import __version__, app, logs
from wanbatch.errors import JournalError, WanbatchError
from wanbatch.models import Manifest
from wanbatch.stops import EXIT_CODES, INTERNAL_ERROR, severity

EPILOG = (
    "exit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ".\nRerunning any command is safe: `wanbatch run` resumes from the journal."
)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--base-url", metavar="URL", help="API base URL (env WAN_API_BASE_URL)")
    group.add_argument("--output", metavar="DIR", help="output folder (manifest: output.dir)")
    group.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="tasks in flight at most"
    )
    group.add_argument(
        "--rps", type=_positive_float, metavar="X", help="API requests per second at most"
    )
    group.add_argument("--model", help="default model for jobs that name none (bare CSVs)")
    group.add_argument(
        "--duration", type=_positive_int, metavar="S", help="default seconds of video"
    )
    group.add_argument("--aspect-ratio", metavar="W:H", help="default aspect ratio")
    group.add_argument("--json-logs", action="store_true", help="log JSON lines to the console too")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more console detail")
    group.add_argument("-q", "--quiet", action="store_true", help="only errors and the summary")
    return common


def _run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run options")
    group.add_argument(
        "--simulate", action="store_true", help="use the built-in simulator: no key, no network"
    )
    group.add_argument(
        "--resubmit-changed",
        action="store_true",
        help="render jobs edited since they were submitted anew (costs credits)",
    )
    group.add_argument(
        "--keep-changed", action="store_true", help="keep what edited jobs already rendered"
    )
    group.add_argument(
        "--poll-interval",
        type=_positive_float,
        metavar="S",
        help="poll each task every S seconds (default: planned from the render times seen)",
    )
    group.add_argument(
        "--job-deadline",
        type=_positive_float,
        metavar="S",
        help="a job not rendered S seconds after submission is stalled",
    )
    group.add_argument(
        "--max-videos",
        type=_positive_int,
        metavar="N",
        help="cost guard: create at most N new tasks this run, then finish what is in flight",
    )
    group.add_argument(
        "--max-credits",
        type=_positive_float,
        metavar="X",
        help="cost guard: submit at most X estimated credits this run (needs `pricing`)",
    )
    group.add_argument(
        "--progress-every",
        type=_positive_float,
        metavar="S",
        default=30.0,
        help="when output is not a terminal (or --json-logs): a progress line every S seconds",
    )
    group.add_argument(
        "--max-outage",
        type=_duration,
        metavar="DURATION",
        help="give up when the API or video host has been unreachable this long (e.g. 90s, 30m,"
        " 6h; default 6h; 0 = never): meanwhile one probe at a time, no retries spent",
    )
    group.add_argument(
        "--until-done",
        action="store_true",
        help="do not stop on what time can cure (an outage past --max-outage, retries used up,"
        " stalled jobs): wait and resume again, until every job is done or failed for good,"
        " a cost cap is reached, the key is rejected or Ctrl-C",
    )
    group.add_argument(
        "--wait-credits",
        type=_positive_duration,
        metavar="DURATION",
        help="when credits run out (402), wait this long and resume, again and again, instead"
        " of ending with exit 4 (top up meanwhile)",
    )
    group.add_argument(
        "--resend-unknown",
        action="store_true",
        help="on a provider without idempotency keys (dashscope, fal, replicate...): send"
        " again a create whose answer was lost even when wanbatch could not settle whether it"
        " made a task (the provider lists no tasks, or its list cannot tell). Each such job may"
        " be paid twice: look in the provider's console first",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow the key over plain http:// to a non-loopback host",
    )
    group.add_argument(
        "--notify-url",
        metavar="PUBLIC_URL",
        help="webhook notices: the provider calls this URL when a task ends, and that task is"
        " polled at once (needs --listen; polls go on as a slower fallback)",
    )
    group.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where the notice receiver listens (what --notify-url reaches, e.g. 0.0.0.0:8080)",
    )
    group.add_argument(
        "--notify-secret-env",
        metavar="NAME",
        help="the environment variable holding the notices' signing secret (Replicate:"
        " whsec_...); signed notices that do not verify are refused",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Render large batches of Wan videos: resumable, rate-limited, nothing paid twice.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"wanbatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common()

    run = sub.add_parser("run", parents=[common], help="render every job; running it again resumes")
    run.add_argument("manifest")
    _run_flags(run)
    run.add_argument(
        "--salvage-journal",
        action="store_true",
        help="repair a damaged journal first: keep every record that still makes sense, keep the"
        " damaged file aside, take task ids from the sidecars, and list what was lost",
    )

    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check a manifest and print its jobs, seconds and credits; sends nothing",
    )
    validate.add_argument("manifest")
    validate.add_argument("--json", action="store_true", help="print the plan as JSON")
    validate.add_argument("--list", action="store_true", help="print every expanded job")

    status = sub.add_parser(
        "status", parents=[common], help="each job's state from the journal; sends nothing"
    )
    status.add_argument("manifest")
    status.add_argument("--json", action="store_true", help="print JSON")

    retry = sub.add_parser(
        "retry", parents=[common], help="resubmit the jobs that failed (costs credits; asks first)"
    )
    retry.add_argument("manifest")
    retry.add_argument("--yes", action="store_true", help="do not ask")
    retry.add_argument(
        "--include-lost",
        action="store_true",
        help="also resubmit tasks the server lost (404 for minutes); each is paid again",
    )
    _run_flags(retry)

    plan = sub.add_parser(
        "plan",
        parents=[common],
        help="the manifest against the journal: new, changed, done, failed, in flight, "
        "and the cost of the rest; sends nothing",
    )
    plan.add_argument("manifest")
    plan.add_argument("--json", action="store_true", help="print JSON")
    report = sub.add_parser(
        "report",
        parents=[common],
        help="write report.html (a gallery of the results) and retry.yaml into the output tree;"
        " sends nothing",
    )
    report.add_argument("manifest")

    sub.add_parser(
        "sim",
        add_help=False,
        help="serve the built-in Wan API simulator on a port (`wanbatch sim --help`)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # `wanbatch run ... 2>&1 | head`: once the reader leaves, console output is dropped; the
    # run goes on and exits with its own code.
    with logs.guarded_console():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sim"]:
        from wanbatch.simulator.cli import main as sim_main

        try:
            return sim_main(arguments[1:])
        except SystemExit as exc:  # its argparse: --help, or a usage error
            return int(exc.code or 0)
        except (OSError, OverflowError) as exc:  # the port is taken, not ours, or past 65535
            print(f"wanbatch sim: {exc}", file=sys.stderr)
            return 2
        except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
            return _report_error(exc)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help/--version
        return int(exc.code or 0)
    logs.forget_log()
    try:
        return _dispatch(args)
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
        return _report_error(exc)


def _leaves(error: BaseException) -> list[BaseException]:
    """The errors an exception group holds, however deeply nested; [error] for a plain one."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _report_error(error: BaseException) -> int:
    """One clear line (or message) for an error that reached the top, and its exit code."""
    leaves = _leaves(error)
    unexpected = [e for e in leaves if not isinstance(e, WanbatchError | KeyboardInterrupt)]
    if unexpected:
        where = logs.record_crash(error)
        first = unexpected[0]
        text = " ".join(str(first).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        place = f"the traceback is in {where}" if where else "the traceback could not be written"
        print(
            f"wanbatch: internal error (a bug in wanbatch): {type(first).__name__}: {text}"
            f" ({place})",
            file=sys.stderr,
        )
        return INTERNAL_ERROR
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        print("wanbatch: interrupted", file=sys.stderr)
        return 130
    ours = [e for e in leaves if isinstance(e, WanbatchError)]
    worst = max(ours, key=lambda e: severity(e.exit_code, journal=isinstance(e, JournalError)))
    print(f"wanbatch: {worst}", file=sys.stderr)
    return worst.exit_code


def _dispatch(args: argparse.Namespace) -> int:
    options = app.CommonOptions(
        manifest=args.manifest,
        base_url=args.base_url,
        output=args.output,
        concurrency=args.concurrency,
        requests_per_second=args.rps,
        model=args.model,
        duration=args.duration,
        aspect_ratio=args.aspect_ratio,
        json_logs=args.json_logs,
        verbosity=-1 if args.quiet else args.verbose,
    )
    if args.command == "validate":
        return _validate(options, as_json=args.json, listing=args.list)
    if args.command == "status":
        return app.status(options, as_json=args.json)
    if args.command == "plan":
        return app.plan(options, as_json=args.json)
    if args.command in ("run", "retry"):
        flags = app.RunFlags(
            simulate=args.simulate,
            allow_insecure_http=args.allow_insecure_http,
            resubmit_changed=args.resubmit_changed,
            keep_changed=args.keep_changed,
            yes=getattr(args, "yes", False),
            poll_interval=args.poll_interval,
            job_deadline=args.job_deadline,
            max_videos=args.max_videos,
            max_credits=args.max_credits,
            progress_every=args.progress_every,
            salvage_journal=getattr(args, "salvage_journal", False),
            include_lost=getattr(args, "include_lost", False),
            max_outage=args.max_outage,
            until_done=args.until_done,
            wait_credits=args.wait_credits,
            resend_unknown=args.resend_unknown,
            notify_url=args.notify_url,
            listen=args.listen,
            notify_secret_env=args.notify_secret_env,
        )
        if args.command == "run":
            return app.run(options, flags)
        return app.retry(options, flags)
    if args.command == "report":
        return app.report(options)
    raise AssertionError(f"unhandled command {args.command}")


def _validate(options: app.CommonOptions, *, as_json: bool, listing: bool) -> int:
    manifest = app.load(options)
    plan = describe(manifest)
    if as_json:
        if listing:
            plan["jobs"] = [
                {"id": job.id, **job.fields(), "output_path": job.output_path, "source": job.source}
                for job in manifest.jobs
            ]
        print(json.dumps(plan, indent=2))
        return 0
    print(
        f"{manifest.path}: {plan['jobs_count']} jobs, {plan['seconds']} s of video -> {plan['output_dir']}"
    )
    groups: dict[tuple[str, str], list[int]] = {}  # (model, ratio) -> [jobs, seconds]
    for job in manifest.jobs:  # one pass (a pass per group took 0.6 s of 100,000 jobs)
        group = groups.setdefault((job.model, job.aspect_ratio), [0, 0])
        group[0] += 1
        group[1] += job.duration
    for (model, ratio), (count, seconds) in sorted(groups.items()):
        print(f"  {model:<10} {ratio:>6}  {count:>5} jobs  {seconds:>7} s")
    if plan["credits"] is not None:
        print(f"  estimated credits: {plan['credits']:g}")
    else:
        print("  estimated credits: unknown (add `pricing:` to the manifest)")
    if listing:
        width = max(len(job.id) for job in manifest.jobs)
        for job in manifest.jobs:
            prompt = job.prompt if len(job.prompt) <= 50 else job.prompt[:47] + "..."
            print(
                f"  {job.id:<{width}}  {job.model:<8} {job.duration:>3}s {job.aspect_ratio:>6}  {job.output_path}  {prompt}"
            )
    return 0


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: str) -> float:
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


def _positive_duration(text: str) -> float:
    """A duration above 0 (a wait of 0 between rounds would go round in a tight loop)."""
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a duration above 0 (e.g. 10m)")
    return value


def entrypoint() -> None:
    sys.exit(main())
