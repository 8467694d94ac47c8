"""When to poll each task. Pure: times are passed in, nothing sleeps, nothing is sent.

The rule, in one line: **ask about a task when the time it has probably sat finished and unseen
since its last poll reaches the price of a poll.** For a task last asked at age ``s`` (seconds
since it started rendering) and a render time ``T`` with distribution ``F``, the expected time it
has sat finished by age ``t`` is

    waste(s, t) = E[(t - T)+ | T > s] = ∫_s^t (F(u) - F(s)) du / (1 - F(s))

and the next poll comes at the ``t`` where ``waste(s, t)`` reaches ``cost / value``. ``cost`` is
what a poll is worth in seconds of a render slot (``poll_cost_seconds``); ``value`` is what early
detection is worth for this task now (1 when its finish frees a slot for a job that waits or ends
the batch; ``queued_value`` while tasks of ours wait in the server's queue, because then a finish
starts our next task on the server whether we saw it or not). Where the render time is spread
wide, polls come sparser; where finishes crowd, denser; a renderer that takes minutes is asked at
intervals of many seconds and one that takes two seconds at fractions of one, by the same rule.
No task is asked twice within the courtesy floor, which grows with the expected render time.

What it learns, per kind of job (model, duration):

- **Render times** (``RenderTimes``) from interval-censored polls: a task last seen unfinished
  at age ``lo`` and then finished at age ``hi`` rendered for some time in ``(lo, hi]``; each such
  interval counts as a uniform spread over itself, widened while samples are few. The last
  ``window`` finishes are kept, so a server that slows down is followed.
- **When rendering started.** A task waits in the server's queue before it renders. When the
  server says so (a ``queued``-like status, ``Seen.PENDING``), a task seen pending has not
  started; seen running, it started between its last pending answer and now. When a server has
  never said "pending", the planner assumes the server works through our tasks in creation
  order on ``slots`` slots (unknown, so at first as many as are in flight) and starts a task's
  clock when fewer than that many older tasks of ours remain in flight.

Before anything of any kind has finished, the render time is taken as scale-free (log-uniform
up to ``cold_horizon_seconds``), and the same waste rule spaces a task's polls by about
sqrt(2 * price * age * ln(horizon / age)): dense at seconds, sparse at minutes, never more than a
fraction of the age apart. Tasks created together start at staggered phases, so they take turns.
The learned distribution keeps a Pareto-like tail (``tail_hazard``) of weight 1 / (n + 1) beyond
the renders seen, so its hazard never climbs to a wall at the longest one; a task older than
(nearly) every render seen is spaced by that tail alone. See the reasons in ``PollReason``.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Hashable
from dataclasses import dataclass, field

from wanbatch.rendertimes import RenderTimes


class Seen(enum.Enum):
    """What one poll found (an adapter's status, reduced to what timing needs)."""

    PENDING = "pending"  # accepted, waiting for a render slot
    RUNNING = "running"  # not finished (rendering, or a status that does not say)
    DONE = "done"  # finished: succeeded or failed


def budget_lateness(asked_at: float, planned_at: float, granted_at: float) -> float:
    """How long the request budget held a poll back: from when it was both due and asked for
    to when it was granted. A plan already in the past (a resumed task, a retry's backoff)
    is not the budget's doing."""
    return max(0.0, granted_at - max(asked_at, planned_at))


class PollReason(enum.StrEnum):
    """Which rule chose a poll's time."""

    COLD = "cold"  # nothing has finished yet: the scale-free prior
    MODEL = "model"  # the learned render times and the price of a poll
    TAIL = "tail"  # older than the renders seen: a fraction of its age
    QUEUED = "queued"  # waiting for a server slot: asked again when one may be free
    FLOOR = "floor"  # the courtesy floor held it back


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    """The planner's constants, each with the reason for its value."""

    # A poll is worth this many seconds of one render slot. Measured on the workload family in
    # BENCHMARKS.md: 0.2 s keeps detection within about half a second of a 1 s poller on
    # renders of seconds at about half its polls, and far fewer polls on longer renders.
    poll_cost_seconds: float = 0.2
    # ...plus this fraction of the expected render: an hour-long render is not asked every
    # few seconds, whatever its spread.
    poll_cost_fraction: float = 0.0005
    # What early detection is worth while tasks of ours wait in the server's queue.
    queued_value: float = 0.25
    # At the end of a batch a finish holds every idle slot, up to this many.
    end_value_max: float = 8.0
    # The courtesy floor: no task is asked more often than this (seconds) ...
    floor_seconds: float = 0.25
    # ... nor more often than this fraction of the median render time.
    floor_fraction: float = 0.02
    # Before anything has finished, the first task is asked at this age, the others of a group
    # in turn after it; then each by the waste rule on a log-uniform render time up to
    # ``cold_horizon_seconds`` (an hour: a renderer of seconds and one of minutes alike).
    cold_first_seconds: float = 1.0
    cold_horizon_seconds: float = 3600.0
    # A task waiting for a slot with nothing learned yet is asked again when its wait has grown
    # by this factor.
    cold_factor: float = 1.15
    # A task older than every render seen is given a hazard of ``tail_hazard / age`` (a
    # Pareto-like tail: the longer it has run, the longer it may still run), so the same
    # price-of-a-poll rule spaces its polls by sqrt(2 * price * age / tail_hazard).
    tail_hazard: float = 1.0
    # Few samples understate the spread: each interval is widened by this share of itself ...
    widen: float = 0.05
    # ... plus this over the square root of the samples (so a single finish is widened most).
    # Less than it was: the tail (see ``RenderTimes``) now carries what few samples miss above.
    widen_few: float = 0.3
    # The request budget: when polls go out late because they wait for tokens, the price of
    # a poll rises by their mean lateness over this share of the median render. Polls then
    # thin out until what lateness is left is small: the run polls within its budget instead
    # of queueing on it.
    budget_late: float = 0.05
    budget_memory: float = 0.1  # weight of each poll's lateness in the running mean
    window: int = 256  # finishes remembered per kind
    knots: int = 48  # points of the piecewise-linear distribution the rule walks


def _render_times(settings: PlannerSettings) -> RenderTimes:
    return RenderTimes(
        window=settings.window,
        knots=settings.knots,
        widen=settings.widen,
        widen_few=settings.widen_few,
        tail_hazard=settings.tail_hazard,
    )


@dataclass(slots=True)
class _Task:
    kind: Hashable
    created: float
    seq: int
    started: float | None  # when rendering began (estimated); None: waiting for a slot
    started_lo: float  # rendering began after this (created, or the last "pending" answer)
    last_poll: float | None = None
    last_age: float = 0.0  # render age at the last poll that found it unfinished
    seen_pending: bool = False


@dataclass(slots=True)
class PollPlanner:
    """Plans every task's next poll; learns from what each poll found. See the module docstring."""

    settings: PlannerSettings = field(default_factory=PlannerSettings)
    version: int = 0  # moves when plans made before may have moved: ask next_poll again
    slots: int | None = None  # the server's render slots for us, once a "pending" showed it
    _tasks: dict[str, _Task] = field(default_factory=dict)
    _live: list[int] = field(default_factory=list)  # seqs of tasks in flight, ascending
    _by_seq: dict[int, str] = field(default_factory=dict)
    _seq: int = 0
    _waiting: int = 0  # tasks thought to wait for a slot
    _times: dict[Hashable, RenderTimes] = field(default_factory=dict)
    _all: RenderTimes | None = None
    _backlog: int = 1  # jobs not yet created (unknown until told: assume some)
    _late: float = 0.0  # mean lateness of polls, seconds
    _peak: int = 0  # the most tasks in flight at once: the slots the batch has been using
    _value_seen: float = 1.0  # the regime of the value plans were last made in (see _check_value)
    _pressure_seen: float = 1.0

    # --- what happened ----------------------------------------------------------------------

    def submitted(self, task_id: str, kind: Hashable, now: float, *, age: float = 0.0) -> None:
        """A task is in flight: created now, or (``age`` > 0) found in flight on a resume."""
        if task_id in self._tasks:
            return
        self._seq += 1
        created = now - max(0.0, age)
        task = _Task(kind, created, self._seq, created, created)
        self._tasks[task_id] = task
        self._live.append(task.seq)
        self._by_seq[task.seq] = task_id
        self._peak = max(self._peak, len(self._live))
        if self.slots is not None and len(self._live) > self.slots:
            self._set_waiting(task)

    def backlog(self, waiting: int) -> None:
        """``waiting`` jobs are not created yet. Once none are, the batch is ending, and a
        finish seen late holds every idle slot, not only its own."""
        self._backlog = max(0, waiting)
        self._check_value()

    def waited(self, seconds: float) -> None:
        """A poll went out ``seconds`` after its planned time: the request budget held it."""
        memory = self.settings.budget_memory
        self._late += memory * (max(0.0, seconds) - self._late)
        pressure = self.pressure
        if abs(pressure / self._pressure_seen - 1) > 0.1:
            self._pressure_seen = pressure
            self.version += 1

    @property
    def pressure(self) -> float:
        """What the request budget multiplies the price of a poll by (1: it does not bind)."""
        settings = self.settings
        median = self._all.median if self._all is not None else settings.cold_first_seconds
        return 1.0 + self._late / (settings.budget_late * median)

    def observe(self, task_id: str, now: float, seen: Seen) -> None:
        """A poll of ``task_id``, answered ``now``, found it ``seen``."""
        task = self._tasks.get(task_id)
        if task is None:
            return
        if seen is Seen.DONE:
            self._finished(task_id, task, now)
            return
        task.last_poll = now
        if seen is Seen.PENDING:
            task.seen_pending = True
            task.started_lo = now
            task.last_age = 0.0
            if task.started is not None:
                # Tasks of ours ahead of it hold the slots: we have at most that many.
                ahead = self._ahead(task)
                if ahead > 0 and (self.slots is None or ahead < self.slots):
                    self.slots = ahead
                    self.version += 1
                self._set_waiting(task)
            return
        if task.started is None:
            # Seen rendering: it began after the last "pending" and before now.
            self._start(task, (task.started_lo + now) / 2)
            ahead = self._ahead(task)
            if self.slots is not None and ahead >= self.slots:
                self.slots = ahead + 1
                self.version += 1
        assert task.started is not None
        task.last_age = max(0.0, now - task.started)

    def forget(self, task_id: str, now: float) -> None:
        """``task_id`` left without a finish to learn from (it could not be polled, or stopped)."""
        task = self._tasks.pop(task_id, None)
        if task is not None:
            self._remove(task, freed_at=None)  # its server slot may still be busy

    # --- the plan ---------------------------------------------------------------------------

    def next_poll(self, task_id: str, now: float) -> tuple[float, PollReason]:
        """When to ask about ``task_id`` next, and which rule said so."""
        task = self._tasks[task_id]
        settings = self.settings
        times = self._times_for(task.kind)
        if task.started is None:
            at, reason = self._queued_poll(task, times)
        elif times is None:
            at, reason = task.started + self._cold_age(task), PollReason.COLD
        else:
            since = task.last_age if task.last_poll is not None else 0.0
            cost = settings.poll_cost_seconds + settings.poll_cost_fraction * times.median
            price = cost * self.pressure / self._value()
            age = times.age_at_waste(since, price)
            if age is None:
                tail = math.sqrt(2 * price * since / settings.tail_hazard)
                at, reason = task.started + since + tail, PollReason.TAIL
            else:
                at, reason = task.started + age, PollReason.MODEL
        if task.last_poll is not None:
            floor = settings.floor_seconds
            if times is not None:
                floor = max(floor, settings.floor_fraction * times.median)
            if at < task.last_poll + floor:
                return task.last_poll + floor, PollReason.FLOOR
        return at, reason

    # --- inside -------------------------------------------------------------------------------

    def _queued_poll(self, task: _Task, times: RenderTimes | None) -> tuple[float, PollReason]:
        """A task waiting for a slot: asked again after the wait its place in line suggests.

        The wait is a fallback: when a finish frees a slot for it, its clock starts and the
        plan moves (``version``)."""
        settings = self.settings
        base = task.last_poll if task.last_poll is not None else task.created
        if times is None or not self.slots:
            wait = max(settings.cold_first_seconds, (base - task.created) * settings.cold_factor)
        else:
            # Its clock starts when a finish frees a slot for it; this poll is only the
            # fallback for a wrong guess of the slots, so it waits at least one render.
            turns = self._ahead(task) - self.slots + 1
            wait = max(1.0, turns / self.slots) * times.median
        return base + max(settings.floor_seconds, wait), PollReason.QUEUED

    def _cold_age(self, task: _Task) -> float:
        """Nothing has finished: the age of the next poll under a log-uniform render time.

        For ``T`` log-uniform up to ``H``, waste(a, a + d) is about d^2 / (2 a ln(H / a)), so the
        waste rule asks again sqrt(2 * price * a * ln(H / a)) later (ln at least 1 near ``H``).
        The first polls of the tasks in flight are staggered over one such step, so a group
        created together takes turns; the steps keep them interleaved after."""
        settings = self.settings
        horizon = settings.cold_horizon_seconds

        def step(age: float) -> float:
            cost = settings.poll_cost_seconds + settings.poll_cost_fraction * age
            price = cost * self.pressure / self._value()
            return math.sqrt(2 * price * age * max(1.0, math.log(horizon / age)))

        first = settings.cold_first_seconds
        if task.last_poll is None:
            return first + step(first) * self._ahead(task) / len(self._live)
        since = max(task.last_age, first)
        return since + step(since)

    def _value(self) -> float:
        """What seeing a finish early is worth now, in slots (see the module docstring).

        While tasks of ours wait in the server's queue, little: the server starts the next one
        itself. While jobs wait to be created, one slot: its own. When the batch is ending,
        the slots the batch used over the tasks left: the last finish holds them all.
        """
        if self._waiting:
            return self.settings.queued_value
        if self._backlog == 0 and self._live:
            return min(self.settings.end_value_max, max(1.0, self._peak / len(self._live)))
        return 1.0

    def _times_for(self, kind: Hashable) -> RenderTimes | None:
        times = self._times.get(kind)
        if times is not None and len(times):
            return times
        return self._all

    def _finished(self, task_id: str, task: _Task, now: float) -> None:
        del self._tasks[task_id]
        if task.started is not None:
            lo = task.last_age if task.last_poll is not None else 0.0
            self._learn(task.kind, lo, max(lo, now - task.started))
        elif task.seen_pending:  # never seen rendering: it took less than since "pending"
            self._learn(task.kind, 0.0, now - task.started_lo)
        # The slot freed between its last poll and now.
        last = task.last_poll if task.last_poll is not None else task.created
        self._remove(task, freed_at=(last + now) / 2)

    def _learn(self, kind: Hashable, lo: float, hi: float) -> None:
        settings = self.settings
        times = self._times.get(kind)
        if times is None:
            times = self._times[kind] = _render_times(settings)
        before = times.median if len(times) else None
        times.add(lo, hi)
        if self._all is None:
            self._all = _render_times(settings)
        if self._all is not times:
            self._all.add(lo, hi)
        if before is None or abs(times.median - before) > 0.1 * before:
            self.version += 1

    def _ahead(self, task: _Task) -> int:
        """Tasks of ours created before ``task`` and still in flight."""
        return bisect.bisect_left(self._live, task.seq)

    def _set_waiting(self, task: _Task) -> None:
        if task.started is not None:
            task.started = None
            self._waiting += 1
            self._check_value()

    def _start(self, task: _Task, at: float) -> None:
        if task.started is None:
            task.started = at
            task.last_age = 0.0
            self._waiting -= 1
            self._check_value()

    def _check_value(self) -> None:
        """Plans move when the regime of ``_value`` changes (tasks of ours wait in the server's
        queue, or not; jobs wait to be created, or not). Within the end of a batch the value
        grows with each finish, and sleepers take it up at their next poll: re-planning them
        all at every finish sends every poll whose new time has passed at once (measured on
        the family: 0.86 -> 1.08 x a 1 s poller's requests on slot-lognormal, no faster)."""
        regime = 0.0 if self._waiting else (2.0 if self._backlog == 0 else 1.0)
        if regime != self._value_seen:
            self._value_seen = regime
            self.version += 1

    def _remove(self, task: _Task, freed_at: float | None) -> None:
        """A task left. If it freed a server slot (``freed_at``), the oldest waiting tasks
        inside the slots start their clocks then."""
        index = bisect.bisect_left(self._live, task.seq)
        if index < len(self._live) and self._live[index] == task.seq:
            del self._live[index]
        del self._by_seq[task.seq]
        if task.started is None:
            self._waiting -= 1
        if freed_at is not None and self._waiting and self.slots is not None:
            for seq in self._live[: self.slots]:
                waiting = self._tasks[self._by_seq[seq]]
                if waiting.started is None:
                    self._start(waiting, max(freed_at, waiting.started_lo))
                    self.version += 1
        self._check_value()
