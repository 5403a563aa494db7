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

This path takes the lines the native scanner does not finish (native_scan.py: most lines are
finished there, validated and normalised in one native pass): the fields come column by column
from a FieldColumns source (field_columns.py), ObjectFields over orjson's values, where per-row
Python remains in pulling each field out of the parsed objects (type checks included). Per-row
Python also remains in the reference for the rows handed back: lines that are not a JSON object
orjson parses, rows with a field of an unexpected type or value, local times on a zone's
transition days, and the tags of a file where some row's tags are not a list of strings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.silver.field_columns import FieldColumns
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


def validate_fields(
    fields: FieldColumns,
    agency_ids: Sequence[int],
    names: Sequence[str],
    states: Sequence[str],
    zones: Mapping[int, dt.tzinfo],
) -> tuple[pa.Table, pa.Array]:
    """(the accepted rows' silver values, the accepted mask over the rows).

    fields gives the rows' fields column by column; agency_ids/names/states list the agencies of
    agencies.csv side by side, zones maps their ids to time zones. The table has the silver data
    columns but dt, plus `_updated_us` (updated_at in epoch microseconds, the dedupe order) and
    `_index` (the row's index in fields). Rows not accepted are left for the reference.
    """
    record_id = pc.utf8_trim(fields.strings("record_id"), WHITESPACE)
    ok = _all(fields.is_object(), pc.greater(pc.utf8_length(record_id), 0))

    agency = fields.ints("agency_id")
    known = pa.array(agency_ids, pa.int64())
    position = pc.index_in(agency, known)
    ok = _all(ok, pc.is_valid(position))

    occurred_ok, occurred = _occurred(
        fields.ints("occurred_at"),
        fields.strings("occurred_at"),
        agency,
        zones,
    )
    updated = _iso(fields.strings("updated_at"))
    updated_ok, updated_seconds, updated_micros = updated
    record_type = _enum(fields.strings("record_type"), RECORD_TYPES)
    status = _enum(fields.strings("status"), STATUSES)
    ok = _all(ok, occurred_ok, updated_ok, pc.is_valid(record_type), pc.is_valid(status))

    lat_ok, lat = _number(*fields.number("location.lat"), strip_commas=False)
    lon_ok, lon = _number(*fields.number("location.lon"), strip_commas=False)
    ok = _all(
        ok,
        fields.is_object_at("location"),
        lat_ok,
        lon_ok,
        pc.fill_null(pc.and_(pc.greater_equal(lat, -90.0), pc.less_equal(lat, 90.0)), False),
        pc.fill_null(pc.and_(pc.greater_equal(lon, -180.0), pc.less_equal(lon, 180.0)), False),
    )
    amount_ok, amount = _number(*fields.number("amount"), strip_commas=True)
    ok = _all(ok, pc.or_(amount_ok, fields.is_null("amount")))

    officer_badge = _badge(fields.strings("officer.badge"))
    last, first = _officer_names(fields.strings("officer.name"))

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
            "tags": _tags(fields.raw_tags()),
            "_updated_us": pc.add(pc.multiply(updated_seconds, 1_000_000), updated_micros),
            "_index": pa.array(range(fields.rows), pa.int64()),
        }
    )
    return table.filter(ok), ok


def _names(position: pa.Array, values: Sequence[str]) -> pa.Array:
    """The agency's name (or state) of each row, dictionary-encoded: an index a row."""
    index = pc.cast(position, pa.int32())
    return pa.DictionaryArray.from_arrays(index, pa.array(values, pa.string()))


def _all(first: pa.Array, *rest: pa.Array) -> pa.Array:
    """Where every mask is true; a null counts as false, so the result has no nulls."""
    result = pc.fill_null(first, False)
    for mask in rest:
        result = pc.and_(result, pc.fill_null(mask, False))
    return result


def _number(
    strings: pa.Array, numbers: pa.Array | None, *, strip_commas: bool
) -> tuple[pa.Array, pa.Array]:
    """(ok, the finite float) of JSON numbers (numbers: float64, null elsewhere; None when no
    row holds one) and decimal strings (trimmed; "," removed first when strip_commas); ok is
    false (never null) where the value is neither."""
    text = pc.utf8_trim(strings, WHITESPACE)
    if strip_commas:
        text = pc.replace_substring(text, ",", "")
    decimal = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    parsed = pc.cast(pc.if_else(decimal, text, "0"), pa.float64())
    if numbers is None:
        numbers = pa.nulls(len(strings), pa.float64())
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
    number: pa.Array,
    text: pa.Array,
    agency: pa.Array,
    zones: Mapping[int, dt.tzinfo],
) -> tuple[pa.Array, pa.Array]:
    """(ok, epoch seconds) of occurred_at in the forms of timeparse.parse_occurred_at, tried in
    its order: a JSON int; an ASCII-digit string; a 16-character string with "/" third, as a
    local time only; the ISO form."""
    number_ok = pc.fill_null(_in_range(number), False)
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
    iso_ok, iso_seconds = _skipped(count)
    if pc.any(pc.invert(_any_of(number_ok, digits, local_shaped))).as_py():
        iso_ok, iso_seconds, _ = _iso(text)
    ok = pc.if_else(
        number_ok,
        True,
        pc.if_else(digits, digits_ok, pc.if_else(local_shaped, local_ok, iso_ok)),
    )
    seconds = pc.if_else(
        number_ok,
        number,
        pc.if_else(digits, epoch, pc.if_else(local_shaped, local, iso_seconds)),
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


def _tags(raw: pa.ListArray | Sequence[Any]) -> pa.Array:
    """Each row's tags: string elements trimmed and lower-cased, order and duplicates kept; []
    for anything that is not a list. raw is a list<string> array (the scanner's: every element
    a string) or the rows' JSON values."""
    if isinstance(raw, pa.ListArray):
        return _normalised_tags(raw)
    lists = None
    # pyarrow would take a string (or an object) as a sequence of its characters (or keys).
    if all(isinstance(value, list) or value is None for value in raw):
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
            lists = pa.array(raw, _TAGS)
    if lists is None or lists.values.null_count:
        return pa.array([tags(value) for value in raw], _TAGS)
    return _normalised_tags(lists)


def _normalised_tags(lists: pa.ListArray) -> pa.Array:
    """lists with each element normalised (once per distinct element); a null list is []."""
    offsets = lists.offsets
    start = offsets[0].as_py()
    if start:
        offsets = pc.subtract(offsets, start)
    elements = _distinct_map(lists.flatten(), _tag, pa.string())
    return pa.ListArray.from_arrays(offsets, elements)


def _tag(value: str) -> str:
    return value.strip(WHITESPACE).lower()
