"""DeltaSilverTable: the SilverTable port on a Delta Lake table (local disk or S3), merging by key
and rewriting only the data files that hold a replaced row."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import attrs

from etl_core.adapters.delta_files import DeltaFiles
from etl_core.model import MergeOutcome

DEFAULT_ROWS_PER_FILE = 20_000


@attrs.define
class DeltaSilverTable:
    """Silver rows of every agency in one Delta table partitioned by agency_id, dt.

    Within a partition, rows are written sorted by record_id in files of at most rows_per_file
    rows, so a file's record_id bounds (kept in the Delta log) let a merge find the few files that
    can hold an incoming key without reading the others. In a dry run nothing is written.
    """

    files: DeltaFiles
    rows_per_file: int = DEFAULT_ROWS_PER_FILE
    dry_run: bool = False
    run_id: str | None = None

    async def version(self, agency_id: int) -> int:
        """The agency's last committed fold version; 0 before its first commit."""
        return await self.files.fold_version(await self.files.load(), agency_id)

    async def merge(
        self, agency_id: int, version: int, rows: Any, *, replace: bool = False
    ) -> MergeOutcome:
        """See SilverTable.merge."""
        # The Arrow work, imported here: a run with nothing new never merges (delta_silver_merge).
        from etl_core.adapters import delta_silver_merge as arrow

        arrow.check_rows(rows, agency_id)
        table = await self.files.load()
        stored = await self.files.agency_files(table, agency_id)
        if replace:
            winners, removes = rows, stored
            updated: dict[dt.date, int] = {}
            older: dict[dt.date, int] = {}
            inserted = arrow.per_day(rows)
        else:
            winners, removes, updated_keys, inserted, updated, older = await arrow.decide(
                self.files, rows, stored
            )
        if self.dry_run:
            return MergeOutcome(inserted=inserted, updated=updated, older=older)
        if table is None:
            table = await self.files.create(rows.schema)
        adds, rewritten, written = [], 0, 0
        # The rewritten files and the winners' files at once: Parquet encoding releases the GIL,
        # so the two use both cores of a small fold (one new day: ~0.05 s each). A failure of
        # either cancels the other (TaskGroup).
        async with asyncio.TaskGroup() as group:
            rewriting = group.create_task(
                _no_files()
                if replace
                else arrow.rewrite(self.files, removes, updated_keys, agency_id, version)
            )
            writing = group.create_task(
                arrow.write_rows(self.files, agency_id, version, winners, self.rows_per_file)
            )
        kept, new = rewriting.result(), writing.result()
        for action, size, count in kept:
            adds.append(action)
            written += size
            rewritten += count
        for action, size in new:
            adds.append(action)
            written += size
        await self.files.commit(table, agency_id, version, adds, removes, rows.schema, self.run_id)
        return MergeOutcome(
            inserted=inserted,
            updated=updated,
            older=older,
            files_added=len(adds),
            files_removed=len(removes),
            rows_rewritten=rewritten,
            bytes_written=written,
        )

    async def read(self, agency_id: int | None = None) -> Any:
        """The committed rows of one agency (or all); None if no table yet."""
        return await self.files.read(agency_id)


async def _no_files() -> list[tuple[Any, int, int]]:
    return []
