"""Unit tests of line validation: every dead-letter reason, their order, and the silver row."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest

from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.schema import SILVER_FIELDS
from data_pipeline.silver.validate import Rejected, ValidRow, agency_infos, validate_line

AGENCIES = agency_infos(
    {
        7: Agency(7, "New York City Police Department", "NY", "America/New_York"),
        2: Agency(2, "Phoenix Police Department", "AZ", "America/Phoenix"),
    }
)
DAY = "2024-01-08"
GOOD: dict[str, Any] = {
    "record_id": " A007-00000001\t",
    "agency_id": 7,
    "record_type": " Use_Of_Force\t",
    "occurred_at": "01/08/2024 18:49",
    "updated_at": "2024-01-09T02:11:45Z",
    "officer": {"badge": " 00045 ", "name": "o'BRIEN ,  anne   marie"},
    "status": "\tPENDING ",
    "location": {"lat": " 34.052235", "lon": "-118.243683 "},
    "amount": " 1,234.50 ",
    "tags": ["traffic", " Night "],
}


def _line(record: object) -> bytes:
    return json.dumps(record).encode()


def _validate(record: object) -> ValidRow | Rejected:
    return validate_line(_line(record), 1, DAY, AGENCIES)


def _with(**changes: object) -> dict[str, Any]:
    record = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
        else:
            record[key] = value
    return record


_DROP = object()


def _reason(record: object) -> str:
    outcome = _validate(record)
    assert isinstance(outcome, Rejected), outcome
    return outcome.reason


def test_a_messy_good_line_becomes_the_normalised_silver_row() -> None:
    outcome = _validate(GOOD)

    assert isinstance(outcome, ValidRow)
    assert (outcome.record_id, outcome.agency_id, outcome.line_no) == ("A007-00000001", 7, 1)
    silver = orjson.loads(outcome.silver)
    assert list(silver) == list(SILVER_FIELDS)
    assert silver == {
        "record_id": "A007-00000001",
        "agency_id": 7,
        "dt": DAY,
        "agency_name": "New York City Police Department",
        "agency_state": "NY",
        "record_type": "use_of_force",
        "status": "pending",
        "occurred_at": "2024-01-08T23:49:00Z",
        "updated_at": "2024-01-09T02:11:45Z",
        "officer_badge": "45",
        "officer_last": "O'Brien",
        "officer_first": "Anne Marie",
        "lat": 34.052235,
        "lon": -118.243683,
        "amount": 1234.5,
        "tags": ["traffic", "night"],
    }


def test_updated_at_is_compared_in_microseconds_and_written_truncated_utc() -> None:
    outcome = _validate(_with(updated_at="2024-01-09T02:11:45.999999+05:30"))

    assert isinstance(outcome, ValidRow)
    assert outcome.updated_us == 1704746505_999999
    assert orjson.loads(outcome.silver)["updated_at"] == "2024-01-08T20:41:45Z"


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"occurred_at": 1704757747}, "occurred_at", "2024-01-08T23:49:07Z"),
        ({"occurred_at": "1704757747"}, "occurred_at", "2024-01-08T23:49:07Z"),
        ({"occurred_at": "2024-01-08T18:49:07.5-05:00"}, "occurred_at", "2024-01-08T23:49:07Z"),
        (
            {"agency_id": 2, "occurred_at": "07/01/2024 18:49"},
            "occurred_at",
            "2024-07-02T01:49:00Z",
        ),
        ({"amount": None}, "amount", None),
        ({"amount": _DROP}, "amount", None),
        ({"amount": 12}, "amount", 12.0),
        ({"amount": "1,2,3"}, "amount", 123.0),
        ({"tags": _DROP}, "tags", []),
        ({"officer": _DROP}, "officer_badge", None),
        ({"officer": {"name": "smith"}}, "officer_first", None),
        ({"officer": {"badge": 45, "name": "smith"}}, "officer_badge", None),
        ({"officer": {"badge": "0000"}}, "officer_badge", "0"),
        ({"location": {"lat": 90, "lon": -180}}, "lat", 90.0),
        ({"location": {"lat": "-90", "lon": "180.0"}}, "lon", 180.0),
    ],
)
def test_silver_field_normalisation(
    changes: dict[str, object], field: str, expected: object
) -> None:
    outcome = _validate(_with(**changes))

    assert isinstance(outcome, ValidRow)
    assert orjson.loads(outcome.silver)[field] == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"record_id": "A1", "agency_id": 7', DeadLetterReason.INVALID_JSON),
        (b"[1, 2]", DeadLetterReason.INVALID_JSON),
        (b'"text"', DeadLetterReason.INVALID_JSON),
        (b"null", DeadLetterReason.INVALID_JSON),
        (b"\xff\xfe{}", DeadLetterReason.INVALID_JSON),
        (b'{"a": NaN}', DeadLetterReason.INVALID_JSON),
        (b'{"a": "\\ud800"}', DeadLetterReason.INVALID_JSON),
        (b"\xef\xbb\xbf{}", DeadLetterReason.INVALID_JSON),
        (b"{} {}", DeadLetterReason.INVALID_JSON),
        (b"{}", DeadLetterReason.MISSING_RECORD_ID),
    ],
)
def test_lines_that_are_not_json_objects_are_invalid_json(line: bytes, reason: str) -> None:
    outcome = validate_line(line, 3, DAY, AGENCIES)

    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason


def test_numbers_beyond_double_range_are_json_and_fail_later() -> None:
    line = _line(_with(amount=0)).replace(b'"amount": 0', b'"amount": 1e400')

    assert validate_line(line, 1, DAY, AGENCIES) == Rejected(DeadLetterReason.BAD_AMOUNT, "inf")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"record_id": _DROP}, DeadLetterReason.MISSING_RECORD_ID),
        ({"record_id": None}, DeadLetterReason.MISSING_RECORD_ID),
        ({"record_id": 17}, DeadLetterReason.MISSING_RECORD_ID),
        ({"record_id": " \t\r\n"}, DeadLetterReason.MISSING_RECORD_ID),
        ({"agency_id": _DROP}, DeadLetterReason.UNKNOWN_AGENCY),
        ({"agency_id": 99}, DeadLetterReason.UNKNOWN_AGENCY),
        ({"agency_id": "7"}, DeadLetterReason.UNKNOWN_AGENCY),
        ({"agency_id": 7.0}, DeadLetterReason.UNKNOWN_AGENCY),
        ({"agency_id": True}, DeadLetterReason.UNKNOWN_AGENCY),
        ({"occurred_at": _DROP}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"occurred_at": "not a date"}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"occurred_at": "13/45/2024 25:61"}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"occurred_at": "2024-02-30T10:00:00-05:00"}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"occurred_at": ""}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"occurred_at": "yesterday 5pm"}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"occurred_at": "2024-01-08T10:00:00"}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"occurred_at": 1704757747.5}, DeadLetterReason.BAD_OCCURRED_AT),
        ({"updated_at": _DROP}, DeadLetterReason.BAD_UPDATED_AT),
        ({"updated_at": 1704757747}, DeadLetterReason.BAD_UPDATED_AT),
        ({"updated_at": "01/09/2024 02:11"}, DeadLetterReason.BAD_UPDATED_AT),
        ({"updated_at": "2024-01-09 02:11:45Z"}, DeadLetterReason.BAD_UPDATED_AT),
        ({"record_type": "arrest"}, DeadLetterReason.BAD_RECORD_TYPE),
        ({"record_type": None}, DeadLetterReason.BAD_RECORD_TYPE),
        ({"record_type": ["incident"]}, DeadLetterReason.BAD_RECORD_TYPE),
        ({"record_type": "use of force"}, DeadLetterReason.BAD_RECORD_TYPE),
        ({"status": "reopened"}, DeadLetterReason.BAD_STATUS),
        ({"status": _DROP}, DeadLetterReason.BAD_STATUS),
        ({"status": {"open": True}}, DeadLetterReason.BAD_STATUS),
        ({"location": _DROP}, DeadLetterReason.BAD_LOCATION),
        ({"location": "34.0,-118.2"}, DeadLetterReason.BAD_LOCATION),
        ({"location": {"lat": "34.0"}}, DeadLetterReason.BAD_LOCATION),
        ({"location": {"lat": "north", "lon": "-118.2"}}, DeadLetterReason.BAD_LOCATION),
        ({"location": {"lat": "34.0", "lon": None}}, DeadLetterReason.BAD_LOCATION),
        ({"location": {"lat": "nan", "lon": "-118.2"}}, DeadLetterReason.BAD_LOCATION),
        ({"location": {"lat": "90.000001", "lon": "-118.2"}}, DeadLetterReason.LAT_OUT_OF_RANGE),
        ({"location": {"lat": -134.5, "lon": "-118.2"}}, DeadLetterReason.LAT_OUT_OF_RANGE),
        ({"location": {"lat": "34.0", "lon": "-180.5"}}, DeadLetterReason.LON_OUT_OF_RANGE),
        ({"amount": "12 USD"}, DeadLetterReason.BAD_AMOUNT),
        ({"amount": ""}, DeadLetterReason.BAD_AMOUNT),
        ({"amount": True}, DeadLetterReason.BAD_AMOUNT),
        ({"amount": [1]}, DeadLetterReason.BAD_AMOUNT),
    ],
)
def test_each_reason(changes: dict[str, object], reason: str) -> None:
    assert _reason(_with(**changes)) == reason


# Each later check's failure is planted too; the earliest failing check must win.
_FAILURES_IN_ORDER = [
    ("record_id", None, DeadLetterReason.MISSING_RECORD_ID),
    ("agency_id", 99, DeadLetterReason.UNKNOWN_AGENCY),
    ("occurred_at", "yesterday 5pm", DeadLetterReason.BAD_OCCURRED_AT),
    ("updated_at", "soon", DeadLetterReason.BAD_UPDATED_AT),
    ("record_type", "arrest", DeadLetterReason.BAD_RECORD_TYPE),
    ("status", "reopened", DeadLetterReason.BAD_STATUS),
    ("location", {"lat": "x", "lon": "500"}, DeadLetterReason.BAD_LOCATION),
    ("location", {"lat": "95", "lon": "500"}, DeadLetterReason.LAT_OUT_OF_RANGE),
    ("location", {"lat": "45", "lon": "500"}, DeadLetterReason.LON_OUT_OF_RANGE),
    ("amount", "lots", DeadLetterReason.BAD_AMOUNT),
]


@pytest.mark.parametrize("first", range(len(_FAILURES_IN_ORDER)))
def test_the_first_failing_check_in_spec_order_wins(first: int) -> None:
    record = copy.deepcopy(GOOD)
    for key, value, _ in reversed(_FAILURES_IN_ORDER[first:]):
        record[key] = value

    assert _reason(record) == _FAILURES_IN_ORDER[first][2]


def test_rejection_names_the_offending_value() -> None:
    outcome = _validate(_with(occurred_at="13/45/2024 25:61"))

    assert outcome == Rejected(DeadLetterReason.BAD_OCCURRED_AT, "'13/45/2024 25:61'")
