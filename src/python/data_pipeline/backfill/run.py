"""Backfill: bronze -> silver over a date range for many agencies, one recorded child run each.

Each agency runs `promote` in-process as its own bronze_to_silver run (own run_id, `parent_run_id`
parameter, the lease `bronze_to_silver/agency=<id>` a standalone run takes), at most
`max_parallel` at once, all committing to the same silver and dead-letter tables (each child's
commits stamped with its own run_id; the table adapter rebases a commit that lost a race to a
sibling's, since agencies never share files).
Resumable: a child folds in only the bronze of dt in range that its agency's fold ledger does not
list yet, so an agency already done finds nothing new (reads and writes nothing), and an agency
cut short, whose fold never committed, redoes that one fold.

Outcome per agency and the backfill's exit code (worst wins):
  succeeded / up to date / nothing to do          0
  busy (retry): the agency's lease is held        75  (also: another temporary failure)
  failed                                          1
Without continue_on_error the first failure stops launching agencies (running ones finish; the
rest are 'not started'); busy agencies never stop the backfill. Re-running the same backfill
redoes only what is left.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from etl_core.errors import EtlError, ExitCode, LeaseHeld, TemporaryFailure
from etl_core.failpoints import failpoint
from etl_core.model import Counts, PartitionStatus
from etl_core.ports import ObjectStore, SilverTables
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.backfill.plan import AgencyPlan
from data_pipeline.bronze_to_silver.run import JOB as PROMOTE_JOB
from data_pipeline.bronze_to_silver.run import PromoteOptions, promote
from data_pipeline.bronze_to_silver.workers import SMALL_INPUT_BYTES, TransformPool
from data_pipeline.runs.child_runs import ChildResult, describe, run_child

TablesFor = Callable[[str], SilverTables]
"""The tables a child run commits to, given its run_id (which the adapters stamp on commits)."""


class AgencyStatus(enum.StrEnum):
    """How one agency of a backfill went, as its summary row shows it."""

    SUCCEEDED = "succeeded"
    UP_TO_DATE = "up to date"
    NOTHING = "nothing to do"
    BUSY = "busy (retry)"
    RETRY = "retry"
    FAILED = "failed"
    NOT_STARTED = "not started"
    DRY_RUN = "dry run"


class BackfillFailed(EtlError):
    """At least one agency failed (exit 1)."""


class BackfillIncomplete(TemporaryFailure):
    """No agency failed, but some were busy or hit a temporary failure (exit 75: re-run later)."""


def _has_range(_: object, __: attrs.Attribute[PromoteOptions], promote: PromoteOptions) -> None:
    if promote.first is None or promote.last is None:
        raise ValueError("a backfill needs a first and a last dt")


@attrs.frozen(kw_only=True)
class BackfillOptions:
    """How to run the planned agencies."""

    # Each agency's bronze_to_silver pass (first and last required); workers None: the CPU
    # count shared out over max_parallel agencies.
    promote: PromoteOptions = attrs.field(validator=_has_range)
    max_parallel: int = 1
    continue_on_error: bool = False
    parameters: Mapping[str, Any] = attrs.field(factory=dict)  # recorded on every child run

    @property
    def first(self) -> dt.date:
        """The first dt of the range."""
        assert self.promote.first is not None  # validated
        return self.promote.first

    @property
    def last(self) -> dt.date:
        """The last dt of the range."""
        assert self.promote.last is not None  # validated
        return self.promote.last


@attrs.frozen
class AgencyResult:
    """One row of the summary table."""

    plan: AgencyPlan
    status: AgencyStatus
    counts: Counts = Counts()
    folded: int = 0  # partitions (dt) the child merged into silver (a rebuild: all); dry run 0
    seconds: float = 0.0
    run_id: str | None = None
    error: str | None = None

    @property
    def current(self) -> int:
        """Partitions in range that were folded in already when the backfill was planned."""
        return self.plan.current

    @property
    def failed(self) -> int:
        """Partitions in range left to fold: the agency failed (or never ran) before its commit."""
        if self.status in (
            AgencyStatus.SUCCEEDED,
            AgencyStatus.UP_TO_DATE,
            AgencyStatus.NOTHING,
            AgencyStatus.DRY_RUN,
        ):
            return 0
        return max(0, self.plan.to_fold - self.folded)


@attrs.frozen
class BackfillReport:
    """Every agency's result, in plan order."""

    results: tuple[AgencyResult, ...]

    @property
    def counts(self) -> Counts:
        return sum((result.counts for result in self.results), start=Counts())

    def error(self) -> EtlError | None:
        """The error the backfill exits with (None: exit 0), per the mapping above."""
        failed = [
            r for r in self.results if r.status in (AgencyStatus.FAILED, AgencyStatus.NOT_STARTED)
        ]
        retry = [r for r in self.results if r.status in (AgencyStatus.BUSY, AgencyStatus.RETRY)]
        if failed:
            return BackfillFailed(f"{_agencies(failed)} failed or not started{_also(retry)}")
        if retry:
            return BackfillIncomplete(f"{_agencies(retry)} busy or temporarily failing: re-run")
        return None

    @property
    def exit_code(self) -> int:
        error = self.error()
        return ExitCode.OK if error is None else int(error.exit_code)


