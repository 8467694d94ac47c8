"""The journal: records on disk, replay, torn tails, corruption, the lock and write failures."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from wanbatch.errors import (
    JournalCorruptError,
    JournalLockedError,
    JournalMismatchError,
    JournalWriteError,
)
from wanbatch.journal import Journal, journal_path, read_journal, replay_bytes
from wanbatch.models import EventKind, JobEvent, JobState

BASE = "http://127.0.0.1:9/v1"


def ev(kind: EventKind, job: str = "a", **fields: object) -> JobEvent:
    return JobEvent(kind=kind, job_id=job, at=1.5, **fields)  # type: ignore[arg-type]


def write_sample(tmp_path: Path) -> bytes:
    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.INTENT, idempotency_key="k1", fingerprint="f"))
            await journal.append(ev(EventKind.CREATED, task_id="gen_1"))
            await journal.append(ev(EventKind.INTENT, job="b", idempotency_key="k2"))
            await journal.append(ev(EventKind.SUCCEEDED, video_url="https://cdn/v.mp4"))
            await journal.append(ev(EventKind.DOWNLOADED, path="a.mp4", size=3, sha256="00"))
        finally:
            journal.close()

    anyio.run(go)
    return journal_path(tmp_path).read_bytes()


def test_records_are_json_lines_with_checksums(tmp_path: Path) -> None:
    """Every line is a JSON object with ev, job and crc; the first names the base URL."""
    lines = write_sample(tmp_path).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["ev"] == "run" and records[0]["base_url"] == BASE
    assert [r["ev"] for r in records[1:]] == [
        "intent",
        "created",
        "intent",
        "succeeded",
        "downloaded",
    ]
    assert all(len(r["crc"]) == 8 for r in records)
    assert records[2]["task_id"] == "gen_1"


def test_replay_gives_each_jobs_state(tmp_path: Path) -> None:
    """Replaying the sample gives a downloaded job and one whose create outcome is unknown."""
    write_sample(tmp_path)
    replay = read_journal(tmp_path)
    assert replay.records["a"].state is JobState.DOWNLOADED
    assert replay.records["b"].state is JobState.SUBMITTING
    assert replay.base_url == BASE


def test_truncated_at_every_offset_loads_the_complete_prefix(tmp_path: Path) -> None:
    """Cut at any byte, the journal replays as the records before the cut."""
    data = write_sample(tmp_path)
    ends = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    for cut in range(len(data) + 1):
        replay = replay_bytes(data[:cut], "j")
        complete = sum(1 for end in ends if end <= cut)
        assert replay.events == max(0, complete - 1)  # the first record is the run header
        assert replay.torn_tail == (cut not in ends and cut != 0)


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    """Opening for a run removes a torn last line, and appends after it replay cleanly."""
    data = write_sample(tmp_path)
    journal_path(tmp_path).write_bytes(data + b'{"v":1,"at":2,"ev":"cre')

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.CREATED, job="b", task_id="gen_2"))
        finally:
            journal.close()

    anyio.run(go)
    replay = read_journal(tmp_path)
    assert replay.records["b"].task_id == "gen_2" and not replay.torn_tail


def test_flipped_byte_is_refused_with_its_line(tmp_path: Path) -> None:
    """A byte changed inside the third line is caught by its checksum and named."""
    data = bytearray(write_sample(tmp_path))
    third = data.index(b"gen_1")
    data[third + 4] = ord("9")
    journal_path(tmp_path).write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as caught:
        read_journal(tmp_path)
    assert caught.value.line == 3
    assert "line 3" in str(caught.value)


def test_other_base_url_is_refused(tmp_path: Path) -> None:
    """Resuming against another API is refused and the message names both URLs."""
    write_sample(tmp_path)
    with pytest.raises(JournalMismatchError) as caught:
        Journal.open(tmp_path, base_url="https://api.example.com/v1", manifest="m.yaml")
    assert BASE in str(caught.value) and "api.example.com" in str(caught.value)


def test_another_provider_is_refused_and_the_header_names_it(tmp_path: Path) -> None:
    """The run record names the provider; a resume for another provider at the same address
    is refused (its task ids mean nothing there), naming both and the way out."""
    write_sample(tmp_path)
    assert read_journal(tmp_path).provider == "wanapi"
    with pytest.raises(JournalMismatchError) as caught:
        Journal.open(tmp_path, base_url=BASE, manifest="m.yaml", provider="fal")
    assert "'wanapi'" in str(caught.value) and "'fal'" in str(caught.value)
    assert "api.provider: wanapi" in str(caught.value)


def test_a_journal_from_before_providers_resumes_as_wanapi(tmp_path: Path) -> None:
    """A run record without ``provider`` (every journal before providers were named) was
    written for wanapi: it resumes under wanapi and is refused for another."""
    from wanbatch.journal import _seal

    header = _seal({"v": 1, "at": 1.0, "ev": "run", "base_url": BASE, "manifest": "m.yaml"})
    intent = {"v": 1, "at": 2.0, "job": "a", "idempotency_key": "k", "fingerprint": "f"}
    created = {"v": 1, "at": 3.0, "job": "a", "task_id": "t1"}
    state = journal_path(tmp_path)
    state.parent.mkdir(parents=True)
    state.write_bytes(
        header + _seal({**intent, "ev": "intent"}) + _seal({**created, "ev": "created"})
    )
    assert read_journal(tmp_path).provider == "wanapi"
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml").close()
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url=BASE, manifest="m.yaml", provider="replicate")


def test_runs_that_sent_no_create_do_not_pin_the_address_or_the_provider(tmp_path: Path) -> None:
    """A tree whose runs made nothing (a mistyped address nobody answered) may be run against
    another address or provider; once a create is sent, the address and provider are kept."""
    Journal.open(tmp_path, base_url="http://typo:1/v1", manifest="m.yaml").close()
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml", provider="replicate").close()

    async def create() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml", provider="replicate")
        try:
            await journal.append(ev(EventKind.INTENT, idempotency_key="k1", fingerprint="f"))
        finally:
            journal.close()

    anyio.run(create)
    assert read_journal(tmp_path).base_url == BASE
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url="http://typo:1/v1", manifest="m.yaml", provider="replicate")
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")


def test_a_created_event_keeps_the_providers_handle(tmp_path: Path) -> None:
    """What an API handed out to find a task again (fal's URLs) is journaled with the task id,
    and forgotten by the next intent."""

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.INTENT, idempotency_key="k1", fingerprint="f"))
            await journal.append(ev(EventKind.CREATED, task_id="r1", handle='{"status_url":"x"}'))
        finally:
            journal.close()

    anyio.run(go)
    assert read_journal(tmp_path).records["a"].handle == '{"status_url":"x"}'


def test_second_runner_is_refused_and_told_the_holder(tmp_path: Path) -> None:
    """While one journal is open, a second open fails and names the holder's pid."""
    first = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    try:
        with pytest.raises(JournalLockedError) as caught:
            Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        assert "pid" in caught.value.holder
    finally:
        first.close()
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml").close()


def test_lock_is_freed_when_the_holder_is_killed(tmp_path: Path) -> None:
    """A holder killed with SIGKILL leaves the lock free for the next runner."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from wanbatch.journal import Journal\n"
        f"Journal.open(Path({str(tmp_path)!r}), base_url={BASE!r}, manifest='m')\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(JournalLockedError) as caught:
            Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        assert f"pid {child.pid}" in caught.value.holder
    finally:
        child.kill()
        child.wait(timeout=10)
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml").close()


def test_fsync_failure_breaks_the_journal_for_good(tmp_path: Path) -> None:
    """An EIO from fsync raises JournalWriteError, and every later append raises too."""

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        journal.fsync = broken_fsync
        try:
            with pytest.raises(JournalWriteError, match="Input/output error"):
                await journal.append(ev(EventKind.INTENT, idempotency_key="k"))
            with pytest.raises(JournalWriteError):
                await journal.append(ev(EventKind.INTENT, job="z", idempotency_key="k"))
        finally:
            journal.close()

    anyio.run(go)


# --- issue 14: a finished run leaves no lock that reads as a live one -----------------------------


def lock_file(output: Path) -> Path:
    return output / ".wanbatch" / "lock"


def reads_as_live(output: Path) -> list[str]:
    """The files of the state folder that read as a run in progress (a holder's pid)."""
    folder = output / ".wanbatch"
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if (
            path.is_file()
            and path.name != "log.jsonl"
            and "pid " in path.read_text("utf-8", "replace")
        ):
            found.append(path.name)
    return found


def test_a_closed_journal_leaves_no_lock_and_no_live_run(tmp_path: Path) -> None:
    """While open, the lock names its holder and `live_run` says so; closed, the lock file is
    gone (nothing in the tree reads as a live run) and `live_run` is None. The same for
    `locked` (salvage)."""
    from wanbatch.journal import live_run, locked

    assert live_run(tmp_path) is None  # no state folder at all
    journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    try:
        holder = live_run(tmp_path)
        assert holder is not None and f"pid {os.getpid()}" in holder
    finally:
        journal.close()
    assert not lock_file(tmp_path).exists()
    assert reads_as_live(tmp_path) == [] and live_run(tmp_path) is None
    with locked(tmp_path):
        assert live_run(tmp_path) is not None
    assert not lock_file(tmp_path).exists() and live_run(tmp_path) is None


def test_a_lock_left_by_a_killed_runner_is_not_a_live_run(tmp_path: Path) -> None:
    """A runner killed with SIGKILL leaves its lock file (naming it); no one holds it, so
    `live_run` is None, and the next runner takes it."""
    from wanbatch.journal import live_run

    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from wanbatch.journal import Journal\n"
        f"Journal.open(Path({str(tmp_path)!r}), base_url={BASE!r}, manifest='m')\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        assert f"pid {child.pid}" in (live_run(tmp_path) or "")
    finally:
        child.kill()
        child.wait(timeout=10)
    assert lock_file(tmp_path).exists() and live_run(tmp_path) is None
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml").close()
    assert not lock_file(tmp_path).exists()


def test_a_runner_that_locked_a_lock_file_being_removed_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of removing a lock file: B opens `lock`, A (closing) removes it and lets go,
    B's flock succeeds on the removed file. B must see that and lock the file at the path, or a
    third runner C would create a new `lock`, lock it, and run beside B."""
    from wanbatch.journal import live_run

    first = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    real_open = os.open
    raced = []

    def open_then_race(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if Path(path) == lock_file(tmp_path) and not raced:
            raced.append(path)
            first.close()  # A closes between B's open and B's flock
        return fd

    monkeypatch.setattr(os, "open", open_then_race)
    second = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    monkeypatch.setattr(os, "open", real_open)
    try:
        assert raced
        assert lock_file(tmp_path).exists()
        assert os.stat(lock_file(tmp_path)).st_ino == os.fstat(second._lock_fd).st_ino
        assert f"pid {os.getpid()}" in (live_run(tmp_path) or "")
        with pytest.raises(JournalLockedError):
            Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    finally:
        second.close()
    assert not lock_file(tmp_path).exists()


def test_after_a_finished_cli_run_nothing_reads_as_a_live_run(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """End to end: after `run`, the output tree's state folder holds no file naming a holder."""
    from wanbatch.journal import live_run

    from test_runner import out_dir, write_manifest

    sim = make_sim()
    manifest = write_manifest(tmp_path, jobs=2)
    assert run_cli("run", manifest, sim) == 0
    assert reads_as_live(out_dir(manifest)) == []
    assert live_run(out_dir(manifest)) is None


def test_a_look_by_live_run_does_not_refuse_a_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status` looking (a shared lock for an instant) as a run starts: the runner waits for the
    look to end instead of being refused. The look is held here until the runner's first pause."""
    import fcntl
    import time

    from wanbatch.journal import live_run

    lock_file(tmp_path).parent.mkdir(parents=True)
    lock_file(tmp_path).write_text("pid 1 on elsewhere since long ago")  # a killed runner's
    look = os.open(lock_file(tmp_path), os.O_RDONLY)
    fcntl.flock(look, fcntl.LOCK_SH | fcntl.LOCK_NB)
    pauses = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        fcntl.flock(look, fcntl.LOCK_UN)

    monkeypatch.setattr(time, "sleep", pause)
    try:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    finally:
        os.close(look)
    monkeypatch.undo()
    assert pauses
    assert f"pid {os.getpid()}" in (live_run(tmp_path) or "")
    journal.close()


def test_creates_refused_for_good_do_not_pin_the_address(tmp_path: Path) -> None:
    """A base URL without its /v1: every create answered 404, each job failed with no task.
    Nothing was made there, so a retry against the right address is let in; a task made (or
    a create whose answer is unknown) pins the tree."""

    async def refused(base: str) -> None:
        journal = Journal.open(tmp_path, base_url=base, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.INTENT, idempotency_key="k1", fingerprint="f"))
            await journal.append(ev(EventKind.FAILED, reason="No route", code="http_404"))
        finally:
            journal.close()

    anyio.run(refused, "http://host:1/")
    assert read_journal(tmp_path).records["a"].state is JobState.FAILED
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml").close()  # not pinned

    async def made() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.REQUEUED, fingerprint="f"))
            await journal.append(ev(EventKind.INTENT, idempotency_key="k2", fingerprint="f"))
        finally:
            journal.close()

    anyio.run(made)  # an unknown answer: a task may exist at BASE
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url="http://host:1/", manifest="m.yaml")


def test_a_journal_whose_first_header_was_lost_is_pinned_by_the_next(tmp_path: Path) -> None:
    """Salvage may drop a damaged first line (the first run header): the next header, written
    after the tasks were made, still names the address the tasks live at."""
    from wanbatch.journal import _seal, encode_run_header

    created = {"v": 1, "at": 2.0, "job": "a", "task_id": "t1"}
    intent = {"v": 1, "at": 1.5, "job": "a", "idempotency_key": "k", "fingerprint": "f"}
    state = journal_path(tmp_path)
    state.parent.mkdir(parents=True)
    state.write_bytes(
        _seal({**intent, "ev": "intent"})
        + _seal({**created, "ev": "created"})
        + encode_run_header(BASE, "m.yaml")
    )
    assert read_journal(tmp_path).base_url == BASE
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url="https://other.example/v1", manifest="m.yaml")
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url=BASE, manifest="m.yaml", provider="fal")


def test_a_flush_cancelled_after_it_took_the_buffer_still_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop (a rejected key, Ctrl-C) that cancels a flush just after it took the buffered
    lines must not drop them: they are no longer in the buffer for close() to write, and a
    dropped `not_created` leaves its job "answer unknown" for the next run (found by a
    new-user pass: 1 run in 5 after a 401). The stop is made to land at that very point."""
    import wanbatch.journal as journal_module

    journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    landed: list[anyio.CancelScope] = []
    real = journal_module.should_compact

    def stop_here(*args: Any, **kwargs: Any) -> bool:
        if landed:
            landed[0].cancel()
        return real(*args, **kwargs)

    monkeypatch.setattr(journal_module, "should_compact", stop_here)

    async def go() -> None:
        await journal.append(ev(EventKind.INTENT, idempotency_key="k1", fingerprint="f"))
        with anyio.CancelScope() as scope:
            landed.append(scope)
            await journal.append(ev(EventKind.NOT_CREATED, reason="key rejected"))

    try:
        anyio.run(go)
    finally:
        journal.close()
    assert read_journal(tmp_path).records["a"].state is JobState.PLANNED
