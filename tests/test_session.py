"""The run session: one exit stack holds the simulator, the journal, the view and the log.

Whatever ends the ``with`` (a normal end, an error, Ctrl-C), everything the session opened is
closed: the journal's lock is free (a new runner may open it), the simulator no longer listens
and the log file is closed.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from wanbatch.commands.session import open_session
from wanbatch.journal import Journal, live_run
from wanbatch.manifest import load_manifest
from wanbatch.settings import Flags, build_settings

from test_runner import write_manifest


def listening(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


@pytest.mark.parametrize("ending", ["normal", ValueError, KeyboardInterrupt])
def test_everything_the_session_opened_is_closed_however_it_ends(
    tmp_path: Path, ending: str | type[BaseException]
) -> None:
    manifest = load_manifest(write_manifest(tmp_path, jobs=1))
    flags = Flags(manifest=str(manifest.path), simulate=True, verbosity=-1)
    settings = build_settings(flags, {}, manifest)
    seen: dict[str, object] = {}
    try:
        with open_session(manifest, settings, flags, env={}, out=io.StringIO()) as session:
            seen["url"] = session.base_url
            seen["live"] = live_run(manifest.output_dir)
            seen["log"] = session.journal.path.parent / "log.jsonl"
            assert listening(session.base_url)
            if ending != "normal":
                assert isinstance(ending, type)
                raise ending("stop")
    except (ValueError, KeyboardInterrupt):
        pass
    assert seen["live"] is not None  # the session held the lock while open
    assert live_run(manifest.output_dir) is None
    assert not listening(str(seen["url"]))
    Journal.open(manifest.output_dir, base_url="simulator://local", manifest="m").close()


def test_the_key_is_not_in_the_sessions_repr(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, jobs=1))
    flags = Flags(manifest=str(manifest.path), simulate=True, verbosity=-1)
    settings = build_settings(flags, {}, manifest)
    with open_session(manifest, settings, flags, env={}, out=io.StringIO()) as session:
        assert session._key and session._key not in repr(session)
