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
    """Row accounting; audit invariant: rows_in == rows_out + rows_duplicate + rows_dead_letter.

    rows_inserted and rows_updated say what a run did to the silver table (keys new to silver,
    newer versions that replaced a stored row). They describe the merge, not the input, so they
    stay outside the invariant: a rows_out row that is older than the stored one is in neither.
    """

    rows_in: int = 0
    rows_out: int = 0
    rows_duplicate: int = 0
    rows_dead_letter: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            rows_in=self.rows_in + other.rows_in,
            rows_out=self.rows_out + other.rows_out,
            rows_duplicate=self.rows_duplicate + other.rows_duplicate,
            rows_dead_letter=self.rows_dead_letter + other.rows_dead_letter,
            bytes_in=self.bytes_in + other.bytes_in,
            bytes_out=self.bytes_out + other.bytes_out,
            rows_inserted=self.rows_inserted + other.rows_inserted,
            rows_updated=self.rows_updated + other.rows_updated,
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


class PartitionStatus(enum.StrEnum):
    """What a run did to a partition, as the history's partition rows store it (never change a
    value: histories written before must read back the same)."""

    PUBLISHED = "published"  # written (ingest_api, get_s3_files, agency_data_job)
    SKIPPED = "skipped"  # nothing to write
    DRY_RUN = "dry_run"  # would have been written
    MERGED = "merged"  # bronze_to_silver: new bronze merged into silver
    REBUILT = "rebuilt"  # bronze_to_silver: the agency rebuilt from its whole bronze
    UNCHANGED = "unchanged"  # replay_dead_letters: replayed rows landed where they were
    COMPACTED = "compacted"  # maintain: an agency's files rewritten
    UP_TO_DATE = "up to date"  # maintain: nothing to compact
    LEASE_HELD = "skipped: lease held"  # maintain: another run holds the agency
    UNFINISHED = "kept: unfinished fold"  # maintain: a fold is unfinished, left alone
    CONFLICT = "conflict (retry)"  # maintain: lost to concurrent commits
    FAILED = "failed"  # maintain
    MAINTAINED = "maintained"  # maintain: a table checkpointed and vacuumed


@attrs.frozen
class PartitionRecord:
    """What one run did to one partition: the per-partition audit ledger row."""

    run_id: str
    job: str
    partition: str  # e.g. "agency_id=10/dt=2024-01-08"
    input_fingerprint: str
    counts: Counts
    agency_id: int | None = None
    status: PartitionStatus = attrs.field(
        default=PartitionStatus.PUBLISHED, converter=PartitionStatus
    )
    artifacts: tuple[str, ...] = ()
    recorded_at: dt.datetime | None = None


@attrs.frozen
class LeaseInfo:
    """Who holds a lease: the owning run, its process, and when the lease lapses unless renewed.

    `live` is True when the holder also holds a lock its operating system or database frees the
    moment its process dies, so a dead holder is known at once rather than at expires_at.
    """

    name: str
    owner: str
    expires_at: dt.datetime
    host: str | None = None
    pid: int | None = None
    live: bool = False

    def describe(self) -> str:
        """`run_id R on host H (pid P), lease expires T unless renewed` for error messages."""
        where = f" on host {self.host}" if self.host else ""
        pid = f" (pid {self.pid})" if self.pid is not None else ""
        expires = self.expires_at.astimezone(dt.UTC).isoformat(timespec="seconds")
        freed = "; freed as soon as that process exits" if self.live else ""
        return f"run_id {self.owner}{where}{pid}, lease expires {expires} unless renewed{freed}"


def died_error(host: str | None, pid: int | None, last_heartbeat: dt.datetime | None) -> str:
    """The error recorded for a run whose process ended without recording an outcome."""
    where = f" on host {host}" if host else ""
    pid_text = f" (pid {pid})" if pid is not None else ""
    seen = (
        last_heartbeat.astimezone(dt.UTC).isoformat(timespec="seconds") if last_heartbeat else "-"
    )
    return f"died: its process{where}{pid_text} ended while running; last heartbeat {seen}"


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
    line: int | None = None  # 1-based line in source, where the row came from a file
    # The line's exact bytes when they are not UTF-8 (raw then shows them with U+FFFD); None
    # when raw.encode("utf-8") gives them back.
    raw_bytes: bytes | None = None


@attrs.frozen
class MergeOutcome:
    """What one silver merge did, per dt of the incoming rows (the merge's own metrics)."""

    inserted: Mapping[dt.date, int] = attrs.field(factory=dict)  # keys new to silver
    updated: Mapping[dt.date, int] = attrs.field(factory=dict)  # newer versions that replaced one
    older: Mapping[dt.date, int] = attrs.field(factory=dict)  # older or equal: changed nothing
    files_added: int = 0
    files_removed: int = 0
    rows_rewritten: int = 0  # stored rows copied into new files because their file changed
    bytes_written: int = 0

    def total(self, column: Mapping[dt.date, int]) -> int:
        return sum(column.values())


@attrs.frozen
class TableFile:
    """One data file of a table: its path relative to the table root, and its size in bytes."""

    path: str
    size: int


@attrs.frozen
class TablePartition:
    """One (agency_id, dt) partition of a table and its data files."""

    agency_id: int
    day: dt.date
    files: tuple[TableFile, ...]

    @property
    def size(self) -> int:
        return sum(file.size for file in self.files)


@attrs.frozen
class TableLayout:
    """A table's data files by partition, as of one version."""

    version: int
    partitions: tuple[TablePartition, ...]

    def agencies(self) -> tuple[int, ...]:
        return tuple(sorted({p.agency_id for p in self.partitions}))

    def of_agency(self, agency_id: int) -> tuple[TablePartition, ...]:
        return tuple(p for p in self.partitions if p.agency_id == agency_id)


@attrs.frozen
class Compaction:
    """What one compaction commit did to an agency's files (nothing added or removed: no commit)."""

    added: tuple[TableFile, ...] = ()
    removed: tuple[TableFile, ...] = ()
    version: int | None = None  # a table version that shows the result; None: nothing committed
    attempts: int = 0  # > 1: concurrent commits won and the rewrite was redone on a new snapshot
