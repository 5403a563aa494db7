"""Tests of the bronze/silver key layout helpers."""

from __future__ import annotations

import datetime as dt

import pytest
from etl_core.errors import DataError

from data_pipeline.store.layout import bronze_key, partition_of, relative_to_bronze


def test_bronze_key_follows_the_documented_layout() -> None:
    day = dt.date(2024, 1, 8)

    assert bronze_key(10, day, 0) == "bronze/agency_id=10/dt=2024-01-08/part-0.ndjson"
    assert bronze_key(3, day, 2, gzip=True) == "bronze/agency_id=3/dt=2024-01-08/part-2.ndjson.gz"


@pytest.mark.parametrize(
    "key",
    [
        "bronze/agency_id=10/dt=2024-01-08/part-0.ndjson",
        "agency_id=10/dt=2024-01-08/part-0.ndjson",
        "prefix/silver/agency_id=10/dt=2024-01-08/x.ndjson",
    ],
)
def test_partition_of_reads_agency_and_dt(key: str) -> None:
    assert partition_of(key) == (10, "2024-01-08")


@pytest.mark.parametrize(
    "key",
    [
        "bronze/part-0.ndjson",
        "bronze/agency_id=x/dt=2024-01-08/part-0.ndjson",
        "bronze/agency_id=1/dt=2024-02-30/part-0.ndjson",
        "bronze/agency_id=1/dt=2024-01-08",
    ],
)
def test_keys_without_a_real_partition_are_data_errors(key: str) -> None:
    with pytest.raises(DataError, match="agency_id=|dt="):
        partition_of(key)


def test_sources_are_named_relative_to_bronze() -> None:
    assert relative_to_bronze("bronze/agency_id=1/dt=2024-01-08/p.ndjson") == (
        "agency_id=1/dt=2024-01-08/p.ndjson"
    )
    assert relative_to_bronze("elsewhere/p.ndjson") == "elsewhere/p.ndjson"
