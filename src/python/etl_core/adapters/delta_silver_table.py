"""DeltaSilverTable: the SilverTable port on a Delta Lake table (local disk or S3), merging by key
and rewriting only the data files that hold a replaced row."""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from etl_core.adapters.delta_files import DataFile, DeltaFiles, without_partition_columns
from etl_core.errors import TableError
from etl_core.model import MergeOutcome

_ORDER = ("updated_at", "_source", "_line")  # which version of a key is newer, in this order
_STORED = ["record_id", "updated_at__stored", "_source__stored", "_line__stored", "_file"]
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
        _check_rows(rows, agency_id)
        table = await self.files.load()
        stored = await self.files.agency_files(table, agency_id)
        if replace:
            winners, removes = rows, stored
            updated: dict[dt.date, int] = {}
            older: dict[dt.date, int] = {}
            inserted = _per_day(rows)
        else:
            winners, removes, updated_keys, inserted, updated, older = await self._decide(
                rows, stored
            )
        if self.dry_run:
            return MergeOutcome(inserted=inserted, updated=updated, older=older)
        if table is None:
            table = await self.files.create(rows.schema)
        adds, rewritten, written = [], 0, 0
        kept = [] if replace else await self._rewrite(removes, updated_keys, agency_id, version)
        for action, size, count in kept:
            adds.append(action)
            written += size
            rewritten += count
        for action, size in await self._write_rows(agency_id, version, winners):
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

    async def _decide(
        self, rows: pa.Table, stored: list[DataFile]
    ) -> tuple[
        pa.Table,
        list[DataFile],
        pa.Array,
        dict[dt.date, int],
        dict[dt.date, int],
        dict[dt.date, int],
    ]:
        """Split incoming rows into winners (new keys and newer versions) and older ones; also
        the stored files that hold a key a winner replaces, and those keys."""
        keys = sorted(rows["record_id"].to_pylist())
        candidates = [f for f in stored if f.may_hold(keys, bisect.bisect_left)]
        current = await self._current(candidates, pa.array(keys, pa.string()))
        if current.num_rows == 0:
            return rows, [], pa.array([], pa.string()), _per_day(rows), {}, {}
        slim = rows.select(["record_id", "dt", *_ORDER])
        joined = slim.append_column("_row", pa.array(range(rows.num_rows), pa.int64())).join(
            current, keys="record_id", join_type="left outer", right_suffix="__stored"
        )
        stored_at = joined["updated_at__stored"]
        matched = pc.is_valid(stored_at)
        newer = pc.or_kleene(
            pc.greater(joined["updated_at"], stored_at),
            pc.and_kleene(
                pc.equal(joined["updated_at"], stored_at),
                pc.or_kleene(
                    pc.greater(joined["_source"], joined["_source__stored"]),
                    pc.and_kleene(
                        pc.equal(joined["_source"], joined["_source__stored"]),
                        pc.greater(joined["_line"], joined["_line__stored"]),
                    ),
                ),
            ),
        )
        newer = pc.fill_null(newer, False)
        wins = pc.or_(pc.invert(matched), newer)
        winner_rows = pc.sort_indices(joined.filter(wins)["_row"])
        winner_index = pc.take(joined.filter(wins)["_row"], winner_rows)
        winners = rows.take(winner_index)
        updates = joined.filter(pc.and_(matched, newer))
        losers = joined.filter(pc.invert(wins))
        inserts = joined.filter(pc.invert(matched))
        holding = [candidates[i] for i in sorted(set(updates["_file"].to_pylist()))]
        return (
            winners,
            holding,
            updates["record_id"].combine_chunks(),
            _per_day(inserts),
            _per_day(updates),
            _per_day(losers),
        )

    async def _current(self, candidates: list[DataFile], keys: pa.Array) -> pa.Table:
        """The stored (record_id, updated_at, _source, _line) of those keys, with the index in
        candidates of the file holding each (`_file`)."""
        tables = await self.files.read_files(candidates, ["record_id", *_ORDER])
        found = [
            hits.append_column("_file", pa.repeat(pa.scalar(index, pa.int64()), hits.num_rows))
            for index, table in enumerate(tables)
            if (hits := table.filter(pc.is_in(table["record_id"], value_set=keys))).num_rows
        ]
        if not found:
            return pa.table(
                {
                    "record_id": pa.array([], pa.string()),
                    "updated_at": pa.array([], pa.timestamp("us", tz="UTC")),
                    "_source": pa.array([], pa.string()),
                    "_line": pa.array([], pa.int64()),
                    "_file": pa.array([], pa.int64()),
                }
            ).rename_columns(_STORED)
        current = pa.concat_tables(found)
        if len(pc.unique(current["record_id"])) != current.num_rows:
            raise TableError("silver table: a record_id is stored twice for one agency")
        return current.rename_columns(_STORED)

    async def _rewrite(
        self, files: list[DataFile], replaced: pa.Array, agency_id: int, version: int
    ) -> list[tuple[Any, int, int]]:
        """Each file without the replaced keys, written anew (nothing if no row is left). A few
        files at a time: memory holds a group of files, not every file a fold touches."""
        out: list[tuple[Any, int, int]] = []
        for start in range(0, len(files), _REWRITE_GROUP):
            group = files[start : start + _REWRITE_GROUP]
            for file, data in zip(group, await self.files.read_files(group), strict=True):
                left = data.filter(pc.invert(pc.is_in(data["record_id"], value_set=replaced)))
                del data
                if left.num_rows:
                    action, size = await self.files.write_file(agency_id, file.day, version, left)
                    out.append((action, size, left.num_rows))
        return out

    async def _write_rows(self, agency_id: int, version: int, rows: pa.Table) -> list[Any]:
        """rows by dt partition, sorted by record_id, in files of at most rows_per_file."""
        out = []
        days = rows["dt"]
        for day in pc.unique(days).to_pylist():
            part = rows.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            part = without_partition_columns(part).sort_by("record_id")
            for start in range(0, part.num_rows, self.rows_per_file):
                chunk = part.slice(start, self.rows_per_file)
                out.append(await self.files.write_file(agency_id, day.isoformat(), version, chunk))
        return out


_REWRITE_GROUP = 8  # files read at once when rewriting: as many as delta_files reads in parallel


def _check_rows(rows: Any, agency_id: int) -> None:
    if not isinstance(rows, pa.Table):
        raise TypeError(f"silver rows must be a pyarrow.Table, got {type(rows).__name__}")
    if rows.num_rows and pc.any(pc.not_equal(rows["agency_id"], agency_id)).as_py():
        raise TableError(f"silver merge for agency {agency_id} holds rows of another agency")
    if len(pc.unique(rows["record_id"])) != rows.num_rows:
        raise TableError(f"silver merge for agency {agency_id}: record_ids are not unique")


def _per_day(rows: pa.Table) -> dict[dt.date, int]:
    if rows.num_rows == 0:
        return {}
    counts = pc.value_counts(rows["dt"]).to_pylist()
    return dict(sorted((entry["values"], entry["counts"]) for entry in counts))
