"""The maintain run's summary lines: per table, what compaction, vacuum and checkpoint did."""

from __future__ import annotations

import collections

from etl_core.model import PartitionStatus
from etl_core.text_table import byte_size

from data_pipeline.maintenance.run import (
    AgencyStep,
    MaintenanceReport,
    TableStep,
)


def summary(report: MaintenanceReport, *, dry_run: bool, retention_hours: int) -> dict[str, str]:
    """One line per table (and one naming the agencies skipped for a held lease)."""
    lines: dict[str, str] = {}
    for table in report.tables:
        steps = [s for s in report.agencies if s.table == table.table]
        lines[table.table] = "; ".join(
            [*_compaction(steps, dry_run), *_table(table, dry_run, retention_hours)]
        )
    busy = sorted({s.agency_id for s in report.agencies if s.status == PartitionStatus.LEASE_HELD})
    if busy:
        lines["skipped"] = (
            f"agenc{'y' if len(busy) == 1 else 'ies'} {', '.join(map(str, busy))}: "
            "bronze_to_silver lease held (a fold or replay is running); next run"
        )
    return lines


def _compaction(steps: list[AgencyStep], dry_run: bool) -> list[str]:
    parts = []
    done = [s for s in steps if s.status in (PartitionStatus.COMPACTED, PartitionStatus.DRY_RUN)]
    if done:
        removed = [f for s in done for f in s.compaction.removed]
        added = [f for s in done for f in s.compaction.added]
        partitions = sum(s.partitions for s in done)
        agencies = _agencies(len(done))
        if dry_run:
            parts.append(
                f"would compact {agencies}: {len(removed):,} files "
                f"({byte_size(sum(f.size for f in removed))}) in {partitions:,} partitions"
            )
        else:
            parts.append(
                f"{agencies} compacted: {len(removed):,} -> {len(added):,} files "
                f"({byte_size(sum(f.size for f in removed))} -> "
                f"{byte_size(sum(f.size for f in added))}) in {partitions:,} partitions"
            )
    others = collections.Counter(s.status for s in steps if s not in done)
    parts += [f"{_agencies(n)} {status}" for status, n in sorted(others.items())]
    return parts


def _table(step: TableStep, dry_run: bool, retention_hours: int) -> list[str]:
    if step.version is None:
        return ["no table yet"]
    verb = "would delete" if dry_run else "deleted"
    parts = [f"vacuum {verb} {len(step.vacuumed):,} files removed over {retention_hours} h ago"]
    if step.checkpoint is not None:
        parts.append(f"checkpoint at v{step.checkpoint}")
    if step.error is not None:
        parts.append(f"failed: {step.error}")
    return parts


def _agencies(count: int) -> str:
    return f"{count:,} agenc{'y' if count == 1 else 'ies'}"
