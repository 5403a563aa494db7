"""Tests of the native scanner: it is built, it finishes only valid lines of the forms it knows,
and every row it finishes is the per-row reference's; a file's outcome is the same with it and
without it (columnar_test also compares transform_batch, scanner included, with the reference)."""

from __future__ import annotations

import ctypes.util
import datetime as dt
import gc
import json
import weakref
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_pipeline.silver import native_scan
from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.arrow import VALID_SCHEMA, valid_table
from data_pipeline.silver.file_transform import transform_batch
from data_pipeline.silver.native_rows import rows_table
from data_pipeline.silver.schema import RECORD_TYPES, STATUSES
from data_pipeline.silver.timeparse import MAX_EPOCH, MIN_EPOCH, parse_iso_us
from data_pipeline.silver.validate import ValidRow, agency_infos, validate_line
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files

KEY = "bronze/agency_id=1/dt=2024-03-10/part-0.ndjson"
AGENCIES = {
    1: Agency(1, "Metro", "CA", "America/Los_Angeles"),
    2: Agency(2, "Valley", "AZ", "America/Phoenix"),
}


@pytest.fixture(autouse=True)
def _scanner() -> None:
    native_scan._library.cache_clear()


def test_the_scanner_is_built_and_loads() -> None:
    # Under Pants it is a resource beside native_scan.py; a run from a checkout builds it with
    # `./pants export-codegen src/python/data_pipeline/silver/native:build` or names it in
    # ETL_BRONZE_SCAN_LIBRARY. Without it the transform is exact but slower: fail loudly here.
    assert native_scan._library() is not None, f"no scanner library at {native_scan.LIBRARY}"


def test_a_library_of_another_layout_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    other = ctypes.util.find_library("c")  # any shared library without the scanner's ABI
    assert other is not None
    monkeypatch.setenv(native_scan.LIBRARY_ENV, _path_of(other))

    with pytest.raises(native_scan.ScannerMismatch, match="not a native bronze scanner of ABI"):
        native_scan.scan(b"{}", [1], RECORD_TYPES, STATUSES)


def _path_of(name: str) -> str:
    for directory in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"):
        if (candidate := Path(directory) / name).is_file():
            return str(candidate)
    raise AssertionError(f"{name} not found")


VALID_LINE = (
    b'{"record_id":" A1\\t","agency_id":1,"occurred_at":"2024-03-09T10:00:00-08:00",'
    b'"updated_at":"2024-03-10T11:00:00.5Z","record_type":"Incident ","status":"\\tOPEN",'
    b'"location":{"lat":"34.05","lon":-118},"amount":"1,234.50",'
    b'"officer":{"badge":" 0070","name":"o\'brien-SMITH ,  anne   marie"},"tags":[" X\\t","y"]}'
)
FINISHED = [
    VALID_LINE,
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b"1710000000"),
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b'"0001710000000"'),
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b'"03/09/2024 10:00"'),
    VALID_LINE.replace(b'"1,234.50"', b"null").replace(b',"tags":[" X\\t","y"]', b""),
    VALID_LINE.replace(b'{"badge":" 0070","name":"o\'brien-SMITH ,  anne   marie"}', b'"x"'),
    b'  {"record_id" : "A2" , "agency_id" : 2 , "occurred_at" : 0, "updated_at" : '
    b'"1970-01-01T00:00:00Z", "record_type":"complaint", "status":"closed", "location" : '
    b'{"lon":"-180", "lat":"+.5e1"}, "amount": -3, "officer":{}, "tags": null }\r',
]
LEFT = [
    VALID_LINE.replace(b'"agency_id":1', b'"agency_id":3'),  # unknown agency
    VALID_LINE.replace(b'"agency_id":1', b'"agency_id":"1"'),
    VALID_LINE.replace(b'" A1\\t"', b'" \\t"'),  # an empty record_id
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b'"2024-02-30T10:00:00Z"'),
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b'"9999999999999"'),  # beyond 9999
    VALID_LINE.replace(b'"2024-03-10T11:00:00.5Z"', b"1710000000"),  # updated_at an int
    VALID_LINE.replace(b'"Incident "', b'"event"'),
    VALID_LINE.replace(b'"\\tOPEN"', b"null"),
    VALID_LINE.replace(b'"34.05"', b'"91"'),  # out of range
    VALID_LINE.replace(b'"34.05"', b'"1_0"'),  # float() reads it, the spec does not
    VALID_LINE.replace(b'"34.05"', b'"nan"'),
    VALID_LINE.replace(b'"1,234.50"', b'"1e999"'),  # not finite
    VALID_LINE.replace(b'"1,234.50"', b'""'),
    VALID_LINE.replace(b'{"lat":"34.05","lon":-118}', b'"34,-118"'),
    VALID_LINE.replace(b'"34.05"', b"34.05"),  # a float: not plain, orjson reads it
    VALID_LINE.replace(b" A1", b" \xc3\xa9"),  # non-ASCII: not plain
    VALID_LINE[:-1],  # truncated
    b'{"record_id":"A1","record_id":"A2"}',
]
BLANK = [b"", b" \t\r", b"\r"]


