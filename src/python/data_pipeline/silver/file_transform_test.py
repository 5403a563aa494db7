"""Tests of the per-file transform: line handling, gzip, dead letters and the file's dt."""

from __future__ import annotations

import gc
import gzip
import json
import pickle
from collections.abc import Callable

import orjson
import pytest
from etl_core.errors import DataError

from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.bronze_body import UnreadableFile
from data_pipeline.silver.file_transform import (
    FileResult,
    transform_batch,
    transform_file,
)
from data_pipeline.silver.reasons import DeadLetterReason

AGENCIES = {3: Agency(3, "Honolulu Police Department", "HI", "Pacific/Honolulu")}
KEY = "bronze/agency_id=3/dt=2024-01-09/part-0.ndjson"


def _record(record_id: str = "A003-00000001", **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "record_id": record_id,
        "agency_id": 3,
        "record_type": "incident",
        "occurred_at": "01/09/2024 06:00",
        "updated_at": "2024-01-09T17:00:00Z",
        "officer": {"badge": "1", "name": "kai, lee"},
        "status": "open",
        "location": {"lat": "21.3", "lon": "-157.8"},
        "amount": None,
        "tags": [],
    }
    record.update(changes)
    return record


def _body(*lines: object) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def test_valid_and_invalid_lines_are_split_and_counted() -> None:
    body = _body(_record("A1"), b"{not json", _record("A2", status="gone"), _record("A3"))

    result = transform_file(KEY, body, AGENCIES)

    assert (result.rows_in, result.bytes_in) == (4, len(body))
    assert [row.record_id for row in result.valid_rows] == ["A1", "A3"]
    assert [row.line_no for row in result.valid_rows] == [1, 4]
    assert [d.reason for d in result.dead_letters] == [
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.BAD_STATUS,
    ]


def test_blank_lines_are_skipped_and_not_counted() -> None:
    body = b"\n  \t\r\n" + _body(_record()) + b"\r\n\n"

    result = transform_file(KEY, body, AGENCIES)

    assert result.rows_in == 1
    assert result.valid_rows[0].line_no == 3
    assert result.dead_letters == ()


def test_other_control_whitespace_is_not_blank() -> None:
    result = transform_file(KEY, b"\x0c\n", AGENCIES)

    assert result.rows_in == 1
    assert result.dead_letters[0].reason == DeadLetterReason.INVALID_JSON


def test_crlf_lines_parse() -> None:
    result = transform_file(KEY, _body(_record()).replace(b"\n", b"\r\n"), AGENCIES)

    assert len(result.valid_rows) == 1


def test_dead_letter_keeps_the_raw_line_and_names_source_and_line() -> None:
    raw = '{"record_id": "A1", "occurred_at": "13/45/2024 25:61", "agency_id": 3}'
    result = transform_file(KEY, _body(_record("A0"), raw.encode()), AGENCIES)

    (dead,) = result.dead_letters
    assert dead.reason == DeadLetterReason.BAD_OCCURRED_AT
    assert dead.source == "agency_id=3/dt=2024-01-09/part-0.ndjson"
    assert dead.raw == raw
    assert dead.detail == (
        "agency_id=3/dt=2024-01-09/part-0.ndjson:2: bad_occurred_at '13/45/2024 25:61'"
    )


def test_undecodable_bytes_are_replaced_in_the_raw_text_and_kept_exactly() -> None:
    line = b'{"record_id": "\xff\xc3"}\r'

    per_row, columnar = transform_file(KEY, line, AGENCIES), transform_batch(KEY, line, AGENCIES)
    for batch in (per_row, columnar):
        (dead,) = batch.dead_letters
        assert dead.reason == DeadLetterReason.INVALID_JSON
        assert dead.raw == '{"record_id": "\ufffd\ufffd"}\r'
        assert dead.raw_bytes == line


def test_a_utf8_dead_letter_keeps_no_second_copy_of_its_bytes() -> None:
    line = '{"record_id": "é", "agency_id": 99}'.encode()

    (dead,) = transform_batch(KEY, line, AGENCIES).dead_letters

    assert (dead.raw.encode(), dead.raw_bytes) == (line, None)


