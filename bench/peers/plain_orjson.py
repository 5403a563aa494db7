"""Peer: WORKLOAD.md's bronze -> silver as plain single-process Python with orjson.

Written straight from the spec, independently of data_pipeline (ideas from the e2e reference
transform): read every bronze file, validate each line in spec order, normalise, dedupe by
record_id keeping the greatest updated_at, write NDJSON. No caches, no tricks. One liberty: a
line orjson refuses is invalid_json (RFC 8259 also allows numbers beyond double range, which
orjson rejects; the generator never writes them).

Run: python -m peers.plain_orjson STORE_DIR OUT_DIR   (prints the counts as JSON)
"""

from __future__ import annotations

import csv
import gzip
import re
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

WS = " \t\r\n"
RECORD_TYPES = {"incident", "complaint", "use_of_force", "commendation"}
STATUSES = {"open", "closed", "pending"}
ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)", re.ASCII
)
LOCAL = re.compile(r"(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2})", re.ASCII)
DIGITS = re.compile(r"\d+", re.ASCII)
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
WS_RUN = re.compile(r"[ \t\r\n]+")
DAY = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})/")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Invalid(Exception):
    """The row goes to dead-letter with this reason."""


def parse_iso(value: Any) -> datetime | None:
    match = ISO.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0").ljust(6, "0"))
    zone = match.group(8)
    offset = timedelta(0)
    if zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        offset = -offset if zone[0] == "-" else offset
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, timezone(offset))
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def parse_occurred(value: Any, zone: ZoneInfo) -> datetime | None:
    if isinstance(value, str) and DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return EPOCH + timedelta(seconds=value)
        except OverflowError:
            return None
    match = LOCAL.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        month, day, year, hour, minute = (int(g) for g in match.groups())
        try:
            return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)
        except (ValueError, OverflowError):
            return None
    return parse_iso(value)


def utc_text(moment: datetime) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def number(value: Any) -> float | None:
    if isinstance(value, str):
        text = value.strip(WS)
        if not NUMBER.fullmatch(text):
            return None
        result = float(text)
    elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            result = float(value)
        except OverflowError:
            return None
    else:
        return None
    return result if result - result == 0.0 else None  # refuses inf and nan


def name_part(text: str) -> str | None:
    text = WS_RUN.sub(" ", text.strip(WS))
    return text.lower().title() if text else None


def enum(value: Any, allowed: set[str], reason: str) -> str:
    if not isinstance(value, str) or value.strip(WS).lower() not in allowed:
        raise Invalid(reason)
    return value.strip(WS).lower()


def silver_row(
    line: bytes, day: str, agencies: dict[int, dict[str, Any]]
) -> tuple[dict[str, Any], datetime]:
    """(the silver row, its updated_at instant); raises Invalid with the first failing reason."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise Invalid("invalid_json") from None
    if not isinstance(record, dict):
        raise Invalid("invalid_json")
    record_id = record.get("record_id")
    if not isinstance(record_id, str) or not record_id.strip(WS):
        raise Invalid("missing_record_id")
    agency_id = record.get("agency_id")
    if not isinstance(agency_id, int) or isinstance(agency_id, bool) or agency_id not in agencies:
        raise Invalid("unknown_agency")
    agency = agencies[agency_id]
    occurred = parse_occurred(record.get("occurred_at"), agency["zone"])
    if occurred is None or not 1 <= occurred.year <= 9999:
        raise Invalid("bad_occurred_at")
    updated = parse_iso(record.get("updated_at"))
    if updated is None:
        raise Invalid("bad_updated_at")
    record_type = enum(record.get("record_type"), RECORD_TYPES, "bad_record_type")
    status = enum(record.get("status"), STATUSES, "bad_status")
    location = record.get("location")
    if not isinstance(location, dict):
        raise Invalid("bad_location")
    lat, lon = number(location.get("lat")), number(location.get("lon"))
    if lat is None or lon is None:
        raise Invalid("bad_location")
    if not -90 <= lat <= 90:
        raise Invalid("lat_out_of_range")
    if not -180 <= lon <= 180:
        raise Invalid("lon_out_of_range")
    amount = record.get("amount")
    if amount is not None:
        amount = number(amount.strip(WS).replace(",", "") if isinstance(amount, str) else amount)
        if amount is None:
            raise Invalid("bad_amount")
    officer = record.get("officer")
    badge = last = first = None
    if isinstance(officer, dict):
        if isinstance(officer.get("badge"), str):
            badge = officer["badge"].strip(WS).lstrip("0") or "0"
        if isinstance(officer.get("name"), str):
            head, comma, tail = officer["name"].partition(",")
            last, first = name_part(head), (name_part(tail) if comma else None)
    tags = record.get("tags")
    row = {
        "record_id": record_id.strip(WS),
        "agency_id": agency_id,
        "dt": day,
        "agency_name": agency["name"],
        "agency_state": agency["state"],
        "record_type": record_type,
        "status": status,
        "occurred_at": utc_text(occurred),
        "updated_at": utc_text(updated),
        "officer_badge": badge,
        "officer_last": last,
        "officer_first": first,
        "lat": lat,
        "lon": lon,
        "amount": amount,
        "tags": (
            [t.strip(WS).lower() for t in tags if isinstance(t, str)]
            if isinstance(tags, list)
            else []
        ),
    }
    return row, updated


def write_ndjson(path: Path, rows: list[dict[str, Any]] | list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        for row in rows:
            file.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


def transform(store: Path, out: Path) -> dict[str, int]:
    """Promote every bronze file under store/bronze/ into out/silver and out/deadletter."""
    with open(store / "agencies.csv", newline="", encoding="utf-8") as file:
        agencies = {
            int(row["agency_id"]): {**row, "zone": ZoneInfo(row["timezone"])}
            for row in csv.DictReader(file)
        }
    kept: dict[str, tuple[datetime, str, int, dict[str, Any]]] = {}
    dead: list[dict[str, str]] = []
    rows_in = valid = 0
    for path in sorted((store / "bronze").rglob("*.ndjson*")):
        source = path.relative_to(store / "bronze").as_posix()
        day_match = DAY.search(source)
        assert day_match is not None, source
        body = path.read_bytes()
        if path.name.endswith(".gz"):
            body = gzip.decompress(body)
        for line_no, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip(WS.encode()):
                continue
            rows_in += 1
            try:
                row, updated = silver_row(line, day_match.group(1), agencies)
            except Invalid as invalid:
                raw = line.decode("utf-8", errors="replace")
                dead.append({"reason": str(invalid), "source": source, "raw": raw})
                continue
            valid += 1
            current = kept.get(row["record_id"])
            if current is None or (updated, source, line_no) > current[:3]:
                kept[row["record_id"]] = (updated, source, line_no, row)
    partitions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, _, _, row in kept.values():
        partitions[f"agency_id={row['agency_id']}/dt={row['dt']}"].append(row)
    for partition, rows in partitions.items():
        write_ndjson(out / "silver" / partition / "part-0.ndjson", rows)
    write_ndjson(out / "deadletter" / "part-0.ndjson", dead)
    return {
        "rows_in": rows_in,
        "silver_rows": len(kept),
        "duplicates": valid - len(kept),
        "dead_letter_rows": len(dead),
    }


if __name__ == "__main__":
    counts = transform(Path(sys.argv[1]), Path(sys.argv[2]))
    sys.stdout.write(orjson.dumps(counts).decode() + "\n")
