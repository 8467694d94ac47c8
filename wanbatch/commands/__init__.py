"""The commands, one module each.

Each module has ``NAME``, ``HELP`` (one line for the command list), ``DESCRIPTION`` (its
``--help``), ``configure(parser)`` (the flags it takes, and only those) and
``execute(flags, out) -> exit code``. ``cli.py`` builds the parser from ``COMMANDS``, turns
argv into ``settings.Flags`` and calls ``execute``.
"""

from __future__ import annotations

import argparse
from typing import Protocol, TextIO

from wanbatch.commands import plan, report, retry, run, status, validate
from wanbatch.settings import Flags


class Command(Protocol):
    NAME: str
    HELP: str
    DESCRIPTION: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def execute(self, flags: Flags, out: TextIO) -> int: ...


COMMANDS: tuple[Command, ...] = (run, retry, validate, plan, status, report)
