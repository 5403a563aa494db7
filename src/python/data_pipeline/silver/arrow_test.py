"""The tables' schemas, and the record batches built for them."""

from __future__ import annotations

import datetime as dt

import orjson
from etl_core.model import DeadLetter
from etl_core.testing import table_rows

from data_pipeline.silver.arrow import (
    DEADLETTER_SCHEMA,
    SILVER_SCHEMA,
    dead_letter_batch,
    silver_batch,
)


def test_the_table_contract_suite_tests_the_schemas_the_pipeline_writes() -> None:
    assert table_rows.SILVER_SCHEMA.equals(SILVER_SCHEMA)
    assert table_rows.DEAD_LETTER_SCHEMA.equals(DEADLETTER_SCHEMA)


def test_a_silver_row_keeps_its_values_and_gains_its_lineage() -> None:
    row = {
        "record_id": "A001-1", "agency_id": 1, "dt": "2024-01-08", "agency_name": "LAPD",
        "agency_state": "CA", "record_type": "incident", "status": "open",
        "occurred_at": "2024-01-08T18:49:07Z", "updated_at": "2024-01-09T00:00:00Z",
        "officer_badge": "45", "officer_last": "O'Brien", "officer_first": None,
        "lat": 34.05, "lon": -118.25, "amount": 1234.5, "tags": ["a", "b"],
    }  # fmt: skip

    [stored] = silver_batch([orjson.dumps(row)], ["agency_id=1/x.ndjson"], [7], "r1").to_pylist()

    assert stored["dt"] == dt.date(2024, 1, 8)
    assert stored["occurred_at"] == dt.datetime(2024, 1, 8, 18, 49, 7, tzinfo=dt.UTC)
    assert (stored["_source"], stored["_line"], stored["_run_id"]) == (
        "agency_id=1/x.ndjson",
        7,
        "r1",
    )
    assert {k: v for k, v in stored.items() if k in ("tags", "amount", "officer_first")} == {
        "tags": ["a", "b"], "amount": 1234.5, "officer_first": None,
    }  # fmt: skip


def test_no_survivors_make_an_empty_table_of_the_silver_schema() -> None:
    assert silver_batch([], [], [], "r1").schema.equals(SILVER_SCHEMA)
    assert dead_letter_batch(1, [], "r1").num_rows == 0


def test_a_dead_letter_row_names_its_file_line_and_run() -> None:
    letter = DeadLetter(
        "invalid_json", "agency_id=1/x.ndjson", "{", detail="x:3: invalid_json", line=3
    )

    [row] = dead_letter_batch(1, [(dt.date(2024, 1, 8), letter)], "r1").to_pylist()

    assert row == {
        "agency_id": 1, "dt": dt.date(2024, 1, 8), "reason": "invalid_json",
        "source": "agency_id=1/x.ndjson", "line": 3, "raw": "{", "detail": "x:3: invalid_json",
        "run_id": "r1", "raw_bytes": None,
    }  # fmt: skip


def test_a_dead_letter_that_is_not_utf8_keeps_its_exact_bytes() -> None:
    letter = DeadLetter(
        "invalid_json", "agency_id=1/x.ndjson", "{\ufffd", line=1, raw_bytes=b"{\xff"
    )

    [row] = dead_letter_batch(1, [(dt.date(2024, 1, 8), letter)], "r1").to_pylist()

    assert (row["raw"], row["raw_bytes"]) == ("{\ufffd", b"{\xff")
