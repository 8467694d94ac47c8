"""Outages and sleeps: the rules, with no I/O. Times are passed in; nothing sleeps here.

- ``HostHealth``: one host (the API host, or the video host) is up, or down since a time. A
  request that met no answer at the connection level (refused, reset, timed out, TLS) marks it
  down; any answer at all (even a 429 or a 500) marks it up and ends the outage. While it is
  down only one request at a time goes out, as a probe, at an interval that doubles from
  ``ProbePolicy.first_seconds`` to ``cap_seconds`` with +-``jitter``; the others wait and spend
  nothing of their retry budgets.
- ``ClockWatch``: notices that the machine slept. The monotonic clock stands still in a suspend
  while the wall clock moves on; a wall clock that gained more than ``threshold`` seconds on
  the monotonic one between two looks is a sleep, and its length is remembered so that job
  deadlines do not count it and stored video URLs are refreshed before use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PROBE_FIRST_SECONDS = 2.0  # the first probe after an outage begins
PROBE_CAP_SECONDS = 60.0  # probes are never further apart than this (before jitter)
PROBE_JITTER = 0.2  # +- fraction of each probe interval
MAX_OUTAGE_SECONDS = 6 * 3600.0  # ``--max-outage`` default: a night's Wi-Fi drop, not a week
SLEEP_THRESHOLD_SECONDS = 30.0  # a wall clock that gains more than this was a sleep


@dataclass(frozen=True, slots=True)
class ProbePolicy:
    first_seconds: float = PROBE_FIRST_SECONDS
    cap_seconds: float = PROBE_CAP_SECONDS
    jitter: float = PROBE_JITTER

    def interval(self, probes: int, random: Callable[[], float]) -> float:
        """Seconds before probe number ``probes`` + 1 (0-based ``probes`` already failed)."""
        base = min(self.cap_seconds, self.first_seconds * 2.0 ** min(probes, 60))
        return base * (1.0 + self.jitter * (2.0 * random() - 1.0))


@dataclass(slots=True)
class Outage:
    since: float  # clock time the first failure came back
    next_probe: float  # clock time the next probe may go
    probes: int = 0  # probes that failed
    probe_out: float | None = None  # clock time the probe in flight was granted


@dataclass(slots=True)
class HostHealth:
    """Up, or down since a time; see the module docstring. ``random`` spreads the probes."""

    policy: ProbePolicy = ProbePolicy()
    random: Callable[[], float] = field(default=lambda: 0.5)
    answered_ever: bool = False  # some request to this host connected (or got an answer)
    outage: Outage | None = None
    outages: int = 0  # outages that began this run
    ended_seconds: float = 0.0  # the total length of the outages that ended
    ended_at: float | None = None  # clock time the last outage ended

    @property
    def down(self) -> bool:
        return self.outage is not None

    @property
    def probing(self) -> bool:
        """A probe is out and has not come back."""
        return self.outage is not None and self.outage.probe_out is not None

    def failed(self, now: float) -> bool:
        """A request met no answer. True when this began an outage (the host was up)."""
        if self.outage is None:
            self.outage = Outage(since=now, next_probe=now + self.policy.interval(0, self.random))
            self.outages += 1
            return True
        outage = self.outage
        if outage.probe_out is not None:  # the probe failed: the next one later
            outage.probes += 1
            outage.probe_out = None
            outage.next_probe = now + self.policy.interval(outage.probes, self.random)
        return False

    def reached(self) -> None:
        """A request connected but got no answer (a reset): someone is there, at least."""
        self.answered_ever = True

    def answered(self, now: float) -> float | None:
        """A request got an answer: the host is up. The length of the outage this ended."""
        self.answered_ever = True
        if self.outage is None:
            return None
        length = max(0.0, now - self.outage.since)
        self.outage = None
        self.ended_at = now
        self.ended_seconds += length
        return length

    def probe_wait(self, now: float) -> float:
        """How long before a request may go: 0 when up or a probe is due. A probe granted but
        never reported (its sender stopped) is given up on after ``cap_seconds``."""
        outage = self.outage
        if outage is None:
            return 0.0
        if outage.probe_out is not None:
            return max(0.0, outage.probe_out + self.policy.cap_seconds - now) or 0.0
        return max(0.0, outage.next_probe - now)

    def probe_sent(self, now: float) -> None:
        if self.outage is not None:
            self.outage.probe_out = now
            self.outage.next_probe = now + self.policy.cap_seconds

    def down_since(self, then: float) -> bool:
        """Was the host down at any time since clock time ``then``?"""
        return self.outage is not None or (self.ended_at is not None and self.ended_at >= then)

    def down_for(self, now: float) -> float:
        return 0.0 if self.outage is None else max(0.0, now - self.outage.since)

    def total_seconds(self, now: float) -> float:
        """Every outage of this run, the current one included."""
        return self.ended_seconds + self.down_for(now)


def past_limit(health: HostHealth, now: float, max_outage: float) -> bool:
    """The current outage has lasted longer than ``max_outage`` (0: never give up)."""
    return max_outage > 0 and health.down_for(now) > max_outage


def outage_line(host: str, health: HostHealth, now: float, wall: float) -> str | None:
    """ "API unreachable since 02:13, next try 02:15:30" (local time; the next try to the
    second, as probes come within a minute of each other), or None when up."""
    outage = health.outage
    if outage is None:
        return None
    since = _clock_time(wall - (now - outage.since))
    if outage.probe_out is not None:
        return f"{host} unreachable since {since}, trying now"
    next_try = _clock_time(wall + (outage.next_probe - now), "%H:%M:%S")
    return f"{host} unreachable since {since}, next try {next_try}"


def _clock_time(epoch: float, form: str = "%H:%M") -> str:
    return time.strftime(form, time.localtime(epoch))


@dataclass(slots=True)
class ClockWatch:
    """Finds sleeps: between two looks, the wall clock gained on the monotonic one."""

    threshold: float = SLEEP_THRESHOLD_SECONDS
    sleeps: list[tuple[float, float]] = field(default_factory=list)  # (wall at sleep, seconds)
    unseen: bool = False  # a sleep not yet acted on (stored video URLs not yet forgotten)
    _last: tuple[float, float] | None = None

    def look(self, clock: float, wall: float) -> float:
        """Note the clocks now; the seconds of a sleep found since the last look (0: none)."""
        last, self._last = self._last, (clock, wall)
        if last is None:
            return 0.0
        gained = (wall - last[1]) - (clock - last[0])
        if gained <= self.threshold:
            return 0.0
        self.sleeps.append((last[1] + (clock - last[0]), gained))
        self.unseen = True
        return gained

    def slept_since(self, wall: float) -> float:
        """Seconds the machine slept after wall time ``wall``."""
        return sum(seconds for began, seconds in self.sleeps if began >= wall)

    def take_unseen(self) -> bool:
        """True once after each sleep: the caller acts on it (forgets stored video URLs)."""
        unseen, self.unseen = self.unseen, False
        return unseen


def first_contact_problem(base_url: str, error: Exception) -> str:
    """What the run's first request meeting nobody says: the host (never the URL's query, where
    a key may be), what went wrong, and what to check. ``error``'s ``code`` (``client.py``'s
    ``connect_failure``) says why no connection was made."""
    parts = urlsplit(base_url)
    host = parts.hostname or "the API host"
    shown = host if ":" not in host else f"[{host}]"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    where = shown if port is None else f"{shown}:{port}"
    check = "check --base-url (or api.base_url in the manifest)"
    code = getattr(error, "code", None)
    if code == "connection_refused":
        problem = f"nothing listens at {where} (connection refused)"
        advice = f"{check}: its host and port, that the server is running, and the network"
    elif code == "name_not_resolved":
        problem = f"the API host {host} does not resolve (no such name in DNS)"
        advice = f"{check} for a typo in the host, and the network (DNS, VPN, proxy)"
    else:
        detail = str(error).partition("could not connect: ")[2] or str(error)
        problem = f"could not connect to {where} ({detail})"
        advice = f"{check}, and the network"
    return f"{problem} on the run's first request; {advice}"
