"""A faithful, configurable fake of the Wan video API, served on loopback.

It imports nothing else of wanbatch's, so a mistake in the client's idea of the wire format
cannot be copied into the fake that judges it. See docs/simulator.md.
"""

from wanbatch.simulator.config import DEFAULT_KEY, SimConfig
from wanbatch.simulator.server import SimulatorServer, demo_config

__all__ = ["DEFAULT_KEY", "SimConfig", "SimulatorServer", "demo_config"]
