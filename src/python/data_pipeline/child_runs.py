"""A child run inside a parent run: its own run row, run_id, lease, heartbeats and ledger rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from etl_core import clock, telemetry
from etl_core.errors import RunNotFound
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.runner import JobOutcome, RunContext, check_counts

from data_pipeline.leased import agency_lease, run_leased

ChildBody = Callable[[RunContext], Awaitable[JobOutcome]]


@attrs.define
class CapturingContext(RunContext):
    """A RunContext that keeps every partition record it is given; writes them only if `write`."""

    captured: list[PartitionRecord] = attrs.field(factory=list)
    write: bool = True

    async def record_partition(self, partition: PartitionRecord) -> None:
        """Keep the record; write it to the ledger (not in a dry run) when `write`."""
        self.captured.append(partition)
        if self.write:
            await super().record_partition(partition)


@attrs.frozen
class ChildResult:
    """How one child run ended: its outcome or error, its ledger rows, its wall time."""

    run_id: str
    agency_id: int
    outcome: JobOutcome | None
    records: tuple[PartitionRecord, ...]
    error: BaseException | None
    seconds: float


def child_context(parent: RunContext, job: str, agency_id: int) -> CapturingContext:
    """A context for a child run of job on one agency, sharing the parent's history and leases.

    The lease is the one a standalone run of job on the agency takes (`<job>/agency=<id>`).
    """
    run_id = clock.new_run_id()
    return CapturingContext(
        run_id=run_id,
        job=job,
        agency_id=agency_id,
        dry_run=parent.dry_run,
        settings=attrs.evolve(parent.settings, run_id=run_id, agency_id=agency_id),
        history=parent.history,
        log=logging.getLogger(f"jobs.{job}"),
        leases=parent.leases,
        lease_name=agency_lease(job, agency_id),
    )


async def run_child(
    parent: RunContext,
    job: str,
    agency_id: int,
    body: ChildBody,
    *,
    parameters: Mapping[str, Any],
) -> ChildResult:
    """Run body as a recorded child run of parent (parameters get `parent_run_id`); never raises
    for the body's errors, which come back in the result. LeaseHeld means nothing was recorded."""
    ctx = child_context(parent, job, agency_id)
    started = time.monotonic()
    outcome: JobOutcome | None = None
    error: BaseException | None = None
    attributes = telemetry.run_attributes(run_id=ctx.run_id, job=job, agency_id=agency_id)
    with telemetry.run_scope(attributes), telemetry.span(job, parent_run_id=parent.run_id) as span:
        params = {**parameters, "parent_run_id": parent.run_id}
        try:
            outcome = await run_leased(ctx, lambda: _recorded(parent, ctx, params, body))
        except Exception as exc:
            error = exc
            span.record_exception(exc)
    return ChildResult(
        run_id=ctx.run_id,
        agency_id=agency_id,
        outcome=outcome,
        records=tuple(ctx.captured),
        error=error,
        seconds=time.monotonic() - started,
    )


async def _recorded(
    parent: RunContext, ctx: CapturingContext, parameters: dict[str, Any], body: ChildBody
) -> JobOutcome:
    if not ctx.dry_run:
        await ctx.history.start_run(await _record(parent, ctx, parameters))
        ctx.log.info("child run started", extra={"lease": ctx.lease_name})
    try:
        outcome = await body(ctx)
        problem = check_counts(
            outcome.counts, ctx.settings.max_dead_letter_ratio, outcome.dead_letters
        )
        if problem is not None:
            raise problem
    except BaseException as exc:  # cancellation too: the row must not stay 'running'
        await _finish(ctx, RunStatus.FAILED, ctx.recorded, (), describe(exc))
        raise
    await _finish(ctx, RunStatus.SUCCEEDED, outcome.counts, outcome.artifacts, None)
    return outcome


async def _record(parent: RunContext, ctx: RunContext, parameters: Mapping[str, Any]) -> RunRecord:
    host, version = socket.gethostname(), None
    with contextlib.suppress(RunNotFound):
        parent_row = await parent.history.get_run(parent.run_id)
        host, version = parent_row.host or host, parent_row.code_version
    now = clock.now()
    return RunRecord(
        run_id=ctx.run_id,
        job=ctx.job,
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        agency_id=ctx.agency_id,
        parameters=dict(parameters),
        trace_id=telemetry.current_ids()[0],
        host=host,
        code_version=version,
    )


async def _finish(
    ctx: RunContext,
    status: RunStatus,
    counts: Counts,
    artifacts: tuple[str, ...],
    error: str | None,
) -> None:
    if ctx.dry_run:
        return
    try:
        # Shielded: a cancelled child still gets its outcome written.
        await asyncio.shield(
            ctx.history.finish_run(
                ctx.run_id,
                status=status,
                finished_at=clock.now(),
                counts=counts,
                artifacts=artifacts,
                error=error,
            )
        )
    except Exception as exc:
        ctx.log.error("could not record the outcome of child run %s: %s", ctx.run_id, exc)


def describe(exc: BaseException) -> str:
    """`Type: message` on one line (what the run history's error column holds)."""
    if isinstance(exc, asyncio.CancelledError):
        return "Cancelled: interrupted, or the lease was lost"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
