"""Table maintenance: keep the silver and dead-letter tables cheap to merge into and to read.

Flow:
1. Agencies: those with files in either table (or the ones asked for). One listing of each
   table picks those with a partition to compact; the others are not visited, so no fold of theirs
   waits on a lease held for nothing.
2. Compaction, per agency, under the agency's bronze_to_silver lease, so it never races that
   agency's fold or replay (an agency whose lease is held is skipped and reported; not a failure).
   Under the lease its files are listed again, and in each table each of its partitions with
   more files than its size calls for is rewritten as files of about `target_size`: silver's
   sorted by record_id (z-order), so each file covers a narrow key range and a merge reads and
   rewrites only the few files whose record_id bounds can hold an incoming key; dead letters'
   only combined. Dead letters of a fold not yet in silver (its run died between its two
   commits) are left as they are: the re-run replaces that fold's files, which it finds by name.
   Other agencies' writers commit meanwhile; a compaction that loses to one is redone by the
   adapter, and one that keeps losing is reported (the run then exits 75).
3. Vacuum of files that left the table longer than `retention_hours` ago (readers of versions
   younger than that still find their files), then a checkpoint of the log and the deletion of
   expired log entries. Vacuum first: the checkpoint then forgets the tombstones it cleared.
Each agency's compaction (or skip) is recorded per table in the ledger (`<table>/agency_id=<id>`,
files added and removed as artifacts), as is each table's vacuum and checkpoint (`<table>`).
A dry run reads and plans only: no lease, compaction, checkpoint or deletion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs
from etl_core.errors import EtlError, LeaseHeld, TableConflict, TableError, TemporaryFailure
from etl_core.model import (
    Compaction,
    Counts,
    PartitionRecord,
    PartitionStatus,
    TableFile,
    TablePartition,
)
from etl_core.ports import TableMaintenance
from etl_core.runner import RunContext

from data_pipeline.runs.leased import agency_lease, run_leased

# data_pipeline.bronze_to_silver.run.JOB, whose lease every writer of an agency takes; not imported,
# as that would ship the whole transform in this job's PEX (maintenance_test checks they agree).
PROMOTE_JOB = "bronze_to_silver"
SILVER, DEADLETTER = "silver", "deadletter"
SORT_BY = {SILVER: "record_id"}  # other tables: combined, not sorted

MAX_LISTED = 1000  # vacuumed files listed in a ledger row; the count covers the rest


class MaintenanceFailed(EtlError):
    """Some table or agency could not be maintained (exit 1)."""


class MaintenanceIncomplete(TemporaryFailure):
    """Some agency's compaction kept losing to concurrent commits (exit 75: re-run later)."""


@attrs.frozen(kw_only=True)
class MaintenanceOptions:
    """Which agencies, how big the files, how long removed files stay."""

    agencies: tuple[int, ...] | None = None  # None: every agency with files
    target_size: int = 32 << 20
    retention_hours: int = 168
    full_vacuum: bool = False  # also delete files no commit references (crashed writers')


@attrs.frozen
class AgencyStep:
    """What happened to one agency's files in one table."""

    table: str
    agency_id: int
    status: PartitionStatus
    version: int | None = None  # the table version the plan was made on
    partitions: int = 0  # partitions compacted (or planned)
    compaction: Compaction = Compaction()
    error: str | None = None


@attrs.frozen
class TableStep:
    """What happened to one table as a whole: vacuum and checkpoint."""

    table: str
    version: int | None  # before the vacuum; None: no table yet
    vacuumed: tuple[str, ...] = ()
    checkpoint: int | None = None
    error: str | None = None


