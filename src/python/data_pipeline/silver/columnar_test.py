"""The columnar path (transform_batch) against the per-row reference (transform_file): equal
dead letters and equal valid rows on generated hostile lines, and the known exactness traps."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any
from unittest import mock

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_pipeline.silver import field_columns, file_transform, native_scan
from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.arrow import valid_table
from data_pipeline.silver.field_columns import ObjectFields
from data_pipeline.silver.file_transform import (
    FileBatch,
    _validate_columns,
    _vocabulary,
    transform_batch,
    transform_file,
)
from data_pipeline.silver.validate import agency_infos

AGENCIES = {
    1: Agency(1, "Los Angeles Police Department", "CA", "America/Los_Angeles"),
    2: Agency(2, "Met", "UK", "Europe/London"),
    7: Agency(7, "Kathmandu", "NP", "Asia/Kathmandu"),
}
KEY = "bronze/agency_id=1/dt=2024-03-10/part-0.ndjson"
WS = st.sampled_from(["", " ", "\t", "\r\n", " \x0b", "\x0c", "\u00a0", "\u2003"])
DIGIT = st.sampled_from("0123456789")


def _digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(DIGIT, min_size=low, max_size=high)


def _two(high: int) -> st.SearchStrategy[str]:
    return st.one_of(st.integers(0, high).map(lambda n: f"{n:02d}"), _digits(1, 3), st.just("٣4"))


ISO = st.builds(
    lambda y, mo, d, h, mi, s, frac, off: f"{y}-{mo}-{d}T{h}:{mi}:{s}{frac}{off}",
    st.one_of(st.sampled_from(["2024", "0001", "9999", "1969", "0000"]), _digits(3, 5)),
    _two(13),
    _two(32),
    _two(25),
    _two(61),
    _two(61),
    st.one_of(st.just(""), _digits(0, 8).map(lambda d: "." + d), st.just(".\uff11")),
    st.one_of(
        st.sampled_from(["Z", "+00:00", "-08:00", "+05:45", "+23:59", "-24:00", "z", "", "+0530"]),
        st.builds(lambda sign, h, m: f"{sign}{h}:{m}", st.sampled_from("+-"), _two(25), _two(61)),
    ),
)
LOCAL = st.builds(
    lambda mo, d, y, h, mi: f"{mo}/{d}/{y} {h}:{mi}",
    _two(13),
    _two(32),
    st.sampled_from(["2024", "2023", "0001", "9999", "1883"]),
    _two(25),
    _two(61),
)
DST = st.sampled_from(
    [
        "03/10/2024 02:30",  # Los Angeles: in the spring-forward gap
        "03/10/2024 01:59",
        "11/03/2024 01:30",  # Los Angeles: ambiguous (fold=0)
        "03/31/2024 01:30",  # London: gap
        "10/27/2024 01:30",  # London: ambiguous
        "02/29/2024 12:00",
        "02/30/2024 12:00",
        "02/29/2023 12:00",
    ]
)
OCCURRED = st.one_of(
    ISO,
    LOCAL,
    DST,
    st.integers(-(2**64), 2**64),
    st.sampled_from([-62135596800, -62135596801, 253402300799, 253402300800, 0, True]),
    _digits(1, 20),
    st.builds(lambda z, d: "0" * z + d, st.integers(0, 30), _digits(1, 13)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.none(),
)
ENUM = st.one_of(
    st.builds(
        lambda ws1, word, ws2: ws1 + word + ws2,
        WS,
        st.sampled_from(
            [
                "incident", "Complaint", "USE_OF_FORCE", "commendation", "open", "CLOSED",
                "Pending", "İncident", "\u0131ncident", "OPEN\u0130", "ﬁle", "use of force", "",
            ]
        ),  # fmt: skip
        WS,
    ),
    st.integers(),
    st.none(),
    st.lists(st.just("open"), max_size=1),
)
NUMBER_TEXT = st.one_of(
    st.sampled_from(
        [
            "34.05",
            " -118.2 ",
            "+.5",
            "1.",
            ".5e3",
            "1e400",
            "-1e400",
            "nan",
            "inf",
            "1_0",
            "٣",
            "0x10",
            "",
            " ",
            "1,000.5",
            "1,2,3",
            ", 5",
            "5 ,",
            "\x0b12",
            "12\x0c",
            "1e",
            "-0",
            "00090.000",
            "90.0000000000000001",
            "-180.00000000000001",
            "1" * 30,
        ]
    ),  # fmt: skip
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
NUMBER: st.SearchStrategy[Any] = st.one_of(
    NUMBER_TEXT,
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70),
    st.sampled_from([True, False, None, [], {}]),
)
NAME = st.one_of(
    st.sampled_from(
        [
            "O'BRIEN, PAT",
            "smith-jones,  anne   marie",
            "VAN DER BERG, DANIEL",
            "ŁUKASZ, ǅEMAL",
            ", FIRST",
            "LAST,",
            "NO COMMA",
            "  ",
            "a1b2, c3d",
            "DŽ, ß",
            "ǉ, ﬃ",
            "MC\tDONALD ,\nLUIS",
        ]
    ),  # fmt: skip
    st.text(max_size=12),
    st.integers(),
    st.none(),
)
BADGE = st.one_of(
    st.builds(lambda ws, z, d: ws + "0" * z + d + ws, WS, st.integers(0, 4), _digits(0, 5)),
    st.text(max_size=6),
    st.integers(),
    st.none(),
)
TAGS = st.one_of(
    st.lists(st.one_of(st.builds(lambda w, t: w + t + w, WS, st.text(max_size=6))), max_size=4),
    st.lists(st.one_of(st.text(max_size=4), st.integers(), st.none()), max_size=3),
    st.text(max_size=5),
    st.none(),
    st.integers(),
)
_MISSING = object()


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, st.just(_MISSING))


RECORD_ID = st.one_of(
    st.builds(lambda w, r: w + r + w, WS, st.text(max_size=5)), st.integers(), st.none()
)
RECORD = st.fixed_dictionaries(
    {
        "record_id": _maybe(RECORD_ID),
        "agency_id": _maybe(st.sampled_from([1, 2, 7, 3, 0, -1, 2**70, True, "1", 1.0, None])),
        "occurred_at": _maybe(OCCURRED),
        "updated_at": _maybe(st.one_of(ISO, st.text(max_size=5), st.integers(), st.none())),
        "record_type": _maybe(ENUM),
        "status": _maybe(ENUM),
        "location": _maybe(
            st.one_of(
                st.fixed_dictionaries({"lat": _maybe(NUMBER), "lon": _maybe(NUMBER)}),
                st.sampled_from([None, [], "34,-118", 5]),
            )
        ),
        "amount": _maybe(NUMBER),
        "officer": _maybe(
            st.one_of(
                st.fixed_dictionaries({"badge": _maybe(BADGE), "name": _maybe(NAME)}),
                st.sampled_from([None, "X", 3]),
            )
        ),
        "tags": _maybe(TAGS),
    }
)
RAW = st.sampled_from(
    [
        b"{bad",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"record_id": "A", "agency_id": 1e400}',
        b'{"record_id": "\\ud800", "agency_id": 1}',
        b'{"record_id": "A", "record_id": "B", "agency_id": 1}',
        b"\xff\xfe{}",
        b"   ",
        b"",
        b"\x0c",
        b'{"record_id":"A1","agency_id":1,"occurred_at":"' + b"0" * 4300 + b'1"}',
    ]
)


def _present(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _present(item) for name, item in value.items() if item is not _MISSING}
    return value


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(_present(record), ensure_ascii=False).encode("utf-8", "surrogatepass")


VALID_ISO = st.builds(
    lambda moment, frac, off: f"{moment.year:04d}"
    + moment.strftime("-%m-%dT%H:%M:%S")
    + frac
    + off,
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.one_of(st.just(""), _digits(1, 6).map(lambda d: "." + d)),
    st.one_of(
        st.just("Z"),
        st.builds(
            lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
            st.sampled_from("+-"),
            st.integers(0, 23),
            st.integers(0, 59),
        ),
    ),
)
VALID_LOCAL = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)
).map(lambda moment: moment.strftime("%m/%d/%Y %H:%M"))
TRIM = st.sampled_from(["", " ", "\t", "\r\n", " \n\t"])


def _mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """valid nineteen times in twenty, else hostile."""
    return st.integers(0, 19).flatmap(lambda n: hostile if n == 0 else valid)


NEAR_VALID = st.fixed_dictionaries(
    {
        "record_id": _mostly(st.text(min_size=1, max_size=4).map(lambda t: "R" + t), RECORD_ID),
        "agency_id": _mostly(st.sampled_from([1, 2, 7]), st.sampled_from([3, True, "1", 1.0])),
        "occurred_at": _mostly(
            st.one_of(
                VALID_ISO,
                VALID_LOCAL,
                DST,
                st.integers(-62135596800, 253402300799),
                st.integers(0, 253402300799).map(str),
            ),
            OCCURRED,
        ),
        "updated_at": _mostly(VALID_ISO, st.one_of(ISO, st.integers())),
        "record_type": _mostly(
            st.builds(lambda w, t: w + t + w, TRIM, st.sampled_from(["incident", "Use_Of_Force"])),
            ENUM,
        ),
        "status": _mostly(st.sampled_from(["open", " CLOSED", "Pending\t"]), ENUM),
        "location": _mostly(
            st.fixed_dictionaries(
                {
                    "lat": st.one_of(
                        st.floats(-90, 90), st.floats(-90, 90).map(str), st.integers(-90, 90)
                    ),
                    "lon": st.one_of(
                        st.floats(-180, 180), st.floats(-180, 180).map(lambda f: f" {f}\t")
                    ),
                }
            ),
            st.fixed_dictionaries({"lat": NUMBER, "lon": NUMBER}),
        ),
        "amount": _mostly(
            st.one_of(
                st.none(),
                st.floats(-1e9, 1e9),
                st.integers(-(10**9), 10**9).map(lambda n: f"{n:,}.25"),
                st.just(_MISSING),
            ),
            NUMBER,
        ),
        "officer": _mostly(
            st.fixed_dictionaries({"badge": BADGE, "name": NAME}),
            st.sampled_from([None, "X", 3, {}]),
        ),
        "tags": _mostly(
            st.lists(st.builds(lambda w, t: w + t + w, TRIM, st.text(max_size=6)), max_size=4),
            TAGS,
        ),
    }
)
LINES = st.lists(st.one_of(RECORD.map(_line), RAW), min_size=1, max_size=40)
NEAR_VALID_LINES = st.lists(
    st.one_of(NEAR_VALID.map(_line), NEAR_VALID.map(_line), RAW), min_size=1, max_size=40
)


# How transform_batch may route a file's lines: as in production (the native scanner, then the
# Arrow kernels only for a file where it leaves KERNEL_MIN_ROWS lines or more, else the
# reference); the kernels for every line the scanner leaves; the kernels for every line.
ROUTES: dict[str, frozenset[str]] = {
    "production": frozenset(),
    "kernels after the scanner": frozenset({"kernels"}),
    "kernels only": frozenset({"kernels", "no scanner"}),
}


def _assert_same(body: bytes, key: str = KEY, agency_id: int | None = None) -> FileBatch:
    """transform_batch's outcome, by every route, equals the per-row reference's."""
    batches = []
    for route in ROUTES.values():
        with contextlib.ExitStack() as stack:
            if "kernels" in route:
                stack.enter_context(mock.patch.object(file_transform, "KERNEL_MIN_ROWS", 0))
            if "no scanner" in route:
                stack.enter_context(mock.patch.object(native_scan, "scan", return_value=None))
            batches.append(_assert_same_as_reference(body, key, agency_id))
    return batches[0]


def _assert_same_as_reference(body: bytes, key: str, agency_id: int | None) -> FileBatch:
    batch = transform_batch(key, body, AGENCIES, agency_id)
    reference = transform_file(key, body, AGENCIES)
    rows = reference.valid_rows
    if agency_id is not None:
        rows = tuple(row for row in rows if row.agency_id == agency_id)
    expected = valid_table(
        [row.silver for row in rows], [row.updated_us for row in rows], [r.line_no for r in rows],
        reference.dt,
    )  # fmt: skip
    assert batch.rows_in == reference.rows_in
    reference_dead = {(d.line, d.reason, d.raw, d.detail) for d in reference.dead_letters}
    assert reference_dead <= {(d.line, d.reason, d.raw, d.detail) for d in batch.dead_letters}
    assert batch.valid.sort_by("_line").to_pylist() == expected.sort_by("_line").to_pylist()
    assert batch.valid.num_rows + len(batch.dead_letters) == batch.rows_in
    return batch


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_the_columnar_path_equals_the_per_row_reference_on_hostile_lines(
    lines: list[bytes],
) -> None:
    _assert_same(b"\n".join(lines) + b"\n")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NEAR_VALID_LINES)
def test_the_columnar_path_equals_the_per_row_reference_on_mostly_valid_lines(
    lines: list[bytes],
) -> None:
    _assert_same(b"\n".join(lines) + b"\n")


def _reordered(record: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """record's fields (and its officer's and location's) in any order, maybe with extra keys."""
    nested = {
        name: _reordered(value) if isinstance(value, dict) else st.just(value)
        for name, value in record.items()
    }
    extra = st.dictionaries(st.sampled_from(["note", "Record_ID", "x"]), st.integers(), max_size=2)
    return st.tuples(st.fixed_dictionaries(nested), extra).flatmap(
        lambda both: st.permutations([*both[0].items(), *both[1].items()]).map(dict)
    )