# Finished, but their local day is for the reference to decide: handed back by rows_table.
HANDED_BACK = [
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b'"03/10/2024 10:00"'),  # a DST day
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b'"02/30/2024 10:00"'),  # Feb 30
    VALID_LINE.replace(b'"2024-03-09T10:00:00-08:00"', b'"01/01/0000 10:00"'),  # year 0
]


def _scan(text: bytes) -> native_scan.Scanned:
    scanned = native_scan.scan(text, sorted(AGENCIES), RECORD_TYPES, STATUSES)
    assert scanned is not None
    return scanned


def test_valid_lines_of_the_forms_it_knows_are_finished_and_every_other_is_left() -> None:
    body = b"\n".join(FINISHED + HANDED_BACK + LEFT + BLANK)
    scanned = _scan(body)

    done = len(FINISHED + HANDED_BACK)
    assert list(scanned.status) == [1] * done + [0] * len(LEFT) + [2] * len(BLANK)
    assert [scanned.line(n) for n in range(1, len(scanned.status) + 1)] == body.split(b"\n")
    assert scanned.rows.line_numbers.to_pylist() == list(range(1, done + 1))
    assert [row["_line"] for row in _native_rows(body)] == list(range(1, len(FINISHED) + 1))
    _assert_rows_are_the_references(body)


def test_a_finished_row_holds_the_silver_values() -> None:
    row = _native_rows(VALID_LINE)[0]

    assert row == {
        "record_id": "A1",
        "agency_id": 1,
        "dt": dt.date(2024, 3, 10),
        "agency_name": "Metro",
        "agency_state": "CA",
        "record_type": "incident",
        "status": "open",
        "occurred_at": dt.datetime(2024, 3, 9, 18, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2024, 3, 10, 11, tzinfo=dt.UTC),
        "officer_badge": "70",
        "officer_last": "O'Brien-Smith",
        "officer_first": "Anne Marie",
        "lat": 34.05,
        "lon": -118.0,
        "amount": 1234.5,
        "tags": ["x", "y"],
        "_updated_us": 1710068400500000,
        "_line": 1,
    }


def _native_rows(body: bytes) -> list[dict[str, Any]]:
    """The rows the scanner finished, as transform_batch's valid table holds them."""
    scanned = _scan(body)
    ids = sorted(AGENCIES)
    table, _ = rows_table(
        scanned.rows,
        ids,
        [AGENCIES[i].name for i in ids],
        [AGENCIES[i].state for i in ids],
        {i: ZoneInfo(AGENCIES[i].timezone) for i in ids},
        RECORD_TYPES,
        STATUSES,
    )
    day = KEY.split("dt=")[1][:10]
    table = table.append_column("dt", pa.repeat(dt.date.fromisoformat(day), table.num_rows))
    rows: list[dict[str, Any]] = table.select(VALID_SCHEMA.names).cast(VALID_SCHEMA).to_pylist()
    return rows


def _assert_rows_are_the_references(body: bytes) -> None:
    """Every row the scanner finished is the one validate_line makes of its line; every line it
    finished is valid there."""
    infos = agency_infos(AGENCIES)
    day = KEY.split("dt=")[1][:10]
    lines = body.split(b"\n")
    for row in _native_rows(body):
        number = row["_line"]
        outcome = validate_line(lines[number - 1], number, day, infos)
        assert isinstance(outcome, ValidRow), (lines[number - 1], outcome)
        expected = valid_table([outcome.silver], [outcome.updated_us], [number], day)
        assert [row] == expected.to_pylist(), lines[number - 1]


def test_a_body_without_a_final_newline_and_an_empty_body_are_scanned() -> None:
    assert list(_scan(VALID_LINE + b"\n" + VALID_LINE).status) == [1, 1]
    assert list(_scan(VALID_LINE + b"\n").status) == [1, 2]
    assert list(_scan(b"").status) == [2]
    assert _scan(b"x\n\ny").line(3) == b"y"


def test_the_reference_workload_is_finished_natively_but_for_its_bad_lines() -> None:
    # The fast path must not quietly stop taking the generator's lines: all but the invalid
    # ones (about 1%) and the local times on transition days are finished here.
    options = WorkloadOptions(records=4_000, files=2, agencies=3)
    for key, body in iter_workload_files(options):
        if not key.startswith("bronze/"):
            continue
        scanned = _scan(body)
        lines = [line for line in body.split(b"\n") if line.strip()]
        assert scanned.rows.rows >= 0.95 * len(lines), key
        _assert_rows_are_the_references(body)


