"""PgRunHistory: the RunHistory and LeaseStore ports on PostgreSQL through an asyncpg pool."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import asyncpg
import attrs

from etl_core.adapters import liveness
from etl_core.adapters.pg_identifiers import quote_identifier
from etl_core.errors import (
    RunAlreadyExists,
    RunHistoryError,
    RunHistoryUnavailable,
    RunNotFound,
)
from etl_core.model import (
    Counts,
    LeaseInfo,
    PartitionRecord,
    RunRecord,
    RunStatus,
    died_error,
)
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
    (
        # Who holds a lease (for the messages of the runs it blocks), and whether it also holds
        # the lease's session advisory lock (live), which PostgreSQL frees when its session ends.
        3,
        """
        ALTER TABLE {s}.etl_leases ADD COLUMN host TEXT, ADD COLUMN pid INTEGER,
            ADD COLUMN live BOOLEAN NOT NULL DEFAULT FALSE;
        """,
    ),
)

# An outage rather than a mistake: the run is worth retrying later (exit 75). A missing database
# is one too (it is being created, or restored); a wrong password or a bad query is not.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.InvalidCatalogNameError,  # no such database
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
)
# Session advisory locks of leases: two int4 keys, apart from migrate()'s one bigint key.
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))"


@attrs.define
class PgRunHistory:
    """Run history and leases in one PostgreSQL schema; every query is parameterised.

    Lease expiry uses the database clock (clock_timestamp()), so hosts with skewed clocks agree.
    A held lease is also a session advisory lock on one connection kept for leases: a lease whose
    holder's lock is free belongs to a dead process (PostgreSQL ends a session whose client is
    gone) and is taken over at once, its run marked failed ("died"). The TTL still frees a lease
    whose holder hangs, or whose lock went with a dropped connection.
    """

    pool: Any = attrs.field(repr=False)  # asyncpg.Pool
    schema: str = "public"
    _s: str = attrs.field(init=False, repr=False)
    _closed: bool = attrs.field(init=False, default=False, repr=False)
    _lease_conn: Any = attrs.field(init=False, default=None, repr=False)
    _lease_mutex: asyncio.Lock = attrs.field(init=False, factory=asyncio.Lock, repr=False)
    # Lease name -> owner, for the advisory locks the lease connection holds.
    _locks: dict[str, str] = attrs.field(init=False, factory=dict, repr=False)

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
        self,
        *,
        job: str | None = None,
        agency_id: int | None = None,
        status: RunStatus | None = None,
        parent_run_id: str | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Most recent runs first (run_id breaks ties), optionally filtered by job, agency,
        status and parent run."""
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM {self._s}.etl_runs"
            " WHERE ($1::text IS NULL OR job = $1) AND ($2::bigint IS NULL OR agency_id = $2)"
            " AND ($4::text IS NULL OR status = $4)"
            " AND ($5::text IS NULL OR parameters->>'parent_run_id' = $5)"
            " ORDER BY started_at DESC, run_id DESC LIMIT $3"
        )
        state = None if status is None else status.value
        with self._translated("list_runs"):
            rows = await self.pool.fetch(sql, job, agency_id, max(limit, 0), state, parent_run_id)
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
        """Close the pool (which frees this history's advisory locks); idempotent."""
        if not self._closed:
            self._closed = True
            if self._lease_conn is not None:
                with contextlib.suppress(*_UNAVAILABLE, asyncpg.InterfaceError):
                    await self.pool.release(self._lease_conn)
            await self.pool.close()

    # -- LeaseStore ----------------------------------------------------------------------------

    async def acquire(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Take the lease if free, expired, ours (then extend it) or held by a dead process."""
        _positive(ttl)
        with self._translated("acquire"):
            async with self._lease_mutex:
                return await self._take(name, owner, ttl)

    async def _take(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        conn = await self._lease_connection()
        mine = self._locks.get(name)
        # A lock this session holds for another owner: that holder lives here; the TTL decides.
        locked = mine is None and bool(await conn.fetchval(_TRY_LOCK, self.schema, name))
        host, pid = liveness.this_process()
        async with conn.transaction():
            held = await conn.fetchrow(
                f"SELECT owner, live, host, pid, expires_at <= clock_timestamp() AS expired"
                f" FROM {self._s}.etl_leases WHERE name = $1 FOR UPDATE",
                name,
            )
            gone = held is not None and locked and held["live"]
            if held is None:
                taken = await conn.fetchval(
                    f"INSERT INTO {self._s}.etl_leases"
                    " (name, owner, acquired_at, expires_at, host, pid, live) VALUES"
                    " ($1, $2, clock_timestamp(), clock_timestamp() + $3::interval, $4, $5, $6)"
                    " ON CONFLICT (name) DO NOTHING RETURNING 1",
                    name, owner, ttl, host, pid, locked or mine is not None,
                )  # fmt: skip
            elif held["owner"] == owner or held["expired"] or gone:
                if gone and held["owner"] != owner:
                    await _mark_died(conn, self._s, held["owner"], held["host"], held["pid"])
                taken = await conn.fetchval(
                    f"UPDATE {self._s}.etl_leases SET owner = $2, acquired_at = CASE WHEN"
                    " owner = $2 THEN acquired_at ELSE clock_timestamp() END,"
                    " expires_at = clock_timestamp() + $3::interval, host = $4, pid = $5,"
                    " live = $6 WHERE name = $1 RETURNING 1",
                    name, owner, ttl, host, pid, locked or mine is not None,
                )  # fmt: skip
            else:
                taken = None
        if taken is None:
            if locked:
                await conn.fetchval(_UNLOCK, self.schema, name)
            return False
        if locked or mine is not None:
            self._locks[name] = owner
        return True

    async def renew(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Extend a lease owner still holds (even if expired but not taken); False if lost."""
        _positive(ttl)
        with self._translated("renew"):
            async with self._lease_mutex:
                conn = await self._lease_connection()
                # Not locked (taken by TTL only, or the connection dropped): become live if we can.
                if name not in self._locks and await conn.fetchval(_TRY_LOCK, self.schema, name):
                    self._locks[name] = owner
                found = await conn.fetchval(
                    f"UPDATE {self._s}.etl_leases SET expires_at = clock_timestamp()"
                    " + $3::interval, live = $4 WHERE name = $1 AND owner = $2 RETURNING 1",
                    name, owner, _positive(ttl), self._locks.get(name) == owner,
                )  # fmt: skip
                if found is None:
                    await self._unlock(conn, name, owner)
                return found is not None

    async def release(self, name: str, owner: str) -> None:
        """Drop the lease if owner holds it; idempotent."""
        sql = f"DELETE FROM {self._s}.etl_leases WHERE name = $1 AND owner = $2"
        with self._translated("release"):
            async with self._lease_mutex:
                conn = await self._lease_connection()
                await conn.execute(sql, name, owner)
                await self._unlock(conn, name, owner)

    async def holder(self, name: str) -> LeaseInfo | None:
        """Who holds (or, if expired, last held) the lease; None if nobody does."""
        sql = f"SELECT owner, expires_at, host, pid, live FROM {self._s}.etl_leases WHERE name = $1"
        with self._translated("holder"):
            row = await self.pool.fetchrow(sql, name)
        if row is None:
            return None
        return LeaseInfo(
            name, row["owner"], row["expires_at"], row["host"], row["pid"], row["live"]
        )

    async def reap_dead(self) -> list[str]:
        """Mark failed ("died") the running runs whose lease holder's process is gone, and free
        their leases; the run_ids. Idempotent; safe beside live runs."""
        died: list[str] = []
        with self._translated("reap_dead"):
            async with self._lease_mutex:
                conn = await self._lease_connection()
                rows = await conn.fetch(f"SELECT name, owner FROM {self._s}.etl_leases WHERE live")
                for row in rows:
                    name, owner = row["name"], row["owner"]
                    if name in self._locks or not await conn.fetchval(_TRY_LOCK, self.schema, name):
                        continue  # held from this process, or by a live session
                    try:
                        async with conn.transaction():
                            held = await conn.fetchrow(
                                f"DELETE FROM {self._s}.etl_leases"
                                " WHERE name = $1 AND owner = $2 AND live RETURNING host, pid",
                                name, owner,
                            )  # fmt: skip
                            if held is not None and await _mark_died(
                                conn, self._s, owner, held["host"], held["pid"]
                            ):
                                died.append(owner)
                    finally:
                        await conn.fetchval(_UNLOCK, self.schema, name)
        return died

    async def _lease_connection(self) -> Any:
        """The connection that holds this history's advisory locks (re-opened if it dropped, and
        then without them: each lease finds out at its next renew)."""
        if self._lease_conn is not None and self._lease_conn.is_closed():
            with contextlib.suppress(*_UNAVAILABLE, asyncpg.InterfaceError):
                await self.pool.release(self._lease_conn)
            self._lease_conn = None
            self._locks.clear()
        if self._lease_conn is None:
            self._lease_conn = await self.pool.acquire()
        return self._lease_conn

    async def _unlock(self, conn: Any, name: str, owner: str) -> None:
        if self._locks.get(name) == owner:
            del self._locks[name]
            await conn.fetchval(_UNLOCK, self.schema, name)

    @contextlib.contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        """asyncpg and socket errors become RunHistoryError naming the operation and schema."""
        try:
            yield
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            error = RunHistoryUnavailable if isinstance(exc, _UNAVAILABLE) else RunHistoryError
            raise error(f"run history {operation} (schema {self.schema}): {detail}") from exc


@contextlib.asynccontextmanager
async def open_pg_run_history(
    dsn: str,
    *,
    schema: str = "public",
    min_size: int = 1,
    max_size: int = 4,
    connect_timeout: float = 10.0,
) -> AsyncIterator[PgRunHistory]:
    """A PgRunHistory on a fresh asyncpg pool, closed on exit. Call migrate() before use."""
    quote_identifier(schema, "schema")  # fail on configuration before touching the network
    try:
        # One more connection than asked: the one kept for the leases' advisory locks.
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size + 1, timeout=connect_timeout
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        # from None: the driver's exception may repeat connection details; ours are redacted.
        # An outage (refused, timed out, no such database yet) is worth retrying: exit 75.
        error = RunHistoryUnavailable if isinstance(exc, _UNAVAILABLE) else RunHistoryError
        detail = f"{type(exc).__name__}: {exc}"
        raise error(f"cannot connect to run history {redact(dsn)}: {detail}") from None
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


async def _mark_died(conn: Any, s: str, run_id: str, host: str | None, pid: int | None) -> bool:
    """Fail a still-running run whose process is gone, as of its last heartbeat; True if it was."""
    row = await conn.fetchrow(
        f"SELECT COALESCE(heartbeat_at, started_at) AS last FROM {s}.etl_runs"
        " WHERE run_id = $1 AND status = 'running' FOR UPDATE",
        run_id,
    )
    if row is None:
        return False
    await conn.execute(
        f"UPDATE {s}.etl_runs SET status = 'failed', finished_at = $2,"
        " duration_s = EXTRACT(EPOCH FROM ($2 - started_at)), error = $3 WHERE run_id = $1",
        run_id, row["last"], died_error(host, pid, row["last"]),
    )  # fmt: skip
    return True