# Most rows in the order of the file's first row (the fast transposition), the rest shuffled.
ONE_ORDER_LINES = st.lists(
    st.one_of(
        NEAR_VALID.map(_line), NEAR_VALID.map(_line), NEAR_VALID.flatmap(_reordered).map(_line)
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ONE_ORDER_LINES)
def test_rows_in_another_key_order_or_with_extra_keys_are_read_as_the_reference_reads_them(
    lines: list[bytes],
) -> None:
    _assert_same(b"\n".join(lines) + b"\n")


def test_fields_reads_every_row_as_dict_get_does_whatever_its_key_order() -> None:
    first: dict[str, Any] = {"a": 1, "b": "x", "c": None}
    rows: list[dict[str, Any]] = [
        first,
        {"c": 3, "a": 2, "b": "y"},
        {"a": 4},
        {},
        {"b": 5, "a": 6, "c": 7, "d": 8},
    ]
    get = field_columns._fields(rows, ("a", "b", "c"))
    for name in "abc":
        assert list(get(name)) == [row.get(name) for row in rows]
    assert field_columns._fields([{"a": 1}], ("a", "b"))("b") == [None]  # no row holds every name


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NEAR_VALID_LINES)
def test_rows_of_another_agency_become_mismatch_dead_letters_as_before(lines: list[bytes]) -> None:
    batch = _assert_same(b"\n".join(lines), agency_id=1)
    assert set(batch.valid["agency_id"].to_pylist()) <= {1}


