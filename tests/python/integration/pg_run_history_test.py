"""PgRunHistory on a real PostgreSQL: the shared contracts, migrations and leases under races."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from etl_core.adapters.pg_run_history import MIGRATIONS, PgRunHistory, open_pg_run_history
from etl_core.clock import new_run_id, now
from etl_core.errors import ConfigError, RunHistoryError
from etl_core.model import Counts, RunRecord, RunStatus
from etl_core.testing.lease_contract import LeaseContract
from etl_core.testing.run_history_contract import RunHistoryContract


@pytest.fixture()
async def migrated(pg_dsn: str, pg_schema: str) -> AsyncIterator[PgRunHistory]:
    async with open_pg_run_history(pg_dsn, schema=pg_schema) as history:
        await history.migrate()
        yield history


class TestPgRunHistoryContract(RunHistoryContract):
    @pytest.fixture()
    async def history(self, migrated: PgRunHistory) -> PgRunHistory:
        return migrated


class TestPgLeaseContract(LeaseContract):
    @pytest.fixture()
    async def leases(self, migrated: PgRunHistory) -> PgRunHistory:
        return migrated


@pytest.fixture()
async def fresh_schema(pg_dsn: str) -> AsyncIterator[str]:
    """A schema name that does not exist yet (migrate must create it); dropped afterwards."""
    name = f"fresh_{uuid.uuid4().hex[:16]}"
    yield name
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


async def test_concurrent_migrators_on_a_fresh_schema_all_succeed_once(pg_dsn, fresh_schema):
    # Eight processes' worth of pools, all starting together on a schema that does not exist.
    async def migrate_in_own_pool() -> None:
        async with open_pg_run_history(pg_dsn, schema=fresh_schema) as history:
            await history.migrate()

    await asyncio.gather(*(migrate_in_own_pool() for _ in range(8)))

    connection = await asyncpg.connect(pg_dsn)
    try:
        rows = await connection.fetch(
            f'SELECT version FROM "{fresh_schema}".etl_schema_migrations ORDER BY version'
        )
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", fresh_schema
        )
    finally:
        await connection.close()
    assert [row["version"] for row in rows] == [version for version, _ in MIGRATIONS]
    assert tables == 4


async def test_a_version_1_schema_upgrades_in_place_and_keeps_its_runs(pg_dsn, fresh_schema):
    [(version, script)] = [m for m in MIGRATIONS if m[0] == 1]
    started = now() - dt.timedelta(minutes=5)
    connection = await asyncpg.connect(pg_dsn)
    try:  # the schema as the first release left it, with one finished run and its ledger row
        s = f'"{fresh_schema}"'
        await connection.execute(
            f"CREATE SCHEMA {s}; CREATE TABLE {s}.etl_schema_migrations"
            " (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        )
        await connection.execute(script.format(s=s))
        await connection.execute(
            f"INSERT INTO {s}.etl_schema_migrations VALUES ($1, clock_timestamp())", version
        )
        await connection.execute(
            f"INSERT INTO {s}.etl_runs (run_id, job, parameters, status, started_at, rows_in,"
            " rows_out, rows_duplicate, rows_dead_letter, bytes_in, bytes_out)"
            " VALUES ('old', 'bronze_to_silver', '{}', 'succeeded', $1, 5, 3, 1, 1, 500, 300)",
            started,
        )
        await connection.execute(
            f"INSERT INTO {s}.etl_run_partitions (run_id, partition, job, input_fingerprint,"
            " status, rows_in, rows_out, rows_duplicate, rows_dead_letter, bytes_in, bytes_out,"
            " recorded_at) VALUES ('old', 'dt=2024-01-08', 'bronze_to_silver', 'sha256:x',"
            " 'published', 5, 3, 1, 1, 500, 300, $1)",
            started,
        )
    finally:
        await connection.close()

    async with open_pg_run_history(pg_dsn, schema=fresh_schema) as history:
        await history.migrate()
        old = await history.get_run("old")
        [partition] = await history.partitions("old")

    expected = Counts(rows_in=5, rows_out=3, rows_duplicate=1, rows_dead_letter=1,
                      bytes_in=500, bytes_out=300)  # fmt: skip
    assert old.counts == partition.counts == expected  # rows_inserted, rows_updated read as 0


async def test_concurrent_lease_acquisition_from_separate_pools_has_one_winner(pg_dsn, migrated):
    name = f"job/agency={uuid.uuid4().int % 1000}"

    # Every contender's session stays open until all have tried: a holder whose session closed
    # is gone (its liveness lock is free), and a later contender may rightly take over from it.
    async with contextlib.AsyncExitStack() as stack:
        contenders = [
            await stack.enter_async_context(open_pg_run_history(pg_dsn, schema=migrated.schema))
            for _ in range(12)
        ]
        results = await asyncio.gather(
            *(
                h.acquire(name, f"run-{i}", dt.timedelta(minutes=5))
                for i, h in enumerate(contenders)
            )
        )

        assert sum(results) == 1
        winner = results.index(True)
        assert await contenders[winner].renew(name, f"run-{winner}", dt.timedelta(minutes=5))


async def test_finished_run_stores_its_duration_in_seconds(pg_dsn, migrated):
    run = RunRecord(new_run_id(), "job", RunStatus.RUNNING, now() - dt.timedelta(seconds=90))
    await migrated.start_run(run)
    finished_at = run.started_at + dt.timedelta(seconds=90)
    await migrated.finish_run(
        run.run_id, status=RunStatus.SUCCEEDED, finished_at=finished_at, counts=Counts(rows_in=1)
    )

    duration = await migrated.pool.fetchval(
        f'SELECT duration_s FROM "{migrated.schema}".etl_runs WHERE run_id = $1', run.run_id
    )
    assert duration == pytest.approx(90.0)


async def test_schemas_keep_their_runs_apart(pg_dsn, migrated, fresh_schema):
    run = RunRecord(new_run_id(), "job", RunStatus.RUNNING, now())
    await migrated.start_run(run)
    async with open_pg_run_history(pg_dsn, schema=fresh_schema) as other:
        await other.migrate()
        assert await other.list_runs() == []
    assert await migrated.list_runs() == [run]


@pytest.mark.parametrize("schema", ['x"; DROP TABLE etl_runs; --', "1abc", "a-b", "", "a" * 64])
async def test_hostile_or_invalid_schema_names_are_rejected_before_connecting(schema):
    with pytest.raises(ConfigError, match="not a plain SQL identifier"):
        async with open_pg_run_history("postgresql://nobody@127.0.0.1:1/none", schema=schema):
            pass


async def test_unreachable_database_is_a_run_history_error_without_the_password():
    with pytest.raises(RunHistoryError) as caught:
        async with open_pg_run_history("postgresql://etl:s3cret@127.0.0.1:1/none"):
            pass
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_driver_errors_surface_as_run_history_errors(pg_dsn, migrated):
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(f'DROP TABLE "{migrated.schema}".etl_runs CASCADE')
    finally:
        await connection.close()

    with pytest.raises(RunHistoryError, match="list_runs") as caught:
        await migrated.list_runs()
    assert isinstance(caught.value.__cause__, asyncpg.UndefinedTableError)


async def test_use_after_close_is_a_run_history_error(migrated):
    await migrated.close()

    with pytest.raises(RunHistoryError):
        await migrated.get_run("x")
