"""DeltaTableMaintenance on local Delta tables: sorted files with stats after a z-order, and
compactions racing other agencies' merges (the Delta commit's conflict check)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from deltalake.exceptions import CommitFailedError

from etl_core.adapters import delta_maintenance
from etl_core.errors import TableConflict
from etl_core.testing.delta_world import T0, DeltaWorld, dead_letter_rows, record_id, silver_rows
from etl_core.testing.table_rows import dead_letter, dead_letters

D1, D2 = dt.date(2024, 1, 8), dt.date(2024, 1, 9)


@pytest.fixture()
def world(tmp_path: Path) -> DeltaWorld:
    return DeltaWorld.create(tmp_path / "store")


async def scattered(world: DeltaWorld, agency_id: int, merges: int, keys: int = 600) -> None:
    """Merges of random keys (new ones and newer versions of stored ones) over two days: many
    small files whose record_id ranges overlap."""
    rng = random.Random(agency_id)
    for fold in range(1, merges + 1):
        chosen = sorted(rng.sample(range(5_000), keys))
        updated_at = T0 + dt.timedelta(hours=fold)
        await world.tables.silver.merge(
            agency_id,
            fold,
            silver_rows(agency_id, chosen, (D1, D2)[fold % 2], updated_at=updated_at),
        )


def by_partition(files: list[dict[str, Any]]) -> dict[dt.date, list[dict[str, Any]]]:
    days: dict[dt.date, list[dict[str, Any]]] = {}
    for file in files:
        days.setdefault(file["partition.dt"], []).append(file)
    return {day: sorted(fs, key=lambda f: f["min.record_id"]) for day, fs in days.items()}


def unique_per_agency(rows: list[dict[str, Any]]) -> bool:
    keys = [(row["agency_id"], row["record_id"]) for row in rows]
    return len(keys) == len(set(keys))


async def test_z_order_leaves_the_agency_s_files_sorted_by_record_id_with_stats(
    world: DeltaWorld,
) -> None:
    await scattered(world, 1, merges=8)
    before_rows = world.rows()
    before = by_partition(world.files(1))
    assert any(
        a["max.record_id"] >= b["min.record_id"]
        for fs in before.values()
        for a, b in itertools.pairwise(fs)
    ), "the arrangement should start with overlapping files"

    done = await world.silver.compact(1, [D1, D2], target_size=6_000, sort_by="record_id")

    after = by_partition(world.files(1))
    assert world.rows() == before_rows
    assert len(done.removed) == sum(len(fs) for fs in before.values())
    assert all(len(fs) >= 2 for fs in after.values()), "the target size should split partitions"
    for files in after.values():
        for file in files:
            assert file["num_records"] > 0
            assert file["min.record_id"] is not None
            assert file["max.record_id"] is not None
            keys = pq.read_table(world.root / "silver" / file["path"])["record_id"].to_pylist()
            assert keys == sorted(keys)
            assert (keys[0], keys[-1]) == (file["min.record_id"], file["max.record_id"])
        for low, high in itertools.pairwise(files):
            assert low["max.record_id"] < high["min.record_id"]


async def test_a_merge_of_another_agency_committed_during_a_compaction_survives_it(
    world: DeltaWorld,
) -> None:
    await world.write(1, D1, 3)
    await world.write(2, D1, 3)
    newer = T0 + dt.timedelta(days=1)
    # Newer versions of stored keys: the merge removes agency 2's files, which delta-rs' check
    # counts as a conflict with the compaction, even though it is another agency's.
    update = silver_rows(2, [0, 25, 45, 1000], D1, updated_at=newer, status="closed")

    async def merge_agency_2() -> None:
        await world.tables.silver.merge(2, 2, update)

    world.after_compaction_loads(merge_agency_2)
    done = await world.silver.compact(1, [D1], target_size=1 << 30, sort_by="record_id")

    rows = world.rows()
    assert done.attempts == 2
    assert len(done.removed) == 3
    assert [f["path"] for f in world.files(1)] == [f.path for f in done.added]
    assert unique_per_agency(rows)
    closed = {r["record_id"] for r in rows if r["agency_id"] == 2 and r["status"] == "closed"}
    assert closed == {record_id(2, k) for k in (0, 25, 45, 1000)}
    assert sum(r["agency_id"] == 1 for r in rows) == 60
    assert sum(r["agency_id"] == 2 for r in rows) == 61


async def test_a_compaction_committed_during_another_agency_s_merge_leaves_both(
    world: DeltaWorld,
) -> None:
    await world.write(1, D1, 3)
    await world.write(2, D1, 3)
    before_agency_1 = [r for r in world.rows() if r["agency_id"] == 1]
    update = silver_rows(2, [5, 30], D1, updated_at=T0 + dt.timedelta(days=1), status="closed")
    compactions = []

    async def compact_agency_1() -> None:
        compactions.append(await world.silver.compact(1, [D1], target_size=1 << 30, sort_by=None))

    world.after_merge_loads(compact_agency_1)
    await world.tables.silver.merge(2, 2, update)

    rows = world.rows()
    assert len(compactions[0].removed) == 3
    assert len(world.files(1)) == 1
    assert [r for r in rows if r["agency_id"] == 1] == before_agency_1
    assert {r["record_id"] for r in rows if r["status"] == "closed"} == {
        "A002-00000005",
        "A002-00000030",
    }
    assert unique_per_agency(rows)


async def test_merges_of_another_agency_running_alongside_compactions_lose_nothing(
    world: DeltaWorld,
) -> None:
    await scattered(world, 1, merges=6)
    await scattered(world, 2, merges=2)
    expected_1 = [r for r in world.rows() if r["agency_id"] == 1]

    async def merges() -> None:
        for fold in range(3, 9):
            keys = list(range(fold * 10, fold * 10 + 40))
            rows = silver_rows(2, keys, D2, updated_at=T0 + dt.timedelta(days=fold))
            await world.tables.silver.merge(2, fold, rows)

    async def compactions() -> None:
        for target in (4_000, 1 << 30):
            await world.silver.compact(1, [D1, D2], target_size=target, sort_by="record_id")

    await asyncio.gather(merges(), compactions())

    rows = world.rows()
    assert [r for r in rows if r["agency_id"] == 1] == expected_1
    assert unique_per_agency(rows)
    latest = {r["record_id"]: r["updated_at"] for r in rows if r["agency_id"] == 2}
    assert latest[record_id(2, 80)] == T0 + dt.timedelta(days=8)
    assert await world.tables.silver.version(2) == 8


async def test_a_compaction_that_keeps_losing_raises_a_retryable_conflict(
    world: DeltaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.write(1, D1, 2)
    calls = []

    def losing(*args: Any) -> Any:
        calls.append(args)
        raise CommitFailedError("a concurrent transaction deleted data this operation read")

    monkeypatch.setattr(delta_maintenance, "_compact", losing)
    world.silver.attempts = 3

    with pytest.raises(TableConflict, match="lost to concurrent commits 3 times"):
        await world.silver.compact(1, [D1], target_size=1 << 30, sort_by="record_id")
    assert len(calls) == 3


async def test_a_full_vacuum_also_deletes_old_files_no_commit_references(
    world: DeltaWorld,
) -> None:
    await world.write(1, D1, 1)
    [file] = world.files(1)
    orphan = world.root / "silver" / "agency_id=1" / f"dt={D1}" / "part-orphan.parquet"
    shutil.copy(world.root / "silver" / file["path"], orphan)

    young = await world.silver.vacuum(1, full=True, dry_run=False)
    lite = await world.silver.vacuum(0, full=False, dry_run=False)
    full = await world.silver.vacuum(0, full=True, dry_run=False)

    assert (young, lite) == ((), ())
    assert full == (f"agency_id=1/dt={D1}/part-orphan.parquet",)
    assert not orphan.exists()
    assert len(world.rows()) == 20


async def test_a_dead_letter_table_created_before_raw_bytes_compacts_with_every_row(
    world: DeltaWorld,
) -> None:
    await world.tables.deadletter.write(1, 1, dead_letter_rows(1, 3, D1))  # the older schema
    await world.tables.deadletter.write(1, 2, dead_letters(dead_letter(4, raw_bytes=b"{\xff")))
    before = world.rows("deadletter")

    await world.deadletter.compact(1, [D1], target_size=1 << 20, sort_by=None)

    assert len(world.files(1, "deadletter")) == 1
    assert world.rows("deadletter") == before
    assert [row["raw_bytes"] for row in before] == [None, None, None, b"{\xff"]
