"""The poll planner on a fake clock: pure, so every time here is a number we choose."""

from __future__ import annotations

import heapq
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from wanbatch.planner import PlannerSettings, PollPlanner, PollReason, Seen
from wanbatch.rendertimes import RenderTimes

KIND = ("wan-2-2", 5)


@dataclass
class Batch:
    """A FIFO server with ``slots`` render slots, driven by a planner at its own pace."""

    renders: list[float]
    slots: int
    concurrency: int
    says_pending: bool = True
    planner: PollPlanner = field(default_factory=PollPlanner)
    polls: int = 0
    delays: list[float] = field(default_factory=list)  # finish -> seen, per task
    makespan: float = 0.0

    def run(self) -> Batch:
        planner, free = self.planner, [0.0] * self.slots
        tasks: dict[str, tuple[float, float]] = {}
        due: list[tuple[float, int, str]] = []
        planned: dict[str, float] = {}
        created = 0
        version = planner.version

        def create(now: float) -> None:
            nonlocal created
            task = str(created)
            start = max(now, heapq.heappop(free))
            tasks[task] = (start, start + self.renders[created])
            heapq.heappush(free, tasks[task][1])
            created += 1
            planner.submitted(task, KIND, now)
            planner.backlog(len(self.renders) - created)
            plan(task, now)

        def plan(task: str, now: float) -> None:
            at, _ = planner.next_poll(task, now)
            planned[task] = max(at, now)
            heapq.heappush(due, (planned[task], created, task))

        for _ in range(min(self.concurrency, len(self.renders))):
            create(0.0)
        while due:
            now, _, task = heapq.heappop(due)
            if planned.get(task) != now:
                continue  # re-planned since
            self.polls += 1
            start, finish = tasks[task]
            if now >= finish:
                seen = Seen.DONE
            elif now < start and self.says_pending:
                seen = Seen.PENDING
            else:
                seen = Seen.RUNNING
            planner.observe(task, now, seen)
            if seen is Seen.DONE:
                del planned[task]
                self.delays.append(now - finish)
                self.makespan = now
                if created < len(self.renders):
                    create(now)
            else:
                plan(task, now)
            if planner.version != version:
                version = planner.version
                for other in list(planned):
                    plan(other, now)
        return self


