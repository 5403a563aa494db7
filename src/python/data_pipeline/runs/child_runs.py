"""A child run inside a parent run: its own run row, run_id, lease, heartbeats and ledger rows."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from etl_core import clock, telemetry
from etl_core.errors import RunNotFound
from etl_core.model import PartitionRecord, RunRecord
from etl_core.recorded_run import describe, recorded_run, running_record
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.runs.leased import agency_lease

__all__ = ["CapturingContext", "ChildResult", "child_context", "describe", "run_child"]

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
            record = None if ctx.dry_run else await _record(parent, ctx, params)
            async with recorded_run(ctx, record) as run:
                await run.run(body)  # a cancelled child is recorded failed, then cancelled
            outcome, error = (run.outcome, None) if run.error is None else (None, run.error)
        except Exception as exc:  # LeaseHeld, or the history failed to start the run
            error = exc
        if error is not None:
            span.record_exception(error)
    return ChildResult(
        run_id=ctx.run_id,
        agency_id=agency_id,
        outcome=outcome,
        records=tuple(ctx.captured),
        error=error,
        seconds=time.monotonic() - started,
    )


async def _record(parent: RunContext, ctx: RunContext, parameters: Mapping[str, Any]) -> RunRecord:
    host, version = socket.gethostname(), None
    with contextlib.suppress(RunNotFound):
        parent_row = await parent.history.get_run(parent.run_id)
        host, version = parent_row.host or host, parent_row.code_version
    return running_record(
        ctx, parameters, trace_id=telemetry.current_ids()[0], host=host, code_version=version
    )
