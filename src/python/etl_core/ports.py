"""Ports: the Protocols business logic depends on; adapters implement them."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Protocol, runtime_checkable

from etl_core.model import (
    Compaction,
    Counts,
    LeaseInfo,
    MergeOutcome,
    ObjectInfo,
    PartitionRecord,
    RunRecord,
    RunStatus,
    SourceBatch,
    TableLayout,
)

ArrowTable = Any
"""A pyarrow.Table. The core does not import pyarrow; adapters and business logic do."""


@runtime_checkable
class ObjectStore(Protocol):
    """Blobs addressed by '/'-separated keys within one bucket/prefix (or directory)."""

    async def get(self, key: str) -> bytes:
        """Whole object. Raises ObjectNotFound."""
        ...

    def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Object body in chunks, for large objects. Raises ObjectNotFound on first iteration."""
        ...

    async def put(self, key: str, body: bytes) -> None:
        """Create or replace key atomically: readers see the old or the new body, never a part."""
        ...

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create key only if absent; False if it already existed. The commit primitive."""
        ...

    async def head(self, key: str) -> ObjectInfo:
        """Size, etag and (where the store keeps it) last-modified time. Raises ObjectNotFound."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order (all pages)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove key; idempotent (deleting a missing key is not an error)."""
        ...


@runtime_checkable
class RecordSource(Protocol):
    """Raw records of one agency from an upstream system, in batches, resumable."""

    def batches(self, agency_id: int, checkpoint: str | None = None) -> AsyncIterator[SourceBatch]:
        """Batches after checkpoint (None: from the start). Raises SourceError."""
        ...


@runtime_checkable
class RunHistory(Protocol):
    """Durable record of runs and of what each run did per partition (the audit ledger)."""

    async def migrate(self) -> None:
        """Create or upgrade the schema; idempotent and safe to run concurrently."""
        ...

    async def start_run(self, run: RunRecord) -> None:
        """Insert a RUNNING run. Raises RunAlreadyExists if run_id is taken."""
        ...

    async def heartbeat(self, run_id: str, at: dt.datetime) -> None:
        """Mark the run alive at `at`, so it is not reported stale. Raises RunNotFound."""
        ...

    async def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        finished_at: dt.datetime,
        counts: Counts,
        artifacts: Sequence[str] = (),
        error: str | None = None,
    ) -> None:
        """Record the outcome of a run. Raises RunNotFound."""
        ...

    async def record_partition(self, partition: PartitionRecord) -> None:
        """Upsert the ledger row for (run_id, partition); idempotent."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """One run. Raises RunNotFound."""
        ...

    async def list_runs(
        self,
        *,
        job: str | None = None,
        agency_id: int | None = None,
        status: RunStatus | None = None,
        parent_run_id: str | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Most recent runs first, optionally filtered: by job, agency, stored status (never
        STALE) and the `parent_run_id` parameter (a backfill's or a rollout's child runs)."""
        ...

    async def partitions(self, run_id: str) -> list[PartitionRecord]:
        """Ledger rows of one run, ordered by partition."""
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...


