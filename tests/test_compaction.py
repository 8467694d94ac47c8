"""The compacted journal: snapshot records replay to the same records as the events they fold;
a crash at any byte or step of a compaction loses nothing; old journals still read; salvage
understands snapshots."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_journal import BASE, ev, write_sample

from wanbatch import journal as journal_module
from wanbatch.compaction import from_snapshot, should_compact, to_snapshot
from wanbatch.errors import JournalCorruptError, JournalMismatchError, JournalWriteError
from wanbatch.journal import (
    COMPACT_SUFFIX,
    Journal,
    Replay,
    _seal,
    compact_journal,
    compacted,
    encode_event,
    encode_run_header,
    journal_path,
    read_journal,
    replay_bytes,
)
from wanbatch.lifecycle import TRANSITIONS
from wanbatch.models import EventKind, JobEvent, JobRecord, JobState
from wanbatch.salvage import repair

from test_runner import out_dir, stats, write_manifest

# --- random legal histories ------------------------------------------------------------------

_FIELDS_FOR = {
    EventKind.INTENT: {"idempotency_key": "k", "fingerprint": "f"},
    EventKind.CREATED: {"task_id": "t", "handle": "h"},
    EventKind.RUNNING: {"reason": "rendering"},
    EventKind.SUCCEEDED: {"video_url": "https://cdn/v.mp4?sig=x"},
    EventKind.FAILED: {"reason": "no", "code": "E1"},
    EventKind.DOWNLOADED: {"path": "v.mp4", "size": 3, "sha256": "ab"},
    EventKind.REQUEUED: {"fingerprint": "g"},
    EventKind.KEPT: {"fingerprint": "h\u00e9"},
}


@st.composite
def histories(draw: st.DrawFn) -> list[JobEvent]:
    """Interleaved legal event sequences of a few jobs (walks of the transition table)."""
    jobs = draw(st.integers(1, 5))
    states = {f"job {i}": JobState.PLANNED for i in range(jobs)}
    events: list[JobEvent] = []
    at = 1_700_000_000.0
    for _ in range(draw(st.integers(0, 40))):
        job = draw(st.sampled_from(sorted(states)))
        moves = sorted(kind for (state, kind) in TRANSITIONS if state is states[job])
        kind = draw(st.sampled_from(moves))
        at += draw(st.floats(0, 5000, allow_nan=False))
        fields = {
            name: f"{value}{len(events)}" if isinstance(value, str) else value
            for name, value in _FIELDS_FOR.get(kind, {}).items()
        }
        events.append(JobEvent(kind, job, round(at, 3), **fields))  # type: ignore[arg-type]
        states[job] = TRANSITIONS[(states[job], kind)]
    return events


def journal_bytes(events: list[JobEvent]) -> bytes:
    return encode_run_header(BASE, "m.yaml") + b"".join(map(encode_event, events))


def compact_bytes(data: bytes) -> bytes:
    return b"".join(compacted(replay_bytes(data, "j")))


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_compaction_replays_to_the_same_records(
    events: list[JobEvent], data: st.DataObject
) -> None:
    """Compact the journal after any prefix of a random history, append the rest: the replay
    gives exactly the records (equal, in the same order) of the history never compacted."""
    split = data.draw(st.integers(0, len(events)))
    whole = replay_bytes(journal_bytes(events), "j")
    once = compact_bytes(journal_bytes(events[:split])) + b"".join(
        map(encode_event, events[split:])
    )
    again = compact_bytes(once)  # compacting a compacted journal changes nothing either
    for result in (replay_bytes(once, "j"), replay_bytes(again, "j")):
        assert result.records == whole.records
        assert list(result.records) == list(whole.records)
        assert (result.base_url, result.provider, result.manifests, result.runs) == (
            whole.base_url,
            whole.provider,
            whole.manifests,
            whole.runs,
        )
    assert replay_bytes(once, "j").events == len(events) - split


def test_a_snapshot_is_one_line_a_job_with_the_fields_that_are_set() -> None:
    record = JobRecord("a", JobState.FAILED, attempt=2, reason="bad", code="E", finished_at=3.5)
    fields = to_snapshot(record)
    assert fields == {
        "v": 1,
        "ev": "snapshot",
        "job": "a",
        "state": "failed",
        "attempt": 2,
        "reason": "bad",
        "code": "E",
        "finished_at": 3.5,
    }
    assert from_snapshot(fields) == record


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"state": "gone"}, "state"),
        ({"size": "3"}, "size"),
        ({"attempt": True}, "attempt"),
        ({"intents": -1}, "intents"),
        ({"finished_at": 1e300}, "finished_at"),
        ({"path": 7}, "path"),
        ({"path": "a\x00b"}, "NUL"),
        ({"surprise": 1}, "unknown"),
        ({"job": 5}, "job"),
    ],
)
def test_a_snapshot_with_a_wrong_field_is_refused_with_its_line(
    change: dict[str, object], why: str
) -> None:
    """A sealed snapshot whose field has a type it cannot have is damage, named by its line."""
    fields = to_snapshot(JobRecord("a", JobState.DOWNLOADED, path="a.mp4", size=3))
    fields.update(change)
    data = encode_run_header(BASE, "m.yaml") + _seal(fields)
    with pytest.raises(JournalCorruptError, match=why) as caught:
        replay_bytes(data, "j")
    assert caught.value.line == 2


def test_a_snapshot_after_its_jobs_events_is_refused() -> None:
    """A snapshot is the first record of its job: one after the job's events is damage."""
    snapshot = _seal(to_snapshot(JobRecord("a", JobState.PLANNED)))
    data = journal_bytes([ev(EventKind.INTENT, idempotency_key="k")]) + snapshot
    with pytest.raises(JournalCorruptError, match="after its events") as caught:
        replay_bytes(data, "j")
    assert caught.value.line == 3


