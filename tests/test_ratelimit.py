"""Request pacing, the host gate and adaptive concurrency, on a fake clock."""

from __future__ import annotations

import pytest

from wanbatch.ratelimit import AdaptiveLimit, HostGate, RequestPacer


def test_pacer_allows_burst_then_spaces() -> None:
    """Two tokens go at once, the third waits 1/rate."""
    pacer = RequestPacer(rate=4.0, burst=2.0)
    now = 100.0
    for _ in range(2):
        assert pacer.wait_time(now) == 0.0
        pacer.take(now)
    assert pacer.wait_time(now) == 0.25
    assert pacer.wait_time(now + 0.25) == 0.0


def test_pacer_rate_over_a_long_run() -> None:
    """Taking tokens as soon as allowed gives `rate` requests a second on average."""
    pacer = RequestPacer(rate=10.0, burst=1.0)
    now, sent = 0.0, 0
    while now < 10.0:
        wait = pacer.wait_time(now)
        if wait:
            now += wait
            continue
        pacer.take(now)
        sent += 1
    assert 99 <= sent <= 101


def test_gate_keeps_the_latest_block() -> None:
    """A shorter Retry-After never shortens a longer one already in force."""
    gate = HostGate()
    gate.block_for(10.0, now=0.0)
    gate.block_for(2.0, now=1.0)
    assert gate.delay(5.0) == 5.0
    assert gate.delay(11.0) == 0.0


def test_adaptive_limit_halves_and_regrows_to_ceiling() -> None:
    """429s halve the limit; successes grow it back one at a time, never past the ceiling."""
    limit = AdaptiveLimit(ceiling=8, grow_after=2)
    limit.on_throttled()
    limit.on_throttled()
    assert limit.current == 2
    for _ in range(100):
        limit.on_success()
    assert limit.current == 8


def test_throttle_stops_bursts_and_spends_saved_tokens() -> None:
    """After a 429 the bucket gives one request at a time, at a slower steady rate."""
    pacer = RequestPacer(rate=10.0, burst=10.0, cut=0.5, regrow=0.0)
    assert pacer.wait_time(0.0) == 0.0
    pacer.throttle(0.0)
    assert pacer.rate == 5.0
    assert pacer.wait_time(0.0) == pytest.approx(0.2)  # the 10 saved tokens are gone
    assert pacer.wait_time(5.0) == 0.0
    pacer.take(5.0)
    assert pacer.wait_time(5.0) == pytest.approx(0.2)  # a long idle saves one token, not ten


def test_a_volley_of_429s_cuts_the_rate_once_and_it_grows_back_to_the_ceiling() -> None:
    """429s within one window count once; each later request regrows the rate, never above
    what the user allowed."""
    pacer = RequestPacer(rate=100.0, burst=100.0, cut=0.8, cut_window=1.0, regrow=1.0)
    for _ in range(10):
        pacer.throttle(0.5)
    assert pacer.rate == pytest.approx(80.0)
    pacer.throttle(1.6)
    assert pacer.rate == pytest.approx(64.0)
    now = 2.0
    for _ in range(100):
        now += pacer.wait_time(now)
        pacer.take(now)
    assert pacer.rate == 100.0 == pacer.ceiling


def test_the_rate_is_never_cut_below_one_request_a_second() -> None:
    pacer = RequestPacer(rate=4.0, cut=0.5)
    for second in range(20):
        pacer.throttle(float(second))
    assert pacer.rate == 1.0
    slow = RequestPacer(rate=0.5, cut=0.5)
    slow.throttle(0.0)
    assert slow.rate == 0.5  # a user's own limit below one a second stays as it is
