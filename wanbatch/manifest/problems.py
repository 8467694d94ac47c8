"""Problems found in a manifest, with their file and line, and the small checks of single values
that every section uses. Pure.

A location is the line (a number, as text) where the key is written: YAML node marks, or the
line a CSV row starts on. ``ManifestProblem`` prints it as ``file:line: key: message``, the form
editors jump to; a problem with no line prints as ``file: key: message``.
"""

from __future__ import annotations

import difflib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wanbatch.errors import ManifestProblem


@dataclass(slots=True)
class Problems:
    """Collects problems with their locations."""

    file: str
    lines: dict[str, int] = field(default_factory=dict)  # dotted key -> line
    found: list[ManifestProblem] = field(default_factory=list)
    inner: list[Problems] = field(default_factory=list)  # files named by jobs_from
    # A bare CSV: the line of ``jobs[i]`` at i, and its row as a spreadsheet numbers it (they
    # differ after a cell of two lines); 4 bytes a job each, where a dict of keys took 150.
    job_lines: array[int] = field(default_factory=lambda: array("L"))
    job_rows: array[int] = field(default_factory=lambda: array("L"))
    rows: bool = False  # a CSV: a job's source is named by its row

    def all(self) -> list[ManifestProblem]:
        return [*self.found, *(problem for other in self.inner for problem in other.found)]

    def line(self, key: str) -> int | None:
        """The line of ``key``, or of the nearest key that holds it."""
        probe = key
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            if self.job_lines and probe.startswith("jobs[") and probe.endswith("]"):
                digits = probe[5:-1]
                if digits.isascii() and digits.isdigit() and int(digits) < len(self.job_lines):
                    return self.job_lines[int(digits)]
            probe = probe.rpartition(".")[0] if "." in probe else probe.rpartition("[")[0]
        return None

    def where(self, key: str) -> str:
        """``file:line`` of ``key`` (``file`` alone where no line is known)."""
        line = self.line(key)
        return self.file if line is None else f"{self.file}:{line}"

    def add(self, key: str, message: str, *, line: int | None = None) -> None:
        """A problem at ``key``; at ``line`` if given, else at the key's own line."""
        at = self.line(key) if line is None else line
        self.found.append(ManifestProblem(self.file, "" if at is None else str(at), key, message))


def flag_problem(flag: str, message: str) -> ManifestProblem:
    """A problem in a command-line flag's value, printed as ``--flag value: message``."""
    return ManifestProblem(flag, "", "", message)


def did_you_mean(key: str, allowed: Sequence[str]) -> str:
    match = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if match:
        return f"; did you mean '{match[0]}'?"
    return f"; known keys: {', '.join(allowed)}"


def check_keys(
    value: Mapping[Any, Any], allowed: Sequence[str], path: str, problems: Problems
) -> None:
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            name = str(key)
            problems.add(
                f"{path}.{name}" if path else name, f"unknown key{did_you_mean(name, allowed)}"
            )


def mapping(value: Any, path: str, problems: Problems) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, f"must be a mapping of keys to values, not {kind(value)}")
        return {}
    return value


def kind(value: Any) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def positive_int_problem(value: Any, *, maximum: int | None = None) -> str | None:
    """What is wrong with ``value`` as a positive whole number, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number, not {kind(value)} {value!r}"
    if value <= 0:
        return f"must be positive, not {value}"
    if maximum is not None and value > maximum:
        return f"must be at most {maximum}, not {value}"
    return None


def positive_int(
    value: Any, path: str, problems: Problems, *, maximum: int | None = None
) -> int | None:
    message = positive_int_problem(value, maximum=maximum)
    if message is not None:
        problems.add(path, message)
        return None
    assert isinstance(value, int)
    return value


def positive_number(value: Any, path: str, problems: Problems) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        problems.add(path, f"must be a number, not {kind(value)} {value!r}")
        return None
    if value <= 0 or value == float("inf"):
        problems.add(path, f"must be a positive finite number, not {value}")
        return None
    return float(value)


def ratio_hint(value: Any) -> str:
    """For an aspect ratio that YAML 1.1 read as a base-60 number (``16:9`` unquoted is 969):
    how to write it; else ""."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 60 or value % 60 == 0:
        return ""
    written = f"{value // 60}:{value % 60}"
    return f' (YAML reads {written} unquoted as the number {value}): quote it: "{written}"'
