"""Tests for the cattrs converter: round-trips and readable, path-carrying errors."""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import TypeVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl_core import serde
from etl_core.errors import ConfigError
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus

UTC = dt.UTC
T = TypeVar("T")


@attrs.frozen
class _Config:
    max_dead_letter_ratio: float | None = None
    agency_id: int | None = None
    dry_run: bool = False
    name: str = "x"


class _Colour(str, enum.Enum):
    RED = "red"


def _json_round_trip(obj: T, cls: type[T]) -> T:
    return serde.structure(json.loads(json.dumps(serde.unstructure(obj))), cls, source="db")


def test_run_record_round_trips_through_json() -> None:
    run = RunRecord(
        run_id="r1",
        job="generate",
        status=RunStatus.SUCCEEDED,
        started_at=dt.datetime(2024, 1, 8, 12, 0, tzinfo=UTC),
        finished_at=dt.datetime(2024, 1, 8, 12, 1, 30, 500, tzinfo=UTC),
        agency_id=10,
        parameters={"records": 1000, "nested": {"a": [1, 2]}},
        counts=Counts(
            rows_in=10,
            rows_out=8,
            rows_duplicate=1,
            rows_dead_letter=1,
            bytes_out=99,
            rows_inserted=5,
            rows_updated=2,
        ),
        artifacts=("manifest.json", "bronze/x"),
        trace_id="ab" * 16,
    )
    assert _json_round_trip(run, RunRecord) == run


def test_partition_record_round_trips_through_json() -> None:
    part = PartitionRecord(
        run_id="r1",
        job="bronze_to_silver",
        partition="agency_id=10/dt=2024-01-08",
        input_fingerprint="sha256:abc",
        counts=Counts(rows_in=3, rows_out=3),
        agency_id=10,
        artifacts=("silver/agency_id=10/dt=2024-01-08/part-0.ndjson",),
        recorded_at=dt.datetime(2024, 1, 8, tzinfo=UTC),
    )
    assert _json_round_trip(part, PartitionRecord) == part


def test_unstructure_gives_plain_json_values() -> None:
    data = serde.unstructure(
        {"status": RunStatus.STALE, "at": dt.datetime(2024, 1, 8, tzinfo=UTC), "t": (1, 2)}
    )
    assert data == {"status": "stale", "at": "2024-01-08T00:00:00+00:00", "t": [1, 2]}
    assert data["status"].__class__ is str


def test_str_enum_structures_to_the_member_not_a_string() -> None:
    assert serde.structure("red", _Colour, source="s") is _Colour.RED


def test_error_names_source_and_path() -> None:
    with pytest.raises(ConfigError) as info:
        serde.structure({"max_dead_letter_ratio": "lots"}, _Config, source="config.toml")
    assert str(info.value) == (
        "config.toml @ $.max_dead_letter_ratio: expected a number, got 'lots'"
    )


def test_every_bad_field_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        serde.structure({"agency_id": 1.5, "dry_run": "perhaps"}, _Config, source="c.toml")
    message = str(info.value)
    assert "c.toml @ $.agency_id: expected an integer, got 1.5" in message
    assert "c.toml @ $.dry_run: expected a boolean (true/false), got 'perhaps'" in message


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"extra fields found \(colour\)"):
        serde.structure({"colour": "red"}, _Config, source="c.toml")


def test_a_non_table_is_reported_as_such() -> None:
    with pytest.raises(ConfigError, match=r"c.toml @ \$: expected a table"):
        serde.structure([1], _Config, source="c.toml")


def test_top_level_scalar_error_names_the_type_and_custom_path() -> None:
    with pytest.raises(ConfigError, match=r"^environment @ ETL_AGENCY_ID: expected an integer"):
        serde.structure("ten", int, source="environment", path="ETL_AGENCY_ID")


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("False", False), ("1", True), ("off", False), (0, False)]
)
def test_booleans_from_text(raw: object, expected: bool) -> None:
    assert serde.structure(raw, bool, source="env") is expected


@pytest.mark.parametrize(
    ("raw", "cls"), [(True, int), ("1.5", int), (2.5, int), (1, str), ("nan", float)]
)
def test_lossy_coercions_are_refused(raw: object, cls: type) -> None:
    with pytest.raises(ConfigError):
        serde.structure(raw, cls, source="s")


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs a UTC offset"):
        serde.structure("2024-01-08T10:00:00", dt.datetime, source="s")


@pytest.mark.parametrize("raw", ["2024-01-08", "20240108", dt.date(2024, 1, 8)])
def test_dates_come_from_iso_text_or_a_date(raw: object) -> None:
    assert serde.structure(raw, dt.date, source="s") == dt.date(2024, 1, 8)
    assert serde.unstructure(dt.date(2024, 1, 8)) == "2024-01-08"


@pytest.mark.parametrize("raw", ["2024-1-8", dt.datetime(2024, 1, 8, tzinfo=UTC), 20240108])
def test_anything_else_is_not_a_date(raw: object) -> None:
    with pytest.raises(ConfigError, match=r"s @ \$: expected a date"):
        serde.structure(raw, dt.date, source="s")


_counts = st.builds(Counts, *(st.integers(min_value=0, max_value=2**53) for _ in range(6)))
_text = st.text(min_size=1, max_size=20)
_times = st.datetimes(timezones=st.just(UTC))


@given(
    counts=_counts,
    run_id=_text,
    status=st.sampled_from(RunStatus),
    started=_times,
    finished=st.none() | _times,
    agency=st.none() | st.integers(min_value=0, max_value=10**6),
    artifacts=st.lists(_text, max_size=3).map(tuple),
    params=st.dictionaries(_text, st.none() | st.integers() | _text, max_size=3),
)
def test_any_run_record_round_trips(
    counts: Counts,
    run_id: str,
    status: RunStatus,
    started: dt.datetime,
    finished: dt.datetime | None,
    agency: int | None,
    artifacts: tuple[str, ...],
    params: dict[str, object],
) -> None:
    run = RunRecord(
        run_id=run_id,
        job="j",
        status=status,
        started_at=started,
        finished_at=finished,
        agency_id=agency,
        counts=counts,
        artifacts=artifacts,
        parameters=params,
    )
    assert _json_round_trip(run, RunRecord) == run