@pytest.mark.parametrize(
    ("record", "detail"),
    [
        (b"{not json", "invalid_json"),
        (_record(record_id="  "), "missing_record_id '  '"),
        (_record(agency_id=99), "unknown_agency 99"),
        (_record(occurred_at="02/30/2024 10:00"), "bad_occurred_at '02/30/2024 10:00'"),
        (_record(updated_at="yesterday"), "bad_updated_at 'yesterday'"),
        (_record(record_type="arrest"), "bad_record_type 'arrest'"),
        (_record(status=7), "bad_status 7"),
        (_record(location={"lat": "x", "lon": "1"}), "bad_location {'lat': 'x', 'lon': '1'}"),
        (_record(location={"lat": "91", "lon": "1"}), "lat_out_of_range '91'"),
        (_record(location={"lat": "1", "lon": "-181"}), "lon_out_of_range '-181'"),
        (_record(amount="1,2x"), "bad_amount '1,2x'"),
    ],
)
def test_every_dead_letter_names_its_source_line_reason_and_offending_value(
    record: object, detail: str
) -> None:
    body = _body(_record("A0"), record)

    for batch in (transform_file(KEY, body, AGENCIES), transform_batch(KEY, body, AGENCIES, 3)):
        (dead,) = batch.dead_letters
        assert dead.line == 2
        assert dead.detail == f"agency_id=3/dt=2024-01-09/part-0.ndjson:2: {detail}"
        assert dead.reason == detail.split(" ")[0]


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda packed: packed[: len(packed) // 2], id="truncated"),
        pytest.param(lambda packed: packed[:-3], id="truncated-trailer"),
        pytest.param(lambda packed: packed + b"trailing garbage", id="trailing-garbage"),
        pytest.param(lambda packed: packed + packed[:20], id="truncated-second-member"),
        pytest.param(lambda packed: packed[:-8] + b"\0\0\0\0" + packed[-4:], id="bad-crc"),
    ],
)
def test_a_gzip_body_that_cannot_be_read_is_one_file_level_dead_letter(
    broken: Callable[[bytes], bytes],
) -> None:
    body = _body(*(_record(f"A{n}") for n in range(50)))
    packed = broken(gzip.compress(body, mtime=0))

    batch = transform_batch(KEY + ".gz", packed, AGENCIES, 3, etag="e-1")

    assert (batch.rows_in, batch.bytes_in, batch.valid.num_rows) == (1, len(packed), 0)
    (dead,) = batch.dead_letters
    assert (dead.reason, dead.source, dead.line, dead.raw) == (
        DeadLetterReason.UNREADABLE_FILE,
        "agency_id=3/dt=2024-01-09/part-0.ndjson.gz",
        None,
        "",
    )
    assert dead.detail is not None
    assert dead.detail.startswith(
        f"agency_id=3/dt=2024-01-09/part-0.ndjson.gz: unreadable_file (etag e-1, {len(packed)} "
        "bytes): "
    )
    assert any(name in dead.detail for name in ("EOFError", "BadGzipFile", "error"))
    assert pickle.loads(pickle.dumps(batch)).dead_letters == batch.dead_letters


def test_the_per_row_reference_names_the_key_of_a_body_it_cannot_read() -> None:
    packed = gzip.compress(_body(_record()), mtime=0)[:-5]

    with pytest.raises(UnreadableFile, match=r"part-0.ndjson.gz: EOFError: Compressed file ended"):
        transform_file(KEY + ".gz", packed, AGENCIES)


def test_gzip_bodies_are_read_like_plain_ones() -> None:
    body = _body(_record("A1"), b"{", _record("A2"))

    plain = transform_file(KEY, body, AGENCIES)
    packed = gzip.compress(body, mtime=0)
    zipped = transform_file(KEY + ".gz", packed, AGENCIES)

    assert zipped.valid_rows == plain.valid_rows
    assert zipped.bytes_in == len(packed)
    assert zipped.source == "agency_id=3/dt=2024-01-09/part-0.ndjson.gz"


def test_rows_carry_the_source_files_dt_not_the_record_dates() -> None:
    key = "bronze/agency_id=3/dt=2024-02-01/part-7.ndjson"

    result = transform_file(key, _body(_record()), AGENCIES)

    assert result.dt == "2024-02-01"
    assert orjson.loads(result.valid_rows[0].silver)["dt"] == "2024-02-01"


def test_key_without_partition_is_a_data_error() -> None:
    with pytest.raises(DataError, match="bronze/loose.ndjson"):
        transform_file("bronze/loose.ndjson", _body(_record()), AGENCIES)


def test_results_survive_pickling_for_worker_processes() -> None:
    result = transform_file(KEY, _body(_record(), b"{"), AGENCIES)

    copy = pickle.loads(pickle.dumps(result))
    assert isinstance(copy, FileResult)
    assert copy == result


def test_results_without_valid_rows_survive_pickling() -> None:
    result = transform_file(KEY, b"{\n\n", AGENCIES)

    assert pickle.loads(pickle.dumps(result)) == result


def test_the_transform_leaves_garbage_collection_as_it_found_it() -> None:
    body = _body(_record("A1"), b"{not json")
    assert gc.isenabled()
    transform_batch(KEY, body, AGENCIES)
    assert gc.isenabled()
    gc.disable()
    try:
        transform_batch(KEY, body, AGENCIES)
        assert not gc.isenabled()
    finally:
        gc.enable()
