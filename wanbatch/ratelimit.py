"""Admission control for requests to the API host. Pure: times are passed in, nothing sleeps.

- ``RequestPacer`` spaces requests at most ``rate`` a second with a small burst.
- ``HostGate`` holds the one not-before time a ``Retry-After`` set for the whole host.
- ``AdaptiveLimit`` shrinks the number of tasks in flight on 429s that gave no ``Retry-After``
  and grows it back slowly, never above the user's limit.

The scheduler asks how long to wait and sleeps; the objects only do arithmetic,
so tests drive them with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_EPSILON = 1e-9


@dataclass(slots=True)
class RequestPacer:
    """A token bucket: ``rate`` requests a second on average, up to ``burst`` at once.

    The rate adapts to the server's (additive increase, multiplicative decrease): each 429
    stops bursts and cuts the rate by ``cut`` (at most once per ``cut_window`` seconds, so a
    volley of 429s from one burst counts once); each request granted afterwards wins back
    ``regrow`` requests a second, up to the user's ``ceiling``. A user who wrote the server's
    limit into the manifest loses little; one who did not is brought down to it by the 429s.
    """

    rate: float
    burst: float = 1.0
    cut: float = 0.8
    cut_window: float = 1.0
    regrow: float = 0.01
    ceiling: float = field(init=False, default=0.0)
    _tokens: float = field(init=False, default=0.0)
    _updated: float | None = field(init=False, default=None)
    _last_cut: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = self.rate
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._updated is None:
            self._updated = now
            return
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now

    def wait_time(self, now: float) -> float:
        """How long until a token is free (0 if one is free now). Takes nothing."""
        self._refill(now)
        missing = 1.0 - self._tokens
        # A sliver below one token is float rounding, not a reason to wait a nanosecond.
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self, now: float) -> None:
        """Spend a token (the caller checked ``wait_time`` is 0)."""
        self._refill(now)
        self._tokens -= 1.0
        if self.rate < self.ceiling:
            self.rate = min(self.ceiling, self.rate + self.regrow)

    def throttle(self, now: float) -> None:
        """The server refused a request for its rate: no more bursts, no saved tokens, and a
        slower pace (once per ``cut_window``)."""
        self._refill(now)
        self.burst = 1.0
        self._tokens = min(self._tokens, 0.0)
        if self._last_cut is None or now - self._last_cut >= self.cut_window:
            self._last_cut = now
            self.rate = max(min(1.0, self.ceiling), self.rate * self.cut)


@dataclass(slots=True)
class HostGate:
    """The not-before time for the whole host, set by ``Retry-After``."""

    not_before: float = 0.0

    def block_for(self, seconds: float, now: float) -> None:
        """No request before ``now + seconds`` (a later existing block is kept)."""
        self.not_before = max(self.not_before, now + max(0.0, seconds))

    def delay(self, now: float) -> float:
        return max(0.0, self.not_before - now)


@dataclass(slots=True)
class AdaptiveLimit:
    """How many tasks may be in flight: cut on bare 429s, regrown by one per ``grow_after`` successes."""

    ceiling: int
    floor: int = 1
    grow_after: int = 20
    current: int = field(init=False)
    _successes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.current = self.ceiling

    def on_throttled(self) -> None:
        self.current = max(self.floor, self.current // 2 if self.current > 1 else 1)
        self._successes = 0

    def on_success(self) -> None:
        if self.current >= self.ceiling:
            return
        self._successes += 1
        if self._successes >= self.grow_after:
            self.current += 1
            self._successes = 0
