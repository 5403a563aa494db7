"""SqliteRunHistory: the RunHistory and LeaseStore ports on an embedded SQLite file (stdlib)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs

from etl_core import clock as clock_module
from etl_core.adapters import liveness
from etl_core.errors import RunAlreadyExists, RunHistoryBusy, RunHistoryError, RunNotFound
from etl_core.model import (
    Counts,
    LeaseInfo,
    PartitionRecord,
    RunRecord,
    RunStatus,
    died_error,
)

T = TypeVar("T")
Clock = Callable[[], dt.datetime]
# Migration 1's count columns, frozen with it; migration 2 added the silver merge's two.
_COUNTS_V1 = ("rows_in", "rows_out", "rows_duplicate", "rows_dead_letter", "bytes_in", "bytes_out")
_COUNTS = (*_COUNTS_V1, "rows_inserted", "rows_updated")
_C = ", ".join(_COUNTS)
_RUN_COLUMNS = (
    "run_id, job, agency_id, parameters, status, started_at, heartbeat_at, finished_at,"
    f" duration_s, {_C}, artifacts, error, trace_id, host, code_version"
)

# The PostgreSQL schema of docs/internals.md, with ISO-8601 UTC TEXT timestamps and JSON TEXT.
# Append migrations; never edit an applied one.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        f"""CREATE TABLE etl_runs (
            run_id TEXT PRIMARY KEY, job TEXT NOT NULL, agency_id INTEGER, parameters TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
            started_at TEXT NOT NULL, heartbeat_at TEXT, finished_at TEXT, duration_s REAL,
            {" INTEGER, ".join(_COUNTS_V1)} INTEGER, artifacts TEXT NOT NULL DEFAULT '[]',
            error TEXT, trace_id TEXT, host TEXT, code_version TEXT)""",
        "CREATE INDEX etl_runs_job_agency_started ON etl_runs (job, agency_id, started_at DESC)",
        "CREATE INDEX etl_runs_started ON etl_runs (started_at DESC)",
        f"""CREATE TABLE etl_run_partitions (
            run_id TEXT NOT NULL REFERENCES etl_runs (run_id), partition TEXT NOT NULL,
            job TEXT NOT NULL, agency_id INTEGER, input_fingerprint TEXT NOT NULL,
            status TEXT NOT NULL, {" INTEGER NOT NULL, ".join(_COUNTS_V1)} INTEGER NOT NULL,
            artifacts TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (run_id, partition))""",
        """CREATE TABLE etl_leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL,
            acquired_at TEXT, expires_at TEXT NOT NULL)""",
    )),
    # Typed like their neighbours: nullable in etl_runs, NOT NULL in etl_run_partitions (where
    # DEFAULT 0 fills the rows already there, and the rows a not-yet-upgraded writer inserts).
    (2, (
        "ALTER TABLE etl_runs ADD COLUMN rows_inserted INTEGER",
        "ALTER TABLE etl_runs ADD COLUMN rows_updated INTEGER",
        "ALTER TABLE etl_run_partitions ADD COLUMN rows_inserted INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE etl_run_partitions ADD COLUMN rows_updated INTEGER NOT NULL DEFAULT 0",
    )),
    # Who holds a lease (for the messages of the runs it blocks), and whether it also holds the
    # lease's lock file (live = 1), which the kernel frees when its process dies.
    (3, (
        "ALTER TABLE etl_leases ADD COLUMN host TEXT",
        "ALTER TABLE etl_leases ADD COLUMN pid INTEGER",
        "ALTER TABLE etl_leases ADD COLUMN live INTEGER NOT NULL DEFAULT 0",
    )),
)  # fmt: skip


@attrs.define
class SqliteRunHistory:
    """RunHistory + LeaseStore on one sqlite3 connection, used only by a one-thread executor.

    The executor serialises calls (SQLite has one writer anyway) without a lock, keeps blocking
    I/O off the event loop and out of the default pool the object stores use for bulk reads, and
    means the connection never crosses threads. Between processes, WAL lets readers run beside the
    writer; every read-then-write (lease acquire, migrate) runs in BEGIN IMMEDIATE, which takes the
    write lock up front, so two processes cannot both decide a lease is free.

    A held lease is also an flock on its file under `<database>.leases/` (liveness.py): a lease
    whose holder's lock is free belongs to a dead process and is taken over at once, its run
    marked failed ("died"); the TTL still frees a lease whose holder hangs, or where the file
    system cannot lock.
    """

    path: str
    _conn: sqlite3.Connection = attrs.field(alias="conn", repr=False)
    _executor: ThreadPoolExecutor = attrs.field(alias="executor", repr=False)
    clock: Clock = clock_module.now
    _closed: bool = attrs.field(default=False, init=False)
    # Lease name -> (owner, fd of its flock): only the executor thread touches it.
    _locks: dict[str, tuple[str, int]] = attrs.field(factory=dict, init=False, repr=False)

    async def _call(self, operation: str, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RunHistoryError(f"sqlite run history {self.path}: {operation} after close()")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work, self._conn)
        except sqlite3.Error as exc:
            raise RunHistoryError(f"sqlite run history {self.path}: {operation}: {exc}") from exc

    async def migrate(self) -> None:
        """Create or upgrade the schema; idempotent and safe to run from many processes."""
        await self._call("migrate", lambda conn: _migrate(conn, self.clock()))

    async def start_run(self, run: RunRecord) -> None:
        """Insert a run. Raises RunAlreadyExists if run_id is taken."""
        if run.status is RunStatus.STALE:
            raise ValueError(f"run {run.run_id}: STALE is derived at read time, never stored")
        row = (
            run.run_id, run.job, run.agency_id, _to_json(run.run_id, dict(run.parameters)),
            run.status.value, _ts(run.started_at), _ts(run.heartbeat_at), _ts(run.finished_at),
            _duration(run.started_at, run.finished_at), *_counts(run.counts),
            json.dumps(list(run.artifacts)), run.error, run.trace_id, run.host, run.code_version,
        )  # fmt: skip

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO etl_runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                    row,
                )
            except sqlite3.IntegrityError as exc:
                if "etl_runs.run_id" in str(exc):
                    raise RunAlreadyExists(run.run_id) from None
                raise

        await self._call("start_run", insert)

    async def heartbeat(self, run_id: str, at: dt.datetime) -> None:
        """Set heartbeat_at. Raises RunNotFound."""
        sql = "UPDATE etl_runs SET heartbeat_at = ? WHERE run_id = ?"
        params = (_ts(at), run_id)

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, params).rowcount == 0:
                raise RunNotFound(run_id)

        await self._call("heartbeat", update)

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
        finished = _ts(finished_at)
        sets = ", ".join(f"{name} = ?" for name in _COUNTS)

        def update(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                found = conn.execute(
                    "SELECT started_at FROM etl_runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                if found is None:
                    raise RunNotFound(run_id)
                duration = _duration(_parse(found[0]), finished_at)
                conn.execute(
                    f"UPDATE etl_runs SET status = ?, finished_at = ?, duration_s = ?, {sets},"
                    " artifacts = ?, error = ? WHERE run_id = ?",
                    (status.value, finished, duration, *_counts(counts),
                     json.dumps(list(artifacts)), error, run_id),
                )  # fmt: skip

        await self._call("finish_run", update)

    async def record_partition(self, partition: PartitionRecord) -> None:
        """Upsert the ledger row for (run_id, partition); idempotent. Raises RunNotFound."""
        p = partition
        recorded_at = _ts(p.recorded_at or self.clock())
        row = (p.run_id, p.partition, p.job, p.agency_id, p.input_fingerprint, p.status,
               *_counts(p.counts), json.dumps(list(p.artifacts)), recorded_at)  # fmt: skip
        columns = (
            f"run_id, partition, job, agency_id, input_fingerprint, status, {_C},"
            " artifacts, recorded_at"
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[2:])

        def upsert(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                exists = "SELECT 1 FROM etl_runs WHERE run_id = ?"
                if conn.execute(exists, (p.run_id,)).fetchone() is None:
                    raise RunNotFound(p.run_id)
                conn.execute(
                    f"INSERT INTO etl_run_partitions ({columns})"
                    f" VALUES ({', '.join('?' * len(row))})"
                    f" ON CONFLICT (run_id, partition) DO UPDATE SET {updates}",
                    row,
                )

        await self._call("record_partition", upsert)

    async def get_run(self, run_id: str) -> RunRecord:
        """One run. Raises RunNotFound."""

        def select(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute("SELECT * FROM etl_runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            return _run(row)

        return await self._call("get_run", select)

    async def list_runs(
        self,
        *,
        job: str | None = None,
        agency_id: int | None = None,
        status: RunStatus | None = None,
        parent_run_id: str | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Most recent runs first (started_at, then run_id), optionally filtered."""
        where: list[str] = []
        params: list[object] = []
        if job is not None:
            where.append("job = ?")
            params.append(job)
        if agency_id is not None:
            where.append("agency_id = ?")
            params.append(agency_id)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if parent_run_id is not None:
            where.append("json_extract(parameters, '$.parent_run_id') = ?")
            params.append(parent_run_id)
        sql = "SELECT * FROM etl_runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
        params.append(max(limit, 0))  # SQLite reads a negative LIMIT as "no limit"
        return await self._call(
            "list_runs", lambda conn: [_run(row) for row in conn.execute(sql, params)]
        )

    async def partitions(self, run_id: str) -> list[PartitionRecord]:
        """Ledger rows of one run, ordered by partition."""
        sql = "SELECT * FROM etl_run_partitions WHERE run_id = ? ORDER BY partition"
        return await self._call(
            "partitions", lambda conn: [_partition(row) for row in conn.execute(sql, (run_id,))]
        )

    async def close(self) -> None:
        """Close the connection and stop the worker thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()

        def close(conn: sqlite3.Connection) -> None:
            for _, fd in self._locks.values():
                liveness.unflock(fd)
            self._locks.clear()
            conn.close()

        with contextlib.suppress(sqlite3.Error):
            await loop.run_in_executor(self._executor, close, self._conn)
        self._executor.shutdown(wait=False)

    # -- LeaseStore ----------------------------------------------------------------------------

    async def acquire(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Take the lease if free, expired, ours (then extend it) or held by a dead process."""
        _positive(ttl)
        return await self._call("acquire lease", lambda conn: self._take(conn, name, owner, ttl))

    def _take(self, conn: sqlite3.Connection, name: str, owner: str, ttl: dt.timedelta) -> bool:
        mine = self._locks.get(name)
        # A lock held by this history for another owner: that holder lives here; the TTL decides.
        fd = self._try_lock(name) if mine is None else None
        with _immediate(conn):
            now = self.clock()
            held = conn.execute(
                "SELECT owner, expires_at, live, host, pid FROM etl_leases WHERE name = ?", (name,)
            ).fetchone()
            gone = held is not None and fd is not None and bool(held["live"])
            free = held is None or held["owner"] == owner or _parse(held["expires_at"]) <= now
            if not (free or gone):
                if fd is not None:
                    liveness.unflock(fd)
                return False
            if gone and held["owner"] != owner:
                _mark_died(conn, held["owner"], held["host"], held["pid"])
            if fd is not None:
                self._locks[name] = (owner, fd)
            elif mine is not None:
                self._locks[name] = (owner, mine[1])
            host, pid = liveness.this_process()
            live = int(name in self._locks)
            acquired = now if held is None or held["owner"] != owner else None
            conn.execute(
                "INSERT INTO etl_leases (name, owner, acquired_at, expires_at, host, pid, live)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " owner = excluded.owner, acquired_at = COALESCE(?, acquired_at),"
                " expires_at = excluded.expires_at, host = excluded.host, pid = excluded.pid,"
                " live = excluded.live",
                (name, owner, _ts(now), _ts(now + ttl), host, pid, live, _ts(acquired)),
            )
            return True

    async def renew(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Extend a lease owner still holds (even expired, if nobody took it); False if lost."""
        _positive(ttl)

        def extend(conn: sqlite3.Connection) -> bool:
            if name not in self._locks:  # e.g. taken by TTL only: become live if we can
                fd = self._try_lock(name)
                if fd is not None:
                    self._locks[name] = (owner, fd)
            live = int(self._locks.get(name, ("", 0))[0] == owner)
            found = conn.execute(
                "UPDATE etl_leases SET expires_at = ?, live = ? WHERE name = ? AND owner = ?",
                (_ts(self.clock() + ttl), live, name, owner),
            ).rowcount
            if not found:
                self._unlock(name, owner)
            return bool(found)

        return await self._call("renew lease", extend)

    async def release(self, name: str, owner: str) -> None:
        """Drop the lease if owner holds it; idempotent."""
        sql = "DELETE FROM etl_leases WHERE name = ? AND owner = ?"

        def drop(conn: sqlite3.Connection) -> None:
            conn.execute(sql, (name, owner))
            self._unlock(name, owner)

        await self._call("release lease", drop)

    async def holder(self, name: str) -> LeaseInfo | None:
        """Who holds (or, if expired, last held) the lease; None if nobody does."""
        sql = "SELECT owner, expires_at, host, pid, live FROM etl_leases WHERE name = ?"

        def read(conn: sqlite3.Connection) -> LeaseInfo | None:
            row = conn.execute(sql, (name,)).fetchone()
            if row is None:
                return None
            expires = _parse(row["expires_at"])
            return LeaseInfo(
                name, row["owner"], expires, row["host"], row["pid"], bool(row["live"])
            )

        return await self._call("read lease", read)

    async def reap_dead(self) -> list[str]:
        """Mark failed ("died") the running runs whose lease holder's process is gone, and free
        their leases; the run_ids. Idempotent; safe beside live runs."""

        def reap(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT name, owner FROM etl_leases WHERE live = 1").fetchall()
            died: list[str] = []
            for row in rows:
                if row["name"] in self._locks:
                    continue  # held from this process: alive
                fd = self._try_lock(row["name"])
                if fd is None:
                    continue
                try:
                    with _immediate(conn):
                        held = conn.execute(
                            "SELECT host, pid FROM etl_leases"
                            " WHERE name = ? AND owner = ? AND live = 1",
                            (row["name"], row["owner"]),
                        ).fetchone()
                        if held is not None:
                            if _mark_died(conn, row["owner"], held["host"], held["pid"]):
                                died.append(row["owner"])
                            conn.execute("DELETE FROM etl_leases WHERE name = ?", (row["name"],))
                finally:
                    liveness.unflock(fd)
            return died

        return await self._call("reap dead runs", reap)

    def _try_lock(self, name: str) -> int | None:
        if self.path == ":memory:":
            return None
        return liveness.try_flock(liveness.lock_file(Path(self.path + ".leases"), name))

    def _unlock(self, name: str, owner: str) -> None:
        held = self._locks.get(name)
        if held is not None and held[0] == owner:
            del self._locks[name]
            liveness.unflock(held[1])


def _mark_died(conn: sqlite3.Connection, run_id: str, host: str | None, pid: int | None) -> bool:
    """Fail a still-running run whose process is gone, as of its last heartbeat; True if it was."""
    row = conn.execute(
        "SELECT started_at, heartbeat_at FROM etl_runs WHERE run_id = ? AND status = 'running'",
        (run_id,),
    ).fetchone()
    if row is None:
        return False
    started = _parse(row["started_at"])
    last = _parse_optional(row["heartbeat_at"]) or started
    conn.execute(
        "UPDATE etl_runs SET status = 'failed', finished_at = ?, duration_s = ?, error = ?"
        " WHERE run_id = ?",
        (_ts(last), _duration(started, last), died_error(host, pid, last), run_id),
    )
    return True


@contextlib.asynccontextmanager
async def open_sqlite_run_history(
    path: str | os.PathLike[str], *, busy_timeout: float = 10.0, clock: Clock = clock_module.now
) -> AsyncIterator[SqliteRunHistory]:
    """Create the parent directory, connect, migrate, yield; close on exit. ':memory:' works."""
    name = os.fspath(path)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-run-history")
    loop = asyncio.get_running_loop()
    try:
        conn = await loop.run_in_executor(executor, _connect, name, busy_timeout)
    except (OSError, sqlite3.Error) as exc:
        executor.shutdown(wait=False)
        message = f"sqlite run history {name}: cannot open: {exc}"
        if isinstance(exc, sqlite3.Error) and _is_locked(exc):
            raise RunHistoryBusy(message) from exc
        raise RunHistoryError(message) from exc
    history = SqliteRunHistory(name, conn=conn, executor=executor, clock=clock)
    try:
        await history.migrate()
        yield history
    finally:
        await history.close()


def _connect(name: str, busy_timeout: float) -> sqlite3.Connection:
    if name != ":memory:":
        Path(name).parent.mkdir(parents=True, exist_ok=True)
    # Processes opening a brand-new file at the same moment: switching it to WAL can fail with
    # "database is locked" at once, without waiting for the busy timeout. Retry until it expires,
    # every 50 ms (stamina; its default jitter and growth are for remote services). The first
    # attempt almost always opens it: stamina (~20 ms to import) is loaded only to retry.
    try:
        return _open(name, busy_timeout)
    except sqlite3.OperationalError as exc:
        if busy_timeout <= 0 or not _is_locked(exc):
            raise
    import stamina

    retries = stamina.retry_context(
        on=_locked,
        attempts=None,
        timeout=busy_timeout,
        wait_initial=0.05,
        wait_max=0.05,
        wait_jitter=0.0,
    )
    for attempt in retries:
        with attempt:
            return _open(name, busy_timeout)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _locked(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and _is_locked(exc)


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _open(name: str, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: autocommit, with explicit BEGIN IMMEDIATE where a read decides a write.
    # check_same_thread=False: opened here, used only by the executor's single thread.
    conn = sqlite3.connect(
        name, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, now: dt.datetime) -> None:
    with _immediate(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS etl_schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM etl_schema_migrations")}
        for version, statements in MIGRATIONS:
            if version not in applied:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO etl_schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, _ts(now)),
                )


def _ts(value: dt.datetime | None) -> str | None:
    """Fixed-width ISO-8601 UTC, so text order is time order."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamps must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _parse_optional(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _duration(started: dt.datetime | None, finished: dt.datetime | None) -> float | None:
    return None if started is None or finished is None else (finished - started).total_seconds()


def _positive(ttl: dt.timedelta) -> None:
    if ttl <= dt.timedelta(0):
        raise ValueError(f"lease ttl must be positive, got {ttl}")


def _to_json(run_id: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"run {run_id}: parameters are not JSON-serialisable: {exc}") from None


def _counts(counts: Counts) -> tuple[int, ...]:
    return tuple(getattr(counts, name) for name in _COUNTS)


def _counts_of(row: sqlite3.Row) -> Counts:
    return Counts(**{name: row[name] or 0 for name in _COUNTS})


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], job=row["job"], status=RunStatus(row["status"]),
        started_at=_parse(row["started_at"]), agency_id=row["agency_id"],
        parameters=json.loads(row["parameters"]), heartbeat_at=_parse_optional(row["heartbeat_at"]),
        finished_at=_parse_optional(row["finished_at"]), counts=_counts_of(row),
        artifacts=tuple(json.loads(row["artifacts"])), error=row["error"],
        trace_id=row["trace_id"], host=row["host"], code_version=row["code_version"],
    )  # fmt: skip


def _partition(row: sqlite3.Row) -> PartitionRecord:
    return PartitionRecord(
        run_id=row["run_id"], job=row["job"], partition=row["partition"],
        input_fingerprint=row["input_fingerprint"], counts=_counts_of(row),
        agency_id=row["agency_id"], status=row["status"],
        artifacts=tuple(json.loads(row["artifacts"])),
        recorded_at=_parse_optional(row["recorded_at"]),
    )  # fmt: skip
