"""Independent, plain reference of WORKLOAD.md's bronze -> silver transform, for tests to compare.

Written straight from the spec with json, re and datetime only; it shares no code with
data_pipeline on purpose, and favours obviousness over speed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

TRIM = " \t\r\n"
RECORD_TYPES = {"incident", "complaint", "use_of_force", "commendation"}
STATUSES = {"open", "closed", "pending"}
UTC = UTC

ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
LOCAL_RE = re.compile(r"(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2})", re.ASCII)
DIGITS_RE = re.compile(r"\d+", re.ASCII)
NUMBER_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
DT_RE = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/")


class Invalid(Exception):
    """A row fails validation with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ReferenceResult:
    """Silver rows by record_id, dead letters in input order, and the counts."""

    silver: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    rows_in: int = 0
    duplicates: int = 0


def read_agencies(body: bytes) -> dict[int, dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    return {int(row["agency_id"]): row for row in rows}


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def parse_object(line: bytes) -> dict[str, Any]:
    try:
        text = line.decode("utf-8")
        value = json.loads(text, parse_constant=_no_constants)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogates cannot be written
    except (ValueError, RecursionError):
        raise Invalid("invalid_json") from None
    if not isinstance(value, dict):
        raise Invalid("invalid_json")
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def from_epoch(seconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def parse_iso(value: Any) -> datetime | None:
    """The UTC instant of an ISO timestamp with required offset, with its microseconds."""
    if not isinstance(value, str):
        return None
    m = ISO_RE.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0"))
    if m.group(8) == "Z":
        offset = timedelta(0)
    else:
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if m.group(9) == "-":
            offset = -offset
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def parse_occurred(value: Any, zone: ZoneInfo) -> datetime | None:
    try:
        if is_int(value):
            return from_epoch(value)
        if isinstance(value, str) and DIGITS_RE.fullmatch(value):
            return from_epoch(int(value))
    except (OverflowError, ValueError):
        return None
    if isinstance(value, str):
        m = LOCAL_RE.fullmatch(value)
        if m is not None:
            month, day, year, hour, minute = (int(g) for g in m.groups())
            try:
                local = datetime(year, month, day, hour, minute, tzinfo=zone, fold=0)
                return local.astimezone(UTC)
            except (ValueError, OverflowError):
                return None
    return parse_iso(value)


def utc_text(moment: datetime) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def to_number(value: Any) -> float | None:
    if isinstance(value, str):
        text = value.strip(TRIM)
        if not NUMBER_RE.fullmatch(text):
            return None
        number = float(text)
    elif isinstance(value, float) or is_int(value):
        try:
            number = float(value)
        except OverflowError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def clean_name_part(part: str) -> str | None:
    words = [w for w in re.split(r"[ \t\r\n]+", part) if w]
    return " ".join(words).lower().title() if words else None


def officer_fields(officer: Any) -> tuple[str | None, str | None, str | None]:
    if not isinstance(officer, dict):
        return None, None, None
    badge = officer.get("badge")
    if isinstance(badge, str):
        badge = re.sub(r"^0+", "", badge.strip(TRIM))
        if badge == "":
            badge = "0"
    else:
        badge = None
    name = officer.get("name")
    if not isinstance(name, str):
        return badge, None, None
    comma = name.find(",")
    if comma < 0:
        return badge, clean_name_part(name), None
    return badge, clean_name_part(name[:comma]), clean_name_part(name[comma + 1 :])


def to_silver(
    record: dict[str, Any], day: str, agencies: Mapping[int, dict[str, str]]
) -> dict[str, Any]:
    record_id = record.get("record_id")
    if not isinstance(record_id, str) or record_id.strip(TRIM) == "":
        raise Invalid("missing_record_id")
    agency_id = record.get("agency_id")
    if not isinstance(agency_id, int) or isinstance(agency_id, bool) or agency_id not in agencies:
        raise Invalid("unknown_agency")
    agency = agencies[agency_id]
    occurred = parse_occurred(record.get("occurred_at"), ZoneInfo(agency["timezone"]))
    if occurred is None:
        raise Invalid("bad_occurred_at")
    updated = parse_iso(record.get("updated_at"))
    if updated is None:
        raise Invalid("bad_updated_at")
    record_type = record.get("record_type")
    if not isinstance(record_type, str) or record_type.strip(TRIM).lower() not in RECORD_TYPES:
        raise Invalid("bad_record_type")
    status = record.get("status")
    if not isinstance(status, str) or status.strip(TRIM).lower() not in STATUSES:
        raise Invalid("bad_status")
    location = record.get("location")
    if not isinstance(location, dict):
        raise Invalid("bad_location")
    lat, lon = to_number(location.get("lat")), to_number(location.get("lon"))
    if lat is None or lon is None:
        raise Invalid("bad_location")
    if lat < -90 or lat > 90:
        raise Invalid("lat_out_of_range")
    if lon < -180 or lon > 180:
        raise Invalid("lon_out_of_range")
    amount = record.get("amount")
    if amount is not None:
        amount = to_number(
            amount.strip(TRIM).replace(",", "") if isinstance(amount, str) else amount
        )
        if amount is None:
            raise Invalid("bad_amount")
    badge, last, first = officer_fields(record.get("officer"))
    raw_tags = record.get("tags")
    tags = []
    if isinstance(raw_tags, list):
        tags = [t.strip(TRIM).lower() for t in raw_tags if isinstance(t, str)]
    return {
        "record_id": record_id.strip(TRIM),
        "agency_id": agency_id,
        "dt": day,
        "agency_name": agency["name"],
        "agency_state": agency["state"],
        "record_type": record_type.strip(TRIM).lower(),
        "status": status.strip(TRIM).lower(),
        "occurred_at": utc_text(occurred),
        "updated_at": utc_text(updated),
        "officer_badge": badge,
        "officer_last": last,
        "officer_first": first,
        "lat": lat,
        "lon": lon,
        "amount": amount,
        "tags": tags,
        "_updated": updated,
    }


def reference_transform(bronze: Mapping[str, bytes], agencies_csv: bytes) -> ReferenceResult:
    """Transform every bronze object (key -> body, keys under bronze/) the way WORKLOAD.md says."""
    agencies = read_agencies(agencies_csv)
    result = ReferenceResult()
    candidates: list[tuple[str, datetime, str, int, dict[str, Any]]] = []
    for key, body in bronze.items():
        source = key.removeprefix("bronze/")
        day_match = DT_RE.search("/" + source)
        assert day_match is not None, key
        text = gzip.decompress(body) if key.endswith(".gz") else body
        for number, line in enumerate(text.split(b"\n"), start=1):
            if line.strip(TRIM.encode()) == b"":
                continue
            result.rows_in += 1
            try:
                row = to_silver(parse_object(line), day_match.group(1), agencies)
            except Invalid as invalid:
                raw = line.decode("utf-8", errors="replace")
                result.dead_letters.append({"reason": invalid.reason, "source": source, "raw": raw})
                continue
            candidates.append((row["record_id"], row["_updated"], source, number, row))
    candidates.sort(key=lambda c: c[:4])
    for record_id, _, _, _, row in candidates:
        if record_id in result.silver:
            result.duplicates += 1
        del row["_updated"]
        result.silver[record_id] = row  # sorted ascending: the last one kept is the greatest
    return result
