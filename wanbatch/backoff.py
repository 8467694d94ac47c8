"""How long to wait: retry backoff, a fixed poll ladder and ``Retry-After``. Pure; randomness injected.

The backoff is "full jitter" (a uniform draw below an exponentially growing, capped ceiling),
which spreads a herd of clients that failed together. Exponents are capped before they are
raised so that a large attempt number cannot overflow.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass

Random = Callable[[], float]  # returns a float in [0, 1)

_MAX_EXPONENT = 60  # 2**60 already dwarfs any cap; larger attempts reuse it
# The longest wait a ``Retry-After`` may impose at once (15 minutes). A server that wants more
# answers 429 again when asked after this; one that sends 999999 does not freeze a run for days.
MAX_RETRY_AFTER_SECONDS = 900.0


def compute_backoff(attempt: int, *, base: float, cap: float, random: Random) -> float:
    """Full-jitter delay before retry number ``attempt`` (0-based): uniform in [0, min(cap, base*2^n))."""
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    ceiling = min(cap, base * (2.0**exponent))
    return random() * ceiling


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one request: how many and how far apart."""

    max_attempts: int = 8  # attempts in all, the first included
    # ...when the server said when to come back (429 with Retry-After): waiting as told is not
    # failing, so a busy server gets more patience than a broken one.
    max_attempts_told_when: int = 32
    base_seconds: float = 0.5
    cap_seconds: float = 30.0

    def delay(self, attempt: int, random: Random) -> float:
        return compute_backoff(attempt, base=self.base_seconds, cap=self.cap_seconds, random=random)


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Spacing of status polls for one task: a capped geometric ladder with +-jitter.

    Used when the user fixes the interval (``--poll-interval``: factor 1); otherwise the
    planner (``planner.py``) times every poll.
    """

    initial_seconds: float = 2.0
    factor: float = 1.5
    cap_seconds: float = 30.0
    jitter: float = 0.1  # +- fraction of each delay

    def delay(self, polls_done: int, random: Random) -> float:
        exponent = min(max(polls_done, 0), _MAX_EXPONENT)
        base = min(self.cap_seconds, self.initial_seconds * (self.factor**exponent))
        spread = 1.0 + self.jitter * (2.0 * random() - 1.0)
        return base * spread


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    ``now`` is the wall clock in epoch seconds, for the date form. Negative and garbled values
    give None (the caller falls back to its own backoff); a past date gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)  # 400 digits is inf (capped by the caller), not an OverflowError
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def cap_retry_after(asked: float | None) -> float | None:
    """The wait for a ``Retry-After`` of ``asked`` seconds: at most ``MAX_RETRY_AFTER_SECONDS``."""
    return None if asked is None else min(asked, MAX_RETRY_AFTER_SECONDS)
