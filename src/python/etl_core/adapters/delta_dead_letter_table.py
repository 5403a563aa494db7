"""DeltaDeadLetterTable: the DeadLetterTable port on a Delta Lake table (local disk or S3)."""

from __future__ import annotations

from typing import Any

import attrs

from etl_core.adapters.delta_files import DeltaFiles, without_partition_columns
from etl_core.errors import TableError


@attrs.define
class DeltaDeadLetterTable:
    """Dead-letter rows of every agency in one Delta table partitioned by agency_id, dt.

    A fold's files carry its version in their names (part-<version>-<uuid>.parquet), so writing
    a version again (the re-run of a run that crashed after this commit but before silver's)
    removes the earlier attempt's files in the same commit. In a dry run nothing is written.
    Rows with columns the table lacks (a table created with an older schema) add them first.
    """

    files: DeltaFiles
    dry_run: bool = False
    run_id: str | None = None

    async def version(self, agency_id: int) -> int:
        """The agency's last committed fold version here; 0 before its first commit."""
        return await self.files.fold_version(await self.files.load(), agency_id)

    async def write(self, agency_id: int, version: int, rows: Any, *, replace: bool = False) -> int:
        """See DeadLetterTable.write."""
        # Arrow, imported here: a run with nothing new never writes (delta_files' docstring).
        import pyarrow as pa
        import pyarrow.compute as pc

        if not isinstance(rows, pa.Table):
            raise TypeError(f"dead-letter rows must be a pyarrow.Table, got {type(rows).__name__}")
        if rows.num_rows and pc.any(pc.not_equal(rows["agency_id"], agency_id)).as_py():
            raise TableError(f"dead letters for agency {agency_id} hold rows of another agency")
        if self.dry_run:
            return int(rows.num_rows)
        table = await self.files.load()
        if table is None:
            table = await self.files.create(rows.schema)
        else:  # a table created before a column existed (raw_bytes) gains it first
            table = await self.files.add_columns(table, rows.schema)
        stored = await self.files.agency_files(table, agency_id)
        marker = f"/part-{version:010d}-"
        removes = [f for f in stored if replace or marker in f.path]
        days = rows["dt"]
        parts = [
            (day.isoformat(), without_partition_columns(rows.filter(pc.equal(days, day))))
            for day in pc.unique(days).to_pylist()
        ]
        adds = [action for action, _ in await self.files.write_files(agency_id, version, parts)]
        # The table's own schema: rows of an older one (no raw_bytes) read null there.
        schema = table.schema()
        await self.files.commit(table, agency_id, version, adds, removes, schema, self.run_id)
        return int(rows.num_rows)

    async def read(self, agency_id: int | None = None) -> Any:
        """The committed rows of one agency (or all); None if no table yet."""
        return await self.files.read(agency_id)

    async def read_fold(self, agency_id: int, fold: int) -> Any:
        """See DeadLetterTable.read_fold: time travel to the Delta version of that fold."""
        return await self.files.read_fold(agency_id, fold)
