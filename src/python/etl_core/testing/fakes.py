"""In-memory fakes of every port, with public assertable state and the real adapters' errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import attrs

from etl_core import clock as clock_module
from etl_core.adapters.local_object_store import key_segments
from etl_core.errors import (
    ObjectNotFound,
    RunAlreadyExists,
    RunHistoryError,
    RunNotFound,
    SourceError,
    TableError,
)
from etl_core.model import (
    Compaction,
    Counts,
    LeaseInfo,
    ObjectInfo,
    PartitionRecord,
    RunRecord,
    RunStatus,
    SourceBatch,
    TableFile,
    TableLayout,
    TablePartition,
)

# The table fakes (rows are pyarrow Tables) live in fake_tables; tests import every fake from here.
from etl_core.testing.fake_tables import FakeDeadLetterTable as FakeDeadLetterTable
from etl_core.testing.fake_tables import FakeSilverTable as FakeSilverTable
from etl_core.testing.fake_tables import FakeTables as FakeTables

Clock = Callable[[], dt.datetime]


@attrs.define
class FakeClock:
    """A clock that stands still until advanced; pass it wherever a `clock` is injectable."""

    current: dt.datetime = attrs.field(factory=clock_module.now)

    def __call__(self) -> dt.datetime:
        return self.current

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move time forward by delta; the new time."""
        self.current += delta
        return self.current


def _check_failure(failures: Mapping[str, BaseException], operation: str) -> None:
    if operation in failures:
        raise failures[operation]


