"""Domain model: value objects shared by ports, adapters and business logic."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs


class RunStatus(str, enum.Enum):
    """Lifecycle of one run. STALE is derived at read time, never stored."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STALE = "stale"


@attrs.frozen
class Counts:
    """Row accounting; audit invariant: rows_in == rows_out + rows_duplicate + rows_dead_letter."""

    rows_in: int = 0
    rows_out: int = 0
    rows_duplicate: int = 0
    rows_dead_letter: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            rows_in=self.rows_in + other.rows_in,
            rows_out=self.rows_out + other.rows_out,
            rows_duplicate=self.rows_duplicate + other.rows_duplicate,
            rows_dead_letter=self.rows_dead_letter + other.rows_dead_letter,
            bytes_in=self.bytes_in + other.bytes_in,
            bytes_out=self.bytes_out + other.bytes_out,
        )

    @property
    def balanced(self) -> bool:
        """True when every input row is accounted for exactly once."""
        return self.rows_in == self.rows_out + self.rows_duplicate + self.rows_dead_letter


@attrs.frozen
class RunRecord:
    """One row of the run history (the job history table)."""

    run_id: str
    job: str
    status: RunStatus
    started_at: dt.datetime
    agency_id: int | None = None
    parameters: Mapping[str, Any] = attrs.field(factory=dict)
    heartbeat_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    counts: Counts = Counts()
    artifacts: tuple[str, ...] = ()
    error: str | None = None
    trace_id: str | None = None
    host: str | None = None
    code_version: str | None = None

    @property
    def duration(self) -> dt.timedelta | None:
        """Wall time of a finished run; None while running."""
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def effective_status(self, now: dt.datetime, stale_after: dt.timedelta) -> RunStatus:
        """RUNNING runs whose last heartbeat is older than stale_after read as STALE."""
        if self.status is not RunStatus.RUNNING:
            return self.status
        last_seen = self.heartbeat_at or self.started_at
        return RunStatus.STALE if now - last_seen > stale_after else RunStatus.RUNNING


@attrs.frozen
class PartitionRecord:
    """What one run did to one partition: the per-partition audit ledger row."""

    run_id: str
    job: str
    partition: str  # e.g. "agency_id=10/dt=2024-01-08"
    input_fingerprint: str
    counts: Counts
    agency_id: int | None = None
    status: str = "published"  # published | skipped | dry_run
    artifacts: tuple[str, ...] = ()
    recorded_at: dt.datetime | None = None


@attrs.frozen
class ObjectInfo:
    """Metadata of one stored object."""

    key: str
    size: int
    etag: str | None = None
    # UTC; None where the store does not report it. Metadata, not identity: left out of ==.
    last_modified: dt.datetime | None = attrs.field(default=None, eq=False)


@attrs.frozen
class SourceBatch:
    """A batch of raw records from a RecordSource, with the checkpoint to resume after it."""

    records: tuple[Mapping[str, Any], ...]
    checkpoint: str | None = None


@attrs.frozen
class DeadLetter:
    """A row that could not be processed, kept with the reason and its original text."""

    reason: str
    source: str
    raw: str
    run_id: str | None = None
    detail: str | None = None