# Lines of mostly plain records: field values from each JSON kind, strings with escapes.
ASCII = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)
PLAIN_SCALAR = st.one_of(ASCII, st.integers(-(10**18) + 1, 10**18 - 1), st.none())
OTHER_SCALAR = st.one_of(
    st.text(max_size=3),
    st.integers(-(10**19), 10**19),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
# Nine values in ten of a kind the scanner takes, so that most lines are plain.
SCALAR = st.integers(0, 9).flatmap(lambda n: OTHER_SCALAR if n == 0 else PLAIN_SCALAR)
RECORD = st.fixed_dictionaries(
    {},
    optional={
        "record_id": SCALAR,
        "agency_id": st.one_of(st.sampled_from([1, 2, 3]), SCALAR),
        "occurred_at": SCALAR,
        "updated_at": SCALAR,
        "record_type": SCALAR,
        "status": SCALAR,
        "location": st.one_of(
            st.fixed_dictionaries({}, optional={"lat": SCALAR, "lon": SCALAR}), SCALAR
        ),
        "amount": SCALAR,
        "officer": st.one_of(
            st.fixed_dictionaries({}, optional={"badge": SCALAR, "name": SCALAR}), SCALAR
        ),
        "tags": st.one_of(st.lists(ASCII, max_size=3), st.lists(SCALAR, max_size=3), SCALAR),
    },
)


def _line(record: dict[str, Any], spaced: bool, ascii_only: bool) -> bytes:
    separators = (" , ", " : ") if spaced else (",", ":")
    return json.dumps(record, separators=separators, ensure_ascii=ascii_only).encode()


LINES = st.lists(st.builds(_line, RECORD, st.booleans(), st.booleans()), min_size=1, max_size=30)
WS = st.sampled_from(["", " ", "\t", "\r\n", " \t"])
DECIMAL = st.one_of(
    st.floats(-200, 200).map(repr),
    st.text(alphabet="0123456789.eE+-,_ \t", max_size=8),
    st.integers(-200, 200),
    st.sampled_from(["1e400", "-0", ".5", "5.", "+.5e1", "1,000.5", " 7 ", "1e-400", "9" * 30]),
)
LOCAL = st.builds(
    lambda month, day, year, hour, minute: f"{month:02d}/{day:02d}/{year:04d} {hour:02d}:{minute:02d}",  # noqa: E501
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from([0, 1, 1969, 2024, 9999]),
    st.integers(0, 24),
    st.integers(0, 60),
)
VALID = st.builds(
    lambda record_id, agency, name, badge, tags, ws, occurred, lat, lon, amount: {
        "record_id": ws + "R" + record_id,
        "agency_id": agency,
        "record_type": ws + "Incident" + ws,
        "occurred_at": occurred,
        "updated_at": "2024-03-10T11:00:00Z",
        "officer": {"badge": ws + badge + ws, "name": name},
        "status": "OPEN" + ws,
        "location": {"lat": lat, "lon": lon},
        "amount": amount,
        "tags": tags,
    },
    ASCII,
    st.sampled_from([1, 2]),
    st.builds(lambda last, first: f"{last},{first}", ASCII, ASCII),
    st.text(alphabet="0 \t12", max_size=5),
    st.lists(ASCII, max_size=3),
    WS,
    st.one_of(
        st.sampled_from(
            [1710090000, "1710090000", "03/10/2024 10:00", "2024-03-10T10:00:00-07:00", "", "0"]
        ),
        # the edges of the silver range, as ints and digit strings (leading zeros too)
        st.sampled_from([MIN_EPOCH - 1, MIN_EPOCH, MAX_EPOCH, MAX_EPOCH + 1]),
        st.sampled_from([MAX_EPOCH, MAX_EPOCH + 1, 10**12 - 1, 10**12]).flatmap(
            lambda n: st.integers(0, 3).map(lambda zeros: "0" * zeros + str(n))
        ),
        LOCAL,
        st.integers(-(10**12), 10**12),
        st.text(alphabet="0123456789", min_size=1, max_size=14),
    ),
    DECIMAL,
    DECIMAL,
    st.one_of(st.none(), DECIMAL),
)
# Records that are valid but for what the generated text makes of them, most of them plain.
VALID_LINES = st.lists(
    st.one_of(
        st.builds(_line, VALID, st.booleans(), st.just(True)),
        st.builds(_line, RECORD, st.booleans(), st.booleans()),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(LINES.map(b"\n".join), VALID_LINES.map(b"\n".join)), max_size=2))
def test_every_line_the_scanner_finishes_is_the_references_row(bodies: list[bytes]) -> None:
    _assert_rows_are_the_references(b"\n".join(bodies))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID_LINES)
