"""Open the run history a URL names (SQLite or PostgreSQL), importing only that adapter.

The adapter is imported by name (etl_core.adapters.loading): a job's PEX ships the history
adapters its pex_binary lists, and a URL for one it lacks is a ConfigError naming the module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from etl_core.adapters.loading import load_adapter
from etl_core.errors import RunNotFound
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.ports import LeaseStore, RunHistory
from etl_core.urls import parse_history_url

__all__ = [
    "HISTORY_ADAPTERS",
    "LeasingRunHistory",
    "ReadOnlyRunHistory",
    "history_may_exist",
    "open_run_history",
]

# History URL kind -> adapter module, imported by name so that Pants does not infer it.
HISTORY_ADAPTERS: Mapping[str, str] = {
    "sqlite": "etl_core.adapters.sqlite_run_history",
    "postgresql": "etl_core.adapters.pg_run_history",
}


@runtime_checkable
class LeasingRunHistory(RunHistory, LeaseStore, Protocol):
    """What both real histories are: the run ledger and the lease table in one database."""

    async def reap_dead(self) -> list[str]:
        """Mark failed ("died") the running runs whose lease holder's process is gone; run_ids."""
        ...


@asynccontextmanager
async def open_run_history(url: str) -> AsyncIterator[LeasingRunHistory]:
    """Connect (creating a SQLite file and its directory if needed), yield, close. ConfigError on a
    bad URL; the adapter's RunHistoryError if the database cannot be reached."""
    parsed = parse_history_url(url)
    module = load_adapter("run history", url, parsed.kind, HISTORY_ADAPTERS)
    if parsed.kind == "sqlite":
        open_sqlite: Callable[[Path], AbstractAsyncContextManager[LeasingRunHistory]]
        open_sqlite = module.open_sqlite_run_history
        assert parsed.path is not None
        async with open_sqlite(parsed.path) as sqlite_history:
            yield sqlite_history
    else:
        open_pg: Callable[..., AbstractAsyncContextManager[LeasingRunHistory]]
        open_pg = module.open_pg_run_history
        assert parsed.dsn is not None
        async with open_pg(parsed.dsn, schema=parsed.schema) as pg_history:
            yield pg_history


def history_may_exist(url: str) -> bool:
    """False only when opening would create the history (a missing SQLite file): reads are empty."""
    parsed = parse_history_url(url)
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        return parsed.path.exists()
    return True


@attrs.define
class ReadOnlyRunHistory:
    """A dry run's history: reads go to the real one (opened on first read), writes are dropped."""

    url: str
    stack: contextlib.AsyncExitStack
    _real: RunHistory | None = None
    _empty: bool = False

    async def _open(self) -> RunHistory | None:
        if self._real is None and not self._empty:
            if history_may_exist(self.url):
                self._real = await self.stack.enter_async_context(open_run_history(self.url))
            else:
                self._empty = True
        return self._real

    async def migrate(self) -> None:
        return None

    async def start_run(self, run: RunRecord) -> None:
        return None

    async def heartbeat(self, run_id: str, at: dt.datetime) -> None:
        return None

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
        return None

    async def record_partition(self, partition: PartitionRecord) -> None:
        return None

    async def get_run(self, run_id: str) -> RunRecord:
        real = await self._open()
        if real is None:
            raise RunNotFound(run_id)
        return await real.get_run(run_id)

    async def list_runs(
        self,
        *,
        job: str | None = None,
        agency_id: int | None = None,
        status: RunStatus | None = None,
        parent_run_id: str | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        real = await self._open()
        if real is None:
            return []
        return await real.list_runs(
            job=job, agency_id=agency_id, status=status, parent_run_id=parent_run_id, limit=limit
        )

    async def partitions(self, run_id: str) -> list[PartitionRecord]:
        real = await self._open()
        return [] if real is None else await real.partitions(run_id)

    async def close(self) -> None:
        return None
