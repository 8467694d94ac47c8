"""Command line: argv -> settings -> the command -> an exit code. Thin on purpose.

``main(argv) -> int`` is what the tests call; ``entrypoint()`` is the console script.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from wanbatch import __version__
from wanbatch.errors import WanbatchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Render large batches of Wan videos. Rerunning any command is safe.",
    )
    parser.add_argument("--version", action="version", version=f"wanbatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = sub.add_parser(
        "validate", help="parse and expand a manifest, print the jobs, seconds and credits"
    )
    validate.add_argument("manifest")

    sub.add_parser("run", help="render every job; running it again resumes")
    sub.add_parser("status", help="each job's state from the journal; sends nothing")
    sub.add_parser("retry", help="resubmit the jobs that failed (costs credits; asks first)")
    sub.add_parser("plan", help="the manifest against the journal, and the cost of the rest")
    sub.add_parser("report", help="write report.html (a gallery) and retry.yaml")
    sub.add_parser("sim", help="serve the built-in Wan API simulator on a port")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help/--version
        return int(exc.code or 0)
    try:
        print(f"wanbatch {args.command}: not built yet", file=sys.stderr)
        return 2
    except WanbatchError as exc:
        print(f"wanbatch: {exc}", file=sys.stderr)
        return exc.exit_code


def entrypoint() -> None:
    sys.exit(main())
