"""Tests of the agencies reference table and its CSV codec."""

from __future__ import annotations

import pytest
from etl_core.errors import DataError

from data_pipeline.silver.agencies import Agency, agencies_csv, parse_agencies, reference_agencies


def test_csv_round_trips_the_reference_agencies() -> None:
    agencies = reference_agencies()

    parsed = parse_agencies(agencies_csv(agencies))

    assert list(parsed.values()) == list(agencies)
    assert agencies_csv(agencies).startswith(b"agency_id,name,state,timezone\n1,")


def test_more_than_twenty_agencies_reuse_seats_with_numbered_names() -> None:
    agencies = reference_agencies(45)

    assert [a.agency_id for a in agencies] == list(range(1, 46))
    assert agencies[20] == Agency(21, "Los Angeles Police Department 2", "CA", agencies[0].timezone)
    assert agencies[42].name == "Honolulu Police Department 3"


def test_names_with_commas_are_quoted() -> None:
    agency = Agency(1, "Police, City of X", "CA", "America/Los_Angeles")

    assert parse_agencies(agencies_csv([agency])) == {1: agency}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "expected header"),
        (b"id,name,state,timezone\n", "expected header"),
        (b"agency_id,name,state,timezone\nx,A,CA,UTC\n", "agencies.csv:2: agency_id"),
        (b"agency_id,name,state,timezone\n1,A,CA\n", "expected 4 columns"),
        (b"agency_id,name,state,timezone\n1,A,CA,UTC\n1,B,CA,UTC\n", "duplicate agency_id 1"),
        (b"agency_id,name,state,timezone\n1,A,CA,Mars/Olympus\n", "unknown timezone"),
    ],
)
def test_malformed_csv_is_a_data_error_naming_the_line(body: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_agencies(body)