def draws(count: int, draw: Callable[[random.Random], float], seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


def ask_repeatedly(planner: PollPlanner, task: str, now: float, times: int) -> list[float]:
    """Tell the planner ``task`` is still running at each planned poll; the gaps between them."""
    gaps = []
    for _ in range(times):
        planner.observe(task, now, Seen.RUNNING)
        at, _ = planner.next_poll(task, now)
        gaps.append(at - now)
        now = at
    return gaps


def test_ten_thousand_five_minute_renders_plan_in_seconds_of_test_time() -> None:
    """10,000 renders of about five minutes on 200 slots: every one is seen, each asked a
    bounded number of times, and seen within a few percent of its render time."""
    renders = draws(10_000, lambda rng: rng.uniform(240.0, 360.0))
    batch = Batch(renders, slots=200, concurrency=200).run()
    assert len(batch.delays) == 10_000
    assert batch.polls / 10_000 < 12  # a 1 s poller would ask about 300 times
    assert statistics.mean(batch.delays) < 0.03 * 300
    bound = sum(renders) / 200
    assert batch.makespan < 1.05 * bound


@pytest.mark.parametrize("scale", [2.0, 20.0, 300.0])
def test_the_same_rule_serves_seconds_and_minutes(scale: float) -> None:
    """Renders of 2 s, 20 s or 5 min, spread +-30%: a few polls each, found within a few
    percent of the render (plus a fraction of a second)."""
    renders = draws(200, lambda rng: scale * rng.uniform(0.7, 1.3))
    batch = Batch(renders, slots=8, concurrency=8).run()
    assert statistics.mean(batch.delays) < 0.05 * scale + 0.3
    assert batch.polls / len(renders) < 3 + 2 * scale**0.5


def test_tasks_created_together_take_turns_before_anything_is_known() -> None:
    """Nothing finished yet: the first polls of a group are staggered, not all at once, and
    each task is asked again later the older it is."""
    planner = PollPlanner()
    for n in range(8):
        planner.submitted(str(n), KIND, 0.0)
    firsts = sorted(planner.next_poll(str(n), 0.0)[0] for n in range(8))
    assert len(set(firsts)) == 8
    assert planner.next_poll("0", 0.0)[1] is PollReason.COLD
    gaps = ask_repeatedly(planner, "0", 1.0, 6)
    assert gaps == sorted(gaps)


def test_a_learned_render_time_moves_the_first_poll_near_it() -> None:
    """After renders of 10 s +- 0.5 s, a new task is first asked close to 10 s."""
    planner = PollPlanner()
    for n in range(40):
        task = f"old{n}"
        planner.submitted(task, KIND, 0.0)
        planner.observe(task, 9.6 + n * 0.02, Seen.RUNNING)
        planner.observe(task, 10.4 + n * 0.0, Seen.DONE)
    planner.submitted("new", KIND, 100.0)
    at, reason = planner.next_poll("new", 100.0)
    assert reason is PollReason.MODEL
    assert 109.0 <= at <= 111.0


def test_polls_are_denser_where_finishes_crowd() -> None:
    """The price-of-a-poll rule: a narrow distribution is asked at shorter intervals than a
    wide one with the same middle."""
    narrow, wide = RenderTimes(), RenderTimes()
    for n in range(100):
        narrow.add(9.9 + n * 0.002, 10.1 + n * 0.002)
        wide.add(5.0 + n * 0.1, 5.2 + n * 0.1)
    assert narrow.age_at_waste(8.0, 0.2) is not None
    narrow_next = narrow.age_at_waste(10.0, 0.2)
    wide_next = wide.age_at_waste(10.0, 0.2)
    assert narrow_next is not None and wide_next is not None
    assert narrow_next - 10.0 < wide_next - 10.0


def test_no_task_is_asked_within_the_courtesy_floor() -> None:
    """However due a task seems, it is not asked again before the floor has passed."""
    planner = PollPlanner()
    planner.submitted("a", KIND, 0.0)
    planner.observe("a", 0.5, Seen.DONE)  # teaches "renders take under half a second"
    planner.submitted("b", KIND, 10.0)
    planner.observe("b", 10.9, Seen.RUNNING)
    at, _ = planner.next_poll("b", 10.9)
    assert at >= 10.9 + PlannerSettings().floor_seconds


def test_an_overrunning_task_is_asked_less_often_the_longer_it_runs() -> None:
    """Older than every render seen: the tail rule spaces polls by a growing interval."""
    planner = PollPlanner()
    for n in range(20):
        planner.submitted(f"old{n}", KIND, 0.0)
        planner.observe(f"old{n}", 9.0, Seen.RUNNING)
        planner.observe(f"old{n}", 10.0, Seen.DONE)
    planner.submitted("slow", KIND, 100.0)
    gaps = ask_repeatedly(planner, "slow", 130.0, 5)
    assert all(later >= earlier for earlier, later in zip(gaps, gaps[1:], strict=False))
    assert gaps[0] < 30  # but not abandoned: asked again within a fraction of its age


def test_a_server_queue_is_learned_from_pending_answers() -> None:
    """24 tasks on a server with 8 slots that says "queued": the planner learns that it has
    fewer slots than tasks (an estimate: finishes not yet seen make it high), and the batch
    takes few polls a job."""
    renders = draws(96, lambda rng: rng.uniform(1.0, 3.0))
    batch = Batch(renders, slots=8, concurrency=24).run()
    assert batch.planner.slots is not None and batch.planner.slots < 24
    assert batch.polls / 96 < 4
    bound = sum(renders) / 8
    assert batch.makespan < 1.1 * bound


def test_the_end_of_a_batch_is_watched_more_closely() -> None:
    """With nothing left to create and one task in flight, its polls come closer together
    than the same task's in the middle of a batch: its finish ends the batch."""

    def next_gap(backlog: int) -> float:
        planner = PollPlanner()
        for n in range(8):
            planner.submitted(f"old{n}", KIND, 0.0)
            planner.observe(f"old{n}", 4.0 + n * 0.25, Seen.RUNNING)
            planner.observe(f"old{n}", 4.25 + n * 0.25, Seen.DONE)
        for n in range(8):
            planner.submitted(f"t{n}", KIND, 10.0)
        for n in range(1, 8):
            planner.observe(f"t{n}", 14.0, Seen.DONE)
        planner.backlog(backlog)
        planner.observe("t0", 14.0, Seen.RUNNING)
        at, _ = planner.next_poll("t0", 14.0)
        return at - 14.0

    assert next_gap(backlog=0) < next_gap(backlog=100)


def test_polls_thin_out_when_they_wait_for_the_request_budget() -> None:
    """Polls that go out late because the budget binds raise the price of a poll."""
    planner = PollPlanner()
    for n in range(30):
        planner.submitted(f"old{n}", KIND, 0.0)
        planner.observe(f"old{n}", 3.0 + n * 0.1, Seen.RUNNING)
        planner.observe(f"old{n}", 3.2 + n * 0.1, Seen.DONE)
    planner.submitted("t", KIND, 100.0)
    planner.observe("t", 103.0, Seen.RUNNING)
    relaxed, _ = planner.next_poll("t", 103.0)
    for _ in range(50):
        planner.waited(1.0)
    assert planner.pressure > 2
    pressed, _ = planner.next_poll("t", 103.0)
    assert pressed > relaxed


def test_a_task_found_on_resume_is_asked_soon() -> None:
    """A task already an hour old when the run starts is asked at once, not after a render."""
    planner = PollPlanner()
    planner.submitted("old", KIND, 50.0, age=3600.0)
    at, _ = planner.next_poll("old", 50.0)
    assert at <= 50.0 + 1.0


def test_learning_moves_the_version_so_sleepers_ask_again() -> None:
    """The first finish changes every plan: the version moves."""
    planner = PollPlanner()
    planner.submitted("a", KIND, 0.0)
    planner.submitted("b", KIND, 0.0)
    before = planner.version
    planner.observe("a", 5.0, Seen.DONE)
    assert planner.version != before
    assert planner.next_poll("b", 5.0)[1] is not PollReason.COLD


def test_a_finish_seen_only_after_pending_still_teaches() -> None:
    """A fast renderer behind a "queued" status: seen pending, then done, never running.
    The planner learns from it instead of staying on the cold prior."""
    planner = PollPlanner()
    planner.submitted("a", KIND, 0.0)
    planner.observe("a", 1.0, Seen.PENDING)
    planner.observe("a", 3.0, Seen.DONE)
    planner.submitted("b", KIND, 10.0)
    assert planner.next_poll("b", 10.0)[1] is not PollReason.COLD


def test_a_task_that_leaves_unfinished_frees_no_slot() -> None:
    """Forgetting a task (it stalled, or polling gave up) does not start the clock of a task
    waiting for a slot: the server may still be rendering the forgotten one."""
    planner = PollPlanner()
    planner.submitted("a", KIND, 0.0)
    planner.submitted("b", KIND, 0.0)
    planner.observe("b", 1.0, Seen.PENDING)  # one slot: a renders, b waits
    assert planner.slots == 1
    planner.forget("a", 5.0)
    assert planner.next_poll("b", 5.0)[1] is PollReason.QUEUED


def test_plans_move_when_the_batch_starts_ending() -> None:
    """Once the last job is created, a finish is worth more: sleepers are told (the version
    moves) without any new render time learned; so they are when the server's queue empties."""
    planner = PollPlanner()
    for n in range(3):
        planner.submitted(f"t{n}", KIND, 0.0)
    planner.backlog(10)
    before = planner.version
    planner.backlog(0)
    assert planner.version != before
    planner.observe("t2", 1.0, Seen.PENDING)  # t2 waits for a slot behind t0 and t1
    waiting = planner.version
    planner.observe("t2", 2.0, Seen.RUNNING)  # ... and no longer
    assert planner.version != waiting


def test_polls_waiting_for_the_budget_move_the_plans() -> None:
    """When the price of a poll rises by more than a tenth, sleepers are told."""
    planner = PollPlanner()
    planner.submitted("a", KIND, 0.0)
    before = planner.version
    for _ in range(10):
        planner.waited(2.0)
    assert planner.version != before


def test_budget_lateness_counts_only_the_wait_for_a_token() -> None:
    """A poll planned long ago (a resumed task) and granted at once was not held by the budget;
    one that waited 3 s after it was due was."""
    from wanbatch.planner import budget_lateness

    assert budget_lateness(asked_at=1000.0, planned_at=10.0, granted_at=1000.01) == pytest.approx(
        0.01
    )
    assert budget_lateness(asked_at=99.0, planned_at=100.0, granted_at=103.0) == 3.0
    assert budget_lateness(asked_at=100.0, planned_at=100.0, granted_at=99.0) == 0.0
