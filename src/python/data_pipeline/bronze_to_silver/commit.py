"""Commit one fold of an agency (its ledger, its dead letters, then silver: the publish) and add
up what a run's folds did per dt partition, for the run history."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import attrs
from etl_core.errors import InvariantViolation
from etl_core.failpoints import failpoint
from etl_core.model import Counts, DeadLetter, ObjectInfo, PartitionRecord, PartitionStatus
from etl_core.ports import ObjectStore, SilverTables
from etl_core.runner import RunContext

from data_pipeline.bronze_to_silver.ledger import FoldLedger, save_ledger
from data_pipeline.bronze_to_silver.plan import Plan

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.accounting import Accounting

JOB: Final = "bronze_to_silver"
# 64 MB of bronze (~200k rows) a fold: one agency of 1M rows stays near 600 MB at peak (the
# fold's rows, its dedupe and the merge's reads and rewrites); 256 MB folds peaked at 880 MB.
DEFAULT_FOLD_BYTES: Final = 64 << 20


@attrs.frozen
class Fold:
    """One fold version: its files, whether it replaces the agency's rows, its ledger."""

    version: int
    files: tuple[ObjectInfo, ...]
    rebuild: bool
    ledger: FoldLedger


@attrs.frozen
class FoldResult:
    """What one fold did: counts per dt of its files, and the merge's file work."""

    per_day: dict[str, Counts]
    older: int
    files_added: int
    files_removed: int
    rows_rewritten: int
    reasons: collections.Counter[str]


def split_by_bytes(files: Sequence[ObjectInfo], limit: int) -> list[tuple[ObjectInfo, ...]]:
    """files in order, in consecutive batches of at most limit bytes (a larger file alone)."""
    batches: list[tuple[ObjectInfo, ...]] = []
    batch: list[ObjectInfo] = []
    size = 0
    for info in files:
        if batch and size + info.size > limit:
            batches.append(tuple(batch))
            batch, size = [], 0
        batch.append(info)
        size += info.size
    if batch:
        batches.append(tuple(batch))
    return batches


async def commit_fold(
    ctx: RunContext,
    store: ObjectStore,
    tables: SilverTables,
    plan: Plan,
    fold: Fold,
    accounting: Accounting,
) -> FoldResult:
    """Ledger, dead letters, silver: in that order, each redone by a re-run of the same version.

    Raises InvariantViolation if the fold's rows do not add up.
    """
    # Arrow is imported by the folds that need it, not with this module (see run.promote).
    import pyarrow as pa

    from data_pipeline.silver.arrow import dead_letter_batch, silver_from_valid

    agency_id = plan.agency_id
    kept_per_day = await asyncio.to_thread(accounting.kept_per_day)
    silver = silver_from_valid(accounting.deduper.survivors(), ctx.run_id)
    dead: list[tuple[dt.date, DeadLetter]] = [
        (dt.date.fromisoformat(day), letter)
        for day, tally in sorted(accounting.tallies.items())
        for letter in tally.dead_letters
    ]
    if not ctx.dry_run:
        await save_ledger(store, fold.ledger)
    failpoint(f"{JOB}.ledger_saved")
    if dead or fold.rebuild:
        with ctx.span("deadletter", rows=len(dead), fold=fold.version):
            await tables.deadletter.write(
                agency_id,
                fold.version,
                dead_letter_batch(agency_id, dead, ctx.run_id),
                replace=fold.rebuild,
            )
    failpoint(f"{JOB}.deadletter_committed")
    with ctx.span("merge", rows=silver.num_rows, fold=fold.version, rebuild=fold.rebuild):
        merged = await tables.silver.merge(agency_id, fold.version, silver, replace=fold.rebuild)
    # Hand the merge's buffers back to the system: the next fold's batches need the room.
    pa.default_memory_pool().release_unused()
    failpoint(f"{JOB}.silver_committed")
    per_day: dict[str, Counts] = {}
    for day in sorted(accounting.tallies):
        date = dt.date.fromisoformat(day)
        tally = accounting.tallies[day]
        inserted, updated = merged.inserted.get(date, 0), merged.updated.get(date, 0)
        older, kept = merged.older.get(date, 0), kept_per_day.get(day, 0)
        if inserted + updated + older != kept:
            raise InvariantViolation(
                f"partition dt={day}: the merge saw {inserted + updated + older} rows, "
                f"{kept} survived the run's dedupe"
            )
        per_day[day] = Counts(
            rows_in=tally.rows_in,
            rows_out=inserted + updated,
            rows_duplicate=tally.valid - kept + older,
            rows_dead_letter=tally.rows_dead_letter,
            bytes_in=tally.bytes_in,
            rows_inserted=inserted,
            rows_updated=updated,
        )
        if not per_day[day].balanced:
            raise InvariantViolation(f"partition dt={day}: counts do not balance: {per_day[day]}")
    return FoldResult(
        per_day,
        merged.total(merged.older),
        merged.files_added,
        merged.files_removed,
        merged.rows_rewritten,
        collections.Counter(letter.reason for _, letter in dead),
    )


@attrs.define
class RunTally:
    """A run's folds added up: per dt partition, and the merges' file work."""

    per_day: dict[str, Counts] = attrs.field(factory=dict)
    older: int = 0
    files_added: int = 0
    files_removed: int = 0
    rows_rewritten: int = 0
    reasons: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def add(self, result: FoldResult) -> None:
        for day, counts in result.per_day.items():
            self.per_day[day] = self.per_day.get(day, Counts()) + counts
        self.older += result.older
        self.files_added += result.files_added
        self.files_removed += result.files_removed
        self.rows_rewritten += result.rows_rewritten
        self.reasons.update(result.reasons)

    async def record(
        self, ctx: RunContext, plan: Plan, input_fingerprint: str, status: PartitionStatus
    ) -> Counts:
        """One PartitionRecord per dt folded in; returns the run's totals."""
        total = Counts()
        for day, counts in sorted(self.per_day.items()):
            await ctx.record_partition(
                PartitionRecord(
                    run_id=ctx.run_id,
                    job=ctx.job,
                    partition=plan.partition(day),
                    input_fingerprint=input_fingerprint,
                    counts=counts,
                    agency_id=plan.agency_id,
                    status=status,
                )
            )
            total += counts
        return total

    def describe_reasons(self) -> str:
        """Most frequent first; ties by name."""
        items = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{reason} {count}" for reason, count in items) or "none"
