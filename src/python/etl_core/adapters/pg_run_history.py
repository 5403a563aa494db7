"""PgRunHistory: the RunHistory and LeaseStore ports on PostgreSQL through an asyncpg pool."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import asyncpg
import attrs

from etl_core.adapters.pg_identifiers import quote_identifier
from etl_core.errors import RunAlreadyExists, RunHistoryError, RunNotFound
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.urls import redact

# Migration 1's count columns, frozen with it; migration 2 added the silver merge's two.
_COUNTS_V1 = ("rows_in", "rows_out", "rows_duplicate", "rows_dead_letter", "bytes_in", "bytes_out")
_COUNTS = (*_COUNTS_V1, "rows_inserted", "rows_updated")
_C = ", ".join(_COUNTS)
_RUN_COLUMNS = (
    "run_id, job, agency_id, parameters, status, started_at, heartbeat_at, finished_at,"
    f" duration_s, {_C}, artifacts, error, trace_id, host, code_version"
)
_PARTITION_COLUMNS = (
    f"run_id, partition, job, agency_id, input_fingerprint, status, {_C}, artifacts, recorded_at"
)
_COUNT_TYPES = ", ".join(f"{name} BIGINT" for name in _COUNTS_V1)


def _placeholders(columns: str, wrap: dict[str, str]) -> str:
    """$1, $2, ... in the order of columns, each inside the wrap its column needs ('{}' if none)."""
    names = columns.split(", ")
    return ", ".join(wrap.get(name, "{}").format(f"${i}") for i, name in enumerate(names, 1))


_RUN_VALUES = _placeholders(_RUN_COLUMNS, {"parameters": "{}::jsonb", "artifacts": "{}::jsonb"})
_PARTITION_VALUES = _placeholders(
    _PARTITION_COLUMNS,
    {"artifacts": "{}::jsonb", "recorded_at": "COALESCE({}, clock_timestamp())"},
)

# Append-only: a released version is never edited, later changes get a new version. `{s}` is the
# quoted schema. Index names are schema-local, so several schemas can share one database.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        f"""
        CREATE TABLE {{s}}.etl_runs (
            run_id TEXT PRIMARY KEY, job TEXT NOT NULL, agency_id BIGINT NULL,
            parameters JSONB NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
            started_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ NULL,
            finished_at TIMESTAMPTZ NULL, duration_s DOUBLE PRECISION NULL, {_COUNT_TYPES},
            artifacts JSONB NOT NULL DEFAULT '[]', error TEXT NULL, trace_id TEXT NULL,
            host TEXT NULL, code_version TEXT NULL);
        CREATE INDEX etl_runs_job_agency_started
            ON {{s}}.etl_runs (job, agency_id, started_at DESC);
        CREATE INDEX etl_runs_started ON {{s}}.etl_runs (started_at DESC);
        CREATE TABLE {{s}}.etl_run_partitions (
            run_id TEXT NOT NULL REFERENCES {{s}}.etl_runs (run_id), partition TEXT NOT NULL,
            job TEXT NOT NULL, agency_id BIGINT NULL, input_fingerprint TEXT NOT NULL,
            status TEXT NOT NULL, {_COUNT_TYPES}, artifacts JSONB NOT NULL DEFAULT '[]',
            recorded_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (run_id, partition));
        CREATE INDEX etl_run_partitions_job_partition ON {{s}}.etl_run_partitions (job, partition);
        CREATE TABLE {{s}}.etl_leases (
            name TEXT PRIMARY KEY, owner TEXT NOT NULL, acquired_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL);
        """,
    ),
    (
        # Nullable like the other counts (readers take NULL as 0). A column added without a
        # default only changes the catalogue: instant on a large history.
        2,
        """
        ALTER TABLE {s}.etl_runs ADD COLUMN rows_inserted BIGINT, ADD COLUMN rows_updated BIGINT;
        ALTER TABLE {s}.etl_run_partitions
            ADD COLUMN rows_inserted BIGINT, ADD COLUMN rows_updated BIGINT;
        """,
    ),
)


@attrs.define
class PgRunHistory:
    """Run history and leases in one PostgreSQL schema; every query is parameterised.

    Lease expiry uses the database clock (clock_timestamp()), so hosts with skewed clocks agree.
    """

    pool: Any = attrs.field(repr=False)  # asyncpg.Pool
    schema: str = "public"
    _s: str = attrs.field(init=False, repr=False)
    _closed: bool = attrs.field(init=False, default=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._s = quote_identifier(self.schema, "schema")

    async def migrate(self) -> None:
        """Create or upgrade the schema; idempotent, serialised across processes by a lock."""
        with self._translated("migrate"):
            async with self.pool.acquire() as conn, conn.transaction():
                # Transaction-scoped: released at commit/rollback, even if this process dies.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('etl_core.migrate:' || $1))", self.schema
                )
                await conn.execute(
                    f"CREATE SCHEMA IF NOT EXISTS {self._s};"
                    f" CREATE TABLE IF NOT EXISTS {self._s}.etl_schema_migrations"
                    " (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
                rows = await conn.fetch(f"SELECT version FROM {self._s}.etl_schema_migrations")
                applied = {row["version"] for row in rows}
                for version, script in MIGRATIONS:
                    if version not in applied:
                        await conn.execute(script.format(s=self._s))
                        await conn.execute(
                            f"INSERT INTO {self._s}.etl_schema_migrations (version, applied_at)"
                            " VALUES ($1, clock_timestamp())",
                            version,
                        )

    async def start_run(self, run: RunRecord) -> None:
        """Insert a run. Raises RunAlreadyExists if run_id is taken."""
        if run.status is RunStatus.STALE:
            raise ValueError(f"run {run.run_id}: STALE is derived at read time, never stored")
        values = (
            run.run_id, run.job, run.agency_id, _to_json(run.run_id, dict(run.parameters)),
            run.status.value, _utc(run.started_at), _utc(run.heartbeat_at),
            _utc(run.finished_at), _seconds(run.duration), *_counts(run.counts),
            json.dumps(list(run.artifacts)), run.error, run.trace_id, run.host, run.code_version,
        )  # fmt: skip
        sql = f"INSERT INTO {self._s}.etl_runs ({_RUN_COLUMNS}) VALUES ({_RUN_VALUES})"
        with self._translated("start_run"):
            try:
                await self.pool.execute(sql, *values)
            except asyncpg.UniqueViolationError:
                raise RunAlreadyExists(run.run_id) from None

    async def heartbeat(self, run_id: str, at: dt.datetime) -> None:
        """Set heartbeat_at. Raises RunNotFound."""
        sql = f"UPDATE {self._s}.etl_runs SET heartbeat_at = $2 WHERE run_id = $1 RETURNING 1"
        with self._translated("heartbeat"):
            if await self.pool.fetchval(sql, run_id, _utc(at)) is None:
                raise RunNotFound(run_id)

    async def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        finished_at: dt.datetime,
        counts: Counts,
        artifacts: Sequence[str] = (),
        error: str | None = None,
    ) -> None:
        """Record the outcome (status, counts, artifacts, error, duration). Raises RunNotFound."""
        if status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            raise ValueError(f"run {run_id}: finish_run needs SUCCEEDED or FAILED, got {status}")
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(_COUNTS, start=4))
        after = 4 + len(_COUNTS)
        sql = (
            f"UPDATE {self._s}.etl_runs SET status = $2, finished_at = $3,"
            f" duration_s = EXTRACT(EPOCH FROM ($3 - started_at)), {sets},"
            f" artifacts = ${after}::jsonb, error = ${after + 1} WHERE run_id = $1 RETURNING 1"
        )
        args = (run_id, status.value, _utc(finished_at), *_counts(counts))
        with self._translated("finish_run"):
            found = await self.pool.fetchval(sql, *args, json.dumps(list(artifacts)), error)
        if found is None:
            raise RunNotFound(run_id)

    async def record_partition(self, partition: PartitionRecord) -> None:
        """Upsert the ledger row for (run_id, partition). Raises RunNotFound for an unknown run."""
        p = partition
        values = (
            p.run_id, p.partition, p.job, p.agency_id, p.input_fingerprint, p.status,
            *_counts(p.counts), json.dumps(list(p.artifacts)), _utc(p.recorded_at),
        )  # fmt: skip
        updates = ", ".join(
            f"{name} = EXCLUDED.{name}" for name in _PARTITION_COLUMNS.split(", ")[2:]
        )
        sql = (
            f"INSERT INTO {self._s}.etl_run_partitions ({_PARTITION_COLUMNS})"
            f" VALUES ({_PARTITION_VALUES})"
            f" ON CONFLICT (run_id, partition) DO UPDATE SET {updates}"
        )
        with self._translated("record_partition"):
            try:
                await self.pool.execute(sql, *values)
            except asyncpg.ForeignKeyViolationError:
                raise RunNotFound(p.run_id) from None

    async def get_run(self, run_id: str) -> RunRecord:
        """One run. Raises RunNotFound."""
        sql = f"SELECT {_RUN_COLUMNS} FROM {self._s}.etl_runs WHERE run_id = $1"
        with self._translated("get_run"):
            row = await self.pool.fetchrow(sql, run_id)
        if row is None:
            raise RunNotFound(run_id)
        return _run(row)

    async def list_runs(
        self, *, job: str | None = None, agency_id: int | None = None, limit: int = 20
    ) -> list[RunRecord]:
        """Most recent runs first (run_id breaks ties), optionally filtered by job and agency."""
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM {self._s}.etl_runs"
            " WHERE ($1::text IS NULL OR job = $1) AND ($2::bigint IS NULL OR agency_id = $2)"
            " ORDER BY started_at DESC, run_id DESC LIMIT $3"
        )
        with self._translated("list_runs"):
            rows = await self.pool.fetch(sql, job, agency_id, max(limit, 0))
        return [_run(row) for row in rows]

    async def partitions(self, run_id: str) -> list[PartitionRecord]:
        """Ledger rows of one run, in code-point order of partition (COLLATE "C")."""
        sql = (
            f"SELECT {_PARTITION_COLUMNS} FROM {self._s}.etl_run_partitions"
            ' WHERE run_id = $1 ORDER BY partition COLLATE "C"'
        )
        with self._translated("partitions"):
            rows = await self.pool.fetch(sql, run_id)
        return [_partition(row) for row in rows]

    async def close(self) -> None:
        """Close the pool; idempotent."""
        if not self._closed:
            self._closed = True
            await self.pool.close()

    # -- LeaseStore ----------------------------------------------------------------------------

    async def acquire(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Take the lease if free, expired or already ours, in one atomic upsert."""
        sql = (
            f"INSERT INTO {self._s}.etl_leases AS held (name, owner, acquired_at, expires_at)"
            " VALUES ($1, $2, clock_timestamp(), clock_timestamp() + $3::interval)"
            " ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner,"
            " acquired_at = CASE WHEN held.owner = EXCLUDED.owner THEN held.acquired_at"
            " ELSE EXCLUDED.acquired_at END, expires_at = EXCLUDED.expires_at"
            " WHERE held.owner = EXCLUDED.owner OR held.expires_at <= clock_timestamp()"
            " RETURNING owner"
        )
        with self._translated("acquire"):
            return await self.pool.fetchval(sql, name, owner, _positive(ttl)) is not None

    async def renew(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Extend a lease owner still holds (even if expired but not taken); False if lost."""
        sql = (
            f"UPDATE {self._s}.etl_leases SET expires_at = clock_timestamp() + $3::interval"
            " WHERE name = $1 AND owner = $2 RETURNING 1"
        )
        with self._translated("renew"):
            return await self.pool.fetchval(sql, name, owner, _positive(ttl)) is not None

    async def release(self, name: str, owner: str) -> None:
        """Drop the lease if owner holds it; idempotent."""
        sql = f"DELETE FROM {self._s}.etl_leases WHERE name = $1 AND owner = $2"
        with self._translated("release"):
            await self.pool.execute(sql, name, owner)

    @contextlib.contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        """asyncpg and socket errors become RunHistoryError naming the operation and schema."""
        try:
            yield
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise RunHistoryError(
                f"run history {operation} (schema {self.schema}): {detail}"
            ) from exc


@contextlib.asynccontextmanager
async def open_pg_run_history(
    dsn: str, *, schema: str = "public", min_size: int = 1, max_size: int = 4
) -> AsyncIterator[PgRunHistory]:
    """A PgRunHistory on a fresh asyncpg pool, closed on exit. Call migrate() before use."""
    quote_identifier(schema, "schema")  # fail on configuration before touching the network
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=10)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        # from None: the driver's exception may repeat connection details; ours are redacted
        raise RunHistoryError(f"cannot connect to run history {redact(dsn)}: {exc}") from None
    history = PgRunHistory(pool, schema)
    try:
        yield history
    finally:
        await history.close()


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"timestamps must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value


def _seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _positive(ttl: dt.timedelta) -> dt.timedelta:
    if ttl <= dt.timedelta(0):
        raise ValueError(f"lease ttl must be positive, got {ttl}")
    return ttl


def _to_json(run_id: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"run {run_id}: parameters are not JSON-serialisable: {exc}") from None


def _counts(counts: Counts) -> tuple[int, ...]:
    return tuple(getattr(counts, name) for name in _COUNTS)


def _counts_of(row: Any) -> Counts:
    return Counts(**{name: row[name] or 0 for name in _COUNTS})


def _run(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], job=row["job"], status=RunStatus(row["status"]),
        started_at=row["started_at"], agency_id=row["agency_id"],
        parameters=json.loads(row["parameters"]), heartbeat_at=row["heartbeat_at"],
        finished_at=row["finished_at"], counts=_counts_of(row),
        artifacts=tuple(json.loads(row["artifacts"])), error=row["error"],
        trace_id=row["trace_id"], host=row["host"], code_version=row["code_version"],
    )  # fmt: skip


def _partition(row: Any) -> PartitionRecord:
    return PartitionRecord(
        run_id=row["run_id"], job=row["job"], partition=row["partition"],
        input_fingerprint=row["input_fingerprint"], counts=_counts_of(row),
        agency_id=row["agency_id"], status=row["status"],
        artifacts=tuple(json.loads(row["artifacts"])), recorded_at=row["recorded_at"],
    )  # fmt: skip
