"""The agencies reference table: the built-in reference agencies and the agencies.csv codec."""

from __future__ import annotations

import csv
import io
import zoneinfo
from collections.abc import Iterable, Mapping

import attrs
from etl_core.errors import DataError

CSV_HEADER = ("agency_id", "name", "state", "timezone")


@attrs.frozen
class Agency:
    """One row of agencies.csv."""

    agency_id: int
    name: str
    state: str
    timezone: str


@attrs.frozen
class _Seat:
    name: str
    state: str
    timezone: str
    lat: float
    lon: float


# Twenty US agencies; the zones cover no-DST (Phoenix, Honolulu, San Juan), far-west offsets
# (Anchorage, Honolulu) and the historically odd Indiana/Kentucky zones.
_SEATS = (
    _Seat("Los Angeles Police Department", "CA", "America/Los_Angeles", 34.052235, -118.243683),
    _Seat("Phoenix Police Department", "AZ", "America/Phoenix", 33.448376, -112.074036),
    _Seat("Honolulu Police Department", "HI", "Pacific/Honolulu", 21.306944, -157.858337),
    _Seat("Anchorage Police Department", "AK", "America/Anchorage", 61.218056, -149.900284),
    _Seat(
        "Indianapolis Metropolitan Police Department",
        "IN",
        "America/Indiana/Indianapolis",
        39.768402,
        -86.158066,
    ),
    _Seat("Chicago Police Department", "IL", "America/Chicago", 41.878113, -87.629799),
    _Seat("New York City Police Department", "NY", "America/New_York", 40.712776, -74.005974),
    _Seat("Houston Police Department", "TX", "America/Chicago", 29.760427, -95.369804),
    _Seat("Denver Police Department", "CO", "America/Denver", 39.739235, -104.990250),
    _Seat("Seattle Police Department", "WA", "America/Los_Angeles", 47.606209, -122.332069),
    _Seat("Detroit Police Department", "MI", "America/Detroit", 42.331429, -83.045753),
    _Seat("Boise Police Department", "ID", "America/Boise", 43.615021, -116.202316),
    _Seat(
        "Louisville Metro Police Department",
        "KY",
        "America/Kentucky/Louisville",
        38.252666,
        -85.758453,
    ),
    _Seat("Miami Police Department", "FL", "America/New_York", 25.761681, -80.191788),
    _Seat("Atlanta Police Department", "GA", "America/New_York", 33.748997, -84.387985),
    _Seat("Minneapolis Police Department", "MN", "America/Chicago", 44.977753, -93.265015),
    _Seat("Salt Lake City Police Department", "UT", "America/Denver", 40.760780, -111.891045),
    _Seat("Portland Police Bureau", "OR", "America/Los_Angeles", 45.515232, -122.678385),
    _Seat("Boston Police Department", "MA", "America/New_York", 42.360081, -71.058884),
    _Seat("San Juan Municipal Police", "PR", "America/Puerto_Rico", 18.465539, -66.105735),
)


def reference_agencies(count: int = len(_SEATS)) -> tuple[Agency, ...]:
    """Agencies 1..count; past the twenty built-in seats they repeat with a numbered name."""
    if count < 1:
        raise ValueError(f"agencies must be at least 1, got {count}")
    agencies = []
    for index in range(count):
        seat = _SEATS[index % len(_SEATS)]
        lap = index // len(_SEATS)
        name = seat.name if lap == 0 else f"{seat.name} {lap + 1}"
        agencies.append(Agency(index + 1, name, seat.state, seat.timezone))
    return tuple(agencies)


def seat_coordinates(agency_id: int) -> tuple[float, float]:
    """(lat, lon) around which the generator scatters an agency's locations."""
    seat = _SEATS[(agency_id - 1) % len(_SEATS)]
    return seat.lat, seat.lon


def agencies_csv(agencies: Iterable[Agency]) -> bytes:
    """agencies.csv bytes: header then one row per agency, LF line endings."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for agency in agencies:
        writer.writerow((agency.agency_id, agency.name, agency.state, agency.timezone))
    return out.getvalue().encode("utf-8")


def parse_agencies(body: bytes, *, source: str = "agencies.csv") -> Mapping[int, Agency]:
    """agency_id -> Agency from agencies.csv bytes. Raises DataError naming the bad line."""
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig")))
    header = next(reader, None)
    if header is None or tuple(column.strip() for column in header) != CSV_HEADER:
        raise DataError(f"{source}:1: expected header {','.join(CSV_HEADER)}, got {header!r}")
    agencies: dict[int, Agency] = {}
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(CSV_HEADER):
            raise DataError(f"{source}:{line_no}: expected 4 columns, got {row!r}")
        raw_id, name, state, timezone = (value.strip() for value in row)
        if not raw_id.isascii() or not raw_id.isdigit():
            raise DataError(f"{source}:{line_no}: agency_id is not an integer: {raw_id!r}")
        agency_id = int(raw_id)
        if agency_id in agencies:
            raise DataError(f"{source}:{line_no}: duplicate agency_id {agency_id}")
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise DataError(f"{source}:{line_no}: unknown timezone {timezone!r}") from None
        agencies[agency_id] = Agency(agency_id, name, state, timezone)
    return agencies
