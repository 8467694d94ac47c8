"""Backoff, poll spacing, Retry-After parsing, the first-poll estimate and the queue planner."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wanbatch.backoff import (
    FirstPollEstimator,
    PollPolicy,
    QueuePlanner,
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


def test_poll_ladder_and_expected_first_poll() -> None:
    """Polls climb geometrically; a learned render time moves the first poll near the finish."""
    policy = PollPolicy(initial_seconds=1.0, factor=2.0, cap_seconds=5.0, jitter=0.0)
    assert [policy.delay(n, lambda: 0.5) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(0, lambda: 0.5, expected_seconds=3.0) == 3.0
    assert policy.delay(0, lambda: 0.5, expected_seconds=60.0) == 5.0


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


def test_first_poll_estimate_is_steered_by_outcomes() -> None:
    """Found done at the first poll: shrink; found unfinished: grow."""
    estimator = FirstPollEstimator(shrink=0.9, grow=1.25)
    assert estimator.expect("wan-2-2", 5) is None
    estimator.first_poll("wan-2-2", 5, done=True, elapsed=10.0)
    assert estimator.expect("wan-2-2", 5) == pytest.approx(9.0)
    assert estimator.expect("wan-2-1", 8) == pytest.approx(9.0)  # other kinds borrow it
    estimator.first_poll("wan-2-2", 5, done=False, elapsed=30.0)
    assert estimator.expect("wan-2-2", 5) == pytest.approx(11.25)
    estimator.first_poll("wan-2-2", 5, done=True, elapsed=4.0)  # done sooner: follow it down
    assert estimator.expect("wan-2-2", 5) == pytest.approx(3.6)


def test_first_poll_estimate_settles_near_the_target_share_of_early_polls() -> None:
    """Fixed 10 s renders: about 10% of first polls come early, and they come near 10 s."""
    estimator = FirstPollEstimator()
    early = 0
    asked = []
    estimator.first_poll("m", 5, done=False, elapsed=10.0)
    for _ in range(1000):
        at = estimator.expect("m", 5)
        assert at is not None
        asked.append(at)
        done = at >= 10.0
        early += not done
        estimator.first_poll("m", 5, done=done, elapsed=max(at, 10.0))
    assert 0.05 < early / 1000 < 0.2
    assert 9.0 < sorted(asked)[500] < 12.0


def test_first_poll_estimate_does_not_ratchet_up() -> None:
    """Zero-second renders: the estimate falls instead of creeping up with its own delays."""
    estimator = FirstPollEstimator()
    estimator.first_poll("m", 5, done=True, elapsed=2.0)
    for _ in range(100):
        expected = estimator.expect("m", 5)
        assert expected is not None
        estimator.first_poll("m", 5, done=True, elapsed=expected + 0.01)  # a round trip later
    final = estimator.expect("m", 5)
    assert final is not None and final < 0.2


def test_queue_planner_spreads_polls_by_rank() -> None:
    """Tasks in flight are expected k / rate after the first create, no later than the ladder."""
    planner = QueuePlanner(faster=1.05, slower=0.85, spacing=6.0)
    for k in range(1, 17):
        planner.submitted(f"j{k}", now=100.0)
    # Before anything finished: the ladder decides.
    assert planner.poll_at("j16", ladder_at=102.0) == (102.0, "ladder")
    assert planner.poll_at("j16", ladder_at=102.0, expected_at=101.0) == (101.0, "estimate")
    planner.outcome("j1", done=True, now=101.0)  # 1 finished in 1 s: rate 1/s
    assert planner.rate == pytest.approx(1.0)
    assert planner.poll_at("j16", ladder_at=200.0) == (pytest.approx(116.0), "queue")
    assert planner.poll_at("j16", ladder_at=110.0) == (110.0, "ladder")  # never later
    # The render-time estimate is a floor: a task cannot be done before it rendered.
    assert planner.poll_at("j2", ladder_at=200.0, expected_at=150.0) == (150.0, "estimate")
    planner.outcome("j2", done=True, now=101.0)  # found done: the rate rises
    assert planner.rate == pytest.approx(2.0)  # the floor: 2 finished in 1 s
    planner.outcome("j3", done=True, now=101.0)
    assert planner.rate == pytest.approx(3.0)
    planner.outcome("j4", done=False, now=101.0)  # unfinished: the rate falls
    assert planner.rate == pytest.approx(3.0)  # ...but not below the floor
    planner.polled("j4", now=101.0)
    # j4 is expected at 100 + 4/3, but may not be asked again before 101 + 6/3.
    assert planner.poll_at("j4", ladder_at=200.0) == (pytest.approx(103.0), "spacing")
    planner.forget("j16")
    assert planner.poll_at("j16", ladder_at=150.0) == (150.0, "ladder")
    assert planner.finished == 3
    planner.outcome("j5", done=False, now=101.0, steer=False)  # not timed by the queue
    assert planner.rate == pytest.approx(3.0)


def test_queue_planner_rate_steering_is_bounded_below_by_finishes() -> None:
    planner = QueuePlanner(faster=1.05, slower=0.5)
    planner.submitted("a", now=0.0)
    planner.submitted("b", now=0.0)
    planner.outcome("a", done=True, now=2.0)
    assert planner.rate == pytest.approx(0.5)
    for _ in range(10):
        planner.outcome("b", done=False, now=2.0)
    assert planner.rate == pytest.approx(0.5)  # one finish in 2 s is a fact, not a guess
