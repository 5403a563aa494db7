"""Records validate exactly as the bronze lines they stand for: reasons, silver rows, dt, ties."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from etl_core.adapters.bronze_record_source import _record as bronze_record
from etl_core.raw_records import RAW_KEY, SOURCE_KEY, raw_record
from hypothesis import given, settings
from hypothesis import strategies as st

from data_pipeline.ingest.records import RecordValidator, record_line
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.dedupe import Deduper
from data_pipeline.silver.file_transform import FileResult
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.validate import (
    AgencyInfo,
    Rejected,
    ValidRow,
    agency_infos,
    validate_line,
)
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files

SOURCE = "agency_id=3/dt=2024-01-09/part-0.ndjson"


@functools.cache
def _workload() -> tuple[dict[int, AgencyInfo], tuple[bytes, ...]]:
    files = dict(iter_workload_files(WorkloadOptions(records=400, files=4, agencies=4, seed=5)))
    agencies = agency_infos(parse_agencies(files["agencies.csv"]))
    lines = tuple(
        line
        for key, body in files.items()
        if key.startswith("bronze/")
        for line in body.split(b"\n")
        if line
    )
    return agencies, lines


def _outcome(results: list[FileResult]) -> tuple[str, Any]:
    [result] = results
    if result.valid_rows:
        return "valid", result.valid_rows[0].silver
    return "dead", result.dead_letters[0].reason


def _expected(line: bytes, agency_id: int) -> tuple[str, Any]:
    agencies, _ = _workload()
    outcome = validate_line(line, 7, "2024-01-09", agencies)
    if isinstance(outcome, Rejected):
        return "dead", outcome.reason
    if outcome.agency_id != agency_id:
        return "dead", DeadLetterReason.AGENCY_MISMATCH
    return "valid", outcome.silver


def _validate(record: Mapping[str, Any], agency_id: int = 3) -> tuple[str, Any]:
    agencies, _ = _workload()
    return _outcome(RecordValidator(agencies, agency_id, "api").validate([record]))


_SPLICES = (b"NaN", b"1e400", b"-Infinity", b'"\\ud800"', b"18446744073709551616", b'"\xff"',
            b"123456789012345678901234567890", b"1.5e308", b'"  12 "', b"[]", b"{}")  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_FIELDS = ("record_id", "agency_id", "occurred_at", "updated_at", "record_type", "status",
           "location", "amount", "tags", "officer")  # fmt: skip


@st.composite
def bronze_lines(draw: st.DrawFn) -> bytes:
    """Workload lines, some broken: truncated, a field replaced by any JSON value, or a field's
    value spliced with text orjson and json read differently."""
    _, lines = _workload()
    line = draw(st.sampled_from(lines))
    kind = draw(st.sampled_from(["as is", "truncate", "replace", "splice"]))
    if kind == "truncate":
        return line[: draw(st.integers(1, len(line)))]
    try:
        fields = json.loads(line)
    except ValueError:
        return line
    field = draw(st.sampled_from(_FIELDS))
    if kind == "replace":
        fields[field] = draw(_JSON)
        return json.dumps(fields).encode()
    if kind == "splice":
        fields[field] = "\x00SPLICE\x00"
        splice = draw(st.sampled_from(_SPLICES))
        return json.dumps(fields).encode().replace(b'"\\u0000SPLICE\\u0000"', splice)
    return line


@settings(max_examples=400, deadline=None)
@given(bronze_lines())
def test_a_bronze_line_read_as_a_record_validates_exactly_as_the_line(line: bytes) -> None:
    record = bronze_record(line, f"{SOURCE}:7")

    assert _validate(record) == _expected(line, 3)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60).filter(lambda b: b.strip(b" \t\r\n") and b"\n" not in b))
def test_any_bytes_read_as_a_record_validate_exactly_as_the_line(line: bytes) -> None:
    assert _validate(bronze_record(line, f"{SOURCE}:7")) == _expected(line, 3)


def test_every_workload_line_round_trips_to_the_same_bytes() -> None:
    _, lines = _workload()

    assert all(record_line(bronze_record(line, f"{SOURCE}:1")) == line for line in lines)


def _good(**changes: Any) -> dict[str, Any]:
    """A valid record of agency 3 with changes."""
    _, lines = _workload()
    line = next(line for line in lines if _expected(line, 3)[0] == "valid")
    record: dict[str, Any] = orjson.loads(line)
    return {**record, **changes}


@pytest.mark.parametrize(
    ("value", "reason"),
    [(float("nan"), DeadLetterReason.INVALID_JSON), (float("inf"), DeadLetterReason.INVALID_JSON),
     ("1,2x", DeadLetterReason.BAD_AMOUNT), ("\ud800", DeadLetterReason.INVALID_JSON)],
)  # fmt: skip
def test_values_that_json_cannot_carry_make_the_record_invalid_json(
    value: Any, reason: str
) -> None:
    assert _validate(_good(amount=value)) == ("dead", reason)


def test_a_record_with_no_json_form_at_all_is_dead_lettered_not_raised() -> None:
    assert _validate(_good(amount=object())) == ("dead", DeadLetterReason.INVALID_JSON)


def test_ints_beyond_64_bits_are_written_as_json_would() -> None:
    assert record_line({"n": 1 << 70}) == b'{"n": 1180591620717411303424}'


def test_a_valid_record_of_another_agency_is_an_agency_mismatch() -> None:
    assert _validate(_good(), agency_id=4) == ("dead", DeadLetterReason.AGENCY_MISMATCH)


def test_a_raw_line_validates_as_its_text_and_is_dead_lettered_verbatim() -> None:
    agencies, _ = _workload()
    [result] = RecordValidator(agencies, 3, "pg").validate([raw_record('{"record_id": "x"')])

    [dead] = result.dead_letters
    assert (dead.reason, dead.source, dead.raw) == (
        DeadLetterReason.INVALID_JSON,
        "pg",
        '{"record_id": "x"',
    )
    assert dead.detail == "pg:1: invalid_json"


def test_a_record_without_provenance_takes_the_agency_local_date_of_occurred_at() -> None:
    agencies, _ = _workload()
    # Agency 3 is Honolulu (UTC-10): 2024-01-09T05:00Z is still the 8th there.
    record = _good(occurred_at="2024-01-09T05:00:00Z")
    [result] = RecordValidator(agencies, 3, "api").validate([record])

    assert (result.source, result.dt) == ("api", "2024-01-08")
    assert orjson.loads(result.valid_rows[0].silver)["dt"] == "2024-01-08"


def test_a_record_with_provenance_keeps_its_file_dt_and_source() -> None:
    agencies, _ = _workload()
    record = {**_good(occurred_at="2024-01-09T05:00:00Z"), SOURCE_KEY: f"{SOURCE}:42"}
    [result] = RecordValidator(agencies, 3, "api").validate([record])

    assert (result.source, result.dt) == (SOURCE, "2024-01-09")
    assert result.valid_rows[0].line_no == 42
    assert SOURCE_KEY.encode() not in result.valid_rows[0].silver


def test_of_two_versions_with_equal_updated_at_the_later_record_wins() -> None:
    agencies, _ = _workload()
    first, second = _good(status="open"), _good(status="closed")
    deduper = Deduper()
    for result in RecordValidator(agencies, 3, "api").validate([first, second]):
        deduper.add(result)

    [row] = list(deduper)
    assert orjson.loads(row)["status"] == "closed"
    assert (deduper.counts.rows_in, deduper.counts.rows_duplicate) == (2, 1)


def test_records_are_grouped_by_source_and_day_and_every_line_is_fingerprinted() -> None:
    agencies, _ = _workload()
    validator = RecordValidator(agencies, 3, "api")
    results = validator.validate(
        [_good(occurred_at="2024-01-09T05:00:00Z"), _good(occurred_at="2024-01-10T05:00:00Z"),
         raw_record("x"), {RAW_KEY: "y", SOURCE_KEY: f"{SOURCE}:3"}]
    )  # fmt: skip

    assert [(r.source, r.dt) for r in results] == [
        ("api", "2024-01-08"), ("api", "2024-01-09"), ("api", ""), (SOURCE, "2024-01-09")
    ]  # fmt: skip
    assert validator.seen == 4
    before = validator.fingerprint
    validator.validate([raw_record("z")])
    assert validator.fingerprint != before
    assert all(
        isinstance(r.valid_rows, tuple) and isinstance(r.dead_letters, tuple) for r in results
    )
    assert all(isinstance(row, ValidRow) for r in results for row in r.valid_rows)
