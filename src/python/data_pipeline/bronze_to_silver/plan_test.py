"""Tests of run planning: the agency's files, the partitions in range, what is ignored."""

from __future__ import annotations

import datetime as dt

import pytest
from etl_core.errors import DataError
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.bronze_to_silver.plan import in_range, make_plan


def _store(*keys: str) -> FakeObjectStore:
    return FakeObjectStore({"agencies.csv": b"x", **{key: key.encode() for key in keys}})


async def test_plan_lists_only_the_agencys_bronze_not_a_longer_id() -> None:
    store = _store(
        "bronze/agency_id=1/dt=2024-01-09/part-0.ndjson",
        "bronze/agency_id=1/dt=2024-01-08/part-1.ndjson.gz",
        "bronze/agency_id=10/dt=2024-01-08/part-0.ndjson",
    )

    plan = await make_plan(store, 1, agencies_key="agencies.csv")

    assert [info.key for info in plan.files] == [
        "bronze/agency_id=1/dt=2024-01-08/part-1.ndjson.gz",
        "bronze/agency_id=1/dt=2024-01-09/part-0.ndjson",
    ]
    assert plan.partitions == ("agency_id=1/dt=2024-01-08", "agency_id=1/dt=2024-01-09")


async def test_range_limits_the_partitions_not_the_files() -> None:
    keys = [f"bronze/agency_id=1/dt=2024-01-{d:02d}/part-0.ndjson" for d in (8, 9, 10)]
    store = _store(*keys)

    plan = await make_plan(
        store, 1, agencies_key="agencies.csv", first=dt.date(2024, 1, 9), last=dt.date(2024, 1, 9)
    )

    assert plan.days == ("2024-01-09",)
    assert len(plan.files) == 3
    assert plan.fingerprint == (await make_plan(store, 1, agencies_key="agencies.csv")).fingerprint


async def test_other_files_are_ignored_and_reported() -> None:
    store = _store(
        "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson",
        "bronze/agency_id=1/dt=2024-01-08/_SUCCESS",
    )

    plan = await make_plan(store, 1, agencies_key="agencies.csv")

    assert plan.ignored == ("bronze/agency_id=1/dt=2024-01-08/_SUCCESS",)
    assert len(plan.files) == 1


async def test_bronze_files_naming_no_partition_of_the_agency_are_skipped_and_reported() -> None:
    good = "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"
    store = _store(
        good,
        "bronze/agency_id=1/dt=2024-02-30/part-0.ndjson",
        "bronze/agency_id=1/part-0.ndjson",
        "bronze/agency_id=1/x/agency_id=2/dt=2024-01-08/part-0.ndjson.gz",
    )

    plan = await make_plan(store, 1, agencies_key="agencies.csv")

    assert [info.key for info in plan.files] == [good]
    assert plan.days == ("2024-01-08",)
    alone = await make_plan(_store(good), 1, agencies_key="agencies.csv")
    assert plan.fingerprint == alone.fingerprint
    assert plan.skipped == (
        "bronze/agency_id=1/dt=2024-02-30/part-0.ndjson: dt=2024-02-30 is not a calendar date",
        "bronze/agency_id=1/part-0.ndjson: not under agency_id=<id>/dt=<YYYY-MM-DD>/",
        "bronze/agency_id=1/x/agency_id=2/dt=2024-01-08/part-0.ndjson.gz: names agency 2 under "
        "agency 1's prefix",
    )


async def test_a_missing_agencies_file_names_the_key() -> None:
    with pytest.raises(DataError, match="ref/agencies.csv"):
        await make_plan(_store(), 1, agencies_key="ref/agencies.csv")


def test_in_range_bounds_are_inclusive_and_optional() -> None:
    assert in_range("2024-01-08", dt.date(2024, 1, 8), dt.date(2024, 1, 8))
    assert not in_range("2024-01-07", dt.date(2024, 1, 8), None)
    assert not in_range("2024-01-09", None, dt.date(2024, 1, 8))
    assert in_range("2024-01-09", None, None)
