"""One retry state for every request that may be retried (create, poll, URL refresh). Pure.

``RetryState.increment`` is told what went wrong and answers whether to try again and after
how long (urllib3's ``Retry.increment`` is the model). A 429 that says when to come back is
waiting as told, not failing, so it draws on a larger allowance than other errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from wanbatch.backoff import Random, RetryPolicy


@dataclass(frozen=True, slots=True)
class RetryDecision:
    again: bool  # try the request again
    delay: float  # seconds to wait first (0 when a Retry-After gate does the waiting)


@dataclass(slots=True)
class RetryState:
    policy: RetryPolicy
    attempts: int = 0  # failed attempts so far
    excused: int = 0  # of which met a host already down (an outage): they use no budget

    def increment(self, *, told_when: bool, gated: bool, random: Random) -> RetryDecision:
        """One more attempt failed.

        ``told_when``: a 429 with Retry-After (waiting as told); ``gated``: the answer had a
        Retry-After, so the host's gate already holds every request back and no backoff is due.
        """
        self.attempts += 1
        allowed = self.policy.max_attempts_told_when if told_when else self.policy.max_attempts
        if self.attempts - self.excused >= allowed:
            return RetryDecision(again=False, delay=0.0)
        delay = 0.0 if gated else self.policy.delay(self.attempts - 1, random)
        return RetryDecision(again=True, delay=delay)

    def excuse(self) -> None:
        """One more attempt failed because its host is down (``outage.py``): counted, so that
        the caller waits its turn again, but not against the budget."""
        self.attempts += 1
        self.excused += 1