def _agencies(results: list[AgencyResult]) -> str:
    ids = ", ".join(str(r.plan.agency_id) for r in results)
    return f"{len(results)} agenc{'y' if len(results) == 1 else 'ies'} ({ids})"


def _also(retry: list[AgencyResult]) -> str:
    return f"; {_agencies(retry)} busy or temporarily failing" if retry else ""


def child_workers(requested: int | None, max_parallel: int) -> int | None:
    """requested; else, with agencies in parallel, the CPUs shared out (None: promote decides)."""
    if requested is not None or max_parallel <= 1:
        return requested
    return max(1, (os.cpu_count() or 1) // max_parallel)


def shared_workers(options: BackfillOptions, plans: tuple[AgencyPlan, ...]) -> int:
    """Worker processes for one pool every agency feeds (0: none, each agency decides), used
    when agencies run in parallel without --workers and the bronze to read is large enough to
    pay for starting them: then a full build keeps every core busy, however small each agency
    is, instead of running each agency's transform inline beside the others on one core."""
    if options.promote.workers is not None or options.max_parallel <= 1 or _cpus() <= 1:
        return 0
    if sum(plan.bytes_in for plan in plans) < SMALL_INPUT_BYTES:
        return 0
    return _cpus()


def _cpus() -> int:
    return os.cpu_count() or 1


async def run_backfill(
    ctx: RunContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: TablesFor,
    plans: tuple[AgencyPlan, ...],
    options: BackfillOptions,
) -> BackfillReport:
    """Run every planned agency as a child run of ctx; failures are results, not exceptions."""
    shared = shared_workers(options, plans)
    if shared:
        async with TransformPool(shared) as pool:
            return await _run_agencies(ctx, store, bronze, tables, plans, options, pool)
    return await _run_agencies(ctx, store, bronze, tables, plans, options, None)


async def _run_agencies(
    ctx: RunContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: TablesFor,
    plans: tuple[AgencyPlan, ...],
    options: BackfillOptions,
    pool: TransformPool | None,
) -> BackfillReport:
    gate = asyncio.Semaphore(max(1, options.max_parallel))
    stopped: list[int] = []  # agencies whose failure stops the rest (without continue_on_error)
    workers = child_workers(options.promote.workers, options.max_parallel)

    async def promote_agency(child: RunContext) -> JobOutcome:
        assert child.agency_id is not None
        promote_options = attrs.evolve(options.promote, workers=workers, pool=pool)
        return await promote(child, store, bronze, tables(child.run_id), promote_options)

    async def one(plan: AgencyPlan) -> AgencyResult:
        if not plan.days and plan.problem is None:  # its bronze is all outside the range
            return AgencyResult(plan, AgencyStatus.NOTHING)
        async with gate:
            if stopped:
                return AgencyResult(
                    plan, AgencyStatus.NOT_STARTED, error=f"agency {stopped[0]} failed"
                )
            ctx.progress(f"backfill: agency {plan.agency_id} ({plan.to_fold} partitions to fold)")
            child = await run_child(
                ctx, PROMOTE_JOB, plan.agency_id, promote_agency, parameters=options.parameters
            )
            result = agency_result(plan, child, dry_run=ctx.dry_run)
            log = ctx.log.warning if result.error else ctx.log.info
            log("agency %s: %s", plan.agency_id, result.error or result.status,
                extra={"child_run_id": child.run_id})  # fmt: skip
            if result.status == AgencyStatus.FAILED and not options.continue_on_error:
                stopped.append(plan.agency_id)
            failpoint("backfill.agency_done")
            return result

    results = await asyncio.gather(*(one(plan) for plan in plans))
    return BackfillReport(tuple(results))


def agency_result(plan: AgencyPlan, child: ChildResult, *, dry_run: bool) -> AgencyResult:
    """Classify a child run: its status, partitions folded, counts and time.

    A child records one partition row per dt it folds in, after its silver commit; none means it
    found nothing new (up to date).
    """
    counts = child.outcome.counts if child.outcome is not None else Counts()
    if child.error is None:
        status = (
            AgencyStatus.UP_TO_DATE
            if not child.records
            else AgencyStatus.DRY_RUN
            if dry_run
            else AgencyStatus.SUCCEEDED
        )
        error = None
    else:
        counts = sum((record.counts for record in child.records), start=Counts())
        if isinstance(child.error, LeaseHeld):
            status = AgencyStatus.BUSY
        elif isinstance(child.error, TemporaryFailure):
            status = AgencyStatus.RETRY
        else:
            status = AgencyStatus.FAILED
        error = describe(child.error)
    return AgencyResult(
        plan=plan,
        status=status,
        counts=counts,
        folded=sum(record.status != PartitionStatus.DRY_RUN for record in child.records),
        seconds=child.seconds,
        run_id=child.run_id,
        error=error,
    )
