"""The cost guard: may this run create one more task? Pure.

A create first *reserves* its estimated credits, so that creates in flight at once count
against the caps together; the reservation is then *committed* (the task was created) or
*released* (it certainly was not). The guard answers with an outcome, never an exception.

The first cap reached is announced once (``cap_to_announce``), when no create that held a
reservation is still on the wire: the counts are then final, the same the run's summary shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CapReached:
    """No more tasks: ``message`` says which cap, in the user's words."""

    message: str


@dataclass(slots=True)
class CostGuard:
    """Counts tasks created (and their estimated credits) against ``--max-videos/--max-credits``."""

    max_videos: int | None = None
    max_credits: float | None = None
    priced: bool = False  # the manifest has `pricing`: credits are estimated
    videos: int = 0  # tasks created by this run
    credits: float = 0.0  # their estimated credits
    # What earlier rounds of the same run created (``--until-done``): the caps are the run's.
    earlier_videos: int = 0
    earlier_credits: float = 0.0
    cap: CapReached | None = None  # the first cap reached, if any
    _reserved: dict[str, float] = field(default_factory=dict)
    _announced: bool = False

    def reserve(self, job_id: str, cost: float) -> CapReached | None:
        """Hold room for one create of ``job_id``; ``CapReached`` when it would pass a cap.

        A job that already holds a reservation keeps it (a resend of the same create)."""
        if job_id in self._reserved:
            return None
        videos = self.earlier_videos + self.videos + len(self._reserved) + 1
        credits = self.earlier_credits + self.credits + sum(self._reserved.values()) + cost
        cap: CapReached | None = None
        if self.max_videos is not None and videos > self.max_videos:
            cap = CapReached(f"--max-videos {self.max_videos} reached")
        elif self.max_credits is not None and credits > self.max_credits:
            cap = CapReached(
                f"--max-credits {self.max_credits:g} reached (the next job would bring the"
                f" estimate to {credits:g})"
            )
        if cap is None:
            self._reserved[job_id] = cost
        elif self.cap is None:
            self.cap = cap
        return cap

    def commit(self, job_id: str) -> None:
        """The create made a task: it counts for good."""
        cost = self._reserved.pop(job_id, 0.0)
        self.videos += 1
        self.credits += cost

    def release(self, job_id: str) -> None:
        """The create made no task (or its outcome is left to a later run)."""
        self._reserved.pop(job_id, None)

    def cap_to_announce(self) -> CapReached | None:
        """The cap reached, once, as soon as no reserved create is in flight (else None)."""
        if self.cap is None or self._announced or self._reserved:
            return None
        self._announced = True
        return self.cap

    @property
    def credits_submitted(self) -> float | None:
        return self.credits if self.priced else None
