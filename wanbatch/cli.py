"""Command line: argv -> ``settings.Flags`` -> the command's ``execute`` -> an exit code.

It only parses (the parser is built from the commands: ``commands.build_parser``) and
dispatches; each command lives in ``wanbatch/commands/``. ``main(argv) ->
int`` is what the tests call; ``entrypoint()`` is the console script. Every wanbatch error is
printed as one clear message (no traceback) and mapped to its exit code; an exception group
(from a task group) is unwrapped first, and the most severe of its errors is reported. Anything
else is a bug: one line names it and the file that holds its traceback, and the exit code is
``INTERNAL_ERROR``. ``main`` guards stdout and stderr, so a reader who leaves early (``| head``)
or a terminal that closes stops nothing (``logs.guarded_console``).

Flags are never abbreviated (``--json`` is not ``--json-logs``): every parser has
``allow_abbrev=False``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from collections.abc import Sequence
from typing import Any

from wanbatch import logs
from wanbatch.commands import build_parser
from wanbatch.errors import ExitCode, JournalError, WanbatchError
from wanbatch.settings import Flags
from wanbatch.stops import INTERNAL_ERROR, severity


def main(argv: Sequence[str] | None = None) -> int:
    # `wanbatch run ... 2>&1 | head`: once the reader leaves, console output is dropped; the
    # run goes on and exits with its own code.
    with logs.guarded_console():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sim"]:
        return _sim(arguments[1:])
    parser = build_parser()
    if not arguments:  # `wanbatch` alone: the whole help, and the usage-error code
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        args, extras = parser.parse_known_args(arguments)
        if extras:  # said by the command's own parser, with a near flag if there is one
            _unknown(parser, args, extras)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help/--version
        return int(exc.code or 0)
    logs.forget_log()
    try:
        return int(args.execute(flags_from(args), sys.stdout))
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
        return _report_error(exc)


def _unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """Exit 2 naming the arguments the command does not take, in its own usage line, with
    "did you mean" for a flag close to one it has."""
    command = parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            command = action.choices.get(getattr(args, "command", None) or "", parser)
    known = [flag for action in command._actions for flag in action.option_strings]
    message = f"unrecognized arguments: {' '.join(extras)}"
    for extra in extras:
        near = difflib.get_close_matches(extra.partition("=")[0], known, n=1, cutoff=0.75)
        if extra.startswith("-") and near:
            message += f" (did you mean {near[0]}?)"
            break
    command.error(message)


def flags_from(args: argparse.Namespace) -> Flags:
    """The parsed namespace as ``Flags``: each flag's ``dest`` is the name of its field."""
    given: dict[str, Any] = {}
    for field in dataclasses.fields(Flags):
        if not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        given[field.name] = tuple(value) if isinstance(value, list) else value
    if getattr(args, "quiet", False):
        given["verbosity"] = -1
    elif hasattr(args, "verbose"):
        given["verbosity"] = args.verbose
    return Flags(**{name: value for name, value in given.items() if value is not None})


def _sim(arguments: list[str]) -> int:
    from wanbatch.simulator.cli import main as sim_main

    try:
        return sim_main(arguments)
    except SystemExit as exc:  # its argparse: --help, or a usage error
        return int(exc.code or 0)
    except (OSError, OverflowError) as exc:  # the port is taken, not ours, or past 65535
        print(f"wanbatch sim: {exc}", file=sys.stderr)
        return ExitCode.USAGE
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
        return ExitCode.INTERRUPTED
    ours = [e for e in leaves if isinstance(e, WanbatchError)]
    worst = max(ours, key=lambda e: severity(e.exit_code, journal=isinstance(e, JournalError)))
    print(f"wanbatch: {worst}", file=sys.stderr)
    return worst.exit_code


def entrypoint() -> None:
    sys.exit(main())
