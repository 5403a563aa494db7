"""Rows of the silver and dead-letter tables for tests: the schemas of WORKLOAD.md "Tables" (as
data_pipeline.silver.arrow builds them) and builders of valid rows with overridable values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

Row = dict[str, Any]
TIMESTAMP = pa.timestamp("us", tz="UTC")
SILVER_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("agency_id", pa.int64(), nullable=False),
        pa.field("dt", pa.date32(), nullable=False),
        *(pa.field(name, pa.string()) for name in ("agency_name", "agency_state")),
        *(pa.field(name, pa.string()) for name in ("record_type", "status")),
        pa.field("occurred_at", TIMESTAMP),
        pa.field("updated_at", TIMESTAMP),
        *(pa.field(f"officer_{name}", pa.string()) for name in ("badge", "last", "first")),
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("amount", pa.float64()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("_source", pa.string()),
        pa.field("_line", pa.int64()),
        pa.field("_run_id", pa.string()),
    ]
)
DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("agency_id", pa.int64(), nullable=False),
        pa.field("dt", pa.date32(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("raw_bytes", pa.binary()),
    ]
)
OLD_DEAD_LETTER_SCHEMA = pa.schema([f for f in DEAD_LETTER_SCHEMA if f.name != "raw_bytes"])
"""The dead-letter schema tables were created with before raw_bytes existed."""
DAY = dt.date(2024, 1, 8)
T0 = dt.datetime(2024, 1, 8, 18, 49, 7, tzinfo=dt.UTC)


def day(n: int) -> dt.date:
    """The n-th day after DAY."""
    return DAY + dt.timedelta(days=n)


def at(seconds: int) -> dt.datetime:
    """T0 plus seconds."""
    return T0 + dt.timedelta(seconds=seconds)


def silver_row(
    record_id: str,
    *,
    agency_id: int = 1,
    on: dt.date = DAY,
    updated_at: dt.datetime = T0,
    source: str | None = None,
    line: int = 1,
    **values: Any,
) -> Row:
    """A valid silver row; source defaults to the bronze file of its agency and dt."""
    row: Row = {
        "record_id": record_id,
        "agency_id": agency_id,
        "dt": on,
        "agency_name": f"Agency {agency_id}",
        "agency_state": "AZ",
        "record_type": "incident",
        "status": "open",
        "occurred_at": T0 - dt.timedelta(hours=2),
        "updated_at": updated_at,
        "officer_badge": "45",
        "officer_last": "O'Brien",
        "officer_first": "Anne Marie",
        "lat": 33.448376,
        "lon": -112.074036,
        "amount": 1234.5,
        "tags": ["night", "k9"],
        "_source": source or f"agency_id={agency_id}/dt={on}/part-0.ndjson",
        "_line": line,
        "_run_id": "run-1",
    }
    return row | values


def silver(*rows: Row) -> pa.Table:
    """Silver rows as the Arrow table a merge takes."""
    return pa.Table.from_pylist(list(rows), schema=SILVER_SCHEMA)


def dead_letter(line: int, *, agency_id: int = 1, on: dt.date = DAY, **values: Any) -> Row:
    """A dead-letter row of the bronze file of its agency and dt."""
    row: Row = {
        "agency_id": agency_id,
        "dt": on,
        "reason": "bad_occurred_at",
        "source": f"agency_id={agency_id}/dt={on}/part-0.ndjson",
        "line": line,
        "raw": '{"occurred_at": "13/45/2024 25:61"}',
        "detail": "13/45/2024 25:61",
        "run_id": "run-1",
        "raw_bytes": None,
    }
    return row | values


def dead_letters(*rows: Row) -> pa.Table:
    """Dead-letter rows as the Arrow table a write takes."""
    return pa.Table.from_pylist(list(rows), schema=DEAD_LETTER_SCHEMA)


def old_dead_letters(*rows: Row) -> pa.Table:
    """Dead-letter rows as a release before raw_bytes wrote them (its column dropped)."""
    return pa.Table.from_pylist(list(rows), schema=OLD_DEAD_LETTER_SCHEMA)


def keyed(table: pa.Table | None) -> dict[tuple[int, str], Row]:
    """Rows by (agency_id, record_id); fails if a key is there twice."""
    rows = [] if table is None else table.to_pylist()
    by_key = {(row["agency_id"], row["record_id"]): row for row in rows}
    assert len(by_key) == len(rows), "a record_id is stored twice for one agency"
    return by_key


def expect(*rows: Row) -> dict[tuple[int, str], Row]:
    """What keyed() of a read should return when exactly these rows are stored."""
    return keyed(silver(*rows))


def sorted_rows(table: pa.Table | None) -> list[Row]:
    """Dead-letter rows in a stable order."""
    rows = [] if table is None else table.to_pylist()
    return sorted(
        rows, key=lambda r: (r["agency_id"], r["dt"], r["source"], r["line"], r["run_id"])
    )