def test_when_to_compact() -> None:
    assert not should_compact(9_999, 10, minimum=10_000)  # small journals stay event logs
    assert should_compact(10_000, 10_000, minimum=10_000)
    assert not should_compact(50_000, 1_000_000, minimum=10_000)  # a short tail of a big one


# --- on disk ----------------------------------------------------------------------------------


def sample_with_tail(tmp_path: Path) -> tuple[bytes, Replay]:
    """The sample journal compacted, then a second run's events after it."""
    original = read_journal(tmp_path) if journal_path(tmp_path).exists() else None
    assert original is None
    write_sample(tmp_path)
    assert compact_journal(tmp_path)

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.CREATED, job="b", task_id="gen_2"))
            await journal.append(ev(EventKind.INTENT, job="c", idempotency_key="k3"))
        finally:
            journal.close()

    anyio.run(go)
    data = journal_path(tmp_path).read_bytes()
    return data, replay_bytes(data, "j")


def test_compact_journal_rewrites_it_as_headers_and_snapshots(tmp_path: Path) -> None:
    data = write_sample(tmp_path)
    before = read_journal(tmp_path)
    assert compact_journal(tmp_path)
    compacted_data = journal_path(tmp_path).read_bytes()
    assert compacted_data.count(b'"ev":"snapshot"') == 2 and b'"ev":"intent"' not in compacted_data
    after = read_journal(tmp_path)
    assert after.records == before.records and after.snapshots == 2 and after.events == 0
    assert len(compacted_data) < len(data)
    assert not (journal_path(tmp_path).parent / ("journal.jsonl" + COMPACT_SUFFIX)).exists()


def test_truncated_compacted_journal_at_every_offset_loads_the_complete_prefix(
    tmp_path: Path,
) -> None:
    """Cut at any byte, a compacted journal with a tail replays as the lines before the cut:
    each whole snapshot gives its job, each whole event folds on it."""
    data, whole = sample_with_tail(tmp_path)
    ends = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    for cut in range(len(data) + 1):
        replay = replay_bytes(data[:cut], "j")
        complete = [end for end in ends if end <= cut]
        assert replay.torn_tail == (cut not in ends and cut != 0)
        assert replay.valid_bytes == (complete[-1] if complete else 0)
        lines = data[: replay.valid_bytes].splitlines(keepends=True)
        assert replay.snapshots == sum(b'"ev":"snapshot"' in line for line in lines)
        if cut == len(data):
            assert replay.records == whole.records


