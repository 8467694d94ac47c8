"""Backoff, the fixed poll interval and Retry-After parsing."""

from __future__ import annotations

import email.utils

from hypothesis import given
from hypothesis import strategies as st

from wanbatch.backoff import (
    PollPolicy,
    RetryPolicy,
    compute_backoff,
    parse_retry_after,
)


def test_backoff_grows_and_caps() -> None:
    """With the top random draw the delay doubles per attempt up to the cap."""
    top = lambda: 1.0  # noqa: E731 - the largest draw
    delays = [compute_backoff(n, base=0.5, cap=4.0, random=top) for n in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@given(
    st.integers(min_value=-5, max_value=10**9),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_never_overflows(attempt: int, draw: float) -> None:
    """Any attempt number gives a finite delay within [0, cap]."""
    delay = compute_backoff(attempt, base=0.5, cap=30.0, random=lambda: draw)
    assert 0.0 <= delay <= 30.0


def test_retry_policy_is_full_jitter() -> None:
    """The lowest draw gives no wait at all: full jitter spreads a herd."""
    assert RetryPolicy().delay(3, lambda: 0.0) == 0.0


def test_poll_ladder_climbs_and_caps() -> None:
    """A ladder climbs geometrically to its cap; `--poll-interval S` is the flat ladder."""
    policy = PollPolicy(initial_seconds=1.0, factor=2.0, cap_seconds=5.0, jitter=0.0)
    assert [policy.delay(n, lambda: 0.5) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    flat = PollPolicy(initial_seconds=3.0, factor=1.0, cap_seconds=3.0, jitter=0.0)
    assert [flat.delay(n, lambda: 0.5) for n in range(3)] == [3.0, 3.0, 3.0]


def test_retry_after_seconds_and_dates() -> None:
    """Retry-After parses as delta-seconds or an HTTP-date; garbage gives None."""
    now = 1_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 2.5 ", now) == 2.5
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now) == 30.0
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    for bad in (None, "", "soon", "-3", "nan", "inf"):
        assert parse_retry_after(bad, now) is None


@given(st.text(max_size=40))
def test_retry_after_never_raises(text: str) -> None:
    """Arbitrary header text never raises and never gives a negative wait."""
    value = parse_retry_after(text, 1_000_000.0)
    assert value is None or value >= 0


def test_retry_after_is_capped() -> None:
    """A server may ask for days; wanbatch waits at most MAX_RETRY_AFTER_SECONDS at a time."""
    from wanbatch.backoff import MAX_RETRY_AFTER_SECONDS, cap_retry_after

    assert cap_retry_after(None) is None
    assert cap_retry_after(5.0) == 5.0
    assert cap_retry_after(999999.0) == MAX_RETRY_AFTER_SECONDS == 900.0
