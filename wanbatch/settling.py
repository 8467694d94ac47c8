"""Settling a create whose answer was lost, on an API without idempotency keys.

Such an API makes a second task for a resent create, so before anything is resent (in this run
or the next) the submit stage asks ``Settler.settle``: where the API lists tasks, the task is
looked for among those made since the attempt's first intent (less a minute for skewed clocks),
less those other jobs hold and those whose own prompt (asked of each, a poll) is not the job's.
One found: journaled ``created``, and no create is sent (``FOUND``). None: sending is safe
(``NOT_LISTED``). Without a list, or when it cannot tell (two tasks that could be the job's, or
another unsettled job with the same prompt), the job is left "answer unknown" (``UNKNOWN``)
unless ``--resend-unknown`` (``FORCED``: a possible duplicate, reported). The list and the
prompt lookups wait out 5xx, 429s and outages as any request does.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from wanbatch.admission import CREATE, Admission, after_refusal
from wanbatch.costguard import CostGuard
from wanbatch.errors import AnswerUnknownError, ApiError, TransientApiError
from wanbatch.models import EventKind, JobSpec, JobState
from wanbatch.providers.base import Created
from wanbatch.retrying import RetryState
from wanbatch.runcontext import RunContext, TaskApi
from wanbatch.words import count, plural

T = TypeVar("T")
SETTLE_MARGIN_SECONDS = 60.0
RESEND_FLAG = "run again with --resend-unknown"
MAX_LOOKS = 20  # listed tasks asked for their prompt at most, to settle one create


class Settled(enum.Enum):
    """How a create that may have made a task was settled."""

    FOUND = "found"  # its task was listed and is journaled: poll it, send nothing
    NOT_LISTED = "not_listed"  # the task list shows none: sending it pays no second task
    FORCED = "forced"  # --resend-unknown: sent although it may be paid twice
    UNKNOWN = "unknown"  # cannot tell: left to the user (the summary says how)


class Settler:
    def __init__(
        self, ctx: RunContext, api: TaskApi, admission: Admission, guard: CostGuard
    ) -> None:
        self.ctx = ctx
        self.api = api
        self.admission = admission
        self.guard = guard

    async def settle(
        self, job: JobSpec, *, reserved: bool, sent_at: float | None = None
    ) -> Settled:
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
                return Settled.FORCED
            return self._unsettled(
                job,
                f"create sent, answer unknown: {provider.name} has no idempotency keys and"
                " lists no tasks, so sending it again may pay for a second video; look for"
                f" the task in {provider.name}'s console, and {how}",
            )
        intent_at = ctx.journal.record(job.id).intent_at
        since = (intent_at if intent_at is not None else 0.0) - SETTLE_MARGIN_SECONDS
        # "Not listed" is believed only once the API had time to list what it took: a list
        # read half a second after a cut connection may not show the task yet.
        sent = sent_at if sent_at is not None else intent_at
        free: list[Created] = []
        for look in (1, 2):
            found = await self._look(job, since, how)
            if isinstance(found, Settled):
                return found
            kept, why_none, prompts_known = await self._candidates(job, found)
            if isinstance(kept, Settled):
                return kept
            if kept:
                free = kept
                break
            grace = ctx.limits.list_grace_seconds
            young = grace - (ctx.timing.wall() - (sent or 0.0))
            if look == 2 or young <= 0:
                ctx.log.warning("job.not_listed", job=job.id, detail=f"{why_none}: sending it")
                return Settled.NOT_LISTED
            ctx.log.info("job.settle_wait", job=job.id, seconds=round(young, 1))
            await ctx.timing.sleep(young)
        rivals = self._rivals(job)
        if prompts_known:
            rivals = [r for r in rivals if _alike(self._spec(r).prompt, job.prompt)]
        if len(free) > 1 or rivals:
            if ctx.options.force_resend:
                return Settled.FORCED
            shown = ", ".join(repr(created.view.task_id) for created in free[:5])
            whose = f"; job {rivals[0]}'s create is unsettled too" if rivals else ""
            return self._unsettled(
                job,
                f"create sent, answer unknown: {count(len(free), 'task')} no job holds"
                f" {plural(len(free), 'was', 'were')} made"
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
        return Settled.FOUND

    async def _look(self, job: JobSpec, since: float, how: str) -> list[Created] | Settled:
        """The API's tasks that may be ``job``'s, or how the job is left when it cannot say."""
        try:
            return await self._asking("list", job, lambda: self.api.find(job, since))
        except AnswerUnknownError as exc:
            if self.ctx.options.force_resend:
                return Settled.FORCED
            return self._unsettled(job, f"create sent, answer unknown: {exc}; {how}")
        except ApiError as exc:
            return self._unsettled(
                job,
                f"create sent, answer unknown: the task list could not be read ({exc});"
                " the next run looks again",
            )

    async def _candidates(
        self, job: JobSpec, found: list[Created]
    ) -> tuple[list[Created] | Settled, str, bool]:
        """``found`` less the tasks other jobs hold and those whose own prompt is unlike
        ``job``'s, why none is left when none is, and whether every prompt was told. A prompt that could not be asked leaves the job unknown: a task is
        never adopted without its prompt checked where the API tells it."""
        ctx = self.ctx
        held = {
            record.task_id
            for other, record in ctx.journal.records.items()
            if other != job.id and record.task_id is not None
        }
        free = [created for created in found if created.view.task_id not in held]
        if not free:
            return [], "no task listed", False
        looked = await self._by_prompt(job, free)
        if looked is None:
            return (
                self._unsettled(
                    job,
                    f"create sent, answer unknown: {count(len(free), 'listed task')} could not all be"
                    " asked their prompt; the next run looks again",
                ),
                "",
                False,
            )
        kept, known = looked
        return kept, "none listed has its prompt", known

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

    def _unsettled(self, job: JobSpec, why: str) -> Settled:
        self.ctx.summary.left[job.id] = why
        self.ctx.log.warning("job.answer_unknown", job=job.id, error=why)
        return Settled.UNKNOWN


def _alike(one: str, other: str) -> bool:
    """Prompts that may be the same one: equal once whitespace is collapsed, or one the start
    of the other (an API may cut a long prompt short). A prompt unlike the job's rules a task
    out, so the test errs towards "alike"."""
    one, other = " ".join(one.split()), " ".join(other.split())
    return one.startswith(other) or other.startswith(one)
