"""The per-line hot path: parse one bronze line, validate it in spec order, build its silver row."""

from __future__ import annotations

import datetime as dt
import functools
import json
import zoneinfo
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import attrs
import orjson

from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.normalise import (
    badge,
    coordinate,
    enum_value,
    number_from_json,
    number_from_text,
    officer_name,
    tags,
)
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.schema import RECORD_TYPES, STATUSES, WHITESPACE
from data_pipeline.silver.timeparse import format_utc, parse_iso_us, parse_occurred_at

_RECORD_TYPES: Final = frozenset(RECORD_TYPES)
_STATUSES: Final = frozenset(STATUSES)
_record_types: dict[str, str] = {}  # raw -> normalised, for the few messy spellings that recur
_statuses: dict[str, str] = {}


class ValidRow(NamedTuple):
    """A valid line, reduced to what dedupe and publication need (compact and picklable)."""

    record_id: str
    updated_us: int  # updated_at as microseconds since the epoch: the dedupe order
    line_no: int
    agency_id: int
    silver: bytes  # the silver row as one JSON object, no newline


@attrs.frozen(slots=True)
class Rejected:
    """A line that failed validation: the first failing reason and the offending value."""

    reason: DeadLetterReason
    value: str


@attrs.frozen
class AgencyInfo:
    """What the hot path needs of one agency."""

    name: str
    state: str
    zone: dt.tzinfo


def agency_infos(agencies: Mapping[int, Agency]) -> dict[int, AgencyInfo]:
    """agency_id -> AgencyInfo. Raises zoneinfo.ZoneInfoNotFoundError for an unknown zone."""
    return dict(_infos(tuple(agencies.items())))


@functools.lru_cache(maxsize=4)
def _infos(agencies: tuple[tuple[int, Agency], ...]) -> tuple[tuple[int, AgencyInfo], ...]:
    # Cached: every file of a run has the same agencies, and ZoneInfo keeps only 8 zones loaded
    # (20 agencies' zones were read from disk again for every file).
    return tuple(
        (agency_id, AgencyInfo(agency.name, agency.state, zoneinfo.ZoneInfo(agency.timezone)))
        for agency_id, agency in agencies
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object on the line, or None. orjson first; the strict standard parser decides the
    rare lines orjson refuses but RFC 8259 allows (numbers beyond double range)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
            # Lone surrogate escapes parse but can never be written out as UTF-8 again.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):  # UnicodeError and JSONDecodeError are ValueErrors
            return None
    return value if isinstance(value, dict) else None


def validate_line(
    line: bytes, line_no: int, day: str, agencies: Mapping[int, AgencyInfo]
) -> ValidRow | Rejected:
    """Validate one non-blank bronze line in WORKLOAD.md order; the first failure wins."""
    record = _load_object(line)
    if record is None:
        return Rejected(DeadLetterReason.INVALID_JSON, "")
    get = record.get

    record_id = get("record_id")
    if not isinstance(record_id, str) or not (record_id := record_id.strip(WHITESPACE)):
        return Rejected(DeadLetterReason.MISSING_RECORD_ID, repr(get("record_id")))

    agency_id = get("agency_id")
    if (
        not isinstance(agency_id, int)
        or isinstance(agency_id, bool)
        or (agency := agencies.get(agency_id)) is None
    ):
        return Rejected(DeadLetterReason.UNKNOWN_AGENCY, repr(agency_id))

    occurred_at = parse_occurred_at(get("occurred_at"), agency.zone)
    if occurred_at is None:
        return Rejected(DeadLetterReason.BAD_OCCURRED_AT, repr(get("occurred_at")))

    updated_raw = get("updated_at")
    if not isinstance(updated_raw, str) or (updated_us := parse_iso_us(updated_raw)) is None:
        return Rejected(DeadLetterReason.BAD_UPDATED_AT, repr(updated_raw))

    record_type = enum_value(get("record_type"), _RECORD_TYPES, _record_types)
    if record_type is None:
        return Rejected(DeadLetterReason.BAD_RECORD_TYPE, repr(get("record_type")))

    status = enum_value(get("status"), _STATUSES, _statuses)
    if status is None:
        return Rejected(DeadLetterReason.BAD_STATUS, repr(get("status")))

    location = get("location")
    if not isinstance(location, dict):
        return Rejected(DeadLetterReason.BAD_LOCATION, repr(location))
    lat = coordinate(location.get("lat"))
    lon = coordinate(location.get("lon"))
    if lat is None or lon is None:
        return Rejected(DeadLetterReason.BAD_LOCATION, repr(location))
    if not -90.0 <= lat <= 90.0:
        return Rejected(DeadLetterReason.LAT_OUT_OF_RANGE, repr(location.get("lat")))
    if not -180.0 <= lon <= 180.0:
        return Rejected(DeadLetterReason.LON_OUT_OF_RANGE, repr(location.get("lon")))

    amount = get("amount")
    if amount is not None:
        if isinstance(amount, str):
            amount = number_from_text(amount.strip(WHITESPACE).replace(",", ""))
        else:
            amount = number_from_json(amount)
        if amount is None:
            return Rejected(DeadLetterReason.BAD_AMOUNT, repr(get("amount")))

    officer = get("officer")
    if isinstance(officer, dict):
        officer_badge = badge(officer.get("badge"))
        officer_last, officer_first = officer_name(officer.get("name"))
    else:
        officer_badge = officer_last = officer_first = None

    # A canonical UTC updated_at (the generator's only form) is already its own silver value.
    canonical = len(updated_raw) == 20
    updated_at = updated_raw if canonical else format_utc(updated_us // 1_000_000)

    # orjson hands back its 4 KiB working buffer; the copy keeps the deduper's rows exact-size.
    silver = orjson.dumps(
        {
            "record_id": record_id,
            "agency_id": agency_id,
            "dt": day,
            "agency_name": agency.name,
            "agency_state": agency.state,
            "record_type": record_type,
            "status": status,
            "occurred_at": format_utc(occurred_at),
            "updated_at": updated_at,
            "officer_badge": officer_badge,
            "officer_last": officer_last,
            "officer_first": officer_first,
            "lat": lat,
            "lon": lon,
            "amount": amount,
            "tags": tags(get("tags")),
        }
    )
    return ValidRow(record_id, updated_us, line_no, agency_id, bytes(memoryview(silver)))
