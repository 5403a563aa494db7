import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl_core.dates import parse_date


@given(st.dates(min_value=dt.date(1000, 1, 1)))
def test_extended_and_basic_iso_dates_parse_to_the_same_day(day: dt.date) -> None:
    assert parse_date(day.isoformat()) == day
    assert parse_date(day.strftime("%Y%m%d")) == day


@pytest.mark.parametrize(
    "text", ["2024-1-8", "2024-02-30", "2024-13-01", "2024-W02-1", "2024W021", " 2024-01-08", ""]
)
def test_anything_else_is_refused_with_the_text_named(text: str) -> None:
    with pytest.raises(ValueError, match=f"expected a date YYYY-MM-DD, got {text!r}"):
        parse_date(text)
