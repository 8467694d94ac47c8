"""What a run does once it has ended: its summary as JSON (``--json``, ``--summary-json``) and
the ``--on-finish`` command, which reads that JSON on its stdin.

The command runs through the shell, with ``WANBATCH_EXIT_CODE`` set, and is given
``ON_FINISH_TIMEOUT_SECONDS`` to finish. Its failure, like a --summary-json that cannot be
written at the end, is reported on stderr and never changes the run's exit code (the videos are
what the exit code is about).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from wanbatch.errors import ExitCode, JournalError, UsageError
from wanbatch.journal import Replay, read_journal
from wanbatch.models import JobState, Manifest
from wanbatch.outtree import atomic_write
from wanbatch.providers import provider_for
from wanbatch.runend import RunEnd, summary_record
from wanbatch.settings import Flags
from wanbatch.summary import RunSummary

ON_FINISH_TIMEOUT_SECONDS = 300.0


def check_targets(flags: Flags) -> None:
    """Before anything is sent: --summary-json's folder is there (a typo must not cost a
    whole run and then fail at its end)."""
    if flags.summary_json is None:
        return
    path = Path(flags.summary_json)
    if path.is_dir():
        raise UsageError(f"--summary-json {path}: that is a folder; name a file")
    if not path.parent.is_dir():
        raise UsageError(f"--summary-json {path}: the folder {path.parent} is not there")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"--summary-json {path}: the folder {path.parent} is not writable")


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
        except OSError as exc:  # said, and the exit code stays the run's (the videos' word)
            print(
                f"wanbatch: --summary-json: could not write {path}: {exc.strerror or exc}",
                file=sys.stderr,
            )
    if flags.on_finish is not None:  # with --json, what it prints must not reach stdout
        on_finish(flags.on_finish, text, int(record["exit_code"]), quiet_stdout=flags.as_json)


def nothing_sent(
    manifest: Manifest, replay: Replay | None, why: str, flags: Flags, out: TextIO
) -> int:
    """A ``run`` or ``retry`` that sent nothing (nothing to retry, the question answered no)
    still ends with its record (``--json`` promises one document), and ``--on-finish``: the
    tree as it stands (the videos done, the jobs failed with their reasons, the rest left),
    exit 0, and an ``exit_meaning`` that says nothing was sent, and why."""
    if replay is None:
        try:
            replay = read_journal(manifest.output_dir)
        except JournalError:  # the record is told without it; the run would say why
            replay = Replay()
    records = replay.records
    done, failed, left = 0, {}, {}
    for job in manifest.jobs:
        found = records.get(job.id)
        if found is not None and found.state is JobState.DOWNLOADED:
            done += 1
        elif found is not None and found.state is JobState.FAILED:
            failed[job.id] = found.reason or "failed"
        else:
            left[job.id] = f"not sent: {why}"
    summary = RunSummary(
        total=len(manifest.jobs), already_done=done, failed=failed, left=left, stop_message=why
    )
    end = RunEnd(
        name=manifest.name,
        manifest=str(manifest.path),
        output_dir=str(manifest.output_dir),
        idempotent=provider_for(manifest.api).capabilities.idempotency_keys,
    )
    record = summary_record(end, summary)
    record["exit_code"] = ExitCode.DONE
    record["exit_meaning"] = f"nothing was sent: {why}"
    emit(record, flags, out)
    return ExitCode.DONE


def on_finish(command: str, text: str, exit_code: int, *, quiet_stdout: bool = False) -> None:
    """Run ``command`` with the summary on its stdin; say so on stderr if it fails.
    ``quiet_stdout``: what it prints is passed on to stderr (stdout holds the JSON alone)."""
    env = {**os.environ, "WANBATCH_EXIT_CODE": str(exit_code)}
    try:
        done = subprocess.run(
            command,
            shell=True,
            input=text.encode("utf-8"),
            stdout=subprocess.PIPE if quiet_stdout else None,
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
    if done.stdout:
        sys.stderr.write(done.stdout.decode("utf-8", "replace"))
        sys.stderr.flush()
    if done.returncode != 0:
        print(f"wanbatch: --on-finish exited {done.returncode}", file=sys.stderr)
