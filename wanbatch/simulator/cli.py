"""``wanbatch sim`` / ``python -m wanbatch.simulator``: serve the simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from wanbatch.simulator.config import DISTRIBUTIONS, RETRY_AFTER_FORMATS, SimConfig
from wanbatch.simulator.dialects import NAMES
from wanbatch.simulator.server import SimulatorServer

CHOICES: dict[str, tuple[str, ...]] = {
    "provider": NAMES,
    "distribution": DISTRIBUTIONS,
    "retry_after_format": RETRY_AFTER_FORMATS,
}
_TYPES: dict[type, Any] = {int: int, float: float}


def plain(value: object) -> str:
    """A default as a user would type it: true/false, a comma list, "none"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value) or "none"
    if value is None or value == "":
        return "none"
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanbatch sim",
        description="Serve a fake Wan API (and its CDN) on loopback: no key, no network.",
        allow_abbrev=False,
    )
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--config", help="a YAML or JSON file of knobs")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line with the URLs and key, then serve"
    )
    knobs = parser.add_argument_group("knobs (override --config)")
    defaults = SimConfig()
    for field in fields(SimConfig):
        default = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            knobs.add_argument(
                flag,
                dest=field.name,
                type=str.lower,
                choices=("true", "false"),
                help=f"default {plain(default)}",
            )
        else:
            knobs.add_argument(
                flag,
                dest=field.name,
                type=_TYPES.get(type(default), str),
                choices=CHOICES.get(field.name),
                metavar=None if field.name in CHOICES else field.name.upper(),
                help=f"default {plain(default)}"
                + (" (comma-separated)" if isinstance(default, tuple) else ""),
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        config = SimConfig.from_file(args.config) if args.config else SimConfig()
        changes: dict[str, Any] = {
            field.name: getattr(args, field.name)
            for field in fields(SimConfig)
            if getattr(args, field.name) is not None
        }
        config = config.replace(**changes)
    except (OSError, ValueError) as exc:
        print(f"wanbatch sim: {exc}", file=sys.stderr)
        return 2
    server = SimulatorServer(config, port=args.port).start()
    info = {
        "provider": config.provider,
        "base_url": server.base_url,
        "api_key": server.api_key,
        "cdn_url": server.cdn_url,
        "admin_url": f"{server.origin}/_sim",
    }
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"Wan API simulator ({config.provider}) at {server.base_url}", flush=True)
        print(f"  key:    {server.api_key}   (export WAN_API_KEY={server.api_key})")
        print(f"  videos: {server.cdn_url}")
        print(f"  stats:  {server.origin}/_sim/stats")
        print("Ctrl-C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
