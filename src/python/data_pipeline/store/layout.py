"""Object-store key layout of bronze, silver and dead-letter data (ARCHITECTURE.md)."""

from __future__ import annotations

import datetime as dt
import re

from etl_core.errors import DataError

BRONZE_PREFIX = "bronze/"
SILVER_PREFIX = "silver/"
DEADLETTER_PREFIX = "deadletter/"

_PARTITION = re.compile(r"(?:^|/)agency_id=([0-9]+)/dt=([0-9]{4}-[0-9]{2}-[0-9]{2})/")


def bronze_key(agency_id: int, day: dt.date, part: int, *, gzip: bool = False) -> str:
    """bronze/agency_id=<id>/dt=<YYYY-MM-DD>/part-<n>.ndjson[.gz]."""
    suffix = ".ndjson.gz" if gzip else ".ndjson"
    return f"{BRONZE_PREFIX}{partition_path(agency_id, day.isoformat())}/part-{part}{suffix}"


def partition_path(agency_id: int, day: str) -> str:
    """agency_id=<id>/dt=<YYYY-MM-DD>: the partition part shared by bronze and silver keys."""
    return f"agency_id={agency_id}/dt={day}"


def relative_to_bronze(key: str) -> str:
    """The key without its leading bronze/ (dead-letter rows name sources this way)."""
    return key[len(BRONZE_PREFIX) :] if key.startswith(BRONZE_PREFIX) else key


def partition_of(key: str) -> tuple[int, str]:
    """(agency_id, dt) named by a bronze or silver key. Raises DataError if it names none."""
    match = _PARTITION.search(key)
    if match is None:
        raise DataError(f"{key}: not under agency_id=<id>/dt=<YYYY-MM-DD>/")
    try:
        dt.date.fromisoformat(match.group(2))
    except ValueError:
        raise DataError(f"{key}: dt={match.group(2)} is not a calendar date") from None
    return int(match.group(1)), match.group(2)
