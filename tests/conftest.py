"""Shared fixtures: the simulator on a real loopback socket, started per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from wanbatch import cli
from wanbatch.simulator import SimConfig, SimulatorServer

KEY_ENV = "WANBATCH_TEST_KEY"  # the environment variable the tests' manifests name

# In CI the property tests replay the same examples every run, so a red build is reproducible.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimulatorServer]]:
    """A factory: ``make_sim(**knobs)`` starts a simulator with tiny render times."""
    started: list[SimulatorServer] = []

    def make(**knobs: Any) -> SimulatorServer:
        config = SimConfig(generation_seconds=0.05).replace(**knobs)
        server = SimulatorServer(config).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sim(make_sim: Callable[..., SimulatorServer]) -> SimulatorServer:
    """A simulator with default knobs and renders of about 50 ms."""
    return make_sim()


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """Runs `wanbatch ARGS` in-process against a simulator; returns the exit code."""

    def go(command: str, manifest: Path, sim: Any, *extra: str, key: str | None = None) -> int:
        monkeypatch.setenv(KEY_ENV, key if key is not None else sim.api_key)
        argv = [command, str(manifest), "--base-url", sim.base_url, "--poll-interval", "0.02", "-q"]
        return cli.main([*argv, *extra])

    return go
