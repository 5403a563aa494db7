from __future__ import annotations

import argparse

import pytest

from etl_core.agency_list import (
    add_agencies_argument,
    agencies_problems,
    agency_ids,
    parse_agencies,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2,3", (1, 2, 3)),
        ("3, 1 ,2", (1, 2, 3)),
        ("7,7,7", (7,)),
        ("0", (0,)),
        ("010,2", (2, 10)),
    ],
)
def test_agency_lists_are_sorted_distinct_ids(text: str, expected: tuple[int, ...]) -> None:
    assert parse_agencies(text) == expected


@pytest.mark.parametrize("text", ["", "1,,2", "1,-2", "a", "1.5", "1;2", "1, two", "\u0661,\u0662"])
def test_anything_but_non_negative_ascii_integers_is_refused(text: str) -> None:
    assert parse_agencies(text) is None
    assert list(agencies_problems(text)) == [
        ("agencies", f"expected agency ids like 1,2,3, got {text!r}")
    ]


def test_no_agencies_setting_is_no_problem() -> None:
    assert list(agencies_problems(None)) == []
    assert list(agencies_problems("4,5")) == []


def test_agency_id_names_one_agency_and_wins_over_a_list() -> None:
    assert agency_ids(9, None) == (9,)
    assert agency_ids(9, "1,2") == (9,)
    assert agency_ids(None, "2,1") == (1, 2)
    assert agency_ids(None, None) is None


def test_the_flag_is_a_string_unset_by_default() -> None:
    parser = argparse.ArgumentParser()
    add_agencies_argument(parser, help="which agencies")
    assert parser.parse_args([]).agencies is None
    assert parser.parse_args(["--agencies", "3,1"]).agencies == "3,1"
