"""Shared fixtures: the simulator on a real loopback socket, started per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from wanbatch.simulator import SimConfig, SimulatorServer

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
