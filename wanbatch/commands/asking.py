"""Asking before credits are spent: ``retry`` always asks, ``run`` asks on a terminal when what
it would submit is large (above ``settings.Settings.confirm_credits``, or, without prices,
``confirm_videos``). ``--yes`` skips the question; ``--simulate`` spends nothing and never asks.
"""

from __future__ import annotations

import sys

from wanbatch.errors import UsageError

NOT_ASKED = "standard input is not a terminal, so nothing was asked"


def on_terminal() -> bool:
    return bool(sys.stdin) and sys.stdin.isatty()


def confirm(question: str, *, what: str) -> bool:
    """True when the user answers yes. Off a terminal no question can be asked: a usage error
    that says to pass --yes. Answered no: False (the caller says nothing was sent).

    The question goes to stderr, where the terminal is even when stdout is redirected
    (``wanbatch run m.yaml > run.log``): on stdout it would wait unseen."""
    if not on_terminal():
        raise UsageError(f"{what}: {NOT_ASKED}; pass --yes to go ahead. Nothing was sent.")
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
