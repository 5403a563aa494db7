"""The Delta table adapters on moto's S3 server over HTTP: the table contract, commits from stale
snapshots, and 20 agencies committing to one silver table at once from 20 processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from etl_core.adapters.delta_tables import open_tables
from etl_core.adapters.s3_object_store import S3ObjectStore, open_s3_object_store
from etl_core.testing.table_concurrency_contract import ConcurrentTablesContract
from etl_core.testing.table_contract import TableContract
from etl_core.testing.table_rows import Row, at, day, expect, keyed, silver, silver_row

AGENCIES = range(1, 21)


def _environ(moto_url: str) -> dict[str, str]:
    """The job's environment: the fake credentials of conftest and the endpoint of moto."""
    return {**os.environ, "AWS_ENDPOINT_URL": moto_url}


@pytest.fixture()
async def store(moto_url, bucket) -> AsyncIterator[S3ObjectStore]:
    async with open_s3_object_store(bucket, "lake", endpoint_url=moto_url) as opened:
        yield opened


class TestDeltaTablesOnS3(TableContract):
    @pytest.fixture()
    def tables(self, store, bucket, moto_url):
        return open_tables(f"s3://{bucket}/lake", store, _environ(moto_url), rows_per_file=2)

    @pytest.fixture()
    def dry_run_tables(self, store, bucket, moto_url):
        environ = _environ(moto_url)
        return open_tables(f"s3://{bucket}/lake", store, environ, rows_per_file=2, dry_run=True)


class TestDeltaTablesConcurrencyOnS3(ConcurrentTablesContract):
    @pytest.fixture()
    def open_on(self, bucket, moto_url):
        return lambda store: open_tables(f"s3://{bucket}/lake", store, _environ(moto_url))


async def test_dry_run_tables_put_no_object(store, bucket, moto_url, s3):
    tables = open_tables(f"s3://{bucket}/lake", store, _environ(moto_url), dry_run=True)

    await tables.silver.merge(1, 1, silver(silver_row("a")))

    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# -- 20 agencies at once -------------------------------------------------------------------------


def _first(agency: int) -> list[Row]:
    return [silver_row(f"A{agency:03d}-{i:08d}", agency_id=agency) for i in range(30)]


def _second(agency: int) -> list[Row]:
    """10 newer versions on another dt (their file is rewritten), 10 older ones, 10 new keys."""

    def row(i: int, **values: Any) -> Row:
        return silver_row(f"A{agency:03d}-{i:08d}", agency_id=agency, **values)

    return (
        [row(i, on=day(1), updated_at=at(60)) for i in range(10)]
        + [row(i, updated_at=at(-60)) for i in range(10, 20)]
        + [row(i, on=day(2)) for i in range(30, 40)]
    )


def _agency_in_child(moto_url: str, bucket: str, agency: int, start: Any, report: Any) -> None:
    """Merge the agency's two folds, each started at the same moment as every other process's."""

    async def rounds() -> None:
        async with open_s3_object_store(bucket, "lake", endpoint_url=moto_url) as store:
            for version, rows in ((1, _first(agency)), (2, _second(agency))):
                tables = open_tables(f"s3://{bucket}/lake", store, _environ(moto_url))
                start.wait(timeout=300)
                try:
                    outcome = await tables.silver.merge(agency, version, silver(*rows))
                except Exception as exc:  # reported, not raised: the test lists every failure
                    report.put((agency, version, f"{type(exc).__name__}: {exc}"))
                    continue
                counts = (outcome.inserted, outcome.updated, outcome.older)
                report.put((agency, version, tuple(sum(c.values()) for c in counts)))

    asyncio.run(rounds())


async def test_twenty_agencies_merging_at_once_from_twenty_processes_all_land(
    moto_url, bucket, store, s3
):
    context = multiprocessing.get_context("spawn")
    start, report = context.Barrier(len(AGENCIES)), context.Queue()
    children = [
        context.Process(target=_agency_in_child, args=(moto_url, bucket, a, start, report))
        for a in AGENCIES
    ]
    for child in children:
        child.start()
    results = [await asyncio.to_thread(report.get, True, 600) for _ in range(2 * len(AGENCIES))]
    for child in children:
        await asyncio.to_thread(child.join, 60)

    failures = sorted(r for r in results if isinstance(r[2], str))
    assert failures == [], f"{len(failures)} of {len(results)} merges failed"
    assert sorted(results) == sorted(
        [(a, 1, (30, 0, 0)) for a in AGENCIES] + [(a, 2, (10, 10, 10)) for a in AGENCIES]
    )
    tables = open_tables(f"s3://{bucket}/lake", store, _environ(moto_url))
    expected = [row for a in AGENCIES for row in _second(a)[:10] + _first(a)[10:] + _second(a)[20:]]
    assert keyed(await tables.silver.read()) == expect(*expected)
    assert [await tables.silver.version(a) for a in AGENCIES] == [2] * len(AGENCIES)
    # One CREATE TABLE: a lost creation race loads the winner's table. (Read with boto3: delta-rs'
    # history() holds the GIL while it lists, which starves moto's server thread in this process.)
    log = s3.list_objects_v2(Bucket=bucket, Prefix="lake/silver/_delta_log/")["Contents"]
    bodies = [s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in log]
    assert sum(b'"metaData"' in body for body in bodies) == 1
    assert [child.exitcode for child in children] == [0] * len(AGENCIES)