@attrs.frozen
class MaintenanceReport:
    """Every agency step and table step of a run."""

    agencies: tuple[AgencyStep, ...]
    tables: tuple[TableStep, ...]

    @property
    def counts(self) -> Counts:
        """Bytes rewritten: in = the files compaction removed, out = those it wrote."""
        done = [s.compaction for s in self.agencies if s.status == PartitionStatus.COMPACTED]
        return Counts(
            bytes_in=sum(f.size for c in done for f in c.removed),
            bytes_out=sum(f.size for c in done for f in c.added),
        )

    def error(self) -> EtlError | None:
        """The error the run ends with: failures first (exit 1), then conflicts (exit 75)."""
        failed = [
            f"{s.table} agency {s.agency_id}"
            for s in self.agencies
            if s.status == PartitionStatus.FAILED
        ]
        failed += [f"{s.table} table" for s in self.tables if s.error is not None]
        conflicts = sorted(
            {s.agency_id for s in self.agencies if s.status == PartitionStatus.CONFLICT}
        )
        if failed:
            return MaintenanceFailed(f"maintenance failed for {', '.join(failed)}")
        if conflicts:
            ids = ", ".join(map(str, conflicts))
            return MaintenanceIncomplete(f"agencies {ids}: compaction lost to concurrent commits")
        return None


def fragmented(partition: TablePartition, target_size: int) -> bool:
    """More files than the partition's size calls for (at least two)."""
    count = len(partition.files)
    return count >= 2 and count > math.ceil(partition.size / target_size)


async def maintain(
    ctx: RunContext, tables: Mapping[str, TableMaintenance], options: MaintenanceOptions
) -> MaintenanceReport:
    """Compact every chosen agency (silver first), then vacuum and checkpoint each table."""
    layouts = [layout for port in tables.values() if (layout := await port.layout()) is not None]
    present = sorted({agency_id for layout in layouts for agency_id in layout.agencies()})
    agencies = present if options.agencies is None else list(options.agencies)
    due = {
        p.agency_id
        for layout in layouts
        for p in layout.partitions
        if fragmented(p, options.target_size)
    }
    steps: list[AgencyStep] = []
    for done, agency_id in enumerate(agencies):
        if agency_id not in due:
            steps += [AgencyStep(name, agency_id, PartitionStatus.UP_TO_DATE) for name in tables]
            continue
        ctx.progress(f"maintain: agency {agency_id} ({done + 1}/{len(agencies)})")
        steps += await _agency(ctx, tables, agency_id, options)
    table_steps = [await _table(ctx, name, port, options) for name, port in tables.items()]
    return MaintenanceReport(tuple(steps), tuple(table_steps))


async def _agency(
    ctx: RunContext,
    tables: Mapping[str, TableMaintenance],
    agency_id: int,
    options: MaintenanceOptions,
) -> list[AgencyStep]:
    leased = attrs.evolve(ctx, lease_name=agency_lease(PROMOTE_JOB, agency_id))

    async def compact_all() -> list[AgencyStep]:
        return [await _compact(ctx, tables, name, agency_id, options) for name in tables]

    try:
        steps = await run_leased(leased, compact_all)
    except LeaseHeld as exc:
        ctx.log.warning("agency %s skipped: %s", agency_id, exc)
        steps = [
            AgencyStep(name, agency_id, PartitionStatus.LEASE_HELD, error=str(exc))
            for name in tables
        ]
    for step in steps:
        if step.status != PartitionStatus.UP_TO_DATE:
            await ctx.record_partition(_agency_record(ctx, step))
    return steps


async def _compact(
    ctx: RunContext,
    tables: Mapping[str, TableMaintenance],
    name: str,
    agency_id: int,
    options: MaintenanceOptions,
) -> AgencyStep:
    port, sort_by = tables[name], SORT_BY.get(name)
    try:
        layout = await port.layout(agency_id)  # under the lease: no writer of the agency moves
        if layout is None:
            return AgencyStep(name, agency_id, PartitionStatus.UP_TO_DATE)
        due = [p for p in layout.partitions if fragmented(p, options.target_size)]
        step = AgencyStep(name, agency_id, PartitionStatus.UP_TO_DATE, layout.version, len(due))
        if not due:
            return step
        if name != SILVER and SILVER in tables:
            fold = await port.fold_version(agency_id)
            if fold > await tables[SILVER].fold_version(agency_id):
                return attrs.evolve(
                    step, status=PartitionStatus.UNFINISHED, error=f"fold {fold} not in silver"
                )
        if ctx.dry_run:
            planned = Compaction(removed=_planned(due, options.target_size, sort_by))
            return attrs.evolve(step, status=PartitionStatus.DRY_RUN, compaction=planned)
        days = [p.day for p in due]
        with ctx.span("compact", table=name, agency_id=agency_id, partitions=len(days)):
            compaction = await port.compact(
                agency_id, days, target_size=options.target_size, sort_by=sort_by
            )
    except TableConflict as exc:
        ctx.log.warning("%s agency %s: %s", name, agency_id, exc)
        return AgencyStep(name, agency_id, PartitionStatus.CONFLICT, error=str(exc))
    except TableError as exc:
        ctx.log.error("%s agency %s: %s", name, agency_id, exc)
        return AgencyStep(name, agency_id, PartitionStatus.FAILED, error=str(exc))
    status = PartitionStatus.COMPACTED if compaction.removed else PartitionStatus.UP_TO_DATE
    return attrs.evolve(step, status=status, compaction=compaction)


