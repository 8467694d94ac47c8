"""Admission, retry state and the stop table: small parts, each on its own."""

from __future__ import annotations

import anyio

from wanbatch.admission import CREATE, POLL, Admission
from wanbatch.backoff import RetryPolicy
from wanbatch.ratelimit import AdaptiveLimit, HostGate, RequestPacer
from wanbatch.retrying import RetryState
from wanbatch.runcontext import Timing
from wanbatch.stops import StopController, StopReason, exit_code_for


def test_a_grant_made_before_a_429_came_back_waits_for_the_gate() -> None:
    """The gate closes right after a token was handed out (a 429 answered meanwhile): the
    waiter does not go out until the gate opens again."""
    gate = HostGate()

    class AnswerArrives(RequestPacer):
        def take(self, now: float) -> None:
            super().take(now)
            if gate.not_before == 0.0:
                gate.block_for(0.05, now)  # an earlier request's 429 with Retry-After

    timing = Timing()
    admission = Admission(
        AnswerArrives(rate=1000.0, ceiling=1000.0), gate, AdaptiveLimit(ceiling=4), timing
    )
    released: list[float] = []

    async def go() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(admission.run)
            await admission.acquire(POLL)
            released.append(timing.clock())
            group.cancel_scope.cancel()

    anyio.run(go)
    assert released[0] >= gate.not_before


def test_creates_go_before_polls_and_polls_by_planned_time() -> None:
    """Waiting together: the create first, then the poll planned earliest."""
    order: list[str] = []
    pacer = RequestPacer(rate=1000.0, burst=1.0, ceiling=1000.0)
    admission = Admission(pacer, HostGate(), AdaptiveLimit(ceiling=4), Timing())

    all_three = anyio.Event()

    async def want(name: str, priority: int, planned: float) -> None:
        await admission.acquire(priority, planned)
        order.append(name)
        if len(order) == 3:
            all_three.set()

    async def go() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(want, "late poll", POLL, 5.0)
            group.start_soon(want, "early poll", POLL, 1.0)
            group.start_soon(want, "create", CREATE, 0.0)
            await anyio.sleep(0.01)  # all three wait before the dispatcher starts
            group.start_soon(admission.run)
            await all_three.wait()
            group.cancel_scope.cancel()

    anyio.run(go)
    assert order == ["create", "early poll", "late poll"]


def test_retry_state_counts_told_waits_apart() -> None:
    """A 429 with Retry-After draws on the larger allowance and needs no backoff of its own."""
    state = RetryState(RetryPolicy(max_attempts=2, max_attempts_told_when=4))
    told = [state.increment(told_when=True, gated=True, random=lambda: 0.5) for _ in range(4)]
    assert [decision.again for decision in told] == [True, True, True, False]
    assert all(decision.delay == 0.0 for decision in told)
    other = RetryState(RetryPolicy(max_attempts=2))
    first = other.increment(told_when=False, gated=False, random=lambda: 0.5)
    assert first.again and first.delay > 0
    assert not other.increment(told_when=False, gated=False, random=lambda: 0.5).again


def test_the_first_stop_stands_but_a_broken_journal_outranks_all() -> None:
    stops = StopController()
    stops.stop_submitting(StopReason.CREDITS, "402")
    assert not stops.submitting and stops.reason is StopReason.CREDITS
    stops.record(StopReason.AUTH, "401")
    assert stops.reason is StopReason.AUTH  # credits yield to any other reason
    stops.record(StopReason.INTERRUPTED, "ctrl-c")
    assert stops.reason is StopReason.AUTH
    stops.record(StopReason.JOURNAL, "disk full")
    assert stops.reason is StopReason.JOURNAL


def test_exit_codes_follow_the_stop_and_what_is_left() -> None:
    assert exit_code_for(None, work_left=False, failed=False) == 0
    assert exit_code_for(None, work_left=False, failed=True) == 1
    assert exit_code_for(None, work_left=True, failed=True) == 5
    assert exit_code_for(StopReason.AUTH, work_left=True, failed=False) == 3
    assert exit_code_for(StopReason.CREDITS, work_left=True, failed=False) == 4
    assert exit_code_for(StopReason.INTERRUPTED, work_left=True, failed=False) == 130
    assert exit_code_for(StopReason.JOURNAL, work_left=False, failed=False) == 5


def test_sleeping_polls_are_woken_when_the_budget_raises_the_price() -> None:
    """Lateness reported through the board that moves the plans wakes every sleeper."""
    from wanbatch.planner import PollPlanner
    from wanbatch.polling import PlanBoard

    async def go() -> bool:
        board = PlanBoard(PollPlanner())
        board.submitted("a", ("wan-2-2", 5), 0.0)
        sleeping = board.moved
        for _ in range(10):
            board.waited(2.0)
        return sleeping.is_set()

    assert anyio.run(go)


def test_the_default_sleep_takes_a_time_already_past() -> None:
    """`until - clock()` read a moment after `until <= clock()` was checked can be negative on
    a loaded machine; `anyio.sleep` raises on it ("delay must be a non-negative number"), which
    ended a run with exit 70. The run's sleep returns at once instead."""
    from wanbatch.runcontext import Timing

    async def go() -> None:
        await Timing().sleep(-0.25)

    anyio.run(go)
