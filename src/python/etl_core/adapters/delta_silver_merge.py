"""The Arrow side of a silver merge (DeltaSilverTable.merge): which incoming rows win, which
stored files hold a key they replace, and those files rewritten and the winners written sorted.

Apart from delta_silver_table so that opening the tables and reading an agency's fold version
(all a run with nothing new does) imports no Arrow: the merge imports this module.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from etl_core.adapters.delta_files import DataFile, DeltaFiles, without_partition_columns
from etl_core.errors import TableError

# decide's answer: winners, the stored files holding a key a winner replaces, those keys, and
# per day the rows inserted, updated and older (or equal).
Decision = tuple[
    pa.Table, list[DataFile], pa.Array, dict[dt.date, int], dict[dt.date, int], dict[dt.date, int]
]
_ORDER = ("updated_at", "_source", "_line")  # which version of a key is newer, in this order
_STORED = ["record_id", "updated_at__stored", "_source__stored", "_line__stored", "_file"]


async def decide(files: DeltaFiles, rows: pa.Table, stored: list[DataFile]) -> Decision:
    """Split incoming rows into winners (new keys and newer versions) and older ones; also
    the stored files that hold a key a winner replaces, and those keys."""
    if not stored:  # a first build of these partitions: no key to look up
        return _all_new(rows)
    keys = rows["record_id"].combine_chunks()
    if not _sorted(keys):  # the dedupe's survivors come sorted already
        keys = pc.take(keys, pc.sort_indices(keys))
    bounds = _Bounds(keys)
    candidates = [f for f in stored if f.may_hold(cast(Sequence[str], bounds), bisect.bisect_left)]
    current = await _current(files, candidates, keys)
    if current.num_rows == 0:
        return _all_new(rows)
    slim = rows.select(["record_id", "dt", *_ORDER])
    joined = slim.append_column("_row", pa.array(range(rows.num_rows), pa.int64())).join(
        current, keys="record_id", join_type="inner", right_suffix="__stored"
    )  # the incoming rows whose key is stored
    stored_at = joined["updated_at__stored"]
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
    updates = joined.filter(newer)
    losers = joined.filter(pc.invert(newer))
    winners, inserts = rows, rows
    if joined.num_rows:  # the rows whose key is stored are not inserts; the older ones lose
        inserts = rows.filter(pc.invert(pc.is_in(pa.array(range(rows.num_rows)), joined["_row"])))
    if losers.num_rows:
        winners = rows.filter(pc.invert(pc.is_in(pa.array(range(rows.num_rows)), losers["_row"])))
    holding = [candidates[i] for i in sorted(set(updates["_file"].to_pylist()))]
    return (
        winners,
        holding,
        updates["record_id"].combine_chunks(),
        per_day(inserts),
        per_day(updates),
        per_day(losers),
    )


@attrs.frozen
class _Bounds:
    """Sorted keys as DataFile.may_hold reads them (len, index, bisect), without turning every
    key into a Python string: bisect reads only the ~log2(n) keys it compares."""

    keys: pa.Array

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> str:
        value: str = self.keys[index].as_py()
        return value


def _all_new(rows: pa.Table) -> Decision:
    """decide's answer when no stored row has one of rows' keys: every row is inserted."""
    return rows, [], pa.array([], pa.string()), per_day(rows), {}, {}


async def _current(files: DeltaFiles, candidates: list[DataFile], keys: pa.Array) -> pa.Table:
    """The stored (record_id, updated_at, _source, _line) of those keys, with the index in
    candidates of the file holding each (`_file`)."""
    tables = await files.read_files(candidates, ["record_id", *_ORDER])
    numbered = [
        table.append_column("_file", pa.repeat(pa.scalar(index, pa.int64()), table.num_rows))
        for index, table in enumerate(tables)
        if table.num_rows
    ]
    # One lookup over all the candidates' keys: is_in hashes its value set on every call.
    everything = pa.concat_tables(numbered) if numbered else None
    hits = None
    if everything is not None:
        hits = everything.filter(pc.is_in(everything["record_id"], value_set=keys))
    found = [hits] if hits is not None and hits.num_rows else []
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


async def rewrite(
    delta: DeltaFiles, files: list[DataFile], replaced: pa.Array, agency_id: int, version: int
) -> list[tuple[Any, int, int]]:
    """Each file without the replaced keys, written anew (nothing if no row is left). A few
    files at a time: memory holds a group of files, not every file a fold touches."""
    out: list[tuple[Any, int, int]] = []
    for start in range(0, len(files), _REWRITE_GROUP):
        group = files[start : start + _REWRITE_GROUP]
        for file, data in zip(group, await delta.read_files(group), strict=True):
            left = data.filter(pc.invert(pc.is_in(data["record_id"], value_set=replaced)))
            del data
            if left.num_rows:
                action, size = await delta.write_file(agency_id, file.day, version, left)
                out.append((action, size, left.num_rows))
    return out


async def write_rows(
    files: DeltaFiles, agency_id: int, version: int, rows: pa.Table, rows_per_file: int
) -> list[Any]:
    """rows by dt partition, sorted by record_id, in files of at most rows_per_file; the files
    are encoded and stored a few at a time (Parquet encoding releases the GIL)."""
    chunks = []
    days = rows["dt"]
    for day in pc.unique(days).to_pylist():
        part = rows.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        part = without_partition_columns(part)
        if not _sorted(part["record_id"]):  # the dedupe's survivors come sorted already
            part = part.sort_by("record_id")
        for start in range(0, part.num_rows, rows_per_file):
            chunks.append((day.isoformat(), part.slice(start, rows_per_file)))
    return await files.write_files(agency_id, version, chunks)


def _sorted(keys: pa.ChunkedArray | pa.Array) -> bool:
    if len(keys) < 2:
        return True
    ordered = pc.less_equal(keys.slice(0, len(keys) - 1), keys.slice(1))
    return bool(pc.all(ordered).as_py())


def _strictly_sorted(keys: pa.ChunkedArray | pa.Array) -> bool:
    """Sorted with no key twice (the dedupe's survivors are): unique without hashing."""
    if len(keys) < 2:
        return True
    ordered = pc.less(keys.slice(0, len(keys) - 1), keys.slice(1))
    return bool(pc.all(ordered).as_py())


_REWRITE_GROUP = 8  # files read at once when rewriting: as many as delta_files reads in parallel


def check_rows(rows: Any, agency_id: int) -> None:
    if not isinstance(rows, pa.Table):
        raise TypeError(f"silver rows must be a pyarrow.Table, got {type(rows).__name__}")
    if rows.num_rows and pc.any(pc.not_equal(rows["agency_id"], agency_id)).as_py():
        raise TableError(f"silver merge for agency {agency_id} holds rows of another agency")
    keys = rows["record_id"]
    if not _strictly_sorted(keys) and len(pc.unique(keys)) != rows.num_rows:
        raise TableError(f"silver merge for agency {agency_id}: record_ids are not unique")


def per_day(rows: pa.Table) -> dict[dt.date, int]:
    if rows.num_rows == 0:
        return {}
    counts = pc.value_counts(rows["dt"]).to_pylist()
    return dict(sorted((entry["values"], entry["counts"]) for entry in counts))
