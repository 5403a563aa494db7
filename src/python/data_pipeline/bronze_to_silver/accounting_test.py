"""Tests of per-partition accounting: tallies in scope only, balanced counts, broken invariants."""

from __future__ import annotations

import attrs
import pytest
from etl_core.errors import InvariantViolation
from etl_core.model import DeadLetter

from data_pipeline.bronze_to_silver.accounting import Accounting
from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.arrow import VALID_SCHEMA
from data_pipeline.silver.file_transform import FileBatch, transform_batch

AGENCIES = {1: Agency(1, "Los Angeles Police Department", "CA", "America/Los_Angeles")}
LINE = (
    b'{"record_id": "%s", "agency_id": 1, "record_type": "incident", "occurred_at": 1704700000,'
    b' "updated_at": "%s", "status": "open", "location": {"lat": "34", "lon": "-118"}}'
)


def _file(day: str, *lines: bytes, part: int = 0) -> FileBatch:
    key = f"bronze/agency_id=1/dt={day}/part-{part}.ndjson"
    return transform_batch(key, b"\n".join(lines) + b"\n", AGENCIES)


def test_a_later_duplicate_counts_against_the_partition_it_came_from() -> None:
    accounting = Accounting(1, {"2024-01-08", "2024-01-09"})
    accounting.add(_file("2024-01-08", LINE % (b"A1", b"2024-01-08T10:00:00Z"), b"{bad"))
    accounting.add(_file("2024-01-09", LINE % (b"A1", b"2024-01-09T10:00:00Z")))

    assert accounting.kept_per_day() == {"2024-01-09": 1}
    early = accounting.partition_counts("2024-01-08", 0)
    assert (early.rows_in, early.rows_out, early.rows_duplicate, early.rows_dead_letter) == (
        2, 0, 1, 1,
    )  # fmt: skip
    late = accounting.partition_counts("2024-01-09", 1)
    assert (late.rows_in, late.rows_out, late.rows_duplicate) == (1, 1, 0)


def test_partitions_out_of_scope_feed_dedupe_but_keep_no_tally() -> None:
    accounting = Accounting(1, {"2024-01-08"})
    accounting.add(_file("2024-01-08", LINE % (b"A1", b"2024-01-08T10:00:00Z")))
    accounting.add(_file("2024-01-09", LINE % (b"A1", b"2024-01-09T10:00:00Z"), b"{bad"))

    assert set(accounting.tallies) == {"2024-01-08"}
    assert accounting.partition_counts("2024-01-08", 0).rows_duplicate == 1
    assert accounting.deduper.counts.rows_dead_letter == 1


def test_dead_letters_come_out_by_source_then_line() -> None:
    accounting = Accounting(1, {"2024-01-08"})
    accounting.add(_file("2024-01-08", b"{b1", b"{b2", part=1))
    accounting.add(_file("2024-01-08", b"{a1", part=0))

    raws = [dead.raw for dead in accounting.tallies["2024-01-08"].dead_letters]

    assert raws == ["{a1", "{b1", "{b2"]


def test_a_file_whose_rows_do_not_add_up_is_an_invariant_violation() -> None:
    result = _file("2024-01-08", LINE % (b"A1", b"2024-01-08T10:00:00Z"))
    broken = attrs.evolve(result, rows_in=2)

    with pytest.raises(InvariantViolation, match="2 rows in != 1 valid"):
        Accounting(1, set()).add(broken)


def test_survivors_of_another_agency_are_an_invariant_violation() -> None:
    accounting = Accounting(2, {"2024-01-08"})
    accounting.add(_file("2024-01-08", LINE % (b"A1", b"2024-01-08T10:00:00Z")))

    with pytest.raises(InvariantViolation, match="survivors name agencies \\[1\\]"):
        accounting.kept_per_day()


def test_more_survivors_than_valid_rows_is_an_invariant_violation() -> None:
    accounting = Accounting(1, {"2024-01-08"})
    dead = DeadLetter("invalid_json", "agency_id=1/dt=2024-01-08/part-0.ndjson", "{")
    accounting.add(
        FileBatch(
            "agency_id=1/dt=2024-01-08/part-0.ndjson",
            "2024-01-08",
            1,
            1,
            VALID_SCHEMA.empty_table(),
            (dead,),
        )
    )

    with pytest.raises(InvariantViolation, match="partition dt=2024-01-08"):
        accounting.partition_counts("2024-01-08", 1)
