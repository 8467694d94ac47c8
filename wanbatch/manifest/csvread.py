"""CSV text -> rows of jobs. Pure.

What spreadsheets export is accepted: headers in any case (``Prompt``, ``ID``), ``,``, ``;`` or
tab between cells (found from the header line), and columns for people: a header starting with
``#`` (``# notes``), or one named in ``ignore`` (the ``--ignore-columns`` flag), is skipped. Any
other unknown column is refused, naming it and how to keep it.
"""

from __future__ import annotations

import csv
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from wanbatch.manifest.problems import Problems, did_you_mean
from wanbatch.manifest.schema import NOTE_COLUMN_PREFIX, keys

COLUMNS = keys("csv")
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True, slots=True)
class CsvRow:
    """A CSV row kept small until its job is read (``mapping``): the cells of the known columns
    in ``columns``' order, stripped (the prompt as written), None where empty, the duration a
    number where it is one. Repeated cells (a model, a ratio) are one string for all rows."""

    columns: tuple[str, ...]
    values: tuple[Any, ...]

    def mapping(self) -> dict[str, Any]:
        return {
            column: value
            for column, value in zip(self.columns, self.values, strict=True)
            if value is not None
        }


def load_csv(text: str, problems: Problems, ignore: Sequence[str] = ()) -> list[CsvRow]:
    """CSV rows as jobs (``CsvRow``), each with its line and its row as a spreadsheet numbers it
    (header = row 1). Read row by row: a million rows are never held as lists of cells."""
    before = len(problems.found)
    try:
        reader = csv.reader(lines(text), delimiter=_delimiter(text))
        return _rows(reader, problems, {name.strip().lower() for name in ignore})
    except csv.Error as exc:
        del problems.found[before:]
        problems.job_lines, problems.job_rows = array("L"), array("L")
        problems.add("", f"CSV cannot be read: {exc}")
        return []


_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+\Z")


def lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their ends, as ``io.StringIO(text, newline="")`` gives them
    (ended by \\n, \\r\\n or \\r), without its copy of the text at 4 bytes a character."""
    return (match.group() for match in _LINE_RE.finditer(text))


def _delimiter(text: str) -> str:
    """The delimiter that splits the header line into the most cells (``,`` on a tie)."""
    header = next(lines(text), "")
    best, cells = ",", 1
    for delimiter in _DELIMITERS:
        try:
            found = len(next(csv.reader([header], delimiter=delimiter), []))
        except csv.Error:
            continue
        if found > cells:
            best, cells = delimiter, found
    return best


def _rows(reader: Any, problems: Problems, ignore: set[str]) -> list[CsvRow]:
    first = next(reader, None)
    if first is None or not any(cell.strip() for cell in first):
        problems.add("", "the CSV has no header row (it needs at least a 'prompt' column)", line=1)
        return []
    header = [cell.strip().lower() for cell in first]
    written = [cell.strip() for cell in first]
    notes = [
        column != "" and (column in ignore or column.startswith(NOTE_COLUMN_PREFIX))
        for column in header
    ]
    unknown = [
        name
        for name, column, note in zip(written, header, notes, strict=True)
        if not note and column not in COLUMNS
    ]
    if "prompt" not in header:
        problems.add("prompt", _no_prompt([name for name in unknown if name]), line=1)
        return []  # no job has a prompt: one problem, not one a row
    for name in unknown:
        if name == "":
            problems.add(
                "", "a column of the header has no name: name it ('# notes' for a note)", line=1
            )
            continue
        problems.add(
            name,
            f"unknown column{_known(name)}; to keep it in the file, pass"
            f" --ignore-columns {name} (or name it '# {name}')",
            line=1,
        )
    kept_names = [column for column, note in zip(header, notes, strict=True) if not note]
    if len(set(kept_names)) != len(kept_names):
        problems.add("", "the CSV header names a column twice", line=1)
    kept = [
        (at, column)
        for at, (column, note) in enumerate(zip(header, notes, strict=True))
        if not note and column in COLUMNS
    ]
    columns = tuple(column for _, column in kept)
    width = len(header)
    # one object for each distinct cell of a column (the prompt's are not looked up)
    same: list[dict[str, Any] | None] = [None if c == "prompt" else {} for _, c in kept]
    jobs: list[CsvRow] = []
    job_lines, job_rows = problems.job_lines, problems.job_rows
    line = reader.line_num + 1  # where the next record starts
    for number, cells in enumerate(reader, start=2):
        start, line = line, reader.line_num + 1
        values: list[Any] = []
        for (at, column), seen in zip(kept, same, strict=True):
            cell = cells[at] if at < len(cells) else ""
            if seen is None:
                values.append(cell if cell.strip() != "" else None)
                continue
            value = seen.get(cell)
            if value is None and cell not in seen:
                stripped = cell.strip()
                if stripped == "":
                    value = None
                elif column == "duration":
                    value = _int_from_text(stripped)
                else:
                    value = stripped
                if len(seen) < 10_000:
                    seen[cell] = value
            values.append(value)
        if all(value is None for value in values) and not any(cell.strip() for cell in cells):
            continue  # blank lines are not jobs
        job_lines.append(start)
        job_rows.append(number)
        if len(cells) > width:
            problems.add(
                f"jobs[{len(jobs)}]", f"{len(cells)} cells but the header has {width} columns"
            )
        jobs.append(CsvRow(columns, tuple(values)))
    return jobs


def _known(name: str) -> str:
    hint = did_you_mean(name.lower(), COLUMNS)
    return hint if "did you mean" in hint else f"; the columns are {', '.join(COLUMNS)}"


def _no_prompt(unknown: list[str]) -> str:
    """The one problem of a CSV without a 'prompt' column."""
    if len(unknown) == 1:
        return (
            f"the CSV needs a 'prompt' column: if '{unknown[0]}' holds the prompts, "
            "name it 'prompt'"
        )
    if unknown:
        named = ", ".join(f"'{name}'" for name in unknown)
        return f"the CSV needs a 'prompt' column (unknown columns: {named}): name it 'prompt'"
    return "the CSV needs a 'prompt' column"


def _int_from_text(text: str) -> Any:
    stripped = text.strip()
    if re.fullmatch(r"[+-]?[0-9]{1,18}", stripped):  # longer: reported as text, not converted
        return int(stripped)
    return text
