"""SqliteRunHistory beyond the shared contracts: schema, storage format, errors, processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from etl_core.adapters.sqlite_run_history import (
    MIGRATIONS,
    SqliteRunHistory,
    open_sqlite_run_history,
)
from etl_core.clock import new_run_id
from etl_core.errors import RunHistoryError
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.testing.fakes import FakeClock

T0 = dt.datetime(2024, 1, 8, 12, 0, 0, 123456, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "history.sqlite3"


@pytest.fixture()
async def history(db: Path) -> AsyncIterator[SqliteRunHistory]:
    async with open_sqlite_run_history(db) as history:
        yield history


def _raw(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _run(**changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "run_id": new_run_id(), "job": "job", "status": RunStatus.RUNNING, "started_at": T0,
    }  # fmt: skip
    return RunRecord(**{**fields, **changes})


async def test_opener_creates_the_directory_schema_and_wal(
    history: SqliteRunHistory, db: Path
) -> None:
    assert db.is_file()
    tables = {row[0] for row in _raw(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"etl_schema_migrations", "etl_runs", "etl_run_partitions", "etl_leases"} <= tables
    assert _raw(db, "PRAGMA journal_mode") == [("wal",)]
    versions = [row[0] for row in _raw(db, "SELECT version FROM etl_schema_migrations")]
    assert versions == [version for version, _ in MIGRATIONS]


async def test_migrating_again_and_reopening_keeps_one_migration_row(
    history: SqliteRunHistory, db: Path
) -> None:
    await history.start_run(_run(run_id="kept"))
    await history.migrate()
    async with open_sqlite_run_history(db) as again:
        await again.migrate()
        assert (await again.get_run("kept")).run_id == "kept"
    assert _raw(db, "SELECT count(*) FROM etl_schema_migrations") == [(len(MIGRATIONS),)]


def _create_version_1(db: Path) -> None:
    """A history as the first release left it: migration 1 only, one finished run and its row."""
    [(version, statements)] = [m for m in MIGRATIONS if m[0] == 1]
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE etl_schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO etl_schema_migrations VALUES (?, ?)", (version, T0.isoformat()))
        conn.execute(
            "INSERT INTO etl_runs (run_id, job, agency_id, parameters, status, started_at,"
            " finished_at, duration_s, rows_in, rows_out, rows_duplicate, rows_dead_letter,"
            " bytes_in, bytes_out, artifacts) VALUES ('old', 'bronze_to_silver', 10, '{}',"
            " 'succeeded', ?, ?, 60.0, 5, 3, 1, 1, 500, 300, '[]')",
            (T0.isoformat(), (T0 + dt.timedelta(minutes=1)).isoformat()),
        )
        conn.execute(
            "INSERT INTO etl_run_partitions (run_id, partition, job, agency_id, input_fingerprint,"
            " status, rows_in, rows_out, rows_duplicate, rows_dead_letter, bytes_in, bytes_out,"
            " artifacts, recorded_at) VALUES ('old', 'agency_id=10/dt=2024-01-08',"
            " 'bronze_to_silver', 10, 'sha256:x', 'published', 5, 3, 1, 1, 500, 300, '[]', ?)",
            (T0.isoformat(),),
        )


async def test_a_version_1_history_upgrades_in_place_and_keeps_its_runs(db: Path) -> None:
    _create_version_1(db)
    old_counts = Counts(rows_in=5, rows_out=3, rows_duplicate=1, rows_dead_letter=1,
                        bytes_in=500, bytes_out=300)  # fmt: skip

    async with open_sqlite_run_history(db) as history:
        old = await history.get_run("old")
        [partition] = await history.partitions("old")
        new = _run(run_id="new", started_at=T0 + HOUR)
        await history.start_run(new)
        merged = Counts(rows_in=2, rows_out=2, rows_inserted=1, rows_updated=1)
        await history.record_partition(
            PartitionRecord("new", "job", "agency_id=10/dt=2024-01-08", "sha256:y", merged)
        )
        await history.finish_run("new", status=RunStatus.SUCCEEDED, finished_at=T0 + 2 * HOUR,
                                 counts=merged)  # fmt: skip
        [new_partition] = await history.partitions("new")
        assert (await history.get_run("new")).counts == new_partition.counts == merged

    assert (old.job, old.status, old.duration) == (
        "bronze_to_silver", RunStatus.SUCCEEDED, dt.timedelta(minutes=1),
    )  # fmt: skip
    assert old.counts == partition.counts == old_counts  # rows_inserted, rows_updated read as 0
    versions = _raw(db, "SELECT version FROM etl_schema_migrations ORDER BY version")
    assert [row[0] for row in versions] == [version for version, _ in MIGRATIONS]


async def test_timestamps_are_stored_as_iso_8601_utc_text(
    history: SqliteRunHistory, db: Path
) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    run = _run(started_at=T0.astimezone(paris))
    await history.start_run(run)
    await history.finish_run(
        run.run_id, status=RunStatus.SUCCEEDED, finished_at=T0 + dt.timedelta(seconds=90),
        counts=Counts(rows_in=3, rows_out=3), artifacts=["silver/x"],
    )  # fmt: skip
    stored = _raw(
        db, "SELECT started_at, finished_at, duration_s, parameters, artifacts FROM etl_runs"
    )
    assert stored == [(
        "2024-01-08T12:00:00.123456+00:00", "2024-01-08T12:01:30.123456+00:00", 90.0, "{}",
        '["silver/x"]',
    )]  # fmt: skip
    assert (await history.get_run(run.run_id)).started_at == T0


async def test_naive_timestamps_are_refused(history: SqliteRunHistory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await history.start_run(_run(started_at=dt.datetime(2024, 1, 8, 12)))


async def test_parameters_that_are_not_json_are_refused(history: SqliteRunHistory) -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        await history.start_run(_run(parameters={"path": Path("/x")}))


async def test_lease_expiry_follows_the_injected_clock(db: Path) -> None:
    clock = FakeClock(T0)
    async with open_sqlite_run_history(db, clock=clock) as history:
        assert await history.acquire("job/agency=1", "a", dt.timedelta(seconds=30))
        clock.advance(dt.timedelta(seconds=29))
        assert not await history.acquire("job/agency=1", "b", dt.timedelta(seconds=30))
        clock.advance(dt.timedelta(seconds=2))
        assert await history.acquire("job/agency=1", "b", dt.timedelta(seconds=30))
    assert _raw(db, "SELECT owner, acquired_at FROM etl_leases") == [
        ("b", "2024-01-08T12:00:31.123456+00:00")
    ]


async def test_two_connections_to_one_file_share_leases(
    history: SqliteRunHistory, db: Path
) -> None:
    async with open_sqlite_run_history(db) as other:
        assert await history.acquire("job/agency=1", "a", dt.timedelta(minutes=1))
        assert not await other.acquire("job/agency=1", "b", dt.timedelta(minutes=1))
        await history.release("job/agency=1", "a")
        assert await other.acquire("job/agency=1", "b", dt.timedelta(minutes=1))


async def test_non_positive_ttl_is_refused(history: SqliteRunHistory) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        await history.acquire("x", "a", dt.timedelta(0))


async def test_a_locked_database_raises_run_history_error(db: Path) -> None:
    async with open_sqlite_run_history(db, busy_timeout=0.05) as history:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(RunHistoryError, match="locked"):
                await history.acquire("x", "a", dt.timedelta(minutes=1))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


async def test_a_file_that_is_not_a_database_raises_run_history_error(tmp_path: Path) -> None:
    (tmp_path / "garbage.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RunHistoryError, match=r"garbage\.sqlite3"):
        async with open_sqlite_run_history(tmp_path / "garbage.sqlite3"):
            pass


async def test_calls_after_close_raise_run_history_error(history: SqliteRunHistory) -> None:
    await history.close()
    with pytest.raises(RunHistoryError, match="after close"):
        await history.list_runs()


async def test_in_memory_database_works() -> None:
    async with open_sqlite_run_history(":memory:") as history:
        await history.start_run(_run(run_id="m"))
        assert [r.run_id for r in await history.list_runs()] == ["m"]


def _acquire_in_child(db: str, owner: str, barrier: Any) -> None:
    async def race() -> bool:
        # Every child opens (and migrates) a fresh file at once: migration must be race-free too.
        async with open_sqlite_run_history(db, busy_timeout=60) as history:
            await asyncio.to_thread(barrier.wait, 60)
            won = await history.acquire("bronze_to_silver/agency=10", owner, dt.timedelta(hours=1))
            # Stay alive until every racer has tried: a holder that exits frees its lease at once.
            await asyncio.to_thread(barrier.wait, 60)
            return won

    raise SystemExit(0 if asyncio.run(race()) else 3)


def test_lease_has_one_winner_across_processes(db: Path) -> None:
    processes = 6
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    children = [
        context.Process(target=_acquire_in_child, args=(str(db), f"run-{i}", barrier))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    codes = [child.exitcode for child in children]
    assert codes.count(0) == 1, f"exit codes {codes}: exactly one winner (0), losers exit 3"
    assert codes.count(3) == processes - 1, f"exit codes {codes}"
    assert _raw(db, "SELECT owner FROM etl_leases") == [(f"run-{codes.index(0)}",)]
    assert _raw(db, "SELECT count(*) FROM etl_schema_migrations") == [(len(MIGRATIONS),)]


async def test_open_retries_a_fresh_file_locked_by_another_opener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl_core.adapters import sqlite_run_history as module

    real_open = module._open
    attempts: list[int] = []

    def open_locked_twice(name: str, busy_timeout: float) -> sqlite3.Connection:
        attempts.append(1)
        if len(attempts) <= 2:  # what a concurrent first open's switch to WAL looks like
            raise sqlite3.OperationalError("database is locked")
        return real_open(name, busy_timeout)

    monkeypatch.setattr(module, "_open", open_locked_twice)

    async with open_sqlite_run_history(tmp_path / "h.sqlite3") as history:
        assert await history.list_runs() == []
    assert len(attempts) == 3


async def test_history_locked_past_the_busy_timeout_is_a_temporary_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl_core.adapters import sqlite_run_history as module
    from etl_core.errors import ExitCode, RunHistoryBusy

    def always_locked(name: str, busy_timeout: float) -> sqlite3.Connection:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(module, "_open", always_locked)

    with pytest.raises(RunHistoryBusy, match="cannot open: database is locked") as caught:
        async with open_sqlite_run_history(tmp_path / "h.sqlite3", busy_timeout=0.2):
            pass
    assert caught.value.exit_code == ExitCode.TEMPORARY
