"""What a run's body gets and gives back: its context (identity, settings, history, spans, ledger,
heartbeat) and its outcome, plus the end-of-run checks every run passes."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
from opentelemetry import trace

from etl_core import clock, logs, telemetry
from etl_core.errors import (
    DeadLetterThresholdExceeded,
    EtlError,
    InvariantViolation,
    TemporaryFailure,
)
from etl_core.model import Counts, PartitionRecord
from etl_core.ports import LeaseStore, RunHistory
from etl_core.settings import CommonSettings

__all__ = [
    "JobBody",
    "JobOutcome",
    "LeaseLost",
    "RunContext",
    "Terminated",
    "check_counts",
]


class LeaseLost(TemporaryFailure):
    """The run could not renew its lease (expired and taken): it stops writing at once."""


class Terminated(TemporaryFailure):
    """The process was asked to stop (SIGTERM, e.g. pod eviction); retrying is appropriate."""


@attrs.frozen
class JobOutcome:
    """What a job body reports: counts, the artifacts it wrote, and fields for the summary."""

    counts: Counts = Counts()
    artifacts: tuple[str, ...] = ()
    summary: Mapping[str, Any] = attrs.field(factory=dict)
    # A few dead-lettered inputs, each named with why (`key (reason)`): a run failed by
    # --max-dead-letter-ratio names them in its error, and so in the history.
    dead_letters: tuple[str, ...] = ()


@attrs.define
class RunContext:
    """What a job body gets: run identity, settings, the history, spans, ledger and heartbeat."""

    run_id: str
    job: str
    agency_id: int | None
    dry_run: bool
    settings: CommonSettings
    history: RunHistory  # a no-write view in a dry run
    log: logging.Logger
    leases: LeaseStore | None = None
    lease_name: str | None = None
    recorded: Counts = Counts()  # sum of the partitions recorded so far

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[trace.Span]:
        """A child span; it carries run_id/agency_id like every span of the run."""
        return telemetry.span(name, **attributes)

    async def record_partition(self, partition: PartitionRecord) -> None:
        """Write the partition's ledger row (not in a dry run); counts feed a failed run's row."""
        self.recorded = self.recorded + partition.counts
        if self.dry_run:
            return
        if partition.recorded_at is None:
            partition = attrs.evolve(partition, recorded_at=clock.now())
        await self.history.record_partition(partition)

    async def heartbeat(self) -> None:
        """Mark the run alive and renew the lease. Raises LeaseLost if the lease was taken."""
        if self.dry_run:
            return
        await self.history.heartbeat(self.run_id, clock.now())
        if self.leases is not None and self.lease_name is not None:
            ttl = dt.timedelta(seconds=self.settings.lease_ttl_seconds)
            if not await self.leases.renew(self.lease_name, self.run_id, ttl):
                raise LeaseLost(f"lease {self.lease_name!r} was lost (expired and taken over)")

    def progress(self, text: str) -> None:
        """Update the progress line (TTY) or log it now and then."""
        logs.show_progress(text)


JobBody = Callable[[RunContext], Awaitable[JobOutcome]]


def check_counts(
    counts: Counts, max_ratio: float | None, examples: Sequence[str] = ()
) -> EtlError | None:
    """End-of-run checks: balanced counts (when rows are reported), dead-letter ratio in bounds
    (the error names the examples: dead-lettered inputs with why)."""
    reported = counts.rows_in or counts.rows_out or counts.rows_duplicate or counts.rows_dead_letter
    if reported and not counts.balanced:
        return InvariantViolation(
            f"rows_in {counts.rows_in} != rows_out {counts.rows_out} + rows_duplicate "
            f"{counts.rows_duplicate} + rows_dead_letter {counts.rows_dead_letter}"
        )
    if max_ratio is not None and counts.rows_in > 0:
        ratio = counts.rows_dead_letter / counts.rows_in
        if ratio > max_ratio:
            shown = f": {'; '.join(examples[:5])}" if examples else ""
            more = f"; and {len(examples) - 5} more" if len(examples) > 5 else ""
            return DeadLetterThresholdExceeded(
                f"dead-letter ratio {ratio:.4g} ({counts.rows_dead_letter}/{counts.rows_in}) "
                f"exceeds --max-dead-letter-ratio {max_ratio:g}{shown}{more}"
            )
    return None
