"""The submit stage: one create per job, journaled so that nothing is paid for twice.

An ``intent`` record (with the job's ``Idempotency-Key``) is fsynced before every create and the
task id right after it. A create the server refused for certain (401, 402, 400, 429s only,
connections refused) is journaled ``not_created`` or ``failed``, so the next run knows no task
exists; one whose answer was lost stays ``submitting`` and the next run resends it with the same
key and reports it as a possible duplicate. A 2xx that names no usable task (``AnswerUnknownError``)
is not resent in the same run at all: the server took it, and may not dedupe. ``create``
returns an outcome, never raises for one.

An API without idempotency keys (``capabilities.idempotency_keys`` false, e.g. DashScope) would
make a second task for a resent create, so a create that may have made one is settled
(``settling.Settler``) before anything is resent, in this run or the next. Whether a create
answered 5xx may have made a task is the adapter's word (``capabilities.error_answer_may_create``):
yes where keys or a list settle it; no for an API that has neither (fal, a plain gateway), or
every 5xx would leave its job to a person.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from wanbatch.admission import CREATE, Admission, after_refusal
from wanbatch.costguard import CostGuard
from wanbatch.errors import (
    AnswerUnknownError,
    AuthError,
    CreditsExhaustedError,
    JobRejectedError,
    NotSentError,
    TransientApiError,
)
from wanbatch.models import EventKind, JobSpec, JobState
from wanbatch.retrying import RetryState
from wanbatch.runcontext import RunContext, TaskApi
from wanbatch.settling import Settled, Settler
from wanbatch.stops import StopReason


class Submitted(enum.Enum):
    """How one create ended."""

    CREATED = "created"  # the task exists; poll it
    NOT_CREATED = "not_created"  # certainly no task (journaled): a later run may send it
    FAILED = "failed"  # the server rejected the job for good (400)
    UNKNOWN = "unknown"  # the answer was lost: a task may exist; the next run asks again
    SKIPPED = "skipped"  # not sent: the run stopped submitting (a cap, 402, a stop)


# Listed tasks made up to this long before the create's intent still count (clocks differ).

Shield = Callable[[], contextlib.AbstractContextManager[anyio.CancelScope]]


def idempotency_key_for(job: JobSpec, attempt: int) -> str:
    """Stable for a job's fields and attempt: a rerun asks for the same task, ``retry`` for a new one."""
    digest = hashlib.sha256(f"{job.id}\x00{job.fingerprint()}\x00{attempt}".encode()).hexdigest()
    return f"wb-{digest[:32]}"


NO_SUCH_ROUTE = (404, 405)  # a create answered so before any task was made: a wrong address


