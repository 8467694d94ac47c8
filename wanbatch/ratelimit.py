"""Admission control for requests to the API host. Pure: times are passed in, nothing sleeps.

- ``RequestPacer`` spaces requests at most ``rate`` a second with a small burst, and finds the
  server's rate when the user set none (AIMD, remembering where 429s began).
- ``HostGate`` holds the one not-before time a ``Retry-After`` set for the whole host.
- ``AdaptiveLimit`` shrinks the number of tasks in flight on 429s that gave no ``Retry-After``
  and grows it back slowly, never above the user's limit.

The scheduler asks how long to wait and sleeps; the objects only do arithmetic,
so tests drive them with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_EPSILON = 1e-9


# With no limit written down, a run starts here and probes upward (``RequestPacer.for_limit``).
DISCOVERY_START_RATE = 10.0


@dataclass(slots=True)
class RequestPacer:
    """A token bucket: ``rate`` requests a second on average, up to ``burst`` at once.

    The rate follows the server's (additive increase, multiplicative decrease):

    - While requests wait for tokens (the pacer is what holds the run back), every request
      raises the rate, by ``increase`` requests a second for each second spent so, or by
      ``careful_increase`` once the rate is within ``careful_zone`` of a rate where the server
      refused before: the run approaches a known limit slowly.
    - A 429 stops bursts, spends saved tokens, remembers the rate as ``refused_at`` and cuts the
      rate by ``cut`` (at most once per ``cut_window`` seconds: a volley of 429s counts once).
    - ``ceiling``, when the user set one, is a hard limit; ``None`` means "discover it".
    """

    rate: float
    burst: float = 1.0
    ceiling: float | None = None
    increase: float = 2.0
    careful_increase: float = 0.02
    careful_zone: float = 0.85
    cut: float = 0.7
    cut_window: float = 1.0
    lowest: float = 0.2  # a 429 never cuts the rate below this (nor below a lower ceiling)
    refused_at: float | None = field(init=False, default=None)
    _tokens: float = field(init=False, default=0.0)
    _updated: float | None = field(init=False, default=None)
    _last_cut: float | None = field(init=False, default=None)
    _waited: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.burst < 1:
            raise ValueError("burst must hold at least one request")
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self._tokens = self.burst

    @classmethod
    def for_limit(cls, requests_per_second: float | None, concurrency: int = 1) -> RequestPacer:
        """The pacer for a user's limit: that limit as a hard ceiling, or none and a probe.

        Probing starts with a burst of the first wave's creates (``concurrency``, at most a
        second's worth): a render slot left idle at the start costs more than a 429, and the
        first 429 ends bursts for good."""
        if requests_per_second is None:
            burst = float(max(1, min(concurrency, DISCOVERY_START_RATE)))
            return cls(rate=DISCOVERY_START_RATE, burst=burst, ceiling=None)
        # A token bucket that cannot hold one whole token never grants: at least one.
        burst = max(1.0, min(requests_per_second, requests_per_second / 4))
        return cls(rate=requests_per_second, burst=burst, ceiling=requests_per_second)

    def _refill(self, now: float) -> None:
        if self._updated is None:
            self._updated = now
            return
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now

    @property
    def settled(self) -> bool:
        """The budget is known to bind: the user's ceiling is reached, or the server refused.
        Until then a request that waits is the probe catching up, not a reason to poll less."""
        if self.refused_at is not None:
            return True
        return self.ceiling is not None and self.rate >= self.ceiling * 0.99

    def wait_time(self, now: float) -> float:
        """How long until a token is free (0 if one is free now). Takes nothing."""
        self._refill(now)
        missing = 1.0 - self._tokens
        # A sliver below one token is float rounding, not a reason to wait a nanosecond.
        if missing <= _EPSILON:
            return 0.0
        self._waited = True
        return missing / self.rate

    def take(self, now: float) -> None:
        """Spend a token (the caller checked ``wait_time`` is 0)."""
        self._refill(now)
        self._tokens -= 1.0
        if self._waited:  # the budget held this request back: probe a little higher
            self._waited = False
            careful = (
                self.refused_at is not None and self.rate >= self.careful_zone * self.refused_at
            )
            step = self.careful_increase if careful else self.increase
            self.rate += step / self.rate
            if self.ceiling is not None:
                self.rate = min(self.rate, self.ceiling)

    def throttle(self, now: float) -> None:
        """The server refused a request for its rate: no more bursts, no saved tokens, and a
        slower pace (once per ``cut_window``)."""
        self._refill(now)
        self.burst = 1.0
        self._tokens = min(self._tokens, 0.0)
        if self._last_cut is None or now - self._last_cut >= self.cut_window:
            self._last_cut = now
            self.refused_at = self.rate
            lowest = self.lowest if self.ceiling is None else min(self.lowest, self.ceiling)
            self.rate = max(lowest, self.rate * self.cut)


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
