"""Per-partition row accounting of a bronze -> silver run, folded from per-file results."""

from __future__ import annotations

from collections.abc import Collection

import attrs
import pyarrow.compute as pc
from etl_core.errors import InvariantViolation
from etl_core.model import Counts, DeadLetter

from data_pipeline.silver.dedupe import BatchDeduper
from data_pipeline.silver.file_transform import FileBatch


@attrs.define
class PartitionTally:
    """What the bronze files of one partition held: input rows, valid rows, dead letters."""

    rows_in: int = 0
    valid: int = 0
    bytes_in: int = 0
    # (source, that file's dead letters in line order); sorted by source when read.
    dead_by_file: list[tuple[str, tuple[DeadLetter, ...]]] = attrs.field(factory=list)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter of the partition, by source file then line."""
        return [dead for _, rows in sorted(self.dead_by_file, key=_source) for dead in rows]

    @property
    def rows_dead_letter(self) -> int:
        return sum(len(rows) for _, rows in self.dead_by_file)

    def counts(self, rows_out: int) -> Counts:
        """rows_out survivors here; every other valid row of the partition lost to a later one."""
        return Counts(
            rows_in=self.rows_in,
            rows_out=rows_out,
            rows_duplicate=self.valid - rows_out,
            rows_dead_letter=self.rows_dead_letter,
            bytes_in=self.bytes_in,
        )


def _source(entry: tuple[str, tuple[DeadLetter, ...]]) -> str:
    return entry[0]


@attrs.define
class Accounting:
    """Folds the FileBatches of one fold of an agency's bronze into the BatchDeduper (the dedupe
    scope) and keeps tallies and dead letters only for the partitions in scope (`days`)."""

    agency_id: int
    days: Collection[str]
    deduper: BatchDeduper = attrs.field(factory=BatchDeduper)
    tallies: dict[str, PartitionTally] = attrs.field(factory=dict)
    files: int = 0

    def add(self, result: FileBatch) -> None:
        """Fold one file in. Raises InvariantViolation if its rows do not add up."""
        valid, dead = result.valid.num_rows, len(result.dead_letters)
        if result.rows_in != valid + dead:
            raise InvariantViolation(
                f"{result.source}: {result.rows_in} rows in != {valid} valid + {dead} dead-letter"
            )
        self.deduper.add(result)
        self.files += 1
        if result.dt not in self.days:
            return
        tally = self.tallies.setdefault(result.dt, PartitionTally())
        tally.rows_in += result.rows_in
        tally.valid += valid
        tally.bytes_in += result.bytes_in
        if dead:
            tally.dead_by_file.append((result.source, result.dead_letters))

    def kept_per_day(self) -> dict[str, int]:
        """dt -> how many of the agency's rows survived dedupe there.

        Raises InvariantViolation if the totals do not balance or a survivor names another
        agency than agency_id.
        """
        counts = self.deduper.counts
        if not counts.balanced or counts.rows_duplicate < 0:
            raise InvariantViolation(f"agency {self.agency_id}: totals do not balance: {counts}")
        survivors = self.deduper.survivors()
        others = pc.unique(survivors["agency_id"]).to_pylist()
        if others and others != [self.agency_id]:
            raise InvariantViolation(f"agency {self.agency_id}: survivors name agencies {others}")
        per_day = pc.value_counts(survivors["dt"]).to_pylist()
        return {entry["values"].isoformat(): entry["counts"] for entry in per_day}

    def partition_counts(self, day: str, rows_out: int) -> Counts:
        """The partition's counts. Raises InvariantViolation unless they balance."""
        counts = self.tallies.get(day, PartitionTally()).counts(rows_out)
        if not counts.balanced or counts.rows_duplicate < 0:
            raise InvariantViolation(
                f"partition dt={day}: rows_in {counts.rows_in} != rows_out {counts.rows_out} + "
                f"rows_duplicate {counts.rows_duplicate} + rows_dead_letter "
                f"{counts.rows_dead_letter}"
            )
        return counts
