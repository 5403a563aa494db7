"""Cross-file dedupe of valid rows by record_id: the greatest updated_at survives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, NamedTuple

import attrs
import pyarrow as pa
import pyarrow.compute as pc
from etl_core.model import Counts

from data_pipeline.silver.arrow import VALID_SCHEMA
from data_pipeline.silver.file_transform import FileBatch, FileResult

Partition = tuple[int, str]  # (agency_id, dt)

# record_id -> (updated_us, source, line_no, partition, silver): the order key first, so tuples
# compare by instant, then source path, then line. Sources and partitions are shared objects.
_Kept = tuple[int, str, int, Partition, bytes]


class SurvivorColumns(NamedTuple):
    """The surviving rows as columns: silver JSON, source, line, dt."""

    silver: list[bytes]
    sources: list[str]
    lines: list[int]
    days: list[str]


class Survivor(NamedTuple):
    """A surviving silver row (JSON) and where it came from."""

    silver: bytes
    source: str  # bronze key relative to bronze/
    line: int
    dt: str


@attrs.define
class Deduper:
    """Merges FileResults in any order into the surviving silver rows and the run's counts.

    Memory is one compact entry per distinct record_id. The survivor of a record_id is the valid
    row with the greatest updated_at instant; ties go to the later source path (string order),
    then the later line, so the outcome does not depend on the order files are added.
    """

    _kept: dict[str, _Kept] = attrs.field(factory=dict, init=False)
    _partitions: dict[Partition, Partition] = attrs.field(factory=dict, init=False)
    _rows_in: int = attrs.field(default=0, init=False)
    _valid: int = attrs.field(default=0, init=False)
    _dead_letter: int = attrs.field(default=0, init=False)
    _bytes_in: int = attrs.field(default=0, init=False)

    def add(self, result: FileResult) -> None:
        """Fold one file's valid rows in and count its input and dead letters."""
        self._rows_in += result.rows_in
        self._dead_letter += len(result.dead_letters)
        self._bytes_in += result.bytes_in
        self._valid += len(result.valid_rows)
        kept = self._kept
        source, day = result.source, result.dt
        partitions: dict[int, Partition] = {}  # this file's agency_id -> shared partition
        for record_id, updated, line_no, agency_id, silver in result.valid_rows:
            partition = partitions.get(agency_id)
            if partition is None:
                partition = self._partitions.setdefault((agency_id, day), (agency_id, day))
                partitions[agency_id] = partition
            current = kept.get(record_id)
            if (
                current is None
                or updated > current[0]
                or (updated == current[0] and (source, line_no) > (current[1], current[2]))
            ):
                kept[record_id] = (updated, source, line_no, partition, silver)

    @property
    def counts(self) -> Counts:
        """The run's accounting: survivors are rows_out, displaced valid rows rows_duplicate."""
        return Counts(
            rows_in=self._rows_in,
            rows_out=len(self._kept),
            rows_duplicate=self._valid - len(self._kept),
            rows_dead_letter=self._dead_letter,
            bytes_in=self._bytes_in,
        )

    def partitions(self) -> dict[Partition, list[bytes]]:
        """Surviving silver rows grouped by (agency_id, dt), each group ordered by record_id."""
        grouped: dict[Partition, list[bytes]] = {}
        for record_id in sorted(self._kept):
            entry = self._kept[record_id]
            grouped.setdefault(entry[3], []).append(entry[4])
        return dict(sorted(grouped.items()))

    def survivor_columns(self) -> SurvivorColumns:
        """Every surviving row with its lineage, column by column, in no particular order."""
        kept = list(self._kept.values())
        return SurvivorColumns(
            silver=[entry[4] for entry in kept],
            sources=[entry[1] for entry in kept],
            lines=[entry[2] for entry in kept],
            days=[entry[3][1] for entry in kept],
        )

    def survivors(self) -> Iterator[Survivor]:
        """Every surviving row with its lineage, in no particular order."""
        for _, source, line_no, (_, day), silver in self._kept.values():
            yield Survivor(silver, source, line_no, day)

    def __iter__(self) -> Iterator[bytes]:
        """Every surviving silver row, ordered by record_id."""
        return (self._kept[record_id][4] for record_id in sorted(self._kept))

    def __len__(self) -> int:
        return len(self._kept)


_ORDER: Final = [
    ("record_id", "ascending"),
    ("_updated_us", "descending"),
    ("_source", "descending"),
    ("_line", "descending"),
]


@attrs.define
class BatchDeduper:
    """Deduper's rule over FileBatches, column by column: per record_id the valid row with the
    greatest updated_at instant survives, ties to the later source path, then the later line.

    Holds the batches' Arrow tables until survivors() (one fold's worth: the fold's bronze
    bounds it).
    """

    _tables: list[pa.Table] = attrs.field(factory=list, init=False)
    _survivors: pa.Table | None = attrs.field(default=None, init=False)
    _rows_in: int = attrs.field(default=0, init=False)
    _valid: int = attrs.field(default=0, init=False)
    _dead_letter: int = attrs.field(default=0, init=False)
    _bytes_in: int = attrs.field(default=0, init=False)

    def add(self, batch: FileBatch) -> None:
        """Fold one file's valid rows in and count its input and dead letters."""
        if self._survivors is not None:
            raise RuntimeError("BatchDeduper.add after survivors()")
        self._rows_in += batch.rows_in
        self._dead_letter += len(batch.dead_letters)
        self._bytes_in += batch.bytes_in
        self._valid += batch.valid.num_rows
        if batch.valid.num_rows:
            source = pa.repeat(pa.scalar(batch.source, pa.string()), batch.valid.num_rows)
            self._tables.append(batch.valid.append_column("_source", source))

    @property
    def counts(self) -> Counts:
        """The run's accounting: survivors are rows_out, displaced valid rows rows_duplicate."""
        kept = self.survivors().num_rows
        return Counts(
            rows_in=self._rows_in,
            rows_out=kept,
            rows_duplicate=self._valid - kept,
            rows_dead_letter=self._dead_letter,
            bytes_in=self._bytes_in,
        )

    def survivors(self) -> pa.Table:
        """The surviving rows (VALID_SCHEMA plus `_source`), sorted by record_id."""
        if self._survivors is None:
            self._survivors = _survivors(self._tables)
            self._tables = []
        return self._survivors


def _survivors(tables: list[pa.Table]) -> pa.Table:
    """One sort of the fold's rows by _ORDER puts each record_id's versions side by side, newest
    first; the first of each run survives. The result is sorted by record_id, as silver files
    are written. (Measured on 50k rows: 10 ms, where splitting out the repeated ids first and
    sorting only those took 28 ms.)"""
    schema = VALID_SCHEMA.append(pa.field("_source", pa.string()))
    if not tables:
        return schema.empty_table()
    rows = pa.concat_tables(tables)
    tables.clear()  # the caller's list: the fold's rows are held once by rows, then by the sort
    rows = rows.take(pc.sort_indices(rows, sort_keys=_ORDER))
    if rows.num_rows < 2:
        return rows
    ids = rows["record_id"]
    first = pc.not_equal(ids.slice(1), ids.slice(0, rows.num_rows - 1))
    keep = pa.chunked_array([pa.array([True]), *first.chunks], pa.bool_())
    return rows.filter(keep)
