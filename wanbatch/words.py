"""Words for counts in what users read: ``count(1, "job")`` is "1 job", ``count(3, "job")`` "3
jobs". Pure; every module may use it (never a noun with an "s" in parentheses)."""

from __future__ import annotations

import re


def plural(number: int, one: str, many: str | None = None) -> str:
    """The noun for ``number``: ``one`` for 1, else ``many`` (``one`` + "s" by default)."""
    return one if number == 1 else (many or one + "s")


def count(number: int, one: str, many: str | None = None) -> str:
    """``1 create``, ``3 creates``, ``2 retries`` (with ``many="retries"``): a count and its noun."""
    return f"{number} {plural(number, one, many)}"


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts ``shot-5`` before ``shot-13`` (numbers compare as numbers)."""
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts if part)
