"""DeltaTableMaintenance: the TableMaintenance port on a Delta table, through delta-rs' optimize
(z-order or compaction), checkpoint, log clean-up and vacuum."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import pyarrow as pa
import stamina
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from etl_core.adapters.delta_files import DeltaFiles
from etl_core.adapters.delta_tables import Tables
from etl_core.errors import ObjectNotFound, ObjectStoreError, TableConflict, TableError
from etl_core.model import Compaction, TableFile, TableLayout, TablePartition

T = TypeVar("T")
_CONCURRENCY = 16  # existence checks in flight (HEAD requests on S3)


@attrs.define
class DeltaTableMaintenance:
    """Maintenance of the Delta table `files` names (silver or dead letters).

    A compaction commit touches only the agency's partitions, yet delta-rs' conflict check fails it
    when any concurrent commit removed files, even another agency's (seen with delta-rs 1.6): it
    is then redone on a new snapshot, up to `attempts` times, after a growing, jittered pause
    (stamina: retry_delay doubled per attempt, plus up to retry_delay of jitter).
    """

    files: DeltaFiles
    attempts: int = 5
    retry_delay: float = 0.5  # seconds before the second attempt, doubled for each later one

    @property
    def name(self) -> str:
        return self.files.name

    async def layout(self, agency_id: int | None = None) -> TableLayout | None:
        """The newest version's data files by (agency_id, dt) partition, of one agency or all;
        None if no table yet. Raises TableError."""
        table = await self.files.load()
        if table is None:
            return None
        return await self._call("list files", _layout, table, agency_id)

    async def fold_version(self, agency_id: int) -> int:
        """The agency's last committed fold version in this table; 0 before its first commit."""
        table = await self.files.load()
        try:
            return await self.files.fold_version(table, agency_id)
        except (DeltaError, OSError) as exc:
            raise TableError(
                f"{self.name} table: fold version of agency {agency_id}: {exc}"
            ) from exc

    async def compact(
        self, agency_id: int, days: Sequence[dt.date], *, target_size: int, sort_by: str | None
    ) -> Compaction:
        """See TableMaintenance.compact."""
        if not days:
            return Compaction()
        wanted = frozenset(days)
        filters: list[tuple[str, str, Any]] = [
            ("agency_id", "=", str(agency_id)),
            ("dt", "in", sorted(day.isoformat() for day in wanted)),
        ]
        what = f"compaction of agency {agency_id} ({len(wanted)} partitions)"
        retries = stamina.retry_context(
            on=CommitFailedError,
            attempts=self.attempts,
            timeout=None,
            wait_initial=self.retry_delay,
            wait_max=self.retry_delay * 2**self.attempts,  # no cap below the last doubling
            wait_jitter=self.retry_delay,
        )
        try:
            async for attempt in retries:
                with attempt:
                    table = await self.files.load()
                    if table is None:
                        return Compaction()
                    result = await asyncio.to_thread(
                        _compact, table, agency_id, wanted, filters, target_size, sort_by
                    )
                    return attrs.evolve(result, attempts=attempt.num)
        except CommitFailedError as exc:
            raise TableConflict(
                f"{self.name} table: {what} lost to concurrent commits {self.attempts} times: {exc}"
            ) from exc
        except (DeltaError, OSError) as exc:
            raise TableError(f"{self.name} table: {what} failed: {exc}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def checkpoint(self) -> int:
        """See TableMaintenance.checkpoint."""
        table = await self.files.load()
        if table is None:
            raise TableError(f"{self.name} table {self.files.uri}: no table to checkpoint")
        return await self._call("checkpoint", _checkpoint, table)

    async def vacuum(self, retention_hours: int, *, full: bool, dry_run: bool) -> tuple[str, ...]:
        """See TableMaintenance.vacuum.

        delta-rs lists a removed file until a checkpoint forgets its tombstone (after the table's
        delta.deletedFileRetentionDuration, 7 days by default), deleted or not: only the listed
        files still in the store are reported, so each deletion is reported once."""
        table = await self.files.load()
        if table is None:
            return ()

        def run(dry: bool) -> list[str]:
            return table.vacuum(
                retention_hours=retention_hours,
                dry_run=dry,
                # The job's --retention-hours decides, not the table's deletedFileRetentionDuration.
                enforce_retention_duration=False,
                full=full,
            )

        present = await self._present(await self._call("vacuum (listing)", run, True))
        if dry_run or not present:
            return present
        deleted = set(await self._call("vacuum", run, False))
        return tuple(path for path in present if path in deleted)

    async def _present(self, paths: Sequence[str]) -> tuple[str, ...]:
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def exists(path: str) -> bool:
            async with limit:
                try:
                    await self.files.store.head(f"{self.files.prefix}/{path}")
                except ObjectNotFound:
                    return False
                except ObjectStoreError as exc:
                    raise TableError(f"{self.name} table: vacuum: {exc}") from exc
                return True

        found = await asyncio.gather(*(exists(path) for path in paths))
        return tuple(sorted(path for path, ok in zip(paths, found, strict=True) if ok))

    async def _call(self, what: str, function: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(function, *args)
        except (DeltaError, OSError) as exc:
            raise TableError(f"{self.name} table {self.files.uri}: {what} failed: {exc}") from exc


def maintenance_of(tables: Tables) -> dict[str, DeltaTableMaintenance]:
    """The maintenance adapter of each table, by table name (silver first)."""
    return {
        tables.silver.files.name: DeltaTableMaintenance(tables.silver.files),
        tables.deadletter.files.name: DeltaTableMaintenance(tables.deadletter.files),
    }


def _layout(table: DeltaTable, agency_id: int | None) -> TableLayout:
    partitions: dict[tuple[int, dt.date], list[TableFile]] = {}
    for agency, day, file in _files(table):
        if agency_id is None or agency == agency_id:
            partitions.setdefault((agency, day), []).append(file)
    return TableLayout(
        version=table.version(),
        partitions=tuple(
            TablePartition(agency, day, tuple(sorted(files, key=lambda f: f.path)))
            for (agency, day), files in sorted(partitions.items())
        ),
    )


def _files(table: DeltaTable) -> list[tuple[int, dt.date, TableFile]]:
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return []
    return [
        (int(agency), day, TableFile(path, int(size)))
        for path, size, agency, day in zip(
            actions["path"].to_pylist(),
            actions["size_bytes"].to_pylist(),
            actions["partition.agency_id"].to_pylist(),
            actions["partition.dt"].to_pylist(),
            strict=True,
        )
    ]


def _compact(
    table: DeltaTable,
    agency_id: int,
    days: frozenset[dt.date],
    filters: list[tuple[str, str, Any]],
    target_size: int,
    sort_by: str | None,
) -> Compaction:
    """Optimize, then compare the agency's files in days before and after. Only this agency's
    partitions are compared, so other agencies' commits that landed meanwhile do not show."""

    def mine() -> set[TableFile]:
        return {f for agency, day, f in _files(table) if agency == agency_id and day in days}

    before = mine()
    if sort_by is not None:
        table.optimize.z_order([sort_by], partition_filters=filters, target_size=target_size)
    else:
        table.optimize.compact(partition_filters=filters, target_size=target_size)
    after = mine()  # the optimizer leaves `table` at the newest version, its own commit included
    added, removed = after - before, before - after

    def ordered(files: set[TableFile]) -> tuple[TableFile, ...]:
        return tuple(sorted(files, key=lambda f: f.path))

    return Compaction(
        added=ordered(added),
        removed=ordered(removed),
        version=table.version() if added or removed else None,
    )


def _checkpoint(table: DeltaTable) -> int:
    table.create_checkpoint()
    table.cleanup_metadata()  # log entries older than delta.logRetentionDuration (30 days)
    return table.version()
