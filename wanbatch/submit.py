"""The submit stage: one create per job, journaled so that nothing is paid for twice.

An ``intent`` record (with the job's ``Idempotency-Key``) is fsynced before every create and the
task id right after it. A create the server refused for certain (401, 402, 400, 429s only,
connections refused) is journaled ``not_created`` or ``failed``, so the next run knows no task
exists; one whose answer was lost stays ``submitting`` and the next run resends it with the same
key and reports it as a possible duplicate. A 2xx that names no usable task (``AnswerUnknownError``)
is not resent in the same run at all: the server took it, and may not dedupe. ``create``
returns an outcome, never raises for one.

An API without idempotency keys (``capabilities.idempotency_keys`` false, e.g. DashScope) would
make a second task for a resent create, so a create that may have made one is settled before
anything is resent, in this run or the next (``_settle``): where the API lists tasks, the task
is looked for among those made since the attempt's first intent (less a minute for skewed
clocks), less those other jobs hold and those whose own prompt (asked of each) is not the
job's: one found, it is journaled ``created`` and no create is sent; none, the create is sent
again (no possible duplicate). Without a list, or when it cannot tell (two tasks that could be
the job's, or another unsettled job with the same prompt), the job is left "answer unknown" and
never resent automatically; the summary says to look in the provider's console and, to send it
anyway, to run with ``--resend-unknown`` (``RunOptions.force_resend``): a possible duplicate.
Whether a create answered 5xx may have made a task is the adapter's word
(``capabilities.error_answer_may_create``): yes where keys or a list settle it; no for an API
that has neither (fal, a plain gateway), or every 5xx would leave its job to a person.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from wanbatch.admission import CREATE, Admission, after_refusal
from wanbatch.costguard import CostGuard
from wanbatch.errors import (
    AnswerUnknownError,
    ApiError,
    AuthError,
    CreditsExhaustedError,
    JobRejectedError,
    NotSentError,
    TransientApiError,
)
from wanbatch.models import EventKind, JobSpec, JobState
from wanbatch.providers.base import Created
from wanbatch.retrying import RetryState
from wanbatch.runcontext import RunContext, TaskApi
from wanbatch.stops import StopReason

T = TypeVar("T")


class Submitted(enum.Enum):
    """How one create ended."""

    CREATED = "created"  # the task exists; poll it
    NOT_CREATED = "not_created"  # certainly no task (journaled): a later run may send it
    FAILED = "failed"  # the server rejected the job for good (400)
    UNKNOWN = "unknown"  # the answer was lost: a task may exist; the next run asks again
    SKIPPED = "skipped"  # not sent: the run stopped submitting (a cap, 402, a stop)


# Listed tasks made up to this long before the create's intent still count (clocks differ).
SETTLE_MARGIN_SECONDS = 60.0
RESEND_FLAG = "run again with --resend-unknown"
MAX_LOOKS = 20  # listed tasks asked for their prompt at most, to settle one create

Shield = Callable[[], contextlib.AbstractContextManager[anyio.CancelScope]]


def idempotency_key_for(job: JobSpec, attempt: int) -> str:
    """Stable for a job's fields and attempt: a rerun asks for the same task, ``retry`` for a new one."""
    digest = hashlib.sha256(f"{job.id}\x00{job.fingerprint()}\x00{attempt}".encode()).hexdigest()
    return f"wb-{digest[:32]}"


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
            settled = await self._settle(job, reserved=False)
            if isinstance(settled, Submitted):
                return settled
            unknown = settled is _Resend.FORCED  # NOT_LISTED: sending it pays no second task
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
                    settled = await self._settle(job, reserved=True)
                    if isinstance(settled, Submitted):
                        return settled
                    if settled is _Resend.NOT_LISTED:
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
                self.admission.created()
                ctx.log.debug("job.submitted", job=job.id, task_id=created.view.task_id)
                return Submitted.CREATED
            except JobRejectedError as exc:
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
                    or (
                        (exc.status or 0) >= 500
                        and self.api.provider.capabilities.error_answer_may_create
                    )
                )
                sending.maybe_created = maybe_created
                if not await after_refusal(ctx, self.admission, exc, retries, "create", job.id):
                    n = retries.attempts
                    if not maybe_created:
                        ctx.summary.left[job.id] = f"create refused {n} times: {exc}"
                        return await self._not_created(job, f"refused {n} times: {exc}")
                    ctx.summary.left[job.id] = f"create not confirmed after {n} attempts: {exc}"
                    return Submitted.UNKNOWN

    @property
    def dedupes(self) -> bool:
        """A create resent with the same key makes no second task on this API."""
        return self.api.provider.capabilities.idempotency_keys

    async def _settle(self, job: JobSpec, *, reserved: bool) -> Submitted | _Resend:
        """A create that may have made a task, on an API without idempotency keys: find its
        task in the API's task list and journal it (``NOT_LISTED``: none is listed, sending is
        safe). Without a list, or when the list cannot tell, the job is left "answer unknown"
        unless ``--resend-unknown`` (``FORCED``). ``reserved``: this run's cost guard holds
        the create."""
        ctx = self.ctx
        provider = self.api.provider
        how = f"to send it anyway (it may be paid twice): {RESEND_FLAG}"
        if not provider.capabilities.list_tasks:
            if ctx.options.force_resend:
                return _Resend.FORCED
            return self._unsettled(
                job,
                f"create sent, answer unknown: {provider.name} has no idempotency keys and"
                " lists no tasks, so sending it again may pay for a second video; look for"
                f" the task in {provider.name}'s console, and {how}",
            )
        intent_at = ctx.journal.record(job.id).intent_at
        since = (intent_at if intent_at is not None else 0.0) - SETTLE_MARGIN_SECONDS
        try:
            found = await self._asking("list", job, lambda: self.api.find(job, since))
        except AnswerUnknownError as exc:
            if ctx.options.force_resend:
                return _Resend.FORCED
            return self._unsettled(job, f"create sent, answer unknown: {exc}; {how}")
        except ApiError as exc:
            return self._unsettled(
                job,
                f"create sent, answer unknown: the task list could not be read ({exc});"
                " the next run looks again",
            )
        held = {
            record.task_id
            for other, record in ctx.journal.records.items()
            if other != job.id and record.task_id is not None
        }
        free = [created for created in found if created.view.task_id not in held]
        if not free:
            ctx.log.warning("job.not_listed", job=job.id, detail="no task listed: sending it")
            return _Resend.NOT_LISTED
        # The list may show tasks made elsewhere on the account: ask each its prompt.
        rivals = self._rivals(job)
        looked = await self._by_prompt(job, free)
        if looked is not None:
            free, prompts_known = looked
            if not free:
                ctx.log.warning("job.not_listed", job=job.id, detail="none has its prompt")
                return _Resend.NOT_LISTED
            if prompts_known:
                rivals = [r for r in rivals if _alike(self._spec(r).prompt, job.prompt)]
        if len(free) > 1 or rivals:
            if ctx.options.force_resend:
                return _Resend.FORCED
            shown = ", ".join(repr(created.view.task_id) for created in free[:5])
            whose = f"; job {rivals[0]}'s create is unsettled too" if rivals else ""
            return self._unsettled(
                job,
                f"create sent, answer unknown: {len(free)} task(s) no job holds were made"
                f" since it was sent ({shown}){whose}, and {provider.name} does not say which"
                f" is this job's; not resent ({how})",
            )
        task_id, handle = free[0].view.task_id, free[0].handle
        await ctx.journal.append(
            ctx.event(EventKind.CREATED, job.id, task_id=task_id, handle=handle)
        )
        if reserved:
            self.guard.commit(job.id)
        self.admission.created()
        ctx.log.warning("job.found_by_listing", job=job.id, task_id=task_id)
        return Submitted.CREATED

    async def _by_prompt(
        self, job: JobSpec, tasks: list[Created]
    ) -> tuple[list[Created], bool] | None:
        """``tasks`` less those whose own prompt (asked of each, a poll) is unlike ``job``'s,
        and whether every prompt was told; None when one could not be asked, or too many."""
        if len(tasks) > MAX_LOOKS:
            return None
        kept, known = [], True
        for created in tasks:
            try:
                view = await self._asking(
                    "poll",
                    job,
                    functools.partial(self.api.get, created.view.task_id, created.handle),
                )
            except ApiError:
                return None
            known = known and view.prompt is not None
            if view.prompt is None or _alike(view.prompt, job.prompt):
                kept.append(created)
        return kept, known

    async def _asking(self, what: str, job: JobSpec, ask: Callable[[], Awaitable[T]]) -> T:
        """``ask()`` through the request budget, its transient errors (5xx, 429, timeouts, an
        outage) waited out as any request's are; the last one raised when they persist."""
        retries = RetryState(self.ctx.options.retry)
        while True:
            await self.admission.acquire(CREATE)
            self.ctx.summary.requests[what] += 1
            try:
                return await ask()
            except AnswerUnknownError:
                raise
            except TransientApiError as exc:
                if not await after_refusal(self.ctx, self.admission, exc, retries, what, job.id):
                    raise

    def _spec(self, job_id: str) -> JobSpec:
        return next(job for job in self.ctx.manifest.jobs if job.id == job_id)

    def _rivals(self, job: JobSpec) -> list[str]:
        """Other jobs whose create may have made a task the list cannot tell from ``job``'s:
        sent and not settled (``submitting``), of the same model, both with or both without an
        image (so the same model of the provider)."""
        records = self.ctx.journal.records
        return [
            other.id
            for other in self.ctx.manifest.jobs
            if other.id != job.id
            and other.model == job.model
            and (other.image is None) == (job.image is None)
            and (record := records.get(other.id)) is not None
            and record.state is JobState.SUBMITTING
        ]

    def _unsettled(self, job: JobSpec, why: str) -> Submitted:
        self.ctx.summary.left[job.id] = why
        self.ctx.log.warning("job.answer_unknown", job=job.id, error=why)
        return Submitted.UNKNOWN

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


def _alike(one: str, other: str) -> bool:
    """Prompts that may be the same one: equal once whitespace is collapsed, or one the start
    of the other (an API may cut a long prompt short). A prompt unlike the job's rules a task
    out, so the test errs towards "alike"."""
    one, other = " ".join(one.split()), " ".join(other.split())
    return one.startswith(other) or other.startswith(one)


class _Resend(enum.Enum):
    """Why a create that may have made a task is sent again (``SubmitStage._settle``)."""

    NOT_LISTED = "not_listed"  # the task list shows none: no second payment
    FORCED = "forced"  # --resend-unknown: it may be paid twice


@dataclass(slots=True)
class _Sending:
    """One job's create across its attempts (the stage itself is shared by every job)."""

    maybe_created: bool


def _answer_lost(exc: TransientApiError) -> bool:
    """The create may have reached the server and made a task whose id we never saw."""
    if isinstance(exc, NotSentError):
        return False
    return exc.status is None or 200 <= exc.status < 300
