"""The cost guard's announcement of a cap: once, and only when its counts are final."""

from __future__ import annotations

from wanbatch.costguard import CostGuard


def test_the_cap_is_announced_once_after_the_reserved_creates_settle() -> None:
    guard = CostGuard(max_videos=1, max_credits=None, priced=True)
    assert guard.reserve("a", 40.0) is None
    cap = guard.reserve("b", 40.0)
    assert cap is not None and guard.cap == cap
    assert guard.cap_to_announce() is None  # "a" is still on the wire: its count is not known
    guard.commit("a")
    assert guard.cap_to_announce() == cap
    assert (guard.videos, guard.credits_submitted) == (1, 40.0)
    assert guard.cap_to_announce() is None  # once
    assert guard.reserve("c", 40.0) is not None and guard.cap_to_announce() is None


def test_no_cap_no_announcement() -> None:
    guard = CostGuard(max_videos=2)
    assert guard.reserve("a", 1.0) is None
    guard.release("a")
    assert guard.cap is None and guard.cap_to_announce() is None
