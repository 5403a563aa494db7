"""Tests of bronze -> silver over fakes: incremental folds, rebuilds, accounting, exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import logging
from typing import Any

import attrs
import orjson
import pytest
from etl_core.errors import (
    DataError,
    NothingForAgency,
    ObjectNotFound,
    ObjectStoreError,
    TableError,
)
from etl_core.model import Counts
from etl_core.runner import JobOutcome, RunContext
from etl_core.testing.fake_tables import FakeSilverTable, FakeTables
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory
from etl_core.testing.run_contexts import started_run

import data_pipeline.bronze_to_silver.run as b2s_module
from data_pipeline.bronze_to_silver.run import PromoteOptions, promote
from data_pipeline.bronze_to_silver.workers import TransformPool
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.arrow import silver_batch
from data_pipeline.silver.dedupe import Deduper
from data_pipeline.silver.file_transform import transform_file
from data_pipeline.workload.bronze_store import workload_bronze
from data_pipeline.workload.generate import WorkloadOptions

# Agency 1 gets files 0, 2, 4: dt 2024-01-08, -09, -10.
WORKLOAD = WorkloadOptions(records=600, files=6, agencies=2, bad_rate=0.1, dup_rate=0.2, seed=3)
DAYS = ("2024-01-08", "2024-01-09", "2024-01-10")
PARTITIONS = tuple(f"agency_id=1/dt={day}" for day in DAYS)
KEYS = tuple(f"bronze/agency_id=1/dt={day}/part-0.ndjson" for day in DAYS)


def _bronze() -> FakeObjectStore:
    return workload_bronze(WORKLOAD)


async def _context(run_id: str, history: FakeRunHistory, *, dry_run: bool = False) -> RunContext:
    # Recorded even in a dry run: these tests read the history back either way.
    ctx = await started_run(history, "bronze_to_silver", run_id=run_id, agency_id=1)
    return attrs.evolve(ctx, dry_run=dry_run)


async def _promote(
    run_id: str,
    store: FakeObjectStore,
    bronze: FakeObjectStore,
    tables: FakeTables,
    history: FakeRunHistory | None = None,
    *,
    dry_run: bool = False,
    **options: Any,
) -> JobOutcome:
    ctx = await _context(run_id, history or FakeRunHistory(), dry_run=dry_run)
    return await promote(ctx, store, bronze, tables, PromoteOptions(workers=1, **options))


def _expected(bronze: FakeObjectStore) -> Deduper:
    """The Deduper over every bronze file of agency 1: what silver must hold."""
    agencies = parse_agencies(bronze.objects["agencies.csv"])
    deduper = Deduper()
    for key, body in sorted(bronze.objects.items()):
        if key.startswith("bronze/agency_id=1/"):
            deduper.add(transform_file(key, body, agencies))
    return deduper


def _rows(table: Any) -> list[dict[str, Any]]:
    """Rows by record_id, without the run that wrote them."""
    rows = [] if table is None else table.to_pylist()
    for row in rows:
        row.pop("_run_id", None)
        row.pop("run_id", None)
    return sorted(rows, key=lambda row: (row.get("record_id") or "", row.get("line") or 0))


def _silver_of(deduper: Deduper) -> list[dict[str, Any]]:
    survivors = list(deduper.survivors())
    batch = silver_batch(
        [s.silver for s in survivors],
        [s.source for s in survivors],
        [s.line for s in survivors],
        "",
    )
    return _rows(batch)


async def _silver(tables: FakeTables) -> list[dict[str, Any]]:
    return _rows(await tables.silver.read(1))


async def test_first_run_folds_every_file_into_silver_with_what_dedupe_keeps() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()

    outcome = await _promote("r1", store, bronze, tables)

    expected = _expected(bronze)
    assert await _silver(tables) == _silver_of(expected)
    assert outcome.counts == attrs.evolve(
        expected.counts, rows_inserted=expected.counts.rows_out, rows_updated=0
    )
    assert outcome.counts.rows_duplicate > 0
    assert outcome.counts.rows_dead_letter > 0
    assert outcome.summary["outcome"].startswith("folded in 3 bronze files as fold 1:")
    assert await tables.silver.version(1) == 1


async def test_every_partition_is_recorded_balanced_with_what_the_merge_did() -> None:
    store, bronze, tables, history = FakeObjectStore(), _bronze(), FakeTables(), FakeRunHistory()

    outcome = await _promote("r1", store, bronze, tables, history)

    rows = await history.partitions("r1")
    assert [row.partition for row in rows] == list(PARTITIONS)
    assert all(row.status == "merged" and row.counts.balanced for row in rows)
    assert all(row.counts.rows_out == row.counts.rows_inserted for row in rows)
    assert sum((row.counts for row in rows), start=Counts()) == outcome.counts


async def test_dead_letter_rows_carry_reason_source_line_raw_detail_and_run_id() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()

    await _promote("r1", store, bronze, tables)

    rows = (await tables.deadletter.read(1)).to_pylist()
    assert len(rows) == _expected(bronze).counts.rows_dead_letter
    for row in rows:
        assert row["run_id"] == "r1"
        assert row["source"].startswith("agency_id=1/dt=")
        assert row["dt"].isoformat() == row["source"].split("dt=")[1][:10]
        lines = bronze.objects[f"bronze/{row['source']}"].split(b"\n")
        assert lines[row["line"] - 1].decode("utf-8", "replace") == row["raw"]
        assert row["detail"].startswith(f"{row['source']}:{row['line']}: {row['reason']}")


async def test_rerun_with_nothing_new_reads_no_body_and_writes_nothing() -> None:
    store, bronze, tables, history = FakeObjectStore(), _bronze(), FakeTables(), FakeRunHistory()
    await _promote("r1", store, bronze, tables, history)
    before = (dict(store.objects), await _silver(tables), await tables.silver.version(1))
    bronze.fail_on["get"] = ObjectStoreError("bodies must not be read")
    store.fail_on["put"] = ObjectStoreError("no writes")
    tables.silver.fail_on["merge"] = TableError("no commits")

    outcome = await _promote("r2", store, bronze, tables, history)

    assert (dict(store.objects), await _silver(tables), await tables.silver.version(1)) == before
    assert outcome.summary["outcome"].startswith("up to date: all 3 bronze files")
    assert outcome.counts == Counts()
    assert await history.partitions("r2") == []


async def test_a_new_day_is_folded_in_alone_and_ends_equal_to_a_full_build() -> None:
    store, bronze, tables, history = FakeObjectStore(), _bronze(), FakeTables(), FakeRunHistory()
    held = bronze.objects.pop(KEYS[2])
    await _promote("r1", store, bronze, tables, history)
    bronze.objects[KEYS[2]] = held

    outcome = await _promote("r2", store, bronze, tables, history)

    assert [row.partition for row in await history.partitions("r2")] == [PARTITIONS[2]]
    assert outcome.counts.rows_in == held.count(b"\n") - held.count(b"\n\n")
    assert outcome.counts.rows_updated > 0  # the generator updates earlier days' records
    assert await _silver(tables) == _silver_of(_expected(bronze))


@pytest.mark.parametrize("order", [(2, 1, 0), (1, 2, 0), (0, 2, 1)])
async def test_any_arrival_order_ends_equal_to_the_transform_of_all_bronze(
    order: tuple[int, ...],
) -> None:
    store, full, tables = FakeObjectStore(), _bronze(), FakeTables()
    bronze = FakeObjectStore({k: v for k, v in full.objects.items() if k not in KEYS})
    total = Counts()
    for step, index in enumerate(order):
        bronze.objects[KEYS[index]] = full.objects[KEYS[index]]
        total += (await _promote(f"r{step}", store, bronze, tables)).counts

    assert await _silver(tables) == _silver_of(_expected(full))
    expected = _expected(full).counts
    assert total.rows_in == expected.rows_in
    assert total.rows_dead_letter == expected.rows_dead_letter
    assert total.rows_inserted == expected.rows_out  # each surviving key inserted once
    assert total.rows_duplicate + total.rows_updated == expected.rows_duplicate
    assert len(_rows(await tables.deadletter.read(1))) == expected.rows_dead_letter


async def test_a_changed_bronze_file_rebuilds_the_agency() -> None:
    store, bronze, tables, history = FakeObjectStore(), _bronze(), FakeTables(), FakeRunHistory()
    await _promote("r1", store, bronze, tables)
    bronze.objects[KEYS[2]] += b"not json\n"

    outcome = await _promote("r2", store, bronze, tables, history)

    assert outcome.summary["outcome"].startswith("rebuilt 3 bronze files as fold 2")
    assert {row.status for row in await history.partitions("r2")} == {"rebuilt"}
    assert await _silver(tables) == _silver_of(_expected(bronze))
    dead = (await tables.deadletter.read(1)).to_pylist()
    assert len(dead) == _expected(bronze).counts.rows_dead_letter
    assert {"reason": "invalid_json", "raw": "not json", "run_id": "r2"}.items() <= dead[-1].items()


async def test_a_vanished_bronze_file_rebuilds_the_agency_without_its_rows() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    await _promote("r1", store, bronze, tables)
    del bronze.objects[KEYS[1]]

    outcome = await _promote("r2", store, bronze, tables)

    assert outcome.summary["outcome"].startswith("rebuilt 2 bronze files")
    assert await _silver(tables) == _silver_of(_expected(bronze))


async def test_reprocess_rebuilds_even_when_nothing_changed() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    await _promote("r1", store, bronze, tables)

    outcome = await _promote("r2", store, bronze, tables, reprocess=True)

    assert outcome.summary["outcome"].startswith("rebuilt 3 bronze files as fold 2")
    assert {row["_run_id"] for row in (await tables.silver.read(1)).to_pylist()} == {"r2"}
    assert await _silver(tables) == _silver_of(_expected(bronze))


async def test_a_range_folds_only_new_files_in_range_and_keys_stay_unique() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    first = parse_agencies(bronze.objects["agencies.csv"])
    [early, *_] = transform_file(KEYS[0], bronze.objects[KEYS[0]], first).valid_rows
    raw = {
        "record_id": early.record_id, "agency_id": 1, "record_type": "incident",
        "occurred_at": 1704700000, "updated_at": "2030-01-01T00:00:00Z", "status": "closed",
        "location": {"lat": "34", "lon": "-118"},
    }  # fmt: skip
    bronze.objects["bronze/agency_id=1/dt=2024-01-10/part-9.ndjson"] = orjson.dumps(raw) + b"\n"

    first_run = await _promote(
        "r1", store, bronze, tables, first=dt.date(2024, 1, 8), last=dt.date(2024, 1, 9)
    )
    rest = await _promote("r2", store, bronze, tables)

    assert first_run.summary["outcome"].startswith("folded in 2 bronze files")
    assert rest.summary["outcome"].startswith("folded in 2 bronze files")
    silver = await _silver(tables)
    assert len({row["record_id"] for row in silver}) == len(silver)
    moved = next(row for row in silver if row["record_id"] == early.record_id)
    assert moved["dt"] == dt.date(2024, 1, 10)
    assert silver == _silver_of(_expected(bronze))


async def test_dry_run_transforms_and_counts_but_writes_and_records_nothing() -> None:
    store, bronze, tables, history = FakeObjectStore(), _bronze(), FakeTables(), FakeRunHistory()
    tables.silver.dry_run = tables.deadletter.dry_run = True

    outcome = await _promote("r1", store, bronze, tables, history, dry_run=True)

    assert store.objects == {}
    assert await tables.silver.read(1) is None
    assert await history.partitions("r1") == []
    assert outcome.counts.rows_in == _expected(bronze).counts.rows_in
    assert "dry run: nothing written" in outcome.summary["outcome"]


async def test_a_row_naming_another_agency_is_dead_lettered_not_merged() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    record = json.loads(
        bronze.objects["bronze/agency_id=2/dt=2024-01-08/part-0.ndjson"].split(b"\n")[0]
    )
    line = json.dumps(record).encode()
    bronze.objects[KEYS[0]] += line + b"\n"

    await _promote("r1", store, bronze, tables)

    assert await tables.silver.read(2) is None or (await tables.silver.read(2)).num_rows == 0
    dead = (await tables.deadletter.read(1)).to_pylist()
    assert any(d["reason"] == "agency_mismatch" and d["raw"] == line.decode() for d in dead)


async def test_a_missing_agencies_file_fails_with_a_data_error() -> None:
    bronze = _bronze()
    del bronze.objects["agencies.csv"]

    with pytest.raises(DataError, match="agencies.csv"):
        await _promote("r1", FakeObjectStore(), bronze, FakeTables())


async def test_an_agency_without_bronze_fails_saying_there_is_nothing_for_it() -> None:
    store, tables = FakeObjectStore(), FakeTables()
    bronze = FakeObjectStore({"agencies.csv": _bronze().objects["agencies.csv"]})

    with pytest.raises(NothingForAgency, match="agency 1 .*: no bronze to fold: nothing is under"):
        await _promote("r1", store, bronze, tables)

    assert store.objects == {}
    assert await tables.silver.version(1) == 0


async def test_a_bronze_file_the_store_fails_to_return_fails_the_run_before_any_commit() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    bronze.fail_on["get"] = ObjectNotFound(KEYS[1])

    with pytest.raises(ObjectNotFound):
        await _promote("r1", store, bronze, tables)

    assert await tables.silver.version(1) == await tables.deadletter.version(1) == 0


async def test_a_run_that_failed_between_its_two_commits_is_redone_exactly_once() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    tables.silver.fail_on["merge"] = TableError("killed before the silver commit")
    with pytest.raises(TableError):
        await _promote("r1", store, bronze, tables)
    assert await tables.deadletter.version(1) == 1
    assert await tables.silver.version(1) == 0
    del tables.silver.fail_on["merge"]

    await _promote("r2", store, bronze, tables)

    assert await _silver(tables) == _silver_of(_expected(bronze))
    dead = (await tables.deadletter.read(1)).to_pylist()
    assert len(dead) == _expected(bronze).counts.rows_dead_letter
    assert {row["run_id"] for row in dead} == {"r2"}


async def test_a_missing_ledger_for_a_committed_fold_is_a_clear_data_error() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    await _promote("r1", store, bronze, tables)
    store.objects.clear()

    with pytest.raises(DataError, match="ledger is missing"):
        await _promote("r2", store, bronze, tables)


async def test_a_rebuild_that_failed_between_its_two_commits_is_finished_by_the_next_run() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    await _promote("r1", store, bronze, tables)
    tables.silver.fail_on["merge"] = TableError("killed before the silver commit")
    with pytest.raises(TableError):
        await _promote("r2", store, bronze, tables, reprocess=True)
    del tables.silver.fail_on["merge"]

    outcome = await _promote("r3", store, bronze, tables)

    assert outcome.summary["outcome"].startswith("rebuilt 3 bronze files as fold 2")
    assert await _silver(tables) == _silver_of(_expected(bronze))
    dead = (await tables.deadletter.read(1)).to_pylist()
    assert len(dead) == _expected(bronze).counts.rows_dead_letter
    assert {row["run_id"] for row in dead} == {"r3"}


async def test_an_agency_in_the_old_ndjson_layout_is_rebuilt_into_the_tables_and_cleaned_up() -> (
    None
):
    bronze, tables = _bronze(), FakeTables()
    old = {
        "_manifests/agency_id=1/dt=2024-01-08/0000000001.json": b"{}",
        "silver/agency_id=1/dt=2024-01-08/part-r0-0.ndjson": b'{"record_id": "A001-0"}\n',
        "deadletter/agency_id=1/dt=2024-01-08/part-r0-0.ndjson": b"{}\n",
        "_manifests/agency_id=2/dt=2024-01-08/0000000001.json": b"{}",
    }
    store = FakeObjectStore(dict(old))

    outcome = await _promote("r1", store, bronze, tables)

    assert outcome.summary["old layout removed"] == "3 files"
    assert sorted(k for k in store.objects if k in old) == [
        "_manifests/agency_id=2/dt=2024-01-08/0000000001.json"
    ]
    assert await _silver(tables) == _silver_of(_expected(bronze))


async def test_a_large_input_is_folded_in_batches_each_its_own_fold_version() -> None:
    store, bronze, tables, history = FakeObjectStore(), _bronze(), FakeTables(), FakeRunHistory()

    outcome = await _promote("r1", store, bronze, tables, history, fold_bytes=1)

    assert outcome.summary["outcome"].startswith("folded in 3 bronze files as folds 1-3:")
    assert await tables.silver.version(1) == 3
    assert await _silver(tables) == _silver_of(_expected(bronze))
    rows = await history.partitions("r1")
    assert [row.partition for row in rows] == list(PARTITIONS)
    assert sum((row.counts for row in rows), start=Counts()) == outcome.counts
    assert outcome.counts.rows_in == _expected(bronze).counts.rows_in
    assert outcome.counts.rows_inserted + outcome.counts.rows_updated == outcome.counts.rows_out


async def test_the_folds_of_one_run_share_one_pool_of_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[int] = []

    class CountedPool(TransformPool):
        async def __aenter__(self) -> TransformPool:
            started.append(self.workers)
            return await super().__aenter__()

    monkeypatch.setattr(b2s_module, "TransformPool", CountedPool)
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    ctx = await _context("r1", FakeRunHistory())

    options = PromoteOptions(workers=2, fold_bytes=1)
    outcome = await promote(ctx, store, bronze, tables, options)

    assert outcome.summary["outcome"].startswith("folded in 3 bronze files as folds 1-3:")
    assert started == [2]  # not one pool (two worker processes started) per fold
    assert await _silver(tables) == _silver_of(_expected(bronze))


@attrs.define
class _MergeHook:
    """A FakeSilverTable that runs before_merge(n) ahead of its n-th merge (from 1)."""

    inner: FakeSilverTable
    merges: int = 0

    async def version(self, agency_id: int) -> int:
        return await self.inner.version(agency_id)

    async def read(self, agency_id: int | None = None) -> Any:
        return await self.inner.read(agency_id)

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        self.merges += 1
        await self.before_merge(self.merges)
        return await self.inner.merge(*args, **kwargs)

    async def before_merge(self, merge: int) -> None:
        pass


@attrs.define
class _MergeWaitsForTheNextFold(_MergeHook):
    """Its first merge returns only once a file of a later fold has been transformed: a run
    that transformed its folds one after the other would wait forever."""

    next_fold_transformed: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def before_merge(self, merge: int) -> None:
        if merge == 1:
            await asyncio.wait_for(self.next_fold_transformed.wait(), 10)


async def test_the_next_fold_is_transformed_while_a_fold_commits() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    silver = _MergeWaitsForTheNextFold(tables.silver)
    waiting = FakeTables(silver, tables.deadletter)  # type: ignore[arg-type]
    transformed: list[str] = []

    def on_file(batch: Any) -> None:
        transformed.append(batch.source)
        if len(transformed) == 2:  # fold 2's file (one file a fold), while fold 1 commits
            silver.next_fold_transformed.set()

    outcome = await _promote("r1", store, bronze, waiting, fold_bytes=1, on_file=on_file)

    assert outcome.summary["outcome"].startswith("folded in 3 bronze files as folds 1-3:")
    assert await _silver(tables) == _silver_of(_expected(bronze))


@attrs.define
class _SecondMergeFails(_MergeHook):
    """Its second merge raises, as a run killed in its second batch."""

    async def before_merge(self, merge: int) -> None:
        if merge == 2:
            raise TableError("killed during the second batch")


async def test_a_run_cut_short_between_batches_keeps_them_and_the_next_repairs_the_rest() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    cut = FakeTables(_SecondMergeFails(tables.silver), tables.deadletter)  # type: ignore[arg-type]
    with pytest.raises(TableError):
        await _promote("r1", store, bronze, cut, fold_bytes=1)
    assert await tables.silver.version(1) == 1

    outcome = await _promote("r2", store, bronze, tables)

    assert outcome.summary["outcome"].startswith("rebuilt 3 bronze files")  # fold 2 interrupted
    assert await _silver(tables) == _silver_of(_expected(bronze))
    assert len(_rows(await tables.deadletter.read(1))) == _expected(bronze).counts.rows_dead_letter


BROKEN = "bronze/agency_id=1/dt=2024-01-11/part-0.ndjson.gz"


async def _dead_letters(tables: FakeTables, reason: str | None = None) -> list[dict[str, Any]]:
    rows = (await tables.deadletter.read(1)).to_pylist()
    return [row for row in rows if reason is None or row["reason"] == reason]


async def test_an_unreadable_gzip_file_is_one_file_level_dead_letter_and_the_run_carries_on() -> (
    None
):
    store, bronze, tables, history = FakeObjectStore(), _bronze(), FakeTables(), FakeRunHistory()
    readable = _expected(bronze)
    bronze.objects[BROKEN] = gzip.compress(bronze.objects[KEYS[2]], mtime=0)[:-10]

    outcome = await _promote("r1", store, bronze, tables, history)

    assert await _silver(tables) == _silver_of(readable)
    assert outcome.counts.balanced
    assert outcome.counts.rows_in == readable.counts.rows_in + 1  # the file counts as one row
    assert outcome.counts.rows_dead_letter == readable.counts.rows_dead_letter + 1
    partitions = await history.partitions("r1")
    assert [row.partition for row in partitions] == [*PARTITIONS, "agency_id=1/dt=2024-01-11"]
    size = len(bronze.objects[BROKEN])
    assert partitions[-1].counts == Counts(rows_in=1, rows_dead_letter=1, bytes_in=size)
    [dead] = await _dead_letters(tables, "unreadable_file")
    etag = (await bronze.head(BROKEN)).etag
    assert (dead["source"], dead["dt"], dead["line"]) == (BROKEN[7:], dt.date(2024, 1, 11), None)
    assert dead["detail"].startswith(
        f"{BROKEN[7:]}: unreadable_file (etag {etag}, {size} bytes): EOFError: Compressed file"
    )
    assert "unreadable_file 1" in outcome.summary["dead-letter reasons"]


async def test_an_unreadable_file_once_fixed_is_read_again() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    body = gzip.compress(bronze.objects[KEYS[2]] + b"{not json\n", mtime=0)
    bronze.objects[BROKEN] = body + b"trailing garbage"
    await _promote("r1", store, bronze, tables)
    assert len(await _dead_letters(tables, "unreadable_file")) == 1

    bronze.objects[BROKEN] = body
    outcome = await _promote("r2", store, bronze, tables)

    assert outcome.summary["outcome"].startswith("rebuilt 4 bronze files as fold 2")
    assert await _silver(tables) == _silver_of(_expected(bronze))
    assert await _dead_letters(tables, "unreadable_file") == []
    assert len(await _dead_letters(tables)) == _expected(bronze).counts.rows_dead_letter
    assert outcome.counts.balanced


async def test_a_bronze_key_with_an_impossible_date_is_reported_and_the_rest_folded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    readable = _expected(bronze)
    bad = "bronze/agency_id=1/dt=2024-02-30/part-0.ndjson"
    bronze.objects[bad] = bronze.objects[KEYS[0]]
    why = f"{bad}: dt=2024-02-30 is not a calendar date"

    with caplog.at_level(logging.WARNING):
        first = await _promote("r1", store, bronze, tables)
    second = await _promote("r2", store, bronze, tables)

    assert await _silver(tables) == _silver_of(readable)
    assert first.counts.rows_in == readable.counts.rows_in
    assert first.summary["outcome"].startswith("folded in 3 bronze files")
    assert first.summary["bronze files skipped"] == second.summary["bronze files skipped"]
    assert first.summary["bronze files skipped"] == f"1 ({why})"
    assert second.summary["outcome"].startswith("up to date")
    assert any(why in record.getMessage() for record in caplog.records)


async def test_a_line_that_is_not_utf8_is_dead_lettered_with_its_exact_bytes() -> None:
    store, bronze, tables = FakeObjectStore(), _bronze(), FakeTables()
    line = b'{"record_id": "A001-\xff\xfe", "agency_id": 1, "status": "op\xe9n"}\r'
    bronze.objects[KEYS[0]] += line + b"\n"

    await _promote("r1", store, bronze, tables)

    rows = await _dead_letters(tables)
    assert len(rows) == _expected(bronze).counts.rows_dead_letter
    for row in rows:
        original = bronze.objects[f"bronze/{row['source']}"].split(b"\n")[row["line"] - 1]
        assert (row["raw_bytes"] or row["raw"].encode("utf-8")) == original
        assert row["raw"] == original.decode("utf-8", "replace")
    [exact] = [row for row in rows if row["raw_bytes"] == line]
    assert exact["reason"] == "invalid_json"