def test_a_crash_at_any_byte_of_the_new_file_loses_nothing(tmp_path: Path) -> None:
    """Killed while writing the new file (cut at every byte), or after it was written but
    before the rename: the journal is the old one, whole; the next run opens it as it was,
    compacts it, and the leftover file is not read."""
    write_sample(tmp_path)
    path = journal_path(tmp_path)
    old = path.read_bytes()
    before = read_journal(tmp_path).records
    new = compact_bytes(old)
    leftover = path.with_name(path.name + COMPACT_SUFFIX)
    for cut in range(len(new) + 1):
        leftover.write_bytes(new[:cut])
        assert path.read_bytes() == old
        assert read_journal(tmp_path).records == before
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml").close()
    assert compact_journal(tmp_path)  # writes over the leftover
    assert read_journal(tmp_path).records == before and not leftover.exists()


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler cleans up."""


@pytest.mark.parametrize("step", ["fsync", "replace", "fsync_dir"])
def test_a_kill_at_each_step_of_the_swap_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Killed before the new file is fsynced, before the rename, or after it (before the
    folder's fsync): the journal on disk is the old one or the new one, and either replays to
    the same records; the next run resumes from it and appends to the file that stays."""
    write_sample(tmp_path)
    before = read_journal(tmp_path).records

    def kill(*args: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        if step == "fsync":
            patch.setattr(journal_module.os, "fsync", kill)
        elif step == "replace":
            patch.setattr(journal_module.os, "replace", kill)
        else:
            patch.setattr(journal_module, "fsync_dir", kill)
        with pytest.raises(Killed):
            compact_journal(tmp_path)
    renamed = step == "fsync_dir"
    assert (b'"ev":"snapshot"' in journal_path(tmp_path).read_bytes()) == renamed
    assert read_journal(tmp_path).records == before

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.CREATED, job="b", task_id="gen_2"))
        finally:
            journal.close()

    anyio.run(go)
    after = read_journal(tmp_path).records
    assert after["b"].task_id == "gen_2" and after["a"] == before["a"]


def test_a_failed_write_leaves_the_journal_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while compacting at open: the new file is removed, the old journal stays
    whole, and the run opens and appends to it."""
    data = write_sample(tmp_path)
    monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 1)
    real_write = os.write

    def full(fd: int, chunk: object) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(COMPACT_SUFFIX):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, chunk)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_module.os, "write", full)
    journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    journal.close()
    now = journal_path(tmp_path).read_bytes()
    assert now.startswith(data) and b'"ev":"snapshot"' not in now
    assert not list(journal_path(tmp_path).parent.glob("*" + COMPACT_SUFFIX))


def test_a_failed_folder_fsync_after_the_rename_stops_the_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename cannot be made durable, nothing is appended to a file whose name may not
    survive a crash: the open fails before anything is sent."""
    write_sample(tmp_path)
    before = read_journal(tmp_path).records
    monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 1)

    def broken(directory: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(journal_module, "fsync_dir", broken)
    with pytest.raises(JournalWriteError, match="Input/output error"):
        Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
    assert read_journal(tmp_path).records == before


def test_an_old_journal_resumes_and_is_compacted_at_open_and_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal from before compaction (events only) opens as before; past the threshold it
    is compacted at open and, after the run's events, at close; the records never change."""
    write_sample(tmp_path)
    before = read_journal(tmp_path).records
    monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 2)

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            assert b'"ev":"snapshot"' in journal_path(tmp_path).read_bytes()
            assert journal.records == before
            await journal.append(ev(EventKind.CREATED, job="b", task_id="gen_2"))
            await journal.append(ev(EventKind.RUNNING, job="b"))
        finally:
            journal.close()

    anyio.run(go)
    after = read_journal(tmp_path)
    assert after.events == 0 and after.snapshots == 2 and after.runs == 2
    assert after.records["b"].state is JobState.RUNNING and after.records["a"] == before["a"]


def test_a_small_journal_is_not_compacted(tmp_path: Path) -> None:
    """Below the threshold the journal stays an event log, as it always was."""
    data = write_sample(tmp_path)
    Journal.open(tmp_path, base_url=BASE, manifest="m.yaml").close()
    now = journal_path(tmp_path).read_bytes()
    assert now.startswith(data) and b'"ev":"snapshot"' not in now


def test_a_compacted_journal_keeps_its_base_url_and_provider(tmp_path: Path) -> None:
    """The run records survive compaction: another API or provider is still refused."""
    write_sample(tmp_path)
    assert compact_journal(tmp_path)
    assert read_journal(tmp_path).provider == "wanapi"
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url="https://api.example.com/v1", manifest="m.yaml")
    with pytest.raises(JournalMismatchError):
        Journal.open(tmp_path, base_url=BASE, manifest="m.yaml", provider="fal")