def _record(**fields: Any) -> bytes:
    record = {
        "record_id": "A1",
        "agency_id": 1,
        "occurred_at": "2024-03-10T10:00:00Z",
        "updated_at": "2024-03-10T11:00:00.5+01:00",
        "record_type": " Incident ",
        "status": "OPEN",
        "location": {"lat": " 34.05 ", "lon": -118.25},
        "amount": "1,234.50",
        "officer": {"badge": " 000120 ", "name": "o'brien-SMITH ,  anne   marie"},
        "tags": [" Night ", "K9"],
    }
    record.update(fields)
    return json.dumps(record).encode()


def test_a_typical_row_is_decided_by_the_columnar_kernels_with_the_spec_values() -> None:
    fields = ObjectFields.of([json.loads(_record())])
    _, accepted = _validate_columns(fields, _vocabulary(agency_infos(AGENCIES)))
    assert accepted.to_pylist() == [True]  # not handed back to the reference
    batch = _assert_same(_record())

    [row] = batch.valid.to_pylist()
    assert (row["record_type"], row["status"], row["officer_badge"]) == ("incident", "open", "120")
    assert (row["officer_last"], row["officer_first"]) == ("O'Brien-Smith", "Anne Marie")
    assert (row["lat"], row["lon"], row["amount"]) == (34.05, -118.25, 1234.5)
    assert row["tags"] == ["night", "k9"]
    assert row["updated_at"].isoformat() == "2024-03-10T10:00:00+00:00"  # sub-second truncated
    assert row["_updated_us"] == 1710064800_500000