@attrs.define
class FakeObjectStore:
    """ObjectStore in a dict. Keys follow LocalObjectStore's rules (relative, no '..').

    `fail_on["put"] = ObjectStoreError("disk full")` makes every put raise until removed.
    `modified` holds each written key's last-modified time (from `clock`); keys placed straight
    into `objects` have none until written, and a test may set one directly.
    """

    objects: dict[str, bytes] = attrs.field(factory=dict)
    fail_on: dict[str, BaseException] = attrs.field(factory=dict)
    modified: dict[str, dt.datetime] = attrs.field(factory=dict)
    clock: Clock = clock_module.now

    def _body(self, operation: str, key: str) -> bytes:
        _check_failure(self.fail_on, operation)
        key_segments(key)
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None

    async def get(self, key: str) -> bytes:
        """Whole object. Raises ObjectNotFound."""
        return self._body("get", key)

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Object body in chunks. Raises ObjectNotFound on first iteration."""
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        body = self._body("stream", key)
        for start in range(0, len(body), chunk_size):
            yield body[start : start + chunk_size]

    async def put(self, key: str, body: bytes) -> None:
        """Create or replace key."""
        _check_failure(self.fail_on, "put")
        key_segments(key)
        self.objects[key] = bytes(body)
        self.modified[key] = self.clock()

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create key only if absent; False if it already existed."""
        _check_failure(self.fail_on, "put_if_absent")
        key_segments(key)
        if key in self.objects:
            return False
        self.objects[key] = bytes(body)
        self.modified[key] = self.clock()
        return True

    async def head(self, key: str) -> ObjectInfo:
        """Size, md5 etag and last-modified time of key. Raises ObjectNotFound."""
        return _info(key, self._body("head", key), self.modified.get(key))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order."""
        _check_failure(self.fail_on, "list")
        for key in sorted(k for k in self.objects if k.startswith(prefix)):
            body = self.objects.get(key)
            if body is not None:  # deleted while the caller was iterating
                yield _info(key, body, self.modified.get(key))

    async def delete(self, key: str) -> None:
        """Remove key; idempotent."""
        _check_failure(self.fail_on, "delete")
        key_segments(key)
        self.objects.pop(key, None)
        self.modified.pop(key, None)


def _info(key: str, body: bytes, modified: dt.datetime | None) -> ObjectInfo:
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    return ObjectInfo(key=key, size=len(body), etag=etag, last_modified=modified)


@attrs.frozen
class Lease:
    """One held lease of FakeRunHistory."""

    owner: str
    acquired_at: dt.datetime
    expires_at: dt.datetime
    host: str | None = None
    pid: int | None = None


@attrs.define
class FakeRunHistory:
    """RunHistory and LeaseStore in memory; parameters go through JSON like the real stores.

    `ledger` holds the partition rows (`partitions` is the port's query method).
    """

    runs: dict[str, RunRecord] = attrs.field(factory=dict)
    ledger: list[PartitionRecord] = attrs.field(factory=list)
    leases: dict[str, Lease] = attrs.field(factory=dict)
    clock: Clock = clock_module.now
    fail_on: dict[str, BaseException] = attrs.field(factory=dict)
    migrations: int = 0
    closed: bool = False

    def _enter(self, operation: str) -> None:
        if self.closed:
            raise RunHistoryError(f"fake run history: {operation} after close()")
        _check_failure(self.fail_on, operation)

    def _run(self, run_id: str) -> RunRecord:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    async def migrate(self) -> None:
        """Count the call; there is no schema."""
        self._enter("migrate")
        self.migrations += 1

    async def start_run(self, run: RunRecord) -> None:
        """Insert a run. Raises RunAlreadyExists."""
        self._enter("start_run")
        if run.status is RunStatus.STALE:
            raise ValueError(f"run {run.run_id}: STALE is derived at read time, never stored")
        for name in ("started_at", "heartbeat_at", "finished_at"):
            if getattr(run, name) is not None:
                _aware(getattr(run, name), name)
        if run.run_id in self.runs:
            raise RunAlreadyExists(run.run_id)
        self.runs[run.run_id] = attrs.evolve(run, parameters=_json_round_trip(run))

    async def heartbeat(self, run_id: str, at: dt.datetime) -> None:
        """Set heartbeat_at. Raises RunNotFound."""
        self._enter("heartbeat")
        self.runs[run_id] = attrs.evolve(self._run(run_id), heartbeat_at=_aware(at, "at"))

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
        """Record the outcome. Raises RunNotFound."""
        self._enter("finish_run")
        if status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            raise ValueError(f"run {run_id}: finish_run needs SUCCEEDED or FAILED, got {status}")
        self.runs[run_id] = attrs.evolve(
            self._run(run_id),
            status=status,
            finished_at=_aware(finished_at, "finished_at"),
            counts=counts,
            artifacts=tuple(artifacts),
            error=error,
        )

    async def record_partition(self, partition: PartitionRecord) -> None:
        """Upsert the ledger row for (run_id, partition). Raises RunNotFound."""
        self._enter("record_partition")
        self._run(partition.run_id)
        recorded_at = _aware(partition.recorded_at or self.clock(), "recorded_at")
        row = attrs.evolve(partition, recorded_at=recorded_at, artifacts=tuple(partition.artifacts))
        for index, existing in enumerate(self.ledger):
            if (existing.run_id, existing.partition) == (row.run_id, row.partition):
                self.ledger[index] = row
                return
        self.ledger.append(row)

    async def get_run(self, run_id: str) -> RunRecord:
        """One run. Raises RunNotFound."""
        self._enter("get_run")
        return self._run(run_id)

    async def list_runs(
        self,
        *,
        job: str | None = None,
        agency_id: int | None = None,
        status: RunStatus | None = None,
        parent_run_id: str | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Most recent runs first (started_at, then run_id), optionally filtered."""
        self._enter("list_runs")
        runs = [
            run
            for run in self.runs.values()
            if (job is None or run.job == job)
            and (agency_id is None or run.agency_id == agency_id)
            and (status is None or run.status == status)
            and (parent_run_id is None or run.parameters.get("parent_run_id") == parent_run_id)
        ]
        runs.sort(key=lambda run: (run.started_at, run.run_id), reverse=True)
        return runs[: max(limit, 0)]

    async def partitions(self, run_id: str) -> list[PartitionRecord]:
        """Ledger rows of one run, ordered by partition."""
        self._enter("partitions")
        return sorted((p for p in self.ledger if p.run_id == run_id), key=lambda p: p.partition)

    async def close(self) -> None:
        """Mark closed; idempotent."""
        self.closed = True

    # -- LeaseStore ----------------------------------------------------------------------------

    async def acquire(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Take the lease if free, expired, or already ours (then extend it)."""
        self._enter("acquire")
        _positive(ttl)
        now = self.clock()
        held = self.leases.get(name)
        if held is not None and held.owner != owner and held.expires_at > now:
            return False
        acquired_at = held.acquired_at if held is not None and held.owner == owner else now
        self.leases[name] = Lease(owner, acquired_at, now + ttl)
        return True

    async def renew(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Extend a lease owner still holds (even if expired but not taken); False if lost."""
        self._enter("renew")
        _positive(ttl)
        held = self.leases.get(name)
        if held is None or held.owner != owner:
            return False
        self.leases[name] = attrs.evolve(held, expires_at=self.clock() + ttl)
        return True

    async def release(self, name: str, owner: str) -> None:
        """Drop the lease if owner holds it; idempotent."""
        self._enter("release")
        held = self.leases.get(name)
        if held is not None and held.owner == owner:
            del self.leases[name]

    async def holder(self, name: str) -> LeaseInfo | None:
        """The lease as stored (expired or not); None if free. No liveness: `live` is False."""
        self._enter("holder")
        held = self.leases.get(name)
        if held is None:
            return None
        return LeaseInfo(name, held.owner, held.expires_at, host=held.host, pid=held.pid)

    async def reap_dead(self) -> list[str]:
        """Nothing to reap: a fake's holders have no process to outlive (no liveness)."""
        self._enter("reap_dead")
        return []


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value


def _positive(ttl: dt.timedelta) -> dt.timedelta:
    if ttl <= dt.timedelta(0):
        raise ValueError(f"lease ttl must be positive, got {ttl}")
    return ttl


def _json_round_trip(run: RunRecord) -> dict[str, Any]:
    try:
        return dict(json.loads(json.dumps(dict(run.parameters))))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"run {run.run_id}: parameters are not JSON-serialisable: {exc}") from None


@attrs.define
class FakeRecordSource:
    """RecordSource over a list; the checkpoint is the index of the next record, as a string.

    agency_id=None serves the records to whichever agency is asked; otherwise other agencies get
    nothing. fail_after_batches=n raises SourceError after n batches (an upstream failing mid-run).
    """

    records: Sequence[Mapping[str, Any]]
    batch_size: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    agency_id: int | None = None
    fail_after_batches: int | None = None
    requests: list[tuple[int, str | None]] = attrs.field(factory=list)

    async def batches(
        self, agency_id: int, checkpoint: str | None = None
    ) -> AsyncIterator[SourceBatch]:
        """Batches after checkpoint. Raises SourceError for a malformed checkpoint."""
        self.requests.append((agency_id, checkpoint))
        records = self.records if self.agency_id in (None, agency_id) else ()
        start = _parse_checkpoint(checkpoint, len(records))
        for served, index in enumerate(range(start, len(records), self.batch_size)):
            if self.fail_after_batches is not None and served >= self.fail_after_batches:
                raise SourceError(f"fake source: agency {agency_id}: failed at record {index}")
            end = min(index + self.batch_size, len(records))
            yield SourceBatch(records=tuple(records[index:end]), checkpoint=str(end))


def _parse_checkpoint(checkpoint: str | None, total: int) -> int:
    if checkpoint is None:
        return 0
    if not checkpoint.isdigit() or int(checkpoint) > total:
        raise SourceError(f"fake source: bad checkpoint {checkpoint!r} (0..{total} expected)")
    return int(checkpoint)


@attrs.define
class FakeTableMaintenance:
    """TableMaintenance of one table in memory, compacting roughly as delta-rs does.

    `partitions` maps (agency_id, dt) to its files; `write` arranges files as a writer's commit
    would. `removed` and `orphans` hold files with the time they left the table (or were written
    without a commit), for vacuum; `folds` the agencies' fold versions; `version` is -1 until the
    first commit. `compactions` records each compact call; `fail_on["compact"] = TableConflict()`
    makes compact raise (likewise "layout", "checkpoint", "vacuum").
    """

    partitions: dict[tuple[int, dt.date], list[TableFile]] = attrs.field(factory=dict)
    removed: list[tuple[TableFile, dt.datetime]] = attrs.field(factory=list)
    orphans: list[tuple[TableFile, dt.datetime]] = attrs.field(factory=list)
    folds: dict[int, int] = attrs.field(factory=dict)
    version: int = -1
    checkpoints: list[int] = attrs.field(factory=list)
    compactions: list[tuple[int, tuple[dt.date, ...], str | None]] = attrs.field(factory=list)
    clock: Clock = clock_module.now
    fail_on: dict[str, BaseException] = attrs.field(factory=dict)
    _serial: int = 0

    def write(
        self, agency_id: int, day: dt.date, *sizes: int, fold: int | None = None
    ) -> tuple[TableFile, ...]:
        """Commit one new file of each size to the partition (as fold `fold`, if given)."""
        files = tuple(self._new_file(agency_id, day, size) for size in sizes)
        self.partitions.setdefault((agency_id, day), []).extend(files)
        if fold is not None:
            self.folds[agency_id] = fold
        self.version += 1
        return files

    def _new_file(self, agency_id: int, day: dt.date, size: int) -> TableFile:
        self._serial += 1
        return TableFile(f"agency_id={agency_id}/dt={day}/part-{self._serial:05d}.parquet", size)

    async def layout(self, agency_id: int | None = None) -> TableLayout | None:
        """The files by partition, of one agency or all; None before the first commit."""
        _check_failure(self.fail_on, "layout")
        if self.version < 0:
            return None
        return TableLayout(
            version=self.version,
            partitions=tuple(
                TablePartition(agency, day, tuple(files))
                for (agency, day), files in sorted(self.partitions.items())
                if files and agency_id in (None, agency)
            ),
        )

    async def fold_version(self, agency_id: int) -> int:
        """The agency's fold version; 0 before its first."""
        return self.folds.get(agency_id, 0)

    async def compact(
        self, agency_id: int, days: Sequence[dt.date], *, target_size: int, sort_by: str | None
    ) -> Compaction:
        """With sort_by every file of the days is rewritten; without, the files smaller than
        target_size, where there are two or more. Output: ceil(size / target_size) even files."""
        _check_failure(self.fail_on, "compact")
        self.compactions.append((agency_id, tuple(days), sort_by))
        if not days:
            return Compaction()
        added: list[TableFile] = []
        removed: list[TableFile] = []
        for day in sorted(set(days)):
            files = self.partitions.get((agency_id, day), [])
            chosen = files if sort_by else [f for f in files if f.size < target_size]
            if not chosen or (sort_by is None and len(chosen) < 2):
                continue
            total = sum(f.size for f in chosen)
            count = max(1, math.ceil(total / target_size))
            sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
            new = [self._new_file(agency_id, day, size) for size in sizes]
            self.partitions[(agency_id, day)] = [f for f in files if f not in chosen] + new
            added += new
            removed += chosen
        if not removed:
            return Compaction(attempts=1)
        self.version += 1
        now = self.clock()
        self.removed += [(f, now) for f in removed]
        return Compaction(tuple(added), tuple(removed), self.version, attempts=1)

    async def checkpoint(self) -> int:
        """Record a checkpoint of the current version. Raises TableError before any commit."""
        _check_failure(self.fail_on, "checkpoint")
        if self.version < 0:
            raise TableError("fake table: no table to checkpoint")
        self.checkpoints.append(self.version)
        return self.version

    async def vacuum(self, retention_hours: int, *, full: bool, dry_run: bool) -> tuple[str, ...]:
        """Delete removed files (with full, also orphans) that left at least retention ago."""
        _check_failure(self.fail_on, "vacuum")
        cutoff = self.clock() - dt.timedelta(hours=retention_hours)
        removed = [f for f, when in self.removed if when <= cutoff]
        orphans = [f for f, when in self.orphans if when <= cutoff] if full else []
        if not dry_run:
            self.removed = [(f, w) for f, w in self.removed if f not in removed]
            self.orphans = [(f, w) for f, w in self.orphans if f not in orphans]
        return tuple(sorted(f.path for f in removed + orphans))
