"""The simulator's dialects: one per provider API, each written from that provider's docs.

A dialect turns a request into an operation on the shared ``SimState`` (create, get, cancel,
list, result) and writes the answer in its API's form: paths, bodies, status words and error
shapes. Rate limits, injected server errors, render times, failures, the content filter, the
key's credits and the CDN are the state's, so every fault knob works in every dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from wanbatch.simulator.app import SimState

# (status, JSON payload, extra headers)
Reply = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # below the dialect's base path, starting with "/"
    query: Mapping[str, str]  # one value per name (the last)
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class SimDialect(Protocol):
    name: str
    base_path: str  # the API's base URL is the listener's origin plus this

    def key_of(self, headers: Mapping[str, str]) -> str:
        """The API key the request carries ("" for none)."""

    def error(self, status: int, kind: str, message: str) -> Reply:
        """An error answer. ``kind``: auth, rate_limited, server, not_found, invalid, credits,
        not_json; for rate_limited the caller adds the wait (``retry_after`` in headers)."""

    def route(self, state: SimState, key: str, request: Request) -> Reply:
        """Answer one authenticated request that passed the rate limit and fault gate. Called
        with ``state.lock`` held: never awaits."""


NAMES = ("wanapi", "dashscope", "fal", "gateway", "replicate")  # what `dialect` knows


def dialect(name: str) -> SimDialect:
    from wanbatch.simulator.dialects.dashscope import DashScopeDialect
    from wanbatch.simulator.dialects.fal import FalDialect
    from wanbatch.simulator.dialects.gateway import GatewayDialect
    from wanbatch.simulator.dialects.replicate import ReplicateDialect
    from wanbatch.simulator.dialects.wanapi import WanApiDialect

    dialects: dict[str, SimDialect] = {
        "wanapi": WanApiDialect(),
        "replicate": ReplicateDialect(),
        "gateway": GatewayDialect(),
        "fal": FalDialect(),
        "dashscope": DashScopeDialect(),
    }
    try:
        return dialects[name]
    except KeyError:
        raise ValueError(f"no simulator dialect {name!r}; known: {', '.join(NAMES)}") from None
