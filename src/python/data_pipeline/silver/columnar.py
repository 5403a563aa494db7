"""The columnar hot path of bronze -> silver: a file's parsed lines validated and normalised with
Arrow kernels, a column at a time, into the rows silver is merged from.

validate.validate_line is the reference. This path accepts a row only when every field has a
shape it decides exactly; any other row, and every row that fails a check here, is handed back
for validate_line to decide. So a dead letter's reason and offending value, and the order the
reasons are tested in, are always the reference's own, and this path only has to be exact on
the rows it accepts. Decided here (WORKLOAD.md "Transform"):

- record_id: a JSON string, trimmed by Arrow's utf8_trim of " \\t\\r\\n", non-empty.
- agency_id: a JSON int listed in agencies.csv.
- occurred_at: a JSON int in range; an ASCII-digit string; `MM/DD/YYYY HH:MM` on a day when the
  agency's zone keeps one UTC offset all day (rows on transition days go to the reference); the
  ISO form with offset. updated_at: the ISO form.
- lat, lon, amount: JSON numbers (not bools), or strings in the plain decimal form after trim
  (and, for amount, after removing ","), cast by Arrow, correctly rounded as float() is.
- record_type and status: trim + lower of ASCII text (other text goes to the reference, whose
  Unicode case rules are Python's); the badge: trim, strip leading zeros, "0" when empty.
- Per distinct value of the file, by the reference's own Python functions, mapped back by index:
  the days of ISO and local timestamps (impossible dates, zones), the officer's name
  (str.title()), and tag elements (Unicode case rules stay Python's).

Per-row Python remains in pulling each field out of the parsed objects (type checks included),
and in the reference for the rows handed back: lines that are not a JSON object orjson parses,
rows with a field of an unexpected type or value, local times on a zone's transition days, and
the tags of a file where some row's tags are not a list of strings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.silver.normalise import officer_name, tags
from data_pipeline.silver.schema import RECORD_TYPES, STATUSES, WHITESPACE
from data_pipeline.silver.timeparse import MAX_EPOCH, MIN_EPOCH, iso_day_number, local_day

_NUMBER: Final = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_ISO: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_FRACTION: Final = r"^.{19}\.(?P<digits>[0-9]{1,6})"
_LOCAL: Final = r"^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$"
_DIGITS: Final = r"^[0-9]+$"
_MAX_EPOCH_DIGITS: Final = len(str(MAX_EPOCH))
# Stand-ins for rows whose text has another shape, so every slice below casts; such rows are
# never accepted by the kernel that uses the stand-in.
_ISO_FILLER: Final = "1970-01-01T00:00:00Z"
_LOCAL_FILLER: Final = "01/01/1970 00:00"
_TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
_TAGS: Final = pa.list_(pa.string())
_EMPTY: Final[dict[str, Any]] = {}
_TOP_LEVEL: Final = (
    "record_id", "agency_id", "occurred_at", "updated_at", "record_type", "status", "location",
    "amount", "officer", "tags",
)  # fmt: skip
# How many leading rows _fields looks at for the key order most rows share.
_ORDER_PROBE: Final = 16


def validate_objects(
    objects: Sequence[Any],
    agency_ids: Sequence[int],
    names: Sequence[str],
    states: Sequence[str],
    zones: Mapping[int, dt.tzinfo],
) -> tuple[pa.Table, pa.Array]:
    """(the accepted rows' silver values, the accepted mask over objects).

    objects are the parsed lines (anything orjson returned); agency_ids/names/states list the
    agencies of agencies.csv side by side, zones maps their ids to time zones. The table has the
    silver data columns but dt, plus `_updated_us` (updated_at in epoch microseconds, the dedupe
    order) and `_index` (the row's index in objects). Rows not accepted are left for the reference.
    """
    is_object = [isinstance(value, dict) for value in objects]
    if not all(is_object):
        objects = [value if isinstance(value, dict) else {} for value in objects]
    get = _fields(objects, _TOP_LEVEL)

    record_id = pc.utf8_trim(_strings(get("record_id")), WHITESPACE)
    ok = _all(pa.array(is_object, pa.bool_()), pc.greater(pc.utf8_length(record_id), 0))

    agency = _ints(get("agency_id"))
    known = pa.array(agency_ids, pa.int64())
    position = pc.index_in(agency, known)
    ok = _all(ok, pc.is_valid(position))

    occurred_ok, occurred = _occurred(get("occurred_at"), agency, zones)
    updated_ok, updated_seconds, updated_micros = _iso(_strings(get("updated_at")))
    record_type = _enum(_strings(get("record_type")), RECORD_TYPES)
    status = _enum(_strings(get("status")), STATUSES)
    ok = _all(ok, occurred_ok, updated_ok, pc.is_valid(record_type), pc.is_valid(status))

    raw_locations = get("location")
    is_location = [isinstance(value, dict) for value in raw_locations]
    locations = _fields(_objects(raw_locations), ("lat", "lon"))
    lat_ok, lat = _number(locations("lat"), strip_commas=False)
    lon_ok, lon = _number(locations("lon"), strip_commas=False)
    ok = _all(
        ok,
        pa.array(is_location, pa.bool_()),
        lat_ok,
        lon_ok,
        pc.fill_null(pc.and_(pc.greater_equal(lat, -90.0), pc.less_equal(lat, 90.0)), False),
        pc.fill_null(pc.and_(pc.greater_equal(lon, -180.0), pc.less_equal(lon, 180.0)), False),
    )
    amount_raw = get("amount")
    amount_ok, amount = _number(amount_raw, strip_commas=True)
    ok = _all(ok, pc.or_(amount_ok, pa.array([value is None for value in amount_raw], pa.bool_())))

    officers = _fields(_objects(get("officer")), ("badge", "name"))
    officer_badge = _badge(_strings(officers("badge")))
    last, first = _officer_names(_strings(officers("name")))

    table = pa.table(
        {
            "record_id": record_id,
            "agency_id": agency,
            "agency_name": _names(position, names),
            "agency_state": _names(position, states),
            "record_type": record_type,
            "status": status,
            "occurred_at": _timestamp(occurred),
            "updated_at": _timestamp(updated_seconds),
            "officer_badge": officer_badge,
            "officer_last": last,
            "officer_first": first,
            "lat": lat,
            "lon": lon,
            "amount": pc.if_else(amount_ok, amount, pa.scalar(None, pa.float64())),
            "tags": _tags(get("tags")),
            "_updated_us": pc.add(pc.multiply(updated_seconds, 1_000_000), updated_micros),
            "_index": pa.array(range(len(objects)), pa.int64()),
        }
    )
    return table.filter(ok), ok


def _names(position: pa.Array, values: Sequence[str]) -> pa.Array:
    """The agency's name (or state) of each row, dictionary-encoded: an index a row."""
    index = pc.cast(position, pa.int32())
    return pa.DictionaryArray.from_arrays(index, pa.array(values, pa.string()))


def _fields(
    objects: Sequence[dict[str, Any]], names: Sequence[str]
) -> Callable[[str], Sequence[Any]]:
    """A function giving the value of a field (one of names) in every object, None where absent.

    Rows one producer wrote share one key order: their values are transposed in C, a column at
    a time, and only rows in another order (or with other keys) are read key by key. A file with
    no row holding every name in its first rows is read key by key throughout.
    """
    wanted = set(names)
    order = next((tuple(row) for row in objects[:_ORDER_PROBE] if wanted <= row.keys()), None)
    if order is None:
        return _getter(objects)
    same = list(map(order.__eq__, map(tuple, objects)))
    rows: Iterable[Iterable[Any]] = map(dict.values, objects)
    if not all(same):
        rows = [
            row.values() if in_order else tuple(map(row.get, order))
            for row, in_order in zip(objects, same, strict=True)
        ]
    columns = dict(zip(order, zip(*rows, strict=True), strict=True))
    return columns.__getitem__


def _getter(objects: Sequence[dict[str, Any]]) -> Callable[[str], list[Any]]:
    def get(name: str) -> list[Any]:
        return list(map(dict.get, objects, itertools.repeat(name)))

    return get


def _objects(values: Sequence[Any]) -> list[dict[str, Any]]:
    """values with anything but a JSON object replaced by an empty one (its fields: None)."""
    return [value if isinstance(value, dict) else _EMPTY for value in values]


def _all(first: pa.Array, *rest: pa.Array) -> pa.Array:
    """Where every mask is true; a null counts as false, so the result has no nulls."""
    result = pc.fill_null(first, False)
    for mask in rest:
        result = pc.and_(result, pc.fill_null(mask, False))
    return result


def _strings(values: Sequence[Any]) -> pa.Array:
    """The JSON strings among values; null for anything else (null, numbers, objects...)."""
    return _strings_only(values)[0]


def _strings_only(values: Sequence[Any]) -> tuple[pa.Array, bool]:
    """(_strings(values), whether every value is a string or null)."""
    try:
        return pa.array(values, pa.string()), True
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        strings = [value if isinstance(value, str) else None for value in values]
        return pa.array(strings, pa.string()), False


def _ints(values: Sequence[Any]) -> pa.Array:
    """The JSON ints among values (not bools) that fit int64; null for anything else."""
    ints = [value if type(value) is int else None for value in values]  # noqa: E721 (not bool)
    try:
        return pa.array(ints, pa.int64())
    except (OverflowError, pa.ArrowInvalid):
        return pa.array([value if _fits(value) else None for value in ints], pa.int64())


def _fits(value: int | None) -> bool:
    return value is not None and -(2**63) <= value < 2**63


def _floats(values: Sequence[Any]) -> pa.Array:
    """The JSON numbers among values (int or float, not bool) as float64; null for the rest and
    for ints beyond float range."""
    numbers = [v if type(v) is float or type(v) is int else None for v in values]  # noqa: E721
    try:
        return pa.array(numbers, pa.float64())
    except (OverflowError, pa.ArrowInvalid):
        return pa.array([_float(value) for value in numbers], pa.float64())


def _float(value: float | int | None) -> float | None:
    try:
        return None if value is None else float(value)
    except OverflowError:
        return None


def _number(values: Sequence[Any], *, strip_commas: bool) -> tuple[pa.Array, pa.Array]:
    """(ok, the finite float) of JSON numbers and decimal strings (trimmed; "," removed first
    when strip_commas); ok is false (never null) where the value is neither."""
    strings, only_strings = _strings_only(values)
    text = pc.utf8_trim(strings, WHITESPACE)
    if strip_commas:
        text = pc.replace_substring(text, ",", "")
    decimal = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    parsed = pc.cast(pc.if_else(decimal, text, "0"), pa.float64())
    numbers = pa.nulls(len(values), pa.float64()) if only_strings else _floats(values)
    value = pc.if_else(decimal, parsed, numbers)
    ok = pc.fill_null(pc.is_finite(value), False)
    return ok, value


def _int_slice(text: pa.Array, start: int, stop: int) -> pa.Array:
    return pc.cast(pc.utf8_slice_codeunits(text, start, stop), pa.int64())


def _distinct(values: pa.Array) -> tuple[list[Any], pa.Array]:
    """(the distinct values, each value's index among them)."""
    distinct = pc.unique(values)
    return distinct.to_pylist(), pc.index_in(values, distinct)


def _distinct_map(values: pa.Array, function: Callable[[Any], Any], kind: pa.DataType) -> pa.Array:
    """function of each value, computed once per distinct value (null stays null)."""
    distinct, index = _distinct(values)
    mapped = pa.array([None if v is None else function(v) for v in distinct], kind)
    return pc.take(mapped, index)


def _seconds(days: pa.Array, hour: pa.Array, minute: pa.Array, second: Any) -> pa.Array:
    clock = pc.add(pc.add(pc.multiply(hour, 3600), pc.multiply(minute, 60)), second)
    return pc.add(pc.multiply(days, 86400), clock)


def _in_range(seconds: pa.Array) -> pa.Array:
    return pc.and_(pc.greater_equal(seconds, MIN_EPOCH), pc.less_equal(seconds, MAX_EPOCH))


def _iso(text: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(ok, epoch seconds, microseconds) of strings in the ISO form (timeparse.parse_iso_us)."""
    shape = pc.fill_null(pc.match_substring_regex(text, _ISO), False)
    safe = pc.if_else(shape, text, _ISO_FILLER)
    days = _distinct_map(pc.utf8_slice_codeunits(safe, 0, 10), iso_day_number, pa.int64())
    hour, minute, second = (_int_slice(safe, at, at + 2) for at in (11, 14, 17))
    tail = pc.if_else(pc.ends_with(safe, "Z"), "+00:00", pc.utf8_slice_codeunits(safe, -6))
    offset_hour, offset_minute = _int_slice(tail, 1, 3), _int_slice(tail, 4, 6)
    sign = pc.if_else(pc.starts_with(tail, "-"), -1, 1)
    offset = pc.multiply(
        sign, pc.add(pc.multiply(offset_hour, 3600), pc.multiply(offset_minute, 60))
    )
    seconds = pc.subtract(_seconds(days, hour, minute, second), offset)
    fraction = pc.struct_field(pc.extract_regex(safe, _FRACTION), "digits")
    micros = pc.fill_null(pc.cast(pc.utf8_rpad(fraction, 6, "0"), pa.int64()), 0)
    ok = _all(
        shape,
        pc.is_valid(days),
        pc.less_equal(hour, 23),
        pc.less_equal(minute, 59),
        pc.less_equal(second, 59),
        pc.less_equal(offset_hour, 23),
        pc.less_equal(offset_minute, 59),
        _in_range(seconds),
    )
    return ok, seconds, micros


def _local(
    text: pa.Array, agency: pa.Array, zones: Mapping[int, dt.tzinfo]
) -> tuple[pa.Array, pa.Array]:
    """(ok, epoch seconds) of `MM/DD/YYYY HH:MM` wall times in each row's agency zone, on days
    the zone keeps one offset (timeparse.parse_local_minute decides the other days)."""
    shape = pc.fill_null(pc.match_substring_regex(text, _LOCAL), False)
    safe = pc.if_else(shape, text, _LOCAL_FILLER)
    key = pc.binary_join_element_wise(
        pc.cast(agency, pa.string()), pc.utf8_slice_codeunits(safe, 0, 10), "|"
    )
    distinct, index = _distinct(key)
    learned = [None if k is None else _learn_local_day(k, zones) for k in distinct]
    days = pc.take(pa.array([d and d[0] for d in learned], pa.int64()), index)
    offset = pc.take(pa.array([d and d[1] for d in learned], pa.int64()), index)
    hour, minute = _int_slice(safe, 11, 13), _int_slice(safe, 14, 16)
    seconds = pc.subtract(_seconds(days, hour, minute, 0), offset)
    ok = _all(
        shape,
        pc.is_valid(seconds),
        pc.less_equal(hour, 23),
        pc.less_equal(minute, 59),
        _in_range(seconds),
    )
    return ok, seconds


def _learn_local_day(key: str, zones: Mapping[int, dt.tzinfo]) -> tuple[int, int | None] | None:
    agency_id, _, day = key.partition("|")
    zone = zones.get(int(agency_id))
    return None if zone is None else local_day(day, zone)


def _occurred(
    values: Sequence[Any], agency: pa.Array, zones: Mapping[int, dt.tzinfo]
) -> tuple[pa.Array, pa.Array]:
    """(ok, epoch seconds) of occurred_at in the forms of timeparse.parse_occurred_at, tried in
    its order: a JSON int; an ASCII-digit string; a 16-character string with "/" third, as a
    local time only; the ISO form."""
    number = _ints(values)
    number_ok = pc.fill_null(_in_range(number), False)
    text = _strings(values)
    count = len(text)
    digits = pc.fill_null(pc.match_substring_regex(text, _DIGITS), False)
    digits_ok, epoch = _skipped(count)
    if pc.any(digits).as_py():
        significant = pc.utf8_ltrim(pc.if_else(digits, text, "0"), "0")
        short = pc.less_equal(pc.utf8_length(significant), _MAX_EPOCH_DIGITS)
        nonzero = pc.and_(short, pc.greater(pc.utf8_length(significant), 0))
        epoch = pc.cast(pc.if_else(nonzero, significant, "0"), pa.int64())
        digits_ok = _all(digits, short, pc.less_equal(epoch, MAX_EPOCH))
    local_shaped = pc.fill_null(
        pc.and_(
            pc.equal(pc.utf8_length(text), 16),
            pc.equal(pc.utf8_slice_codeunits(text, 2, 3), "/"),
        ),
        False,
    )
    # Each form's kernels run only when some row has its shape.
    local_ok, local = _skipped(count)
    if pc.any(local_shaped).as_py():
        local_ok, local = _local(text, agency, zones)
    iso_ok, iso = _skipped(count)
    if pc.any(pc.invert(_any_of(number_ok, digits, local_shaped))).as_py():
        iso_ok, iso, _ = _iso(text)
    ok = pc.if_else(
        number_ok,
        True,
        pc.if_else(digits, digits_ok, pc.if_else(local_shaped, local_ok, iso_ok)),
    )
    seconds = pc.if_else(
        number_ok,
        number,
        pc.if_else(digits, epoch, pc.if_else(local_shaped, local, iso)),
    )
    return ok, seconds


def _skipped(count: int) -> tuple[pa.Array, pa.Array]:
    """(ok, seconds) of a form no row has: never ok."""
    return pa.repeat(False, count).cast(pa.bool_()), pa.nulls(count, pa.int64())


def _any_of(*masks: pa.Array) -> pa.Array:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.or_(result, mask)
    return result


def _timestamp(seconds: pa.Array) -> pa.Array:
    return pc.cast(pc.multiply(seconds, 1_000_000), _TIMESTAMP)


def _enum(values: pa.Array, allowed: Sequence[str]) -> pa.Array:
    """lower(trim(value)) where it is one of allowed (all ASCII), else null. Only ASCII text is
    lowered here (Arrow's and Python's case rules agree on it); other text goes to the reference,
    whose enum_value decides it."""
    lowered = pc.utf8_lower(pc.utf8_trim(values, WHITESPACE))
    ascii_only = pc.equal(pc.binary_length(values), pc.utf8_length(values))
    ok = pc.and_(pc.is_in(lowered, pa.array(allowed, pa.string())), ascii_only)
    return pc.if_else(pc.fill_null(ok, False), lowered, pa.scalar(None, pa.string()))


def _badge(values: pa.Array) -> pa.Array:
    """normalise.badge: trimmed, leading zeros stripped, "0" when nothing is left."""
    stripped = pc.utf8_ltrim(pc.utf8_trim(values, WHITESPACE), "0")
    return pc.if_else(pc.equal(pc.utf8_length(stripped), 0), "0", stripped)


def _officer_names(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(last, first) of each name, by normalise.officer_name once per distinct name."""
    distinct, index = _distinct(values)
    names = [officer_name(v) for v in distinct]  # (None, None) for null
    last = pc.take(pa.array([name[0] for name in names], pa.string()), index)
    first = pc.take(pa.array([name[1] for name in names], pa.string()), index)
    return last, first


def _tags(values: Sequence[Any]) -> pa.Array:
    """Each row's tags: string elements trimmed and lower-cased, order and duplicates kept; []
    for anything that is not a list."""
    lists = None
    # pyarrow would take a string (or an object) as a sequence of its characters (or keys).
    if all(isinstance(value, list) or value is None for value in values):
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
            lists = pa.array(values, _TAGS)
    if lists is None or lists.offset != 0 or lists.values.null_count:
        return pa.array([tags(value) for value in values], _TAGS)
    elements = _distinct_map(lists.values, _tag, pa.string())
    return pa.ListArray.from_arrays(lists.offsets, elements)


def _tag(value: str) -> str:
    return value.strip(WHITESPACE).lower()