class SubmitStage:
    def __init__(
        self,
        ctx: RunContext,
        api: TaskApi,
        admission: Admission,
        guard: CostGuard,
        shield: Shield,
    ) -> None:
        self.ctx = ctx
        self.api = api
        self.admission = admission
        self.guard = guard
        self.shield = shield
        self.settler = Settler(ctx, api, admission, guard)
        # A create of this run made a task (or an earlier round reached the host): from then
        # on a 404 to a create is that job's answer, not a wrong address.
        self._created_any = ctx.options.reached_before

    def cost(self, job: JobSpec) -> float:
        return self.ctx.manifest.pricing.get(job.model, 0.0) * job.duration

    async def create(self, job: JobSpec) -> Submitted:
        ctx = self.ctx
        record = ctx.journal.record(job.id)
        unknown = record.state is JobState.SUBMITTING and record.idempotency_key is not None
        # An unknown outcome is asked about again with the same key, so the server can dedupe.
        key = record.idempotency_key if unknown else idempotency_key_for(job, record.attempt)
        assert key is not None
        if unknown and not self.dedupes:
            # No key to dedupe by: settle it first (the task list), or do not resend at all.
            settled = await self.settler.settle(job, reserved=False)
            if settled is Settled.FOUND or settled is Settled.UNKNOWN:
                return Submitted.CREATED if settled is Settled.FOUND else Submitted.UNKNOWN
            unknown = settled is Settled.FORCED  # NOT_LISTED: sending it pays no second task
        if unknown and not ctx.options.resend_unknown:
            ctx.summary.left[job.id] = (
                "create sent, answer unknown: not resent by --until-done (a server that ignores"
                " Idempotency-Key would charge again); run again to resend it with the same key"
            )
            return Submitted.UNKNOWN
        # Wait for the request budget before promising anything, so that the gap between the
        # intent on disk and the create on the wire is as short as it can be.
        await self.admission.acquire(CREATE)
        if not ctx.stops.submitting:
            return Submitted.SKIPPED
        cap = self.guard.reserve(job.id, self.cost(job))
        if cap is not None:
            ctx.stops.cap_reached(cap.message)
            self._announce_cap()
            return Submitted.SKIPPED
        try:
            return await self._send(job, key, unknown)
        finally:
            self.guard.release(job.id)
            self._announce_cap()

    def _announce_cap(self) -> None:
        """Log the cap once the creates it let through are settled: the counts are then final,
        the guard's own, which the summary shows too."""
        cap = self.guard.cap_to_announce()
        if cap is not None:
            self.ctx.log.warning(
                "run.cap_reached",
                detail=cap.message,
                videos_submitted=self.guard.videos,
                credits_submitted=self.guard.credits_submitted,
            )

    async def _send(self, job: JobSpec, key: str, unknown: bool) -> Submitted:
        ctx = self.ctx
        ctx.fault("before_intent", job.id)
        await self._intent(job, key)
        ctx.fault("after_intent", job.id)
        if unknown:
            self._possible_duplicate(job)
            ctx.log.warning("job.resubmitting_unknown_outcome", job=job.id, idempotency_key=key)
        retries = RetryState(ctx.options.retry)
        sending = _Sending(maybe_created=unknown)  # some create may have made a task
        try:
            return await self._attempts(job, key, retries, sending)
        except anyio.get_cancelled_exc_class():
            # The run stopped while this create waited (its turn, a backoff, an outage): if no
            # attempt can have reached the server, say so, or the next run would resend it and
            # report it as a possible duplicate.
            record = ctx.journal.record(job.id)
            if not sending.maybe_created and record.state is JobState.SUBMITTING:
                with anyio.CancelScope(shield=True):
                    await self._not_created(job, "not sent: the run stopped")
            raise

    async def _attempts(
        self, job: JobSpec, key: str, retries: RetryState, sending: _Sending
    ) -> Submitted:
        """Send the create until it has an outcome, keeping ``sending.maybe_created`` true once
        any attempt may have made a task."""
        ctx = self.ctx
        maybe_created = sending.maybe_created
        while True:
            if retries.attempts:
                if ctx.stops.reason is StopReason.CREDITS and not maybe_created:
                    return await self._not_created(job, f"not sent: {ctx.stops.message}")
                if maybe_created and not self.dedupes:
                    settled = await self.settler.settle(job, reserved=True, sent_at=sending.sent_at)
                    if settled is Settled.FOUND or settled is Settled.UNKNOWN:
                        found = settled is Settled.FOUND
                        return Submitted.CREATED if found else Submitted.UNKNOWN
                    if settled is Settled.NOT_LISTED:
                        maybe_created = sending.maybe_created = False
                await self.admission.acquire(CREATE)
                if maybe_created:
                    # Sending again after a create that may have made a task may pay twice
                    # where the server ignores Idempotency-Key: journal it and report it.
                    await self._intent(job, key)
                    self._possible_duplicate(job)
            if not await self._gate_then_go(job, certain_none=not maybe_created):
                return Submitted.NOT_CREATED
            ctx.summary.requests["create"] += 1
            sending.sent_at = ctx.timing.wall()
            try:
                with self.shield() as shield:
                    created = await self.api.create(job, key)
                    ctx.fault("after_create", job.id)
                    await ctx.journal.append(
                        ctx.event(
                            EventKind.CREATED,
                            job.id,
                            task_id=created.view.task_id,
                            handle=created.handle,
                        )
                    )
                    self.guard.commit(job.id)
                if shield.cancelled_caught:  # interrupted mid-create: the outcome is unknown
                    return Submitted.UNKNOWN
                ctx.fault("after_created", job.id)
                self._created_any = True
                self.admission.created()
                ctx.log.debug("job.submitted", job=job.id, task_id=created.view.task_id)
                return Submitted.CREATED
            except JobRejectedError as exc:
                if exc.status in NO_SUCH_ROUTE and not self._created_any:
                    # The run's first creates answered "no such route": the address is wrong
                    # (a base URL without its /v1), not the jobs. Nothing was made.
                    message = (
                        f"the API answered the run's first create with HTTP {exc.status}"
                        f" ({exc.server_message}): no such route, so the base URL's path is"
                        " likely wrong (a missing /v1?), or the model's route does not exist;"
                        " check --base-url (or api.base_url in the manifest) and the model."
                        " Nothing was made"
                    )
                    outcome = await self._not_created(job, message)
                    ctx.halt(StopReason.CONFIG, message)
                    return outcome
                await ctx.fail(job, exc.server_message, exc.code)
                return Submitted.FAILED
            except AnswerUnknownError as exc:
                # The server took the create and may have made a task we cannot name: sending
                # it again would pay twice where Idempotency-Key is ignored. Counted as spent.
                self.guard.commit(job.id)
                ctx.summary.left[job.id] = f"create sent, answer unknown: {exc} " + (
                    "(not resent in this run; the next run sends it again with the same"
                    " Idempotency-Key)"
                    if self.dedupes
                    else "(not resent in this run; the next run looks for its task first)"
                )
                ctx.log.warning("job.answer_unknown", job=job.id, error=str(exc))
                return Submitted.UNKNOWN
            except AuthError as exc:
                outcome = await self._not_created(job, str(exc), certain=not maybe_created)
                ctx.halt(StopReason.AUTH, str(exc))
                return outcome
            except CreditsExhaustedError as exc:
                ctx.stop_submitting(StopReason.CREDITS, str(exc))
                return await self._not_created(
                    job, "credits ran out (402)", certain=not maybe_created
                )
            except TransientApiError as exc:
                maybe_created = (
                    maybe_created
                    or _answer_lost(exc)
                    or _may_have_made(exc, self.api.provider.capabilities.error_answer_may_create)
                )
                sending.maybe_created = maybe_created
                if not await after_refusal(ctx, self.admission, exc, retries, "create", job.id):
                    n = retries.attempts
                    if not maybe_created:
                        ctx.summary.left[job.id] = f"create refused {_times(n)}: {exc}"
                        return await self._not_created(job, f"refused {_times(n)}: {exc}")
                    ctx.summary.left[job.id] = f"create not confirmed after {n} attempts: {exc}"
                    return Submitted.UNKNOWN

    @property
    def dedupes(self) -> bool:
        """A create resent with the same key makes no second task on this API."""
        return self.api.provider.capabilities.idempotency_keys

    async def _gate_then_go(self, job: JobSpec, *, certain_none: bool) -> bool:
        """Wait for the host's Retry-After gate (a 429 may have come back while the intent was
        written), then say whether to send. If the run stops meanwhile (Ctrl-C, a 402 on
        another job) a create that certainly made nothing yet is journaled as not created."""
        ctx = self.ctx
        await self.admission.gate_open()  # a stop meanwhile: ``_send`` journals "not created"
        if ctx.stops.reason is StopReason.CREDITS and certain_none:
            await self._not_created(job, f"not sent: {ctx.stops.message}")
            return False
        return True

    async def _intent(self, job: JobSpec, key: str) -> None:
        await self.ctx.journal.append(
            self.ctx.event(
                EventKind.INTENT, job.id, idempotency_key=key, fingerprint=job.fingerprint()
            )
        )

    async def _not_created(self, job: JobSpec, why: str, *, certain: bool = True) -> Submitted:
        """Journal that no task exists, when that is certain; else the outcome stays unknown."""
        if not certain:
            return Submitted.UNKNOWN
        await self.ctx.journal.append(self.ctx.event(EventKind.NOT_CREATED, job.id, reason=why))
        return Submitted.NOT_CREATED

    def _possible_duplicate(self, job: JobSpec) -> None:
        if job.id not in self.ctx.summary.possible_duplicates:
            self.ctx.summary.possible_duplicates.append(job.id)


@dataclass(slots=True)
class _Sending:
    """One job's create across its attempts (the stage itself is shared by every job)."""

    maybe_created: bool
    sent_at: float | None = None  # the wall clock when the last attempt went out


def _may_have_made(exc: TransientApiError, error_answer_may_create: bool) -> bool:
    """Whether a create answered ``exc.status`` may still have made a task. A 502 or 504 comes
    from a proxy in front of the API, which may have taken it whatever the API's own answers
    mean; a redirect (POST, then "see the task there") may follow a create; the API's own 5xx
    mean what its adapter says."""
    status = exc.status or 0
    if status in (502, 504) or 300 <= status < 400:
        return True
    return status >= 500 and error_answer_may_create


def _answer_lost(exc: TransientApiError) -> bool:
    """The create may have reached the server and made a task whose id we never saw."""
    if isinstance(exc, NotSentError):
        return False
    return exc.status is None or 200 <= exc.status < 300


def _times(number: int) -> str:
    """``once``, ``3 times``."""
    return "once" if number == 1 else f"{number} times"
