"""The maintain job on local Delta tables: flags, compaction under leases, vacuum, checkpoint,
dry run, the run history and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import PartitionRecord, RunRecord, RunStatus
from etl_core.testing.delta_world import T0, DeltaWorld, dead_letter_rows, silver_rows
from etl_core.testing.history_readback import recorded

from jobs import maintain, registry

D1, D2 = dt.date(2024, 1, 8), dt.date(2024, 1, 9)


@pytest.fixture()
def world(tmp_path: Path) -> DeltaWorld:
    """Agencies 1 and 2: four folds each, every one a small silver file per day and a dead-letter
    file; agency 2's fifth fold died after its dead-letter commit (not in silver)."""
    world = DeltaWorld.create(tmp_path / "store")

    async def arrange() -> None:
        for agency_id in (1, 2):
            for fold in range(1, 5):
                for offset, day in ((0, D1), (1000, D2)):
                    start = offset + fold * 7
                    keys = range(start, start + 30)  # overlapping: later folds update some
                    rows = silver_rows(agency_id, keys, day, updated_at=T0 + dt.timedelta(fold))
                    await world.tables.silver.merge(agency_id, fold, rows)
                letters = dead_letter_rows(agency_id, 5, D1, start=fold * 5)
                await world.tables.deadletter.write(agency_id, fold, letters)
        await world.tables.deadletter.write(2, 5, dead_letter_rows(2, 5, D1, start=100))

    asyncio.run(arrange())
    return world


def argv(tmp_path: Path, world: DeltaWorld, *extra: str) -> list[str]:
    return ["--store", world.url, "--history", f"sqlite:///{tmp_path}/h.sqlite3",
            "--log-format", "json", *extra]  # fmt: skip


def history(tmp_path: Path) -> tuple[list[RunRecord], list[PartitionRecord]]:
    found = recorded(f"sqlite:///{tmp_path}/h.sqlite3", job="maintain")
    return found.runs, found.all_partitions()


def take_lease(tmp_path: Path, name: str) -> None:
    async def take() -> None:
        async with open_run_history(f"sqlite:///{tmp_path}/h.sqlite3", every_history()) as store:
            await store.migrate()
            assert await store.acquire(name, "another-run", dt.timedelta(minutes=10))

    asyncio.run(take())
    # The holder's process is this test, which keeps no lock: its lease is one only the TTL
    # frees (a holder that exits frees a live lease at once).
    with contextlib.closing(sqlite3.connect(tmp_path / "h.sqlite3")) as conn, conn:
        conn.execute("UPDATE etl_leases SET live = 0 WHERE name = ?", (name,))


def data_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*.parquet")
        if "_delta_log" not in p.parts
    }


def by_day(files: list[dict[str, Any]]) -> dict[dt.date, list[dict[str, Any]]]:
    days: dict[dt.date, list[dict[str, Any]]] = {}
    for file in files:
        days.setdefault(file["partition.dt"], []).append(file)
    return days


def test_maintain_is_a_discovered_job() -> None:
    assert "maintain" in registry.job_names()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--agency-id", "1", "--agencies", "2"), "not both"),
        (("--agencies", "1,x"), "expected agency ids like 1,2,3"),
        (("--retention-hours", "-1"), "must be >= 0"),
        (("--target-size-mb", "0"), "must be >= 1"),
        (("--full-vacuum", "--retention-hours", "2"), "needs --retention-hours >= 24"),
    ],
)
def test_bad_flags_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    code = maintain.entrypoint(["--store", str(tmp_path / "s"), *extra])

    assert code == 2
    assert message in capsys.readouterr().err