def test_a_file_transforms_the_same_with_the_scanner_and_without_it(lines: list[bytes]) -> None:
    body = b"\n".join(lines) + b"\n"
    with_scanner = transform_batch(KEY, body, AGENCIES)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native_scan, "scan", lambda *args: None)
        without = transform_batch(KEY, body, AGENCIES)

    assert with_scanner.valid.num_rows == without.valid.num_rows
    assert with_scanner.rows_in == without.rows_in
    assert with_scanner.dead_letters == without.dead_letters
    assert _rows(with_scanner.valid) == _rows(without.valid)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.sort_by("_line").to_pylist()
    return rows


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


# ISO-like text: each part usually valid, sometimes just out of range or misshapen.
ISO_LIKE = st.builds(
    lambda year, month, day, t, hour, minute, second, fraction, offset: (
        f"{year}-{month}-{day}{t}{hour}:{minute}:{second}{fraction}{offset}"
    ),
    st.one_of(st.integers(0, 9999).map(lambda n: f"{n:04d}"), st.sampled_from(["1970", "+970"])),
    _two(0, 13),
    _two(0, 32),
    st.sampled_from(["T", "T", "T", " ", "t"]),
    _two(0, 24),
    _two(0, 60),
    _two(0, 60),
    st.one_of(st.just(""), st.text(alphabet="0123456789", max_size=7).map(lambda d: "." + d)),
    st.one_of(
        st.sampled_from(["Z", "Z", "z", "", "+00:00", "-24:00", "+05:60", "+0530", "-05:00"]),
        st.builds(
            lambda sign, h, m: f"{sign}{h}:{m}", st.sampled_from("+-"), _two(0, 23), _two(0, 59)
        ),
    ),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ISO_LIKE, min_size=1, max_size=20))
def test_iso_instants_are_read_as_parse_iso_us_reads_them(texts: list[str]) -> None:
    record = orjson.loads(VALID_LINE)
    lines = [orjson.dumps(record | {"updated_at": text, "occurred_at": text}) for text in texts]
    scanned = _scan(b"\n".join(lines))
    expected = [parse_iso_us(text) for text in texts]

    assert list(scanned.status) == [int(micros is not None) for micros in expected]
    updated = [
        seconds * 1_000_000 + micros
        for seconds, micros in zip(
            scanned.rows.updated_seconds.to_pylist(),
            scanned.rows.updated_micros.to_pylist(),
            strict=True,
        )
    ]
    assert updated == [micros for micros in expected if micros is not None]
    assert scanned.rows.occurred.to_pylist() == [
        micros // 1_000_000 for micros in expected if micros is not None
    ]


# Fragments of records and JSON syntax, glued at random: truncations, stray bytes, escapes.
FRAGMENTS = st.sampled_from(
    [
        b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b" ", b"\t", b"\r", b"\n", b"\x00",
        b"\xc3", b"\xa9", b"\\u00", b"\\u0041", b"\\t", b"-", b"0", b"12", b"1.5", b"e9",
        b"null", b"true", b'"record_id"', b'"agency_id"', b'"tags"', b'"officer"',
        b'"location"', b'"badge"', b'"lat"', b'"updated_at"', b'"2024-02-29T23:59:59.5+05:30"',
        b'"A1"', b'{"record_id":"A1","agency_id":1}',
    ]
)  # fmt: skip
JUNK = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=4)), max_size=24).map(b"".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(JUNK, min_size=1, max_size=12))
def test_any_bytes_are_scanned_without_harm_and_what_is_finished_is_valid(
    parts: list[bytes],
) -> None:
    text = b"\n".join(parts)
    scanned = _scan(text)
    lines = text.split(b"\n")
    assert [scanned.line(n) for n in range(1, len(scanned.status) + 1)] == lines
    blank = [not line.strip(b" \t\r\n") for line in lines]
    assert [status == native_scan.BLANK for status in scanned.status] == blank
    _assert_rows_are_the_references(text)


def test_the_scanners_buffers_live_as_long_as_the_scan_and_no_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanners: list[weakref.ref[Any]] = []

    class Recorded(native_scan._Scanner):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            scanners.append(weakref.ref(self))

    monkeypatch.setattr(native_scan, "_Scanner", Recorded)
    scanned = _scan(VALID_LINE + b"\n" + VALID_LINE.replace(b"A1", b"A2"))
    record_ids, tags = scanned.rows.record_id, scanned.rows.tags
    del scanned
    gc.collect()

    assert scanners[0]() is not None  # the columns taken still use its buffers...
    assert record_ids.to_pylist() == ["A1", "A2"]
    assert tags.to_pylist() == [["x", "y"], ["x", "y"]]
    del record_ids, tags
    gc.collect()
    assert scanners[0]() is None  # ...and once nothing does, it is freed (bronze_scan_free)
