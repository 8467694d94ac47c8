"""The simulator's knobs: one frozen dataclass, loadable from YAML/JSON and from flags."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from wanbatch.simulator.dialects import dialect

DEFAULT_KEY = "sk-wan-sim-local"
DISTRIBUTIONS = ("fixed", "uniform", "lognormal")
RETRY_AFTER_FORMATS = ("seconds", "http-date", "none")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that shapes how the fake Wan API behaves. Times are in seconds."""

    provider: str = "wanapi"  # the API dialect spoken: wanapi, dashscope, fal, replicate, gateway
    api_key: str = DEFAULT_KEY  # the one key that is accepted
    credits: int = 1_000_000  # the key's balance; one credit per created task
    models: tuple[str, ...] = ("wan-2-2", "wan-2-1")
    generation_seconds: float = 0.05  # mean render time of one task
    distribution: str = "fixed"  # fixed | uniform | lognormal
    spread: float = 0.5  # uniform: +- fraction of the mean; lognormal: sigma
    time_scale: float = 1.0  # multiplies every render time (0.01 turns minutes into seconds)
    slots: int = 8  # tasks rendered at once; the rest wait queued
    rate_limit_rps: float = 0.0  # token bucket per key; 0 switches it off
    rate_limit_burst: float = 10.0
    retry_after_format: str = "seconds"  # seconds | http-date | none
    error_rate: float = 0.0  # share of API requests answered 500 or 503
    failure_rate: float = 0.0  # share of tasks whose generation fails
    flagged_words: tuple[str, ...] = ()  # a prompt with one of these fails: content filter
    honour_idempotency: bool = True  # same Idempotency-Key -> same task, charged once
    url_ttl_seconds: float = 600.0  # signed video URLs expire after this
    output_lifetime_seconds: float = 3600.0  # replicate: a finished task's output is deleted
    webhook_secret: str = "whsec_d2FuYmF0Y2gtc2ltdWxhdG9yLXNpZ25pbmcta2V5ISE="  # signs notices
    truncate_first_download: bool = False  # the first full download of each video is cut short
    redirect_downloads: bool = False  # the CDN redirects to a third origin
    video_size: int = 0  # pad every video to at least this many bytes
    seed: int = 0  # randomness (render times, faults) is seeded
    host: str = "127.0.0.1"

    def replace(self, **changes: Any) -> SimConfig:
        return dataclasses.replace(self, **coerce(changes))

    @classmethod
    def from_file(cls, path: str | Path) -> SimConfig:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of knobs")
        return cls().replace(**data)


KNOBS = {field.name: field for field in fields(SimConfig)}


def coerce(changes: dict[str, Any]) -> dict[str, Any]:
    """Check knob names and convert values (from text, JSON or YAML) to the knob's type."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in KNOBS:
            raise ValueError(f"unknown simulator knob {name!r}; known: {', '.join(KNOBS)}")
        default = getattr(SimConfig(), name)
        if isinstance(default, bool):
            if isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes", "on")
            value = bool(value)
        elif isinstance(default, int):
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        elif isinstance(default, tuple):
            value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        else:
            value = str(value)
        out[name] = value
    if "provider" in out:
        dialect(out["provider"])  # ValueError naming the known ones
    if out.get("distribution", "fixed") not in DISTRIBUTIONS:
        raise ValueError("distribution must be fixed, uniform or lognormal")
    if out.get("retry_after_format", "seconds") not in RETRY_AFTER_FORMATS:
        raise ValueError("retry_after_format must be seconds, http-date or none")
    return out
