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


def _saturate(pacer: RequestPacer, start: float, seconds: float) -> tuple[float, int]:
    """Send as fast as the pacer allows for ``seconds``; the time reached and requests sent."""
    now, sent = start, 0
    while now < start + seconds:
        wait = pacer.wait_time(now)
        if wait:
            now += wait
            continue
        pacer.take(now)
        sent += 1
    return now, sent


def test_a_user_limit_is_a_hard_ceiling() -> None:
    """With `requests_per_second` set, a saturated run sends that rate and never more."""
    pacer = RequestPacer.for_limit(10.0)
    _, sent = _saturate(pacer, 0.0, 10.0)
    assert 99 <= sent <= 103  # 100 at the rate, plus the small opening burst
    assert pacer.rate == 10.0 == pacer.ceiling


def test_with_no_limit_the_rate_is_probed_upward_while_requests_wait() -> None:
    """No limit set: the run starts moderately and adds about `increase` requests/s for each
    second in which requests waited for the budget."""
    pacer = RequestPacer.for_limit(None)
    start = pacer.rate
    _saturate(pacer, 0.0, 10.0)
    assert pacer.ceiling is None
    assert pacer.rate == pytest.approx(start + 10 * pacer.increase, rel=0.1)


def test_an_idle_budget_does_not_grow() -> None:
    """Requests that never wait for a token are no evidence the server allows more."""
    pacer = RequestPacer.for_limit(None)
    start = pacer.rate
    for second in range(100):
        assert pacer.wait_time(float(second)) == 0.0
        pacer.take(float(second))
    assert pacer.rate == start


def test_after_a_429_the_rate_approaches_the_refused_rate_slowly() -> None:
    """A 429 cuts the rate and remembers where it happened; growth near it is careful."""
    pacer = RequestPacer.for_limit(None)
    now, _ = _saturate(pacer, 0.0, 5.0)
    refused = pacer.rate
    pacer.throttle(now)
    assert pacer.refused_at == refused
    assert pacer.rate == pytest.approx(refused * pacer.cut)
    now, _ = _saturate(pacer, now, 60.0)
    assert pacer.rate <= refused * 1.05  # 60 s of careful probing add about 3 requests/s
    assert pacer.settled


def test_settled_only_when_the_budget_is_known() -> None:
    """Waiting for tokens means the budget binds only at the user's ceiling or after a 429."""
    assert not RequestPacer.for_limit(None).settled
    assert RequestPacer.for_limit(4.0).settled


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
    pacer = RequestPacer(rate=10.0, burst=10.0, ceiling=10.0, cut=0.5, increase=0.0)
    assert pacer.wait_time(0.0) == 0.0
    pacer.throttle(0.0)
    assert pacer.rate == 5.0
    assert pacer.wait_time(0.0) == pytest.approx(0.2)  # the 10 saved tokens are gone
    assert pacer.wait_time(5.0) == 0.0
    pacer.take(5.0)
    assert pacer.wait_time(5.0) == pytest.approx(0.2)  # a long idle saves one token, not ten


def test_a_volley_of_429s_cuts_the_rate_once_and_it_grows_back_to_the_ceiling() -> None:
    """429s within one window count once; waiting requests regrow the rate, never above what
    the user allowed."""
    pacer = RequestPacer(rate=100.0, burst=100.0, ceiling=100.0, cut=0.8, careful_increase=50.0)
    for _ in range(10):
        pacer.throttle(0.5)
    assert pacer.rate == pytest.approx(80.0)
    pacer.throttle(1.6)
    assert pacer.rate == pytest.approx(64.0)
    _saturate(pacer, 2.0, 20.0)
    assert pacer.rate == 100.0 == pacer.ceiling


def test_the_rate_is_never_cut_below_its_floor() -> None:
    """However many 429s, the pace stays above `lowest` (or a user's lower ceiling)."""
    pacer = RequestPacer(rate=4.0, cut=0.5)
    for second in range(20):
        pacer.throttle(float(second))
    assert pacer.rate == pacer.lowest
    slow = RequestPacer.for_limit(0.1)
    slow.throttle(0.0)
    assert slow.rate == 0.1  # a user's own limit below the floor stays as it is


def test_a_limit_below_one_request_a_second_still_sends() -> None:
    """`requests_per_second: 0.5` sends a request every two seconds; it never stalls."""
    pacer = RequestPacer.for_limit(0.5)
    assert pacer.wait_time(0.0) == 0.0
    pacer.take(0.0)
    assert pacer.wait_time(0.0) == pytest.approx(2.0)
    assert pacer.wait_time(2.0) == 0.0
