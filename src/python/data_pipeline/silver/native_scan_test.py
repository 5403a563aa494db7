"""Tests of the native scanner: it is built, it takes only plain lines, and it decodes them as
orjson does; a file's outcome is the same with it and without it (columnar_test compares
either with the per-row reference)."""

from __future__ import annotations

import ctypes.util
import gc
import json
import weakref
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_pipeline.silver import native_scan
from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.field_columns import ObjectFields
from data_pipeline.silver.file_transform import transform_batch
from data_pipeline.silver.timeparse import parse_iso_us

KEY = "bronze/agency_id=1/dt=2024-03-10/part-0.ndjson"
AGENCIES = {
    1: Agency(1, "Metro", "CA", "America/Los_Angeles"),
    2: Agency(2, "Valley", "AZ", "America/Phoenix"),
}
PATHS = [
    "record_id", "agency_id", "occurred_at", "updated_at", "record_type", "status",
    "location.lat", "location.lon", "amount", "officer.badge", "officer.name",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _scanner() -> None:
    native_scan._library.cache_clear()


def _scan(text: bytes) -> native_scan.Scanned:
    scanned = native_scan.scan(text)
    assert scanned is not None
    return scanned


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
        native_scan.scan(b"{}")


def _path_of(name: str) -> str:
    for directory in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"):
        if (candidate := Path(directory) / name).is_file():
            return str(candidate)
    raise AssertionError(f"{name} not found")


PLAIN = [
    b'{"record_id":"A1","agency_id":1,"tags":["x"," Y\\t"],"amount":null}',
    b'  {"record_id" : "A1" , "officer" : {"badge":"007","name":null}}\r',
    b'{"location":{"lat":"1.5","lon":-7},"occurred_at":-0,"status":"\\u0041\\/\\"\\\\"}',
    b"{}",
    b'{"record\\u005fid":"escaped key"}',
    b'{"tags":null,"officer":"not an object","location":3}',
    b'{"agency_id":123456789012345678}',
]
NOT_PLAIN = [
    b'{"record_id":"A1"',  # truncated
    b'{"record_id":"A1"} x',  # trailing garbage
    b'{"record_id":"A1","record_id":"A2"}',  # a key twice
    b'{"record_id":"caf\xc3\xa9"}',  # non-ASCII
    b'{"record_id":"\\u00e9"}',  # an escape beyond ASCII
    b'{"record_id":"tab\there"}',  # a raw control character
    b'{"amount":1.5}',  # a float
    b'{"amount":1e3}',
    b'{"agency_id":01}',  # a leading zero
    b'{"agency_id":1234567890123456789}',  # 19 digits
    b'{"agency_id":true}',
    b'{"note":"x"}',  # another key
    b'{"officer":{"badge":"1","rank":"x"}}',
    b'{"tags":["a",1]}',
    b'{"tags":"a"}',
    b'{"record_id":{"nested":1}}',
    b"[1,2]",
    b'"text"',
    b"",
    b"   ",
    b'\xef\xbb\xbf{"record_id":"A1"}',  # a byte-order mark
]


def test_plain_lines_are_decoded_and_every_other_line_is_left_for_orjson() -> None:
    text = b"\n".join(PLAIN + NOT_PLAIN)
    scanned = _scan(text)

    assert list(scanned.plain) == [1] * len(PLAIN) + [0] * len(NOT_PLAIN)
    assert scanned.line_numbers.to_pylist() == list(range(1, len(PLAIN) + 1))
    _assert_decoded_as_orjson(PLAIN, scanned.fields)


def _assert_decoded_as_orjson(lines: list[bytes], fields: Any) -> None:
    reference = ObjectFields.of([orjson.loads(line) for line in lines])
    for path in PATHS:
        assert fields.strings(path).to_pylist() == reference.strings(path).to_pylist(), path
        assert fields.ints(path).to_pylist() == reference.ints(path).to_pylist(), path
        assert fields.is_null(path).to_pylist() == reference.is_null(path).to_pylist(), path
        numbers, expected = fields.number(path)[1], reference.number(path)[1]
        assert (numbers is None) == (expected is None), path
        if numbers is not None and expected is not None:
            assert numbers.to_pylist() == expected.to_pylist(), path
    for path in ("location", "officer"):
        assert fields.is_object_at(path).to_pylist() == reference.is_object_at(path).to_pylist()
    raw = fields.raw_tags()
    assert raw.to_pylist() == [value or [] for value in reference.raw_tags()]


def test_a_body_without_a_final_newline_and_an_empty_body_are_scanned() -> None:
    assert list(_scan(b'{"record_id":"A"}\n{"record_id":"B"}').plain) == [1, 1]
    assert list(_scan(b'{"record_id":"A"}\n').plain) == [1, 0]
    assert list(_scan(b"").plain) == [0]


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
VALID = st.builds(
    lambda record_id, name, badge, tags, ws, occurred: {
        "record_id": ws + "R" + record_id,
        "agency_id": 1,
        "record_type": ws + "Incident" + ws,
        "occurred_at": occurred,
        "updated_at": "2024-03-10T11:00:00Z",
        "officer": {"badge": ws + badge + ws, "name": name},
        "status": "OPEN" + ws,
        "location": {"lat": ws + "34.05", "lon": -118},
        "amount": "1,234.50",
        "tags": tags,
    },
    ASCII,
    st.builds(lambda last, first: f"{last},{first}", ASCII, ASCII),
    st.text(alphabet="0 \t12", max_size=5),
    st.lists(ASCII, max_size=3),
    WS,
    st.sampled_from([1710090000, "1710090000", "03/10/2024 10:00", "2024-03-10T10:00:00-07:00"]),
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
@given(LINES)
def test_every_plain_line_is_decoded_as_orjson_decodes_it(lines: list[bytes]) -> None:
    scanned = _scan(b"\n".join(lines))
    plain = [line for line, flag in zip(lines, scanned.plain, strict=True) if flag]
    _assert_decoded_as_orjson(plain, scanned.fields)
    for line, flag in zip(lines, scanned.plain, strict=True):
        # orjson's decoding of a line that is plain by construction: printable ASCII only
        if not flag and line.isascii() and b"\\u00" not in line and _plain_values(line):
            raise AssertionError(f"a plain line was left for orjson: {line!r}")


def _plain_values(line: bytes) -> bool:
    """Whether every value of the record is one the scanner takes (ASCII strings, ints of at
    most 18 digits, null, the objects and lists it knows)."""

    def plain(value: Any) -> bool:
        if value is None:
            return True
        if isinstance(value, str):
            return value.isascii()
        if isinstance(value, bool | float):
            return False
        return isinstance(value, int) and len(str(abs(value))) <= 18

    record = json.loads(line)
    for name, value in record.items():
        if name in ("location", "officer") and isinstance(value, dict):
            if not all(plain(item) for item in value.values()):
                return False
        elif name == "tags":
            if not (
                value is None
                or (
                    isinstance(value, list)
                    and all(isinstance(item, str) and item.isascii() for item in value)
                )
            ):
                return False
        elif not plain(value):
            return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID_LINES)
def test_a_file_transforms_the_same_with_the_scanner_and_without_it(lines: list[bytes]) -> None:
    body = b"\n".join(lines) + b"\n"
    with_scanner = transform_batch(KEY, body, AGENCIES)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native_scan, "scan", lambda text: None)
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
    lines = [json.dumps({"updated_at": text, "occurred_at": text}).encode() for text in texts]
    fields = _scan(b"\n".join(lines)).fields
    expected = [parse_iso_us(text) for text in texts]
    for path in ("updated_at", "occurred_at"):
        parsed = fields.iso(path)
        assert parsed is not None
        ok, seconds, micros = (array.to_pylist() for array in parsed)
        got = [
            s * 1_000_000 + m if good else None
            for good, s, m in zip(ok, seconds, micros, strict=True)
        ]
        assert got == expected, path


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
def test_any_bytes_are_scanned_without_harm_and_what_is_taken_is_json(parts: list[bytes]) -> None:
    text = b"\n".join(parts)
    scanned = _scan(text)
    lines = text.split(b"\n")
    assert len(scanned.plain) == len(lines)
    plain = [line for line, flag in zip(lines, scanned.plain, strict=True) if flag]
    for line in plain:
        assert isinstance(orjson.loads(line), dict), line
    _assert_decoded_as_orjson(plain, scanned.fields)


def test_the_scanners_buffers_live_as_long_as_the_scan_and_no_longer() -> None:
    scanned = _scan(b'{"record_id":"A1","tags":["x"]}\n{"record_id":"A2"}')
    record_ids = scanned.fields.strings("record_id")
    tags = scanned.fields.raw_tags()
    scanner = weakref.ref(scanned.fields._scanner)
    del scanned
    gc.collect()

    assert scanner() is None  # freed (bronze_scan_free) once the scan is gone...
    assert record_ids.to_pylist() == ["A1", "A2"]  # ...and what was taken from it stays valid
    assert tags.to_pylist() == [["x"], []]
