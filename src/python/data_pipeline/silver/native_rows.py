"""The native scanner's finished rows (native_scan.ScannedRows) as the columnar transform's
table: agency names and enums looked up, local occurred_at times placed in their agency's zone.

A local time's day is resolved once per distinct (agency, day) by timeparse.local_day, as the
kernels of columnar.py do; a row whose day is impossible (Feb 30), falls on one of its zone's
transition days, or lands outside the silver range is handed back for the per-row reference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.silver.native_scan import ScannedRows
from data_pipeline.silver.timeparse import MAX_EPOCH, MIN_EPOCH, local_day

_TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
_DAY_KEY: Final = 100_000_000  # agency position * _DAY_KEY + YYYYMMDD: one (agency, day) key


def rows_table(
    rows: ScannedRows,
    agency_ids: Sequence[int],
    names: Sequence[str],
    states: Sequence[str],
    zones: Mapping[int, dt.tzinfo],
    record_types: Sequence[str],
    statuses: Sequence[str],
) -> tuple[pa.Table, pa.Array]:
    """(the rows' silver values as columnar.validate_fields gives them, with `_line` for its
    `_index`; the line numbers of the rows handed back to the reference). The agencies and
    enums are those the rows were scanned against, in the same order."""
    occurred, placed = _occurred(rows, agency_ids, zones)
    position = rows.agency
    table = pa.table(
        {
            "record_id": rows.record_id,
            "agency_id": pc.take(pa.array(agency_ids, pa.int64()), position),
            "agency_name": pa.DictionaryArray.from_arrays(position, pa.array(names, pa.string())),
            "agency_state": pa.DictionaryArray.from_arrays(position, pa.array(states, pa.string())),
            "record_type": pc.take(pa.array(record_types, pa.string()), rows.record_type),
            "status": pc.take(pa.array(statuses, pa.string()), rows.status),
            "occurred_at": _timestamp(occurred),
            "updated_at": _timestamp(rows.updated_seconds),
            "officer_badge": rows.officer_badge,
            "officer_last": rows.officer_last,
            "officer_first": rows.officer_first,
            "lat": rows.lat,
            "lon": rows.lon,
            "amount": rows.amount,
            "tags": rows.tags,
            "_updated_us": pc.add(
                pc.multiply(rows.updated_seconds, 1_000_000), rows.updated_micros
            ),
            "_line": rows.line_numbers,
        }
    )
    if placed is None:
        return table, pa.array([], pa.int64())
    return table.filter(placed), rows.line_numbers.filter(pc.invert(placed))


def _occurred(
    rows: ScannedRows, agency_ids: Sequence[int], zones: Mapping[int, dt.tzinfo]
) -> tuple[pa.Array, pa.Array | None]:
    """(occurred_at in epoch seconds, where it could be placed; None: every row could)."""
    local = pc.not_equal(rows.local_day, -1)
    if not pc.any(local).as_py():
        return rows.occurred, None
    key = pc.if_else(
        local, pc.add(pc.multiply(pc.cast(rows.agency, pa.int64()), _DAY_KEY), rows.local_day), -1
    )
    distinct = pc.unique(key)
    learned = [_learn(k, agency_ids, zones) for k in distinct.to_pylist()]
    index = pc.index_in(key, distinct)
    days = pc.take(pa.array([d and d[0] for d in learned], pa.int64()), index)
    offset = pc.take(pa.array([d and d[1] for d in learned], pa.int64()), index)
    wall = pc.add(pc.multiply(days, 86400), rows.occurred)
    seconds = pc.if_else(local, pc.subtract(wall, offset), rows.occurred)
    in_range = pc.and_(pc.greater_equal(seconds, MIN_EPOCH), pc.less_equal(seconds, MAX_EPOCH))
    return seconds, pc.fill_null(in_range, False)


def _learn(
    key: int, agency_ids: Sequence[int], zones: Mapping[int, dt.tzinfo]
) -> tuple[int, int | None] | None:
    """(days since 1970-01-01, the zone's offset all that day or None) of a (agency, day) key;
    (0, 0) for the rows that are not local (key -1), None for an impossible day."""
    if key < 0:
        return 0, 0
    position, ymd = divmod(key, _DAY_KEY)
    year, month_day = divmod(ymd, 10_000)
    month, day = divmod(month_day, 100)
    return local_day(f"{month:02d}/{day:02d}/{year:04d}", zones[agency_ids[position]])


def _timestamp(seconds: pa.Array) -> pa.Array:
    return pc.cast(pc.multiply(seconds, 1_000_000), _TIMESTAMP)
