"""The simulator's saved state: JSON lines, one record appended a change, replayed on load.

A record is ``{"tasks": [...], "credits": {key: balance}}``, applied in order: a create appends
its task and its key's balance, a top-up the balance. A create writes one line, whatever the
number of tasks before it (the whole file rewritten per create made a 100,000-job
``run --simulate`` quadratic). A file from before this form (one object holding every task, no
newline) is one such record, and is written afresh in the new form on load.

A record counts once its newline is written: a torn last line (the process killed in the middle
of a write) is dropped and cut off, since its create was never answered. Any other line that is
not JSON is an error for the caller to name. Lines reach the OS before the answer goes out (they
survive a killed process) but are not fsynced per create: the simulator stands in for a remote
service, and a power cut is not what it rehearses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StateFile:
    """``path``'s records, read once, then appended to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def read(self) -> tuple[list[Any], bool]:
        """The records in order, and whether the file is to be written afresh (it is missing,
        empty, or in the whole-file form). A torn last line is cut off here."""
        data = self.path.read_bytes() if self.path.exists() else b""
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline, as the appended form does
        records = [json.loads(line) for line in lines]
        if tail and not lines:  # one line and no newline: the whole-file form (or damage)
            return [json.loads(tail)], True
        if tail:  # a torn record: cut off, so that the next one starts on a line of its own
            os.truncate(self.path, len(data) - len(tail))
        return records, not data

    def rewrite(self, record: Any) -> None:
        """Replace the file by ``record`` alone, atomically (write, fsync, rename, fsync)."""
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as handle:
            handle.write(json.dumps(record).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def append(self, record: Any) -> None:
        """``record`` as one line, in one write (the file opened for appending on first use)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = memoryview(json.dumps(record).encode() + b"\n")
        while line:
            line = line[os.write(self._fd, line) :]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