def test_salvage_keeps_the_snapshots_around_a_damaged_line(tmp_path: Path) -> None:
    """A damaged line in a compacted journal: salvage keeps every other snapshot, and the
    events after them still fold onto them; only the damaged line's job is uncertain."""
    data, whole = sample_with_tail(tmp_path)
    lines = data.splitlines(keepends=True)
    damaged_at = next(i for i, line in enumerate(lines) if b'"job":"a"' in line)
    broken = bytearray(lines[damaged_at])
    broken[len(broken) // 2] ^= 1
    lines[damaged_at] = bytes(broken)
    fixed, plan = repair(b"".join(lines))
    replay = replay_bytes(fixed, "j")
    assert [number for number, _, _ in plan.lost] == [damaged_at + 1]
    assert replay.records["b"] == whole.records["b"]
    assert replay.records["c"] == whole.records["c"]
    assert replay.snapshots == whole.snapshots - 1
    assert "a" not in replay.records


# --- with the runner ---------------------------------------------------------------------------


def test_a_run_compacted_at_close_resumes_and_sends_nothing(
    tmp_path: Path, make_sim: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the threshold a run leaves its journal compacted; the rerun reads it, finds every
    job done, and sends no request."""
    monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 1)
    sim = make_sim()
    manifest = write_manifest(tmp_path)
    assert run_cli("run", manifest, sim) == 0
    data = journal_path(out_dir(manifest)).read_bytes()
    assert data.count(b'"ev":"snapshot"') == 6 and b'"ev":"created"' not in data
    before = stats(sim)
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["requests_total"] == before["requests_total"]
    replay = read_journal(out_dir(manifest))
    assert all(record.state is JobState.DOWNLOADED for record in replay.records.values())


KILL_DURING_COMPACTION = """
import os, signal, sys
from pathlib import Path
from wanbatch import journal
step = sys.argv[2]
real_replace, real_fsync_dir = os.replace, journal.fsync_dir
def replace(src, dst):
    if step == "before_rename":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
def fsync_dir(path):
    if step == "after_rename":
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync_dir(path)
journal.os.replace = replace
journal.fsync_dir = fsync_dir
journal.compact_journal(Path(sys.argv[1]))
"""


@pytest.mark.parametrize("step", ["before_rename", "after_rename"])
def test_sigkill_during_compaction_then_resume_pays_nothing(
    tmp_path: Path, make_sim: Any, run_cli: Any, step: str
) -> None:
    """A process SIGKILLed while compacting (the new file written and fsynced, before or after
    its rename): the rerun reads whichever journal is there, finds every job done, sends
    nothing, and removes the leftover new file."""
    sim = make_sim()
    manifest = write_manifest(tmp_path)
    assert run_cli("run", manifest, sim) == 0
    records = read_journal(out_dir(manifest)).records
    child = subprocess.run(
        [sys.executable, "-c", KILL_DURING_COMPACTION, str(out_dir(manifest)), step],
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    data = journal_path(out_dir(manifest)).read_bytes()
    assert (b'"ev":"snapshot"' in data) == (step == "after_rename")
    assert read_journal(out_dir(manifest)).records == records
    leftover = list(journal_path(out_dir(manifest)).parent.glob("*" + COMPACT_SUFFIX))
    assert bool(leftover) == (step == "before_rename")
    before = stats(sim)
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["requests_total"] == before["requests_total"]
    assert not list(journal_path(out_dir(manifest)).parent.glob("*" + COMPACT_SUFFIX))
    assert compact_journal(out_dir(manifest)) == (step == "before_rename")
    assert read_journal(out_dir(manifest)).records.keys() == records.keys()


# --- during a run ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(1, 6), st.data())
def test_compaction_during_a_run_gives_the_same_records(
    events: list[JobEvent], threshold: int, data: st.DataObject
) -> None:
    """Each job's events appended by its own task (durable or not, times not rounded), the
    journal compacting itself whenever ``threshold`` events have piled up, appends going on
    meanwhile: the journal left replays to the records of the same events never compacted, and
    a resume reads them too."""
    durable = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    fraction = data.draw(st.floats(0, 0.000999))  # times as the clock gives them
    live = [dataclasses.replace(event, at=event.at + fraction) for event in events]
    by_job: dict[str, list[tuple[JobEvent, bool]]] = {}
    for event, flag in zip(live, durable, strict=True):
        by_job.setdefault(event.job_id, []).append((event, flag))
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(journal_module, "COMPACT_MIN_EVENTS", threshold)
        patch.setattr(journal_module.os, "fsync", lambda fd: None)  # speed only
        out = Path(folder)

        async def job(items: list[tuple[JobEvent, bool]]) -> None:
            for event, flag in items:
                await journal.append(event, durable=flag)
                await anyio.lowlevel.checkpoint()

        async def go() -> None:
            async with anyio.create_task_group() as group:
                for items in by_job.values():
                    group.start_soon(job, items)
            await journal.flush()

        journal = Journal.open(out, base_url=BASE, manifest="m.yaml")
        journal.fsync = lambda fd: None
        try:
            anyio.run(go)
        finally:
            journal.close()
        # Per job the order is kept; across jobs the tasks interleave: compare per job.
        expected = replay_bytes(journal_bytes(live), "j").records
        assert read_journal(out).records == expected
        Journal.open(out, base_url=BASE, manifest="m.yaml").close()
        assert read_journal(out).records == expected


def test_compaction_during_a_run_writes_what_compaction_of_the_file_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshots a run writes from memory are byte for byte those written from the file."""
    monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 3)

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            for kind, fields in [
                (EventKind.INTENT, {"idempotency_key": "k", "fingerprint": "f"}),
                (EventKind.CREATED, {"task_id": "t"}),
                (EventKind.SUCCEEDED, {"video_url": "u"}),
            ]:
                event = JobEvent(kind, "a", 1_700_000_000.123456789, **fields)  # type: ignore[arg-type]
                await journal.append(event)
        finally:
            journal.fsync = os.fsync
            journal.close()

    anyio.run(go)
    data = journal_path(tmp_path).read_bytes()
    assert data.count(b'"ev":"snapshot"') == 1 and b'"ev":"intent"' not in data
    assert compact_bytes(data) == data
    assert read_journal(tmp_path).records["a"].intent_at == 1_700_000_000.123


def test_events_appended_while_compacting_follow_the_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compaction during a run snapshots what the file holds when it starts: an event appended
    while the new file is being written is written after it, and folds once (not twice)."""
    monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 2)
    started, release = threading.Event(), threading.Event()
    real_swap = journal_module._swap_in

    def held(path: Path, lines: Any) -> bool:
        started.set()
        assert release.wait(30)
        return real_swap(path, lines)

    monkeypatch.setattr(journal_module, "_swap_in", held)
    journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")

    async def go() -> None:
        async with anyio.create_task_group() as group:
            await journal.append(ev(EventKind.INTENT, idempotency_key="k1"), durable=False)
            await journal.append(ev(EventKind.INTENT, job="b", idempotency_key="k2"), durable=False)
            group.start_soon(journal.append, ev(EventKind.CREATED, task_id="t1"))
            await anyio.to_thread.run_sync(started.wait, 30)  # the compaction has begun
            await journal.append(ev(EventKind.INTENT, job="b", idempotency_key="k2"), durable=False)
            release.set()
        await journal.flush()

    try:
        anyio.run(go)
        data = journal_path(tmp_path).read_bytes()
    finally:
        monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 10**9)
        journal.close()
    assert data.count(b'"ev":"snapshot"') == 2 and data.count(b'"ev":"intent"') == 1
    records = read_journal(tmp_path).records
    assert records["a"].state is JobState.SUBMITTED
    assert records["b"].state is JobState.SUBMITTING and records["b"].intents == 2


def test_a_torn_tail_is_left_out_when_open_compacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal cut mid-line, compacted at open: the torn line is not in the new file (as the
    cut would have removed it), and the run appends after whole lines."""
    data = write_sample(tmp_path)
    journal_path(tmp_path).write_bytes(data + b'{"v":1,"at":2,"ev":"torn')
    before = read_journal(tmp_path).records
    monkeypatch.setattr(journal_module, "COMPACT_MIN_EVENTS", 1)

    async def go() -> None:
        journal = Journal.open(tmp_path, base_url=BASE, manifest="m.yaml")
        try:
            await journal.append(ev(EventKind.CREATED, job="b", task_id="gen_2"))
        finally:
            journal.close()

    anyio.run(go)
    replay = read_journal(tmp_path)
    assert not replay.torn_tail and b'"ev":"torn' not in journal_path(tmp_path).read_bytes()
    assert replay.records["a"] == before["a"] and replay.records["b"].task_id == "gen_2"


def test_times_finer_than_a_millisecond_in_the_file_survive_compaction() -> None:
    """wanbatch writes times to the millisecond, but a journal may hold finer ones (written by
    hand, or by another tool): compacting the file keeps them as they are."""
    events = [
        JobEvent(EventKind.INTENT, "a", 1_700_000_000.123456, idempotency_key="k"),
        JobEvent(EventKind.CREATED, "a", 1_700_000_001.987654, task_id="t"),
    ]
    data = encode_run_header(BASE, "m.yaml") + b"".join(
        _seal({"v": 1, "at": e.at, "ev": str(e.kind), "job": e.job_id, **fields})
        for e, fields in zip(events, [{"idempotency_key": "k"}, {"task_id": "t"}], strict=True)
    )
    before = replay_bytes(data, "j").records
    assert before["a"].intent_at == 1_700_000_000.123456
    assert replay_bytes(compact_bytes(data), "j").records == before