def test_the_exactness_traps_of_the_issue_match_the_reference() -> None:
    lines = [
        _record(record_id="A2", occurred_at="02/30/2024 10:00"),  # impossible date
        _record(record_id="A3", occurred_at="2024-02-30T10:00:00Z"),
        _record(record_id="A4", occurred_at="03/10/2024 02:30"),  # LA spring-forward gap
        _record(record_id="A5", occurred_at="11/03/2024 01:30"),  # ambiguous: fold=0
        _record(record_id="A6", officer={"name": "mc donald2x, o'neil-ÉLODIE"}),
        _record(record_id="A7", officer={"badge": "0000"}),
        _record(record_id="A8", record_type="İncident"),  # Python lowers İ to i + dot
        _record(record_id="", occurred_at="bad", updated_at="bad"),  # first reason wins
        _record(record_id="A9", location={"lat": "91", "lon": "181"}),
        _record(record_id="A10", occurred_at="0" * 4300 + "1"),
    ]
    batch = _assert_same(b"\n".join(lines))

    reasons = {dead.line: dead.reason for dead in batch.dead_letters}
    assert reasons == {
        1: "bad_occurred_at",
        2: "bad_occurred_at",
        7: "bad_record_type",
        8: "missing_record_id",
        9: "lat_out_of_range",
    }
    ids = {row["record_id"]: row for row in batch.valid.to_pylist()}
    assert ids["A4"]["occurred_at"].isoformat() == "2024-03-10T10:30:00+00:00"
    assert ids["A5"]["occurred_at"].isoformat() == "2024-11-03T08:30:00+00:00"
    assert ids["A7"]["officer_badge"] == "0"
    assert ids["A10"]["occurred_at"].isoformat() == "1970-01-01T00:00:01+00:00"


def test_a_file_of_typed_numbers_and_strings_keeps_every_row() -> None:
    lines = [
        _record(record_id=f"B{n}", location={"lat": n % 90, "lon": str(-n % 180)}, amount=n)
        for n in range(50)
    ]
    batch = _assert_same(b"\n".join(lines))
    assert batch.valid.num_rows == 50
    assert pa.types.is_float64(batch.valid.schema.field("amount").type)
