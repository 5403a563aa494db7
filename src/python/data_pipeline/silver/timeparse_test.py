"""Property and example tests of the timestamp parser against the datetime module."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_pipeline.silver.timeparse import (
    MAX_EPOCH,
    MIN_EPOCH,
    format_utc,
    parse_iso_us,
    parse_local_minute,
    parse_occurred_at,
)

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
ZONES = [
    zoneinfo.ZoneInfo(name)
    for name in (
        "America/New_York",
        "America/Phoenix",
        "Pacific/Honolulu",
        "America/Anchorage",
        "America/Indiana/Indianapolis",
        "Europe/London",
        "Australia/Lord_Howe",  # 30-minute DST shift
        "Asia/Kathmandu",  # +05:45
    )
]

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
aware = st.datetimes(
    min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=offsets
)


def _micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def _iso(moment: dt.datetime, fraction: str) -> str:
    offset = moment.utcoffset()
    assert offset is not None
    minutes = offset // dt.timedelta(minutes=1)
    sign = "+" if minutes >= 0 else "-"
    tail = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S").zfill(19) + fraction + tail


@given(aware)
def test_iso_with_offset_parses_to_the_same_instant_as_datetime(moment: dt.datetime) -> None:
    whole = moment.replace(microsecond=0)

    assert parse_iso_us(_iso(whole, "")) == _micros(whole)
    assert parse_iso_us(_iso(moment, f".{moment.microsecond:06d}")) == _micros(moment)


@given(aware, st.integers(min_value=1, max_value=6))
def test_shorter_fractions_are_read_as_decimal_fractions(moment: dt.datetime, digits: int) -> None:
    fraction = f"{moment.microsecond:06d}"[:digits]
    expected = _micros(moment.replace(microsecond=int(fraction.ljust(6, "0"))))

    assert parse_iso_us(_iso(moment, "." + fraction)) == expected


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_z_suffix_is_utc(moment: dt.datetime) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S").zfill(19) + "Z"

    assert parse_iso_us(text) == _micros(moment.replace(microsecond=0, tzinfo=UTC))


@given(st.integers(min_value=MIN_EPOCH, max_value=MAX_EPOCH))
def test_format_utc_matches_strftime(seconds: int) -> None:
    moment = EPOCH + dt.timedelta(seconds=seconds)

    assert format_utc(seconds) == moment.strftime("%Y-%m-%dT%H:%M:%S").zfill(19) + "Z"


@given(
    st.integers(min_value=1, max_value=9999),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=99),
)
def test_field_values_are_accepted_exactly_when_datetime_accepts_them(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> None:
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
    try:
        expected: int | None = _micros(dt.datetime(year, month, day, hour, minute, second, 0, UTC))
    except ValueError:
        expected = None

    assert parse_iso_us(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-30T10:00:00-05:00",  # Feb 30
        "2023-02-29T10:00:00Z",  # not a leap year
        "2024-13-01T10:00:00Z",
        "2024-01-08T24:00:00Z",
        "2024-01-08T10:60:00Z",
        "2024-01-08T10:00:60Z",
        "2024-01-08T10:00:00+24:00",
        "2024-01-08T10:00:00+05:60",
        "2024-01-08T10:00:00",  # offset required
        "2024-01-08 10:00:00Z",
        "2024-01-08t10:00:00z",
        "2024-01-08T10:00:00.Z",
        "2024-01-08T10:00:00.1234567Z",
        "2024-01-08T10:00:00+0500",
        "2024-01-08T10:00Z",
        " 2024-01-08T10:00:00Z",
        "2024-01-08T10:00:00Z ",
        "2024-1-08T10:00:00Z",
        "\uff12\uff10\uff12\uff14-01-08T10:00:00Z",  # fullwidth digits
        "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
        "9999-12-31T23:59:59-00:01",  # after year 9999 in UTC
        "",
        "not a date",
    ],
)
def test_malformed_or_impossible_iso_is_refused(text: str) -> None:
    assert parse_iso_us(text) is None


def test_iso_extremes_inside_the_range_are_accepted() -> None:
    assert parse_iso_us("0001-01-01T00:00:00Z") == MIN_EPOCH * 1_000_000
    assert parse_iso_us("9999-12-31T23:59:59.999999Z") == MAX_EPOCH * 1_000_000 + 999_999
    assert parse_iso_us("2024-01-08T18:49:07-00:00") == parse_iso_us("2024-01-08T18:49:07Z")


@given(
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 12, 31)),
    st.sampled_from(ZONES),
)
def test_local_minute_is_wall_time_in_the_zone_with_fold_zero(
    wall: dt.datetime, zone: zoneinfo.ZoneInfo
) -> None:
    wall = wall.replace(second=0, microsecond=0)
    text = wall.strftime("%m/%d/%Y %H:%M")

    expected = wall.replace(tzinfo=zone, fold=0)
    assert parse_local_minute(text, zone) == (expected - EPOCH) // dt.timedelta(seconds=1)


def test_dst_gap_and_fold_use_fold_zero() -> None:
    # 02:30 does not exist on 2024-03-10 in New York; fold=0 reads it with the EST offset.
    assert format_utc(parse_local_minute("03/10/2024 02:30", NEW_YORK) or 0) == (
        "2024-03-10T07:30:00Z"
    )
    # 01:30 happens twice on 2024-11-03; fold=0 is the first (EDT) one.
    assert format_utc(parse_local_minute("11/03/2024 01:30", NEW_YORK) or 0) == (
        "2024-11-03T05:30:00Z"
    )
    assert format_utc(parse_local_minute("11/03/2024 03:30", NEW_YORK) or 0) == (
        "2024-11-03T08:30:00Z"
    )


@pytest.mark.parametrize(
    "text",
    [
        "13/45/2024 25:61",
        "02/30/2024 10:00",
        "01/08/2024 24:00",
        "01/08/2024 10:60",
        "1/8/2024 10:00",
        "01/08/2024 10:00:00",
        "01/08/2024T10:00",
        "01/08/0000 10:00",
        " 01/08/2024 10:00",
    ],
)
def test_malformed_or_impossible_local_minute_is_refused(text: str) -> None:
    assert parse_local_minute(text, NEW_YORK) is None


@given(st.integers(min_value=MIN_EPOCH, max_value=MAX_EPOCH))
def test_epoch_int_and_digit_string_are_seconds_utc(seconds: int) -> None:
    assert parse_occurred_at(seconds, NEW_YORK) == seconds
    if seconds >= 0:
        assert parse_occurred_at(str(seconds), NEW_YORK) == seconds
        assert parse_occurred_at("000" + str(seconds), NEW_YORK) == seconds


@pytest.mark.parametrize(
    "value",
    [
        MAX_EPOCH + 1,
        MIN_EPOCH - 1,
        str(MAX_EPOCH + 1),
        "9" * 5000,
        "-5",
        "+5",
        " 1704700000",
        "1704700000 ",
        "١٢٣",  # Arabic-Indic digits are digits to str.isdigit, not to the spec
        "",
        "not a date",
        "yesterday 5pm",
        "13/45/2024 25:61",
        "2024-02-30T10:00:00-05:00",
        1704700000.0,
        True,
        None,
        [1704700000],
        {"at": 1},
    ],
)
def test_occurred_at_refuses_anything_else(value: object) -> None:
    assert parse_occurred_at(value, NEW_YORK) is None


def test_occurred_at_forms_truncate_to_the_second() -> None:
    assert parse_occurred_at("2024-01-08T18:49:07.999-05:00", NEW_YORK) == parse_occurred_at(
        "2024-01-08T23:49:07Z", NEW_YORK
    )
    assert parse_occurred_at("01/08/2024 18:49", NEW_YORK) == parse_occurred_at(
        "2024-01-08T23:49:00Z", NEW_YORK
    )
    assert parse_occurred_at("0001-01-01T00:00:00Z", NEW_YORK) == MIN_EPOCH


def test_format_utc_is_safe_when_threads_build_the_table_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import concurrent.futures

    from data_pipeline.silver import timeparse

    monkeypatch.setattr(timeparse, "_clock_faces", ())
    seconds = range(1_704_700_000, 1_704_700_000 + 86_400, 97)

    def format_all() -> list[str]:
        return [timeparse.format_utc(s) for s in seconds]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: format_all(), range(8)))

    expected = [
        dt.datetime.fromtimestamp(s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for s in seconds
    ]
    assert all(result == expected for result in results)
