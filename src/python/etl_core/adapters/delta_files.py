"""Delta Lake plumbing shared by the table adapters: open or create a table, list one agency's
data files with their record_id bounds, write Parquet files through the ObjectStore, and commit
add/remove actions together with the agency's fold version (a Delta app transaction).

Data files are written by us, not by delta-rs' writer, so that a merge rewrites only the files
that hold a replaced key (delta-rs 1.6 merges are copy-on-write over every file its predicate
reaches). The commit itself is delta-rs': one JSON log entry, put with a conditional write on
local disk and on S3, so a reader sees all of a commit or none of it.

Arrow is imported by the methods that read or write rows, not with this module: opening a table
and reading an agency's fold version (all a run with nothing new does) need none.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import orjson
from deltalake import DeltaTable
from deltalake import Field as DeltaField
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, Transaction

from etl_core.errors import TableConflict, TableError
from etl_core.failpoints import failpoint
from etl_core.ports import ObjectStore

if TYPE_CHECKING:
    import pyarrow as pa

PARTITION_BY = ("agency_id", "dt")
_STATS_MAX_KEY = 64  # longer record_ids get no bounds (a truncated max would not be an upper bound)
_CONCURRENCY = 8
_WRITERS = 4  # files encoded and stored at once by write_files
# How often a commit is replayed on a newer snapshot after other agencies' commits won (see
# DeltaFiles.commit). Each replay follows at least one commit of another agency, so the workload's
# 20 agencies committing at once need fewer than 20.
_REBASES = 100


@attrs.frozen
class DataFile:
    """One committed data file of an agency."""

    path: str  # relative to the table root
    size: int
    day: str  # its dt partition value
    rows: int | None
    min_key: str | None
    max_key: str | None

    def may_hold(
        self, sorted_keys: Sequence[str], bisect: Callable[[Sequence[str], str], int]
    ) -> bool:
        """Whether any of sorted_keys can be in this file, by its record_id bounds."""
        if self.min_key is None or self.max_key is None:
            return True
        index = bisect(sorted_keys, self.min_key)
        return index < len(sorted_keys) and sorted_keys[index] <= self.max_key


@attrs.define
class DeltaFiles:
    """One Delta table at `uri`, whose files live under `prefix` of `store`."""

    uri: str
    storage_options: Mapping[str, str] = attrs.field(repr=False)
    store: ObjectStore
    prefix: str  # the table root's key in store, e.g. "silver"
    name: str  # "silver" / "deadletter": the app id and error messages name it

    def app_id(self, agency_id: int) -> str:
        return f"etl-platform/{self.name}/agency_id={agency_id}"

    async def load(self) -> DeltaTable | None:
        """The newest snapshot, or None when the table does not exist yet."""
        return await asyncio.to_thread(self._load)

    def _load(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=dict(self.storage_options))
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as exc:
            raise TableError(f"{self.name} table {self.uri}: cannot open: {exc}") from exc

    async def create(self, schema: pa.Schema) -> DeltaTable:
        """Create the table if absent (another run may create it at the same moment)."""
        return await asyncio.to_thread(self._create, schema)

    def _create(self, schema: pa.Schema) -> DeltaTable:
        try:
            return DeltaTable.create(
                self.uri,
                schema,
                mode="ignore",
                partition_by=list(PARTITION_BY),
                name=self.name,
                storage_options=dict(self.storage_options),
                # No retry: delta-rs would retry a lost creation race as a second CREATE TABLE
                # commit (a new table id at version 1) that fails every concurrent writer with
                # "Metadata changed". The loser loads the winner's table instead (below).
                commit_properties=CommitProperties(max_commit_retries=0),
            )
        except (DeltaError, OSError) as exc:
            table = self._load()  # lost a creation race: the winner's table is as good
            if table is None:
                raise TableError(f"{self.name} table {self.uri}: cannot create: {exc}") from exc
            return table

    async def add_columns(self, table: DeltaTable, schema: pa.Schema) -> DeltaTable:
        """The table with the fields of schema it lacks added as nullable columns (one metadata
        commit, before any data file needs them), so rows of a newer schema can be committed to
        a table created with an older one; rows stored before read null there. Returns table
        itself when nothing is missing."""
        return await asyncio.to_thread(self._add_columns, table, schema)

    def _add_columns(self, table: DeltaTable, schema: pa.Schema) -> DeltaTable:
        def missing() -> list[pa.Field]:
            stored = {field.name for field in table.schema().fields}
            return [field for field in schema if field.name not in stored]

        fields = missing()
        if not fields:
            return table
        try:
            table.alter.add_columns(
                [DeltaField.from_arrow(field.with_nullable(True)) for field in fields]
            )
        except (DeltaError, OSError) as exc:
            # Another run may have added them first: then the newest schema has them.
            with contextlib.suppress(DeltaError, OSError):
                table.update_incremental()
            if missing():
                names = ", ".join(field.name for field in fields)
                raise TableError(
                    f"{self.name} table {self.uri}: cannot add columns {names}: {exc}"
                ) from exc
        return table

    async def fold_version(self, table: DeltaTable | None, agency_id: int) -> int:
        if table is None:
            return 0
        version = await asyncio.to_thread(table.transaction_version, self.app_id(agency_id))
        return int(version or 0)

    async def agency_files(self, table: DeltaTable | None, agency_id: int) -> list[DataFile]:
        """The agency's committed data files, with their record_id bounds where known."""
        if table is None:
            return []
        return await asyncio.to_thread(self._agency_files, table, agency_id)

    def _agency_files(self, table: DeltaTable, agency_id: int) -> list[DataFile]:
        import pyarrow as pa
        import pyarrow.compute as pc

        actions = pa.table(table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return []
        mine = actions.filter(pc.equal(actions["partition.agency_id"], agency_id))
        names = set(mine.column_names)

        def column(name: str) -> list[Any]:
            return mine[name].to_pylist() if name in names else [None] * mine.num_rows

        return [
            DataFile(path, size, day.isoformat(), rows, low, high)
            for path, size, day, rows, low, high in zip(
                column("path"),
                column("size_bytes"),
                column("partition.dt"),
                column("num_records"),
                column("min.record_id"),
                column("max.record_id"),
                strict=True,
            )
        ]

    async def read_files(
        self, files: Iterable[DataFile], columns: Sequence[str] | None = None
    ) -> list[pa.Table]:
        """Read data files through the store (partition columns are not in them)."""
        import pyarrow.parquet as pq

        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(file: DataFile) -> pa.Table:
            async with limit:
                body = await self.store.get(f"{self.prefix}/{file.path}")
            return await asyncio.to_thread(
                pq.read_table, io.BytesIO(body), columns=list(columns) if columns else None
            )

        return list(await asyncio.gather(*(one(file) for file in files)))

    async def write_file(
        self, agency_id: int, day: str, version: int, rows: pa.Table
    ) -> tuple[AddAction, int]:
        """Write rows (without partition columns) as one Parquet file of partition
        agency_id/dt=day; returns its add action and size. The name carries the fold version."""
        import pyarrow.compute as pc

        body = await asyncio.to_thread(_parquet, rows)
        path = f"agency_id={agency_id}/dt={day}/part-{version:010d}-{uuid.uuid4().hex}.parquet"
        await self.store.put(f"{self.prefix}/{path}", body)
        stats: dict[str, Any] = {"numRecords": rows.num_rows}
        if "record_id" in rows.column_names and rows.num_rows:
            bounds = pc.min_max(rows["record_id"]).as_py()
            low, high = bounds["min"], bounds["max"]
            if len(low) <= _STATS_MAX_KEY and len(high) <= _STATS_MAX_KEY:
                stats["minValues"] = {"record_id": low}
                stats["maxValues"] = {"record_id": high}
                stats["nullCount"] = {"record_id": 0}
        action = AddAction(
            path,
            len(body),
            {"agency_id": str(agency_id), "dt": day},
            int(time.time() * 1000),
            True,
            orjson.dumps(stats).decode(),
        )
        return action, len(body)

    async def write_files(
        self, agency_id: int, version: int, parts: Sequence[tuple[str, pa.Table]]
    ) -> list[tuple[AddAction, int]]:
        """write_file of each (day, rows), a few at once, in order."""
        limit = asyncio.Semaphore(_WRITERS)

        async def one(day: str, rows: pa.Table) -> tuple[AddAction, int]:
            async with limit:
                return await self.write_file(agency_id, day, version, rows)

        return list(await asyncio.gather(*(one(day, rows) for day, rows in parts)))

    async def commit(
        self,
        table: DeltaTable,
        agency_id: int,
        version: int,
        adds: Sequence[AddAction],
        removes: Sequence[DataFile],
        schema: pa.Schema | DeltaSchema,
        run_id: str | None = None,
    ) -> None:
        """One atomic commit of adds and removes, stamped with the agency's fold version.

        delta-rs checks a lost race as if this write had read every file of its snapshot: a
        concurrent commit of another agency that removed any file fails it (ConcurrentDeleteRead),
        though our actions depend on this agency's files alone. So when the newest snapshot still
        holds exactly the agency's files and fold version that `table` held, the same actions are
        committed again on it; otherwise the agency itself changed: TableConflict."""
        now = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [
            RemoveAction(f.path, True, now, f.size, {"agency_id": str(agency_id), "dt": f.day})
            for f in removes
        ]
        actions.extend(adds)
        metadata = {"etl.agency_id": str(agency_id), "etl.fold": str(version)}
        if run_id:
            metadata["etl.run_id"] = run_id
        properties = CommitProperties(
            app_transactions=[Transaction(self.app_id(agency_id), version)],
            custom_metadata=metadata,
        )
        failpoint(f"delta.{self.name}.before_commit")
        for attempt in range(_REBASES + 1):
            try:
                await asyncio.to_thread(
                    table.create_write_transaction,
                    actions,
                    "append",
                    schema,
                    partition_by=list(PARTITION_BY),
                    commit_properties=properties,
                )
                break
            except CommitFailedError as exc:
                if attempt == _REBASES or not await self._rebase(table, agency_id):
                    raise TableConflict(
                        f"{self.name} table: commit of agency {agency_id} fold {version} lost to "
                        f"a concurrent commit: {exc}"
                    ) from exc
            except (DeltaError, OSError) as exc:
                raise TableError(
                    f"{self.name} table: commit of agency {agency_id} fold {version} failed: {exc}"
                ) from exc
        failpoint(f"delta.{self.name}.after_commit")

    async def _rebase(self, table: DeltaTable, agency_id: int) -> bool:
        """Bring table to the newest version; whether the agency's files and fold version are
        still those it held before."""

        def rebase() -> bool:
            def state() -> tuple[int, set[str]]:
                files = {f.path for f in self._agency_files(table, agency_id)}
                return int(table.transaction_version(self.app_id(agency_id)) or 0), files

            seen = state()
            table.update_incremental()
            return state() == seen

        try:
            return await asyncio.to_thread(rebase)
        except (DeltaError, OSError) as exc:
            raise TableError(
                f"{self.name} table {self.uri}: cannot read its newest version: {exc}"
            ) from exc

    async def read(self, agency_id: int | None) -> pa.Table | None:
        import pyarrow as pa

        table = await self.load()
        if table is None:
            return None
        partitions = None if agency_id is None else [("agency_id", "=", agency_id)]
        return await asyncio.to_thread(lambda: pa.table(table.to_pyarrow_table(filters=partitions)))

    async def read_fold(self, agency_id: int, fold: int) -> pa.Table | None:
        """The agency's rows at the newest table version whose fold version for the agency is
        `fold`. An agency's fold versions never decrease along the table's versions, so the
        version is found by bisection: about log2(versions) snapshot loads, not a log scan."""
        table = await self.load()
        if table is None:
            return None
        try:
            return await asyncio.to_thread(self._read_fold, table, agency_id, fold)
        except (DeltaError, OSError) as exc:
            raise TableError(
                f"{self.name} table {self.uri}: cannot read agency {agency_id} as of its fold "
                f"{fold}: {exc}"
            ) from exc

    def _read_fold(self, table: DeltaTable, agency_id: int, fold: int) -> pa.Table:
        import pyarrow as pa

        app = self.app_id(agency_id)

        def fold_at(version: int) -> int:
            table.load_as_version(version)
            return int(table.transaction_version(app) or 0)

        newest = table.version()
        low = newest
        if fold_at(newest) > fold:
            # fold_at(low) <= fold < fold_at(high); version 0 (the table's creation) folds nothing.
            low, high = 0, newest
            while high - low > 1:
                middle = (low + high) // 2
                if fold_at(middle) <= fold:
                    low = middle
                else:
                    high = middle
        found = fold_at(low)  # also leaves the table loaded at that version
        if found != fold:
            raise TableError(
                f"{self.name} table {self.uri}: agency {agency_id} has no fold {fold} in the "
                f"table's history (its fold at version {low} is {found})"
            )
        return pa.table(table.to_pyarrow_table(filters=[("agency_id", "=", agency_id)]))


def _parquet(rows: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    dictionary = [name for name in rows.column_names if name not in _NO_DICTIONARY]
    pq.write_table(rows, sink, compression="zstd", compression_level=1, use_dictionary=dictionary)
    return sink.getvalue()


# Columns whose values rarely repeat within a file: a Parquet dictionary for them is built and
# then abandoned (silver files are sorted by record_id, a key). Measured on a 50k-row silver
# file: 24 ms and 2.2 MB instead of 33 ms and 2.7 MB with a dictionary tried for every column.
_NO_DICTIONARY = frozenset(
    {"record_id", "occurred_at", "updated_at", "lat", "lon", "amount", "_line", "line", "raw"}
)


def without_partition_columns(rows: pa.Table) -> pa.Table:
    return rows.drop_columns([name for name in PARTITION_BY if name in rows.column_names])