def _planned(
    partitions: Sequence[TablePartition], target_size: int, sort_by: str | None
) -> tuple[TableFile, ...]:
    """The files a compaction would rewrite: all (sorted), or the small ones of each partition
    that has two or more (combined)."""
    planned: list[TableFile] = []
    for partition in partitions:
        small = [f for f in partition.files if sort_by is not None or f.size < target_size]
        if sort_by is not None or len(small) >= 2:
            planned += small
    return tuple(planned)


async def _table(
    ctx: RunContext, name: str, port: TableMaintenance, options: MaintenanceOptions
) -> TableStep:
    step = TableStep(name, None)
    try:
        layout = await port.layout()
        if layout is None:
            return step
        step = attrs.evolve(step, version=layout.version)
        with ctx.span("vacuum", table=name, retention_hours=options.retention_hours):
            vacuumed = await port.vacuum(
                options.retention_hours, full=options.full_vacuum, dry_run=ctx.dry_run
            )
        step = attrs.evolve(step, vacuumed=vacuumed)
        if not ctx.dry_run:
            with ctx.span("checkpoint", table=name):
                step = attrs.evolve(step, checkpoint=await port.checkpoint())
    except TableError as exc:
        ctx.log.error("%s table: %s", name, exc)
        step = attrs.evolve(step, error=str(exc))
    await ctx.record_partition(_table_record(ctx, step))
    return step


def _agency_record(ctx: RunContext, step: AgencyStep) -> PartitionRecord:
    compaction = step.compaction
    artifacts = [f"added:{step.table}/{f.path}" for f in compaction.added]
    artifacts += [f"removed:{step.table}/{f.path}" for f in compaction.removed]
    return PartitionRecord(
        run_id=ctx.run_id,
        job=ctx.job,
        partition=f"{step.table}/agency_id={step.agency_id}",
        input_fingerprint=_fingerprint(step.table, step.version),
        counts=Counts(
            bytes_in=sum(f.size for f in compaction.removed),
            bytes_out=sum(f.size for f in compaction.added),
        ),
        agency_id=step.agency_id,
        status=step.status,
        artifacts=tuple(artifacts),
    )


def _table_record(ctx: RunContext, step: TableStep) -> PartitionRecord:
    artifacts = [f"deleted:{step.table}/{path}" for path in step.vacuumed[:MAX_LISTED]]
    if len(step.vacuumed) > MAX_LISTED:
        artifacts.append(f"deleted:{len(step.vacuumed) - MAX_LISTED} more")
    if step.checkpoint is not None:
        artifacts.insert(0, f"checkpoint:{step.table}@v{step.checkpoint}")
    status = (
        PartitionStatus.FAILED
        if step.error
        else PartitionStatus.DRY_RUN
        if ctx.dry_run
        else PartitionStatus.MAINTAINED
    )
    return PartitionRecord(
        run_id=ctx.run_id,
        job=ctx.job,
        partition=step.table,
        input_fingerprint=_fingerprint(step.table, step.version),
        counts=Counts(),
        status=status,
        artifacts=tuple(artifacts),
    )


def _fingerprint(table: str, version: int | None) -> str:
    return f"{table}@v{version}" if version is not None else f"{table}@none"
