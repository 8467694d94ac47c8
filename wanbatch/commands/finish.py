"""What a run does once it has ended: its summary as JSON (``--json``, ``--summary-json``) and
the ``--on-finish`` command, which reads that JSON on its stdin.

The command runs through the shell, with ``WANBATCH_EXIT_CODE`` set, and is given
``ON_FINISH_TIMEOUT_SECONDS`` to finish; its failure is reported on stderr and never changes
the run's exit code (the videos are what the exit code is about).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from wanbatch.errors import DiskError
from wanbatch.outtree import atomic_write
from wanbatch.settings import Flags

ON_FINISH_TIMEOUT_SECONDS = 300.0


def emit(record: dict[str, Any], flags: Flags, out: TextIO) -> None:
    """Print, write and hand over the summary record, as the flags ask."""
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    if flags.as_json:
        out.write(text)
        out.flush()
    if flags.summary_json is not None:
        path = Path(flags.summary_json)
        try:
            atomic_write(path, text.encode("utf-8"))
        except OSError as exc:
            raise DiskError(
                f"--summary-json: could not write {path}: {exc.strerror or exc}"
            ) from exc
    if flags.on_finish is not None:
        on_finish(flags.on_finish, text, int(record["exit_code"]))


def on_finish(command: str, text: str, exit_code: int) -> None:
    """Run ``command`` with the summary on its stdin; say so on stderr if it fails."""
    env = {**os.environ, "WANBATCH_EXIT_CODE": str(exit_code)}
    try:
        done = subprocess.run(
            command,
            shell=True,
            input=text.encode("utf-8"),
            env=env,
            timeout=ON_FINISH_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(
            f"wanbatch: --on-finish did not end within {ON_FINISH_TIMEOUT_SECONDS:g} s; stopped",
            file=sys.stderr,
        )
        return
    except OSError as exc:
        print(f"wanbatch: --on-finish could not start: {exc}", file=sys.stderr)
        return
    if done.returncode != 0:
        print(f"wanbatch: --on-finish exited {done.returncode}", file=sys.stderr)
