"""The commands, one module each, and the parser built from them.

Each module has ``NAME``, ``HELP`` (one line for the command list), ``DESCRIPTION`` (its
``--help``), ``configure(parser)`` (the flags it takes, and only those) and
``execute(flags, out) -> exit code``. ``build_parser`` makes one subparser per module in
``COMMANDS``; ``cli.py`` turns argv into ``settings.Flags`` and calls ``execute``. Flags are never
abbreviated (``--json`` is not ``--json-logs``): every parser has ``allow_abbrev=False``.
"""

from __future__ import annotations

import argparse
from typing import Protocol, TextIO

from wanbatch import __version__
from wanbatch.commands import (
    completion,
    plan,
    report,
    retry,
    run,
    show,
    status,
    validate,
    verify,
)
from wanbatch.settings import Flags
from wanbatch.stops import EXIT_CODES


class Command(Protocol):
    NAME: str
    HELP: str
    DESCRIPTION: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def execute(self, flags: Flags, out: TextIO) -> int: ...


COMMANDS: tuple[Command, ...] = (
    run,
    retry,
    validate,
    plan,
    status,
    verify,
    show,
    report,
    completion,
)

EPILOG = (
    "exit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ".\nRerunning any command is safe: `wanbatch run` resumes from the journal."
)
# The commands that send nothing end with their own, shorter table (``EXIT_CODES`` is a run's).
READ_EPILOG = (
    "exit codes: 0 done; 2 usage or manifest error, or a journal that cannot be read; 70 a bug."
)
SIM_HELP = "serve the built-in Wan API simulator on a port (`wanbatch sim --help`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch",
        description="Render large batches of Wan videos: resumable, rate-limited, nothing paid twice.",
        epilog=EPILOG,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"wanbatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        one = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.DESCRIPTION,
            epilog=EPILOG
            if command.NAME in ("run", "retry")
            else getattr(command, "EPILOG", READ_EPILOG),
            allow_abbrev=False,
        )
        command.configure(one)
        one.set_defaults(execute=command.execute)
    sub.add_parser("sim", add_help=False, help=SIM_HELP, allow_abbrev=False)
    return parser
