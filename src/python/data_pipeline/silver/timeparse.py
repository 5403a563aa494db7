"""Fast parsing of the workload's timestamp forms into UTC instants; canonical UTC formatting."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

MIN_EPOCH: Final = -62135596800
"""0001-01-01T00:00:00Z: the first instant the silver form (4-digit year) can name."""
MAX_EPOCH: Final = 253402300799
"""9999-12-31T23:59:59Z: the last such instant."""

_UNIX_ORDINAL: Final = 719163  # dt.date(1970, 1, 1).toordinal()
_CACHE_LIMIT: Final = 100_000  # memo tables are cleared past this, bounding hostile input

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_US_DAY = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4}")
_CLOCK = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2})?")
_MAX_EPOCH_DIGITS: Final = len(str(MAX_EPOCH))

# Parsing memoises the pieces that repeat across a file (a day, a clock reading, an offset):
# each piece is validated once, when it is learned, so a lookup hit is both parse and check.
# Offsets are strictly inside +-24h, as datetime.timezone requires.
_OFFSETS: Final[dict[str, int]] = {"Z": 0} | {
    f"{sign}{hours:02d}:{minutes:02d}": (1 if sign == "+" else -1) * (hours * 3600 + minutes * 60)
    for sign in "+-"
    for hours in range(24)
    for minutes in range(60)
}
_iso_days: dict[str, int] = {}  # "YYYY-MM-DD" -> days since 1970-01-01
_clock_seconds: dict[str, int] = {}  # "HH:MM:SS" or "HH:MM" -> second of the day
# (zone, "MM/DD/YYYY") -> (date, days since epoch, UTC offset in seconds when it is the same all
# day, None on a transition day)
_local_days: dict[tuple[dt.tzinfo, str], tuple[dt.date, int, int | None]] = {}

_day_prefixes: dict[int, str] = {}
# "HH:MM:SSZ" by second of the day; built on first use and published whole (one assignment), so
# threads formatting side by side never see a partly filled table.
_clock_faces: tuple[str, ...] = ()


def _remember(table: dict[Any, Any], key: Any, value: Any) -> None:
    if len(table) >= _CACHE_LIMIT:
        table.clear()
    table[key] = value


def _learn_iso_day(text: str) -> int | None:
    if _ISO_DAY.fullmatch(text) is None:
        return None
    try:
        days = dt.date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - _UNIX_ORDINAL
    except ValueError:
        return None
    _remember(_iso_days, text, days)
    return days


def _learn_clock(text: str) -> int | None:
    if _CLOCK.fullmatch(text) is None:
        return None
    hour, minute = int(text[0:2]), int(text[3:5])
    second = int(text[6:8]) if len(text) == 8 else 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    seconds = hour * 3600 + minute * 60 + second
    _clock_seconds[text] = seconds  # at most 86,400 + 1,440 keys
    return seconds


def _offset_seconds(moment: dt.datetime) -> int:
    offset = moment.utcoffset()
    if offset is None:  # only a broken tzinfo says so; the zones of agencies.csv never do
        raise ValueError(f"{moment.tzinfo!r} gives no UTC offset for {moment}")
    return offset.days * 86400 + offset.seconds


def _learn_local_day(key: tuple[dt.tzinfo, str]) -> tuple[dt.date, int, int | None] | None:
    zone, text = key
    if _US_DAY.fullmatch(text) is None:
        return None
    try:
        day = dt.date(int(text[6:10]), int(text[0:2]), int(text[3:5]))
        first = _offset_seconds(dt.datetime.combine(day, dt.time(0, 0), zone))
        last = _offset_seconds(dt.datetime.combine(day, dt.time(23, 59), zone))
    except (ValueError, OverflowError):
        return None
    learned = (day, day.toordinal() - _UNIX_ORDINAL, first if first == last else None)
    _remember(_local_days, key, learned)
    return learned


def parse_iso_us(text: str) -> int | None:
    """Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)`, else None.

    Impossible fields (Feb 30, hour 24, second 60, offset hour 24) are refused, never rolled over,
    and so are instants outside 0001-01-01..9999-12-31 UTC.
    """
    if len(text) < 20 or text[10] != "T":
        return None
    days = _iso_days.get(text[:10])
    if days is None and (days := _learn_iso_day(text[:10])) is None:
        return None
    clock = _clock_seconds.get(text[11:19])
    if clock is None and (clock := _learn_clock(text[11:19])) is None:
        return None
    micros = 0
    offset = _OFFSETS.get(text[19:])
    if offset is None:
        if text[19] != ".":
            return None
        if text[-1] == "Z":
            digits, offset = text[20:-1], 0
        else:
            digits, offset = text[20:-6], _OFFSETS.get(text[-6:])
        if offset is None or not 1 <= len(digits) <= 6 or not digits.isascii():
            return None
        if not digits.isdigit():
            return None
        micros = int(digits.ljust(6, "0"))
    seconds = days * 86400 + clock - offset
    if not MIN_EPOCH <= seconds <= MAX_EPOCH:
        return None
    return seconds * 1_000_000 + micros


def iso_day_number(text: str) -> int | None:
    """Days since 1970-01-01 of `YYYY-MM-DD` (a real date), else None: parse_iso_us's day."""
    days = _iso_days.get(text)
    return days if days is not None else _learn_iso_day(text)


def local_day(text: str, zone: dt.tzinfo) -> tuple[int, int | None] | None:
    """(days since 1970-01-01, the zone's UTC offset in seconds all that day, or None when the
    offset changes that day) of `MM/DD/YYYY`, else None: parse_local_minute's day."""
    learned = _local_days.get((zone, text))
    if learned is None and (learned := _learn_local_day((zone, text))) is None:
        return None
    return learned[1], learned[2]


def parse_local_minute(text: str, zone: dt.tzinfo) -> int | None:
    """Epoch seconds of `MM/DD/YYYY HH:MM` as wall time in zone (fold=0), else None."""
    if len(text) != 16 or text[10] != " ":
        return None
    key = (zone, text[:10])
    learned = _local_days.get(key)
    if learned is None and (learned := _learn_local_day(key)) is None:
        return None
    clock = _clock_seconds.get(text[11:])
    if clock is None and (clock := _learn_clock(text[11:])) is None:
        return None
    day, days, offset = learned
    if offset is None:  # the zone changes offset this day: ask it about this very minute
        wall = dt.time(clock // 3600, clock // 60 % 60)
        offset = _offset_seconds(dt.datetime.combine(day, wall, zone))
    seconds = days * 86400 + clock - offset
    return seconds if MIN_EPOCH <= seconds <= MAX_EPOCH else None


def parse_occurred_at(value: object, zone: dt.tzinfo) -> int | None:
    """Epoch seconds (sub-seconds truncated) of any accepted occurred_at form, else None.

    Forms: JSON int or all-ASCII-digit string = epoch seconds; `MM/DD/YYYY HH:MM` in zone;
    the ISO form of parse_iso_us. Strings are not trimmed: surrounding whitespace is an error.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value if MIN_EPOCH <= value <= MAX_EPOCH else None
    if not isinstance(value, str):
        return None
    if value.isascii() and value.isdigit():
        significant = value.lstrip("0")
        if len(significant) > _MAX_EPOCH_DIGITS:
            return None
        seconds = int(significant or "0")  # int(value) refuses 4,300+ digits, zeros included
        return seconds if seconds <= MAX_EPOCH else None
    if len(value) == 16 and value[2] == "/":  # the shape of MM/DD/YYYY HH:MM, not of ISO
        return parse_local_minute(value, zone)
    micros = parse_iso_us(value)
    return None if micros is None else micros // 1_000_000


def format_utc(seconds: int) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` of epoch seconds (MIN_EPOCH..MAX_EPOCH)."""
    day, second_of_day = divmod(seconds, 86400)
    prefix = _day_prefixes.get(day)
    if prefix is None:
        if len(_day_prefixes) > 100_000:  # bound the cache against adversarial spreads of days
            _day_prefixes.clear()
        prefix = dt.date.fromordinal(day + _UNIX_ORDINAL).isoformat() + "T"
        _day_prefixes[day] = prefix
    faces = _clock_faces or _build_clock_faces()
    return prefix + faces[second_of_day]


def _build_clock_faces() -> tuple[str, ...]:
    global _clock_faces
    _clock_faces = tuple(
        f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
    )
    return _clock_faces