@runtime_checkable
class LeaseStore(Protocol):
    """Mutual exclusion between runs: one writer per (job, agency/partition) name."""

    async def acquire(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Take the lease if free or expired; True if owner now holds it. Re-entrant for owner."""
        ...

    async def renew(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Extend a lease owner holds; False if it was lost (expired and taken)."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give up the lease if owner holds it; idempotent."""
        ...

    async def holder(self, name: str) -> LeaseInfo | None:
        """Who holds (or, if expired, last held) the lease; None if nobody does. Read-only."""
        ...


@runtime_checkable
class LeasingRunHistory(RunHistory, LeaseStore, Protocol):
    """What both real histories are: the run ledger and the lease table in one database."""

    async def reap_dead(self) -> list[str]:
        """Mark failed ("died") the running runs whose lease holder's process is gone; run_ids."""
        ...


class RunHistoryAccess(Protocol):
    """The run history a process's wiring chose, handed to the runner unopened: the runner opens
    it inside the run's root span, so a failure to connect is reported like any other."""

    def connect(self) -> AbstractAsyncContextManager[LeasingRunHistory]:
        """Open the history for a run that writes; RunHistoryError if it cannot be reached."""
        ...

    def read_only(self, stack: AsyncExitStack) -> RunHistory:
        """A dry run's view: reads go to the history (opened on first read, on stack), writes
        are dropped; a history that does not exist yet reads as empty and is not created."""
        ...


@runtime_checkable
class SilverTable(Protocol):
    """The silver table of every agency (WORKLOAD.md "Tables"), keyed by (agency_id, record_id).

    Each agency's commits carry a fold version, an idempotency marker stored in the same commit as
    the rows: a crashed run's re-run compares it with the version it is about to write.
    """

    async def version(self, agency_id: int) -> int:
        """The agency's last committed fold version; 0 before its first commit."""
        ...

    async def merge(
        self, agency_id: int, version: int, rows: ArrowTable, *, replace: bool = False
    ) -> MergeOutcome:
        """Commit rows (silver schema, unique record_ids, all of agency_id) as fold `version`, in
        one atomic commit that touches only the agency's partitions. A row replaces the stored row
        of its key when it is newer by (updated_at, _source, _line) and then moves to its own dt;
        otherwise it changes nothing and counts as older. With replace, the agency's rows are
        exactly `rows` afterwards. Raises TableError; TableConflict (retryable) when a concurrent
        commit of the same agency won."""
        ...

    async def read(self, agency_id: int | None = None) -> ArrowTable | None:
        """The committed rows of one agency (or all), as a pyarrow.Table; None if no table yet."""
        ...


@runtime_checkable
class DeadLetterTable(Protocol):
    """The dead-letter table of every agency, partitioned like silver by the source file's dt."""

    async def version(self, agency_id: int) -> int:
        """The agency's last committed fold version here; 0 before its first commit."""
        ...

    async def write(
        self, agency_id: int, version: int, rows: ArrowTable, *, replace: bool = False
    ) -> int:
        """Commit rows as fold `version` of the agency, replacing rows an earlier attempt at the
        same version wrote (so a re-run after a crash never duplicates them); with replace, every
        row of the agency. Columns of rows the table lacks are added first (nullable). Returns
        the rows written. Raises TableError/TableConflict."""
        ...

    async def read(self, agency_id: int | None = None) -> ArrowTable | None:
        """The committed rows of one agency (or all), with every column the table has; rows
        written before a column was added read null there. None if no table yet."""
        ...

    async def read_fold(self, agency_id: int, fold: int) -> ArrowTable | None:
        """The agency's rows as its fold `fold` left them, though a later fold committed here
        since (a fold interrupted between this commit and silver's: its rows are not yet the
        ones silver agrees with). None if no table yet. Raises TableError if that fold is not
        in the table's history (or its files were vacuumed)."""
        ...


class SilverTables(Protocol):
    """The two tables a bronze -> silver run commits to, opened together for one store."""

    @property
    def silver(self) -> SilverTable:
        """Silver rows."""
        ...

    @property
    def deadletter(self) -> DeadLetterTable:
        """Dead-letter rows."""
        ...


@runtime_checkable
class TableMaintenance(Protocol):
    """Housekeeping of one table of every agency (silver or dead letters): compaction, log
    checkpoints and vacuum. None of it changes the rows a reader of any version sees."""

    async def layout(self, agency_id: int | None = None) -> TableLayout | None:
        """The newest version's data files by (agency_id, dt) partition, of one agency or all;
        None if no table yet. Raises TableError."""
        ...

    async def fold_version(self, agency_id: int) -> int:
        """The agency's last committed fold version in this table; 0 before its first commit."""
        ...

    async def compact(
        self, agency_id: int, days: Sequence[dt.date], *, target_size: int, sort_by: str | None
    ) -> Compaction:
        """Rewrite the agency's files of the dt partitions `days` as files of about target_size
        bytes, in one commit that changes no row. With sort_by every file of those partitions is
        rewritten, ordered by that column (z-order); without, only files smaller than target_size
        are combined. Redone on a new snapshot when a concurrent commit wins, a few times, then
        raises TableConflict (retryable). Raises TableError."""
        ...

    async def checkpoint(self) -> int:
        """Write a checkpoint of the newest version and delete log entries older than the log
        retention; returns that version. Idempotent. Raises TableError."""
        ...

    async def vacuum(self, retention_hours: int, *, full: bool, dry_run: bool) -> tuple[str, ...]:
        """Delete data files removed from the table more than retention_hours ago (with full, also
        files no commit references, by age); returns their paths relative to the table root,
        sorted. With dry_run only lists them. Idempotent. Raises TableError."""
        ...
