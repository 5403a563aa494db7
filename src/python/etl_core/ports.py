"""Ports: the Protocols business logic depends on; adapters implement them."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from etl_core.model import Counts, ObjectInfo, PartitionRecord, RunRecord, RunStatus, SourceBatch


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
        self, *, job: str | None = None, agency_id: int | None = None, limit: int = 20
    ) -> list[RunRecord]:
        """Most recent runs first, optionally filtered."""
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
