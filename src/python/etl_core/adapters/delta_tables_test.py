"""The Delta table adapters on local disk: the table contract, concurrent commits, the opener."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from etl_core.adapters.delta_tables import Tables, open_tables, storage_options, table_uri
from etl_core.adapters.local_object_store import LocalObjectStore, open_local_object_store
from etl_core.ports import ObjectStore, SilverTables
from etl_core.testing.table_concurrency_contract import ConcurrentTablesContract, OpenTables
from etl_core.testing.table_contract import TableContract
from etl_core.testing.table_rows import dead_letter, dead_letters, expect, keyed, silver, silver_row


@pytest.fixture()
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    async with open_local_object_store(tmp_path / "lake") as opened:
        yield opened


class TestDeltaTables(TableContract):
    # Two rows per file: merges must find, rewrite and remove files among several per partition.
    @pytest.fixture()
    def tables(self, store: LocalObjectStore) -> SilverTables:
        return open_tables(str(store.root), store, {}, rows_per_file=2)

    @pytest.fixture()
    def dry_run_tables(self, store: LocalObjectStore) -> SilverTables:
        return open_tables(str(store.root), store, {}, rows_per_file=2, dry_run=True)


class TestDeltaTablesConcurrency(ConcurrentTablesContract):
    @pytest.fixture()
    def open_on(self, tmp_path: Path) -> OpenTables:
        return lambda store: open_tables(str(tmp_path / "lake"), store, {})


async def test_dry_run_tables_write_no_file(store: LocalObjectStore) -> None:
    tables = open_tables(str(store.root), store, {}, dry_run=True)

    await tables.silver.merge(1, 1, silver(silver_row("a")))
    await tables.deadletter.write(1, 1, dead_letters(dead_letter(1)), replace=True)

    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def _merge_in_thread(root: Path, agency: int, start: threading.Barrier) -> str | None:
    async def merge() -> None:
        async with open_local_object_store(root) as store:
            tables = open_tables(str(root), store, {})
            start.wait(timeout=60)
            await tables.silver.merge(agency, 1, silver(*_rows(agency)))

    try:
        asyncio.run(merge())
    except Exception as exc:  # reported, not raised: the test lists every failure
        return f"agency {agency}: {type(exc).__name__}: {exc}"
    return None


def _rows(agency: int) -> list[dict[str, object]]:
    return [silver_row(f"A{agency:03d}-{i:08d}", agency_id=agency) for i in range(20)]


async def test_twenty_agencies_creating_and_merging_at_once_all_land(tmp_path: Path) -> None:
    root, agencies = tmp_path / "lake", range(1, 21)
    start = threading.Barrier(len(agencies))
    results: list[str | None] = [None] * len(agencies)

    def run(index: int, agency: int) -> None:
        results[index] = _merge_in_thread(root, agency, start)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(agencies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join, 120)

    assert [r for r in results if r] == []
    async with open_local_object_store(root) as store:
        tables = open_tables(str(root), store, {})
        assert keyed(await tables.silver.read()) == expect(*(r for a in agencies for r in _rows(a)))
    operations = [c["operation"] for c in DeltaTable(table_uri(str(root), "silver")).history()]
    assert operations.count("CREATE TABLE") == 1  # a lost creation race loads the winner's table


# -- the opener ---------------------------------------------------------------------------------


def test_table_uri_of_a_directory_is_the_absolute_path_of_the_table(tmp_path: Path) -> None:
    assert table_uri(str(tmp_path), "silver") == str(tmp_path / "silver")
    assert table_uri(f"file://{tmp_path}", "deadletter") == str(tmp_path / "deadletter")
    assert table_uri("lake", "silver") == str(Path.cwd() / "lake" / "silver")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket-a", "s3://bucket-a/silver"),
        ("s3://bucket-a/", "s3://bucket-a/silver"),
        ("s3://bucket-a/env/prod", "s3://bucket-a/env/prod/silver"),
        ("s3://bucket-a/env/prod/", "s3://bucket-a/env/prod/silver"),
    ],
)
def test_table_uri_of_a_bucket_is_under_its_prefix(url: str, expected: str) -> None:
    assert table_uri(url, "silver") == expected


def test_a_local_store_needs_no_storage_options() -> None:
    assert storage_options("/data/lake", {"AWS_ENDPOINT_URL": "http://x:9000"}) == {}


def test_storage_options_take_endpoint_region_and_credentials_from_the_environment() -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://generic:9000",
        "AWS_ENDPOINT_URL_S3": "http://s3-only:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "",
    }

    assert storage_options("s3://bucket-a/p", environ) == {
        "AWS_ENDPOINT_URL": "http://s3-only:9000",  # the S3-specific variable wins
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }


def test_storage_options_default_to_us_east_1_and_https_without_overrides() -> None:
    assert storage_options("s3://bucket-a", {}) == {"AWS_REGION": "us-east-1"}
    https = storage_options(
        "s3://bucket-a", {"AWS_ENDPOINT_URL": "https://s3.example:443", "AWS_REGION": "ap-1"}
    )
    assert https == {"AWS_ENDPOINT_URL": "https://s3.example:443", "AWS_REGION": "ap-1"}


def test_opened_tables_show_no_credentials(store: ObjectStore) -> None:
    tables: Tables = open_tables("s3://bucket-a", store, {"AWS_SECRET_ACCESS_KEY": "hush-hush"})

    assert "hush-hush" not in repr(tables)
    assert tables.silver.files.uri == "s3://bucket-a/silver"
    assert tables.deadletter.files.prefix == "deadletter"
