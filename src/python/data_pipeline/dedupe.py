"""Cross-file dedupe of valid rows by record_id: the greatest updated_at survives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import attrs
from etl_core.model import Counts

from data_pipeline.transform import FileResult

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
