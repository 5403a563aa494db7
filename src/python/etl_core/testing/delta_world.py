"""Local Delta tables for tests: silver-shaped rows, commits of small files, stale snapshots."""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from etl_core.adapters.delta_files import DeltaFiles
from etl_core.adapters.delta_maintenance import DeltaTableMaintenance
from etl_core.adapters.delta_tables import Tables, open_tables, table_uri
from etl_core.adapters.local_object_store import LocalObjectStore

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 8, tzinfo=UTC)


def record_id(agency_id: int, seq: int) -> str:
    """The workload's key format (WORKLOAD.md): A<agency:03d>-<seq:08d>."""
    return f"A{agency_id:03d}-{seq:08d}"


def silver_rows(
    agency_id: int,
    keys: Iterable[int],
    day: dt.date,
    *,
    updated_at: dt.datetime = T0,
    status: str = "open",
) -> pa.Table:
    """Silver-shaped rows (the columns a merge reads, and a payload) for keys of one agency."""
    ids = [record_id(agency_id, k) for k in keys]
    n = len(ids)
    return pa.table(
        {
            "record_id": pa.array(ids, pa.string()),
            "agency_id": pa.array([agency_id] * n, pa.int64()),
            "dt": pa.array([day] * n, pa.date32()),
            "status": pa.array([status] * n, pa.string()),
            "updated_at": pa.array([updated_at] * n, pa.timestamp("us", tz="UTC")),
            "_source": pa.array([f"agency_id={agency_id}/dt={day}/part-0.ndjson"] * n),
            "_line": pa.array(range(1, n + 1), pa.int64()),
            "_run_id": pa.array(["test"] * n, pa.string()),
        }
    )


def dead_letter_rows(agency_id: int, count: int, day: dt.date, *, start: int = 0) -> pa.Table:
    """Dead-letter-shaped rows of one agency and dt."""
    lines = list(range(start + 1, start + count + 1))
    return pa.table(
        {
            "agency_id": pa.array([agency_id] * count, pa.int64()),
            "dt": pa.array([day] * count, pa.date32()),
            "reason": pa.array(["bad_lat"] * count, pa.string()),
            "source": pa.array([f"agency_id={agency_id}/dt={day}/part-0.ndjson"] * count),
            "line": pa.array(lines, pa.int64()),
            "raw": pa.array([f'{{"line": {n}}}' for n in lines], pa.string()),
            "detail": pa.array(["999"] * count, pa.string()),
            "run_id": pa.array(["test"] * count, pa.string()),
        }
    )


@attrs.define
class HookedFiles(DeltaFiles):
    """DeltaFiles whose next load() runs `after_load` once the snapshot is taken: a commit made
    there lands between the snapshot an operation works on and that operation's own commit."""

    after_load: Callable[[], Awaitable[Any]] | None = None

    async def load(self) -> DeltaTable | None:
        table = await super().load()
        hook, self.after_load = self.after_load, None
        if hook is not None:
            await hook()
        return table


@attrs.define
class DeltaWorld:
    """The silver and dead-letter tables of a local store, and their maintenance adapters."""

    root: Path
    tables: Tables
    silver: DeltaTableMaintenance
    deadletter: DeltaTableMaintenance
    merge_files: HookedFiles  # the silver writer's
    next_key: collections.Counter[int] = attrs.field(factory=collections.Counter)

    @classmethod
    def create(cls, root: Path) -> DeltaWorld:
        store = LocalObjectStore(root)
        opened = open_tables(f"file://{root}", store, {}, rows_per_file=1_000_000)
        # The writer's and the maintainer's DeltaFiles are distinct, each with its own hook.
        merge_files = _hooked(opened.silver.files)
        tables = attrs.evolve(opened, silver=attrs.evolve(opened.silver, files=merge_files))
        silver = DeltaTableMaintenance(_hooked(opened.silver.files), retry_delay=0.01)
        deadletter = DeltaTableMaintenance(_hooked(opened.deadletter.files), retry_delay=0.01)
        return cls(root, tables, silver, deadletter, merge_files)

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    @property
    def maintenance(self) -> DeltaTableMaintenance:
        return self.silver

    def after_compaction_loads(self, hook: Callable[[], Awaitable[Any]]) -> None:
        """Run hook once the next silver compaction has taken its snapshot."""
        assert isinstance(self.silver.files, HookedFiles)
        self.silver.files.after_load = hook

    def after_merge_loads(self, hook: Callable[[], Awaitable[Any]]) -> None:
        """Run hook once the next silver merge has taken its snapshot."""
        self.merge_files.after_load = hook

    async def write(self, agency_id: int, day: dt.date, files: int, *, fold: int = 1) -> None:
        """`files` silver merges of 20 new keys each: one small file per merge."""
        for _ in range(files):
            start = self.next_key[agency_id]
            self.next_key[agency_id] += 20
            rows = silver_rows(agency_id, range(start, start + 20), day)
            await self.tables.silver.merge(agency_id, fold, rows)

    def delta(self, name: str = "silver") -> DeltaTable:
        return DeltaTable(table_uri(self.url, name))

    def rows(self, name: str = "silver") -> list[dict[str, Any]]:
        """Every row of the table, sorted by agency and key (or line), as Python values."""
        table = pa.table(self.delta(name).to_pyarrow_table())
        key = "record_id" if "record_id" in table.column_names else "line"
        rows: list[dict[str, Any]] = table.sort_by(
            [("agency_id", "ascending"), (key, "ascending")]
        ).to_pylist()
        return rows

    def files(self, agency_id: int, name: str = "silver") -> list[dict[str, Any]]:
        """The agency's add actions (flattened: path, partition.dt, num_records, min/max...)."""
        actions = pa.table(self.delta(name).get_add_actions(flatten=True))
        mine: list[dict[str, Any]] = actions.filter(
            pc.equal(actions["partition.agency_id"], agency_id)
        ).to_pylist()
        return mine


def _hooked(files: DeltaFiles) -> HookedFiles:
    return HookedFiles(files.uri, files.storage_options, files.store, files.prefix, files.name)
