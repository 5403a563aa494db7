"""PgRecordSource on a real PostgreSQL: the RecordSource contract, batch bounds, hostile config."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from etl_core.adapters.pg_record_source import (
    PgRecordSource,
    PgSourceTable,
    open_pg_record_source,
)
from etl_core.errors import ConfigError, SourceError
from etl_core.testing.record_source_contract import RecordSourceContract, SeededSource

AGENCY = 7
T0 = dt.datetime(2024, 1, 8, 6, 30, tzinfo=dt.UTC)


@pytest.fixture()
async def conn(pg_dsn: str, pg_schema: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    await connection.execute(f'SET search_path TO "{pg_schema}"')
    yield connection
    await connection.close()


async def seed_events(conn, ids: int = 36) -> list[dict[str, Any]]:
    """Rows 1..ids, two in three for AGENCY and the rest for agency 8, inserted in reverse order;
    returns what the source must yield for AGENCY."""
    await conn.execute(
        "CREATE TABLE events (id BIGINT PRIMARY KEY, agency_id BIGINT NOT NULL, name TEXT,"
        " amount NUMERIC(10, 2), occurred_at TIMESTAMPTZ, payload JSONB, raw BYTEA);"
        " CREATE INDEX ON events (agency_id, id)"
    )
    rows = [
        (i, AGENCY if i % 3 else 8, f"event {i}", decimal.Decimal(f"{i}.50"),
         T0 + dt.timedelta(minutes=i), json.dumps({"n": i, "tags": ["a", None]}), bytes([i]))
        for i in range(ids, 0, -1)
    ]  # fmt: skip
    await conn.executemany("INSERT INTO events VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)", rows)
    return [
        {"id": i, "agency_id": AGENCY, "name": f"event {i}", "amount": f"{i}.50",
         "occurred_at": (T0 + dt.timedelta(minutes=i)).isoformat(),
         "payload": {"n": i, "tags": ["a", None]}, "raw": base64.b64encode(bytes([i])).decode()}
        for i in range(1, ids + 1) if i % 3
    ]  # fmt: skip


class TestPgRecordSourceContract(RecordSourceContract):
    @pytest.fixture()
    async def seeded(self, pg_dsn, pg_schema, conn) -> AsyncIterator[SeededSource]:
        expected = await seed_events(conn)
        table = PgSourceTable("events", key_column="id", schema=pg_schema)
        async with open_pg_record_source(pg_dsn, table, batch_size=7) as source:
            yield SeededSource(source, AGENCY, expected)


class TestPgRecordSourceWithUuidKeysContract(RecordSourceContract):
    @pytest.fixture()
    async def seeded(self, pg_dsn, pg_schema, conn) -> AsyncIterator[SeededSource]:
        await conn.execute("CREATE TABLE calls (call_id UUID PRIMARY KEY, agency INT, n INT)")
        ids = [uuid.uuid4() for _ in range(20)]
        await conn.executemany(
            "INSERT INTO calls VALUES ($1, $2, $3)", [(u, AGENCY, i) for i, u in enumerate(ids)]
        )
        table = PgSourceTable(
            "calls", key_column="call_id", agency_column="agency", columns=("n",), schema=pg_schema
        )
        expected = [{"n": ids.index(u)} for u in sorted(ids, key=lambda u: u.bytes)]
        async with open_pg_record_source(pg_dsn, table, batch_size=6) as source:
            yield SeededSource(source, AGENCY, expected)


async def test_batches_hold_at_most_batch_size_rows_and_end_with_the_last_key(
    pg_dsn, pg_schema, conn
):
    await seed_events(conn)
    table = PgSourceTable("events", key_column="id", columns=("id",), schema=pg_schema)
    async with open_pg_record_source(pg_dsn, table, batch_size=10) as source:
        batches = [b async for b in source.batches(AGENCY)]

    assert [len(b.records) for b in batches] == [10, 10, 4]  # 24 of the 36 rows are agency 7's
    assert [b.checkpoint for b in batches] == [str(b.records[-1]["id"]) for b in batches]


async def test_resume_from_a_checkpoint_starts_right_after_that_key(pg_dsn, pg_schema, conn):
    await seed_events(conn)
    table = PgSourceTable("events", key_column="id", columns=("id",), schema=pg_schema)
    async with open_pg_record_source(pg_dsn, table, batch_size=4) as source:
        resumed = [r["id"] async for b in source.batches(AGENCY, "20") for r in b.records]

    assert resumed == [i for i in range(21, 37) if i % 3]


async def test_records_are_json_serialisable(pg_dsn, pg_schema, conn):
    await seed_events(conn, ids=4)
    async with open_pg_record_source(
        pg_dsn, PgSourceTable("events", "id", schema=pg_schema)
    ) as source:
        records = [r async for b in source.batches(AGENCY) for r in b.records]

    assert json.loads(json.dumps(records)) == records


@pytest.mark.parametrize(
    "config",
    [
        {"table": 'events"; DROP TABLE events; --'},
        {"table": "events", "key_column": "id) OR (1=1"},
        {"table": "events", "agency_column": "agency_id OR TRUE"},
        {"table": "events", "columns": ("id", "name FROM pg_user --")},
        {"table": "events", "schema": "public.evil"},
        {"table": "ëvents"},
    ],
)
def test_hostile_or_invalid_names_in_config_are_rejected(config):
    fields = {"key_column": "id", **config}
    with pytest.raises(ConfigError, match="not a plain SQL identifier"):
        PgSourceTable(**fields)


async def test_agency_value_is_bound_so_only_that_agency_is_read(pg_dsn, pg_schema, conn):
    await seed_events(conn)
    table = PgSourceTable("events", key_column="id", columns=("agency_id",), schema=pg_schema)
    async with open_pg_record_source(pg_dsn, table) as source:
        agencies = {r["agency_id"] async for b in source.batches(8) for r in b.records}

    assert agencies == {8}


async def test_missing_table_is_a_source_error(pg_dsn, pg_schema):
    async with open_pg_record_source(
        pg_dsn, PgSourceTable("nope", "id", schema=pg_schema)
    ) as source:
        with pytest.raises(SourceError, match="does not exist"):
            _ = [b async for b in source.batches(AGENCY)]


async def test_unknown_column_is_a_source_error(pg_dsn, pg_schema, conn):
    await seed_events(conn, ids=4)
    table = PgSourceTable("events", "id", columns=("nope",), schema=pg_schema)
    async with open_pg_record_source(pg_dsn, table) as source:
        with pytest.raises(SourceError, match="UndefinedColumn"):
            _ = [b async for b in source.batches(AGENCY)]


def test_adapter_needs_a_positive_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        PgRecordSource(pool=None, table=PgSourceTable("events", "id"), batch_size=0)