def test_maintain_compacts_each_agency_sorted_then_vacuums_and_checkpoints(
    tmp_path: Path, world: DeltaWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    silver_before, dead_before = world.rows(), world.rows("deadletter")
    files_before = data_files(world.root / "silver")
    assert [len(files) for files in by_day(world.files(1)).values()] == [4, 4]

    code = maintain.entrypoint(argv(tmp_path, world, "--retention-hours", "0"))

    out = capsys.readouterr().out
    assert code == 0, out
    assert world.rows() == silver_before
    assert world.rows("deadletter") == dead_before
    for agency_id in (1, 2):
        for files in by_day(world.files(agency_id)).values():
            [file] = files  # 1 MB target: each partition's files become one, sorted
            keys = pq.read_table(world.root / "silver" / file["path"])["record_id"].to_pylist()
            assert keys == sorted(keys)
            assert (file["min.record_id"], file["max.record_id"]) == (keys[0], keys[-1])
            assert file["num_records"] == len(keys)
    assert len(world.files(1, "deadletter")) == 1
    # Agency 2's fold 5 is not in silver: its dead letters keep their files for the re-run.
    assert len(world.files(2, "deadletter")) == 5
    # Vacuum (retention 0) left exactly the committed files; the checkpoint is the newest version.
    for name in ("silver", "deadletter"):
        committed = {f["path"] for agency_id in (1, 2) for f in world.files(agency_id, name)}
        assert data_files(world.root / name) == committed
        version = world.delta(name).version()
        log = world.root / name / "_delta_log"
        assert any(p.name.endswith(".checkpoint.parquet") for p in log.iterdir()), name
        assert f"checkpoint:{name}@v{version}" in out
    assert "silver: 2 agencies compacted: 16 -> 4 files" in out
    assert "deadletter: 1 agency compacted: 4 -> 1 files" in out
    assert "1 agency kept: unfinished fold" in out

    [run], ledger = history(tmp_path)
    assert run.status is RunStatus.SUCCEEDED
    assert run.parameters["retention_hours"] == 0
    rows = {row.partition: row for row in ledger}
    assert set(rows) == {"silver/agency_id=1", "silver/agency_id=2", "deadletter/agency_id=1",
                         "deadletter/agency_id=2", "silver", "deadletter"}  # fmt: skip
    assert rows["silver/agency_id=1"].status == "compacted"
    removed = [a for a in rows["silver/agency_id=1"].artifacts if a.startswith("removed:")]
    assert len(removed) == 8
    assert rows["deadletter/agency_id=2"].status == "kept: unfinished fold"
    deleted = {a.removeprefix("deleted:silver/") for a in rows["silver"].artifacts[1:]}
    assert deleted == files_before - data_files(world.root / "silver")
    assert rows["silver"].artifacts[0].startswith("checkpoint:silver@v")


def test_a_re_run_of_the_unfinished_fold_still_replaces_its_dead_letters(
    tmp_path: Path, world: DeltaWorld
) -> None:
    assert maintain.entrypoint(argv(tmp_path, world)) == 0

    async def re_run_fold_5() -> None:
        await world.tables.deadletter.write(2, 5, dead_letter_rows(2, 5, D1, start=100))

    asyncio.run(re_run_fold_5())
    lines = [r["line"] for r in world.rows("deadletter") if r["agency_id"] == 2]
    assert sorted(lines) == sorted(set(lines))  # fold 5's first attempt is gone, not doubled
    assert len(lines) == 25


def test_a_dry_run_changes_no_file_and_records_nothing(
    tmp_path: Path, world: DeltaWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in world.root.rglob("*") if p.is_file()}

    code = maintain.entrypoint(argv(tmp_path, world, "--dry-run", "--retention-hours", "0"))

    out = capsys.readouterr().out
    assert code == 0, out
    assert {p: p.read_bytes() for p in world.root.rglob("*") if p.is_file()} == before
    assert "silver: would compact 2 agencies: 16 files" in out
    assert not (tmp_path / "h.sqlite3").exists()


def test_an_agency_whose_lease_is_held_is_skipped_and_the_run_succeeds(
    tmp_path: Path, world: DeltaWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    take_lease(tmp_path, "bronze_to_silver/agency=1")
    files_1 = world.files(1)

    code = maintain.entrypoint(argv(tmp_path, world))

    out = capsys.readouterr().out
    assert code == 0, out
    assert world.files(1) == files_1
    assert len(world.files(2)) == 2
    assert "agency 1: bronze_to_silver lease held" in out
    _, ledger = history(tmp_path)
    assert {r.partition: r.status for r in ledger}["silver/agency_id=1"] == "skipped: lease held"


def test_another_maintain_run_holding_the_tables_means_exit_75(
    tmp_path: Path, world: DeltaWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    take_lease(tmp_path, "maintain/tables")

    assert maintain.entrypoint(argv(tmp_path, world, "--agencies", "1")) == 75
    assert "maintain/tables" in capsys.readouterr().err
