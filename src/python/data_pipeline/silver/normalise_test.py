"""Property and example tests of the silver field normalisers."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_pipeline.silver.normalise import badge, coordinate, number_from_text, officer_name, tags

WHITESPACE = " \t\r\n"
padding = st.text(alphabet=WHITESPACE, max_size=3)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00045", "45"),
        (" 12345 ", "12345"),
        ("\t007\r\n", "7"),
        ("000", "0"),
        ("0", "0"),
        ("", "0"),
        ("A0012", "A0012"),
        ("0 12", " 12"),
        (45, None),
        (None, None),
    ],
)
def test_badge_is_trimmed_and_zero_stripped(raw: object, expected: str | None) -> None:
    assert badge(raw) == expected


@given(padding, st.integers(min_value=0, max_value=10**9), st.integers(0, 5), padding)
def test_badge_of_a_padded_number_is_the_number(
    left: str, number: int, zeros: int, right: str
) -> None:
    assert badge(f"{left}{'0' * zeros}{number}{right}") == str(number)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("O'BRIEN, ANNE MARIE", ("O'Brien", "Anne Marie")),
        ("smith-jones ,  john", ("Smith-Jones", "John")),
        ("last ,  first", ("Last", "First")),
        ("  van   der\tberg,\tmary  jo ", ("Van Der Berg", "Mary Jo")),
        ("mcdonald, JEAN-LUC", ("Mcdonald", "Jean-Luc")),
        ("st. james, li", ("St. James", "Li")),
        ("smith", ("Smith", None)),
        ("smith,", ("Smith", None)),
        (", john", (None, "John")),
        ("a, b, c", ("A", "B, C")),
        ("  ", (None, None)),
        ("", (None, None)),
        ("o'brien2x, x", ("O'Brien2X", "X")),
        (None, (None, None)),
        (["smith"], (None, None)),
    ],
)
def test_officer_name_splits_at_the_first_comma_and_title_cases(
    raw: object, expected: tuple[str | None, str | None]
) -> None:
    assert officer_name(raw) == expected


name_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters=","), max_size=20)


@given(name_text, name_text)
def test_officer_name_parts_are_collapsed_title_case_of_each_side(last: str, first: str) -> None:
    def expected(part: str) -> str | None:
        collapsed = re.sub("[ \t\r\n]+", " ", part.strip(WHITESPACE))
        return collapsed.lower().title() or None

    assert officer_name(f"{last},{first}") == (expected(last), expected(first))
    assert officer_name(last) == (expected(last), None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("34.052235", 34.052235),
        (" -118.243683\t", -118.243683),
        ("+1", 1.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("1e2", 100.0),
        ("-0", -0.0),
        (34.5, 34.5),
        (34, 34.0),
    ],
)
def test_coordinate_reads_json_numbers_and_decimal_text(raw: object, expected: float) -> None:
    assert coordinate(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        *["", " ", "nan", "NaN", "inf", "-Infinity", "1e400", "1_000", "0x10", "1,5", "1 2", "."],
        *["\u0661\u0662", "\x0c1", "1\x0b", True, None, [1], {"v": 1}, math.inf, math.nan],
        10**400,
    ],
)
def test_coordinate_refuses_non_numbers_and_non_finite_values(raw: object) -> None:
    assert coordinate(raw) is None


@given(st.floats(allow_nan=False, allow_infinity=False), padding, padding)
def test_number_text_round_trips_any_finite_float(value: float, left: str, right: str) -> None:
    assert coordinate(f"{left}{value!r}{right}") == value
    assert number_from_text(repr(value)) == value


@given(st.text(max_size=12))
def test_number_text_is_accepted_only_when_it_is_a_plain_decimal(text: str) -> None:
    plain = re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", text)
    result = number_from_text(text)
    if plain is None:
        assert result is None
    else:
        value = float(text)
        assert result == (value if math.isfinite(value) else None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([" Night ", "TRAFFIC", "night"], ["night", "traffic", "night"]),
        ([], []),
        (None, []),
        ("traffic", []),
        (["a", 1, None, "\tB\n"], ["a", "b"]),
    ],
)
def test_tags_are_trimmed_lowered_in_order_with_duplicates(
    raw: object, expected: list[str]
) -> None:
    assert tags(raw) == expected
