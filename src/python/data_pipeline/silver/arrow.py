"""The silver and dead-letter tables' Arrow schemas (WORKLOAD.md "Tables") and the builders that
turn a run's surviving rows and dead letters into record batches to commit."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from etl_core.model import DeadLetter

_TIMESTAMP: Final = pa.timestamp("us", tz="UTC")

SILVER_SCHEMA: Final = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("agency_id", pa.int64(), nullable=False),
        pa.field("dt", pa.date32(), nullable=False),
        pa.field("agency_name", pa.string()),
        pa.field("agency_state", pa.string()),
        pa.field("record_type", pa.string()),
        pa.field("status", pa.string()),
        pa.field("occurred_at", _TIMESTAMP),
        pa.field("updated_at", _TIMESTAMP),
        pa.field("officer_badge", pa.string()),
        pa.field("officer_last", pa.string()),
        pa.field("officer_first", pa.string()),
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("amount", pa.float64()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("_source", pa.string()),
        pa.field("_line", pa.int64()),
        pa.field("_run_id", pa.string()),
    ]
)

DEADLETTER_SCHEMA: Final = pa.schema(
    [
        pa.field("agency_id", pa.int64(), nullable=False),
        pa.field("dt", pa.date32(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("run_id", pa.string()),
        # The line's exact bytes where raw cannot give them back (not UTF-8); else null. Added
        # after the first release: the adapter adds it to a table created without it.
        pa.field("raw_bytes", pa.binary()),
    ]
)

# The JSON silver row (validate.py) parsed as-is: dt is text there, cast to date32 after.
_JSON_SCHEMA: Final = pa.schema(
    [
        field if field.name != "dt" else pa.field("dt", pa.string())
        for field in SILVER_SCHEMA
        if not field.name.startswith("_")
    ]
)


NAMES: Final = pa.dictionary(pa.int32(), pa.string())
"""The agency's name and state while rows wait for dedupe: an index a row, not a copy."""

VALID_SCHEMA: Final = pa.schema(
    [
        pa.field(field.name, NAMES) if field.name in ("agency_name", "agency_state") else field
        for field in SILVER_SCHEMA
        if not field.name.startswith("_")
    ]
    + [pa.field("_updated_us", pa.int64(), nullable=False), pa.field("_line", pa.int64())]
)
"""One bronze file's valid rows before dedupe: the silver values, updated_at in epoch
microseconds (the dedupe order) and the 1-based line."""


def valid_table(
    rows: Sequence[bytes], updated_us: Sequence[int], lines: Sequence[int], day: str
) -> pa.Table:
    """The VALID_SCHEMA table of silver rows as JSON objects (validate.py's ValidRow.silver)."""
    if not rows:
        return VALID_SCHEMA.empty_table()
    table = _read_silver_json(rows)
    table = table.set_column(
        table.schema.get_field_index("dt"), "dt", pa.repeat(dt.date.fromisoformat(day), len(rows))
    )
    table = table.append_column("_updated_us", pa.array(updated_us, pa.int64()))
    table = table.append_column("_line", pa.array(lines, pa.int64()))
    return table.select(VALID_SCHEMA.names).cast(VALID_SCHEMA)


def silver_from_valid(table: pa.Table, run_id: str) -> pa.Table:
    """The silver table of deduped valid rows carrying `_source` (SILVER_SCHEMA, with run_id)."""
    table = table.append_column("_run_id", pa.repeat(run_id, table.num_rows).cast(pa.string()))
    return table.select(SILVER_SCHEMA.names).cast(SILVER_SCHEMA)


def _read_silver_json(rows: Sequence[bytes]) -> pa.Table:
    body = b"\n".join(rows)
    return pa_json.read_json(
        io.BytesIO(body),
        read_options=pa_json.ReadOptions(block_size=max(1 << 20, len(body) + 1)),
        parse_options=pa_json.ParseOptions(
            explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="error"
        ),
    )


def silver_batch(
    rows: Sequence[bytes], sources: Sequence[str], lines: Sequence[int], run_id: str
) -> pa.Table:
    """The silver table of rows (one JSON object each, as validate.py builds them) with their
    lineage: the bronze key relative to bronze/, the 1-based line, the run writing them."""
    if not rows:
        return SILVER_SCHEMA.empty_table()
    table = _read_silver_json(rows)
    table = table.set_column(
        table.schema.get_field_index("dt"), "dt", pc.cast(table["dt"], pa.date32())
    )
    table = table.append_column("_source", pa.array(sources, pa.string()))
    table = table.append_column("_line", pa.array(lines, pa.int64()))
    table = table.append_column("_run_id", pa.repeat(run_id, table.num_rows).cast(pa.string()))
    return table.select(SILVER_SCHEMA.names).cast(SILVER_SCHEMA)


def dead_letter_batch(
    agency_id: int, rows: Sequence[tuple[dt.date, DeadLetter]], run_id: str
) -> pa.Table:
    """The dead-letter table of (dt of the source file, dead letter) rows."""
    return pa.Table.from_pydict(
        {
            "agency_id": [agency_id] * len(rows),
            "dt": [day for day, _ in rows],
            "reason": [dead.reason for _, dead in rows],
            "source": [dead.source for _, dead in rows],
            "line": [dead.line for _, dead in rows],
            "raw": [dead.raw for _, dead in rows],
            "detail": [dead.detail for _, dead in rows],
            "run_id": [run_id] * len(rows),
            "raw_bytes": [dead.raw_bytes for _, dead in rows],
        },
        schema=DEADLETTER_SCHEMA,
    )
