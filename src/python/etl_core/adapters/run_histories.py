"""Open the run history a URL names (SQLite or PostgreSQL) through the adapters the job ships.

The job's wiring imports the history adapters it supports and passes them by kind (adapter_choice):
Pants ships exactly those in its PEX, and a URL for another kind is a ConfigError naming the module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import attrs

from etl_core.adapters.adapter_choice import Adapters, choose_adapter
from etl_core.errors import RunNotFound
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.ports import LeasingRunHistory, RunHistory
from etl_core.urls import parse_history_url

__all__ = [
    "HISTORY_MODULES",
    "LeasingRunHistory",
    "ReadOnlyRunHistory",
    "RunHistoryAt",
    "history_may_exist",
    "open_run_history",
]

# History URL kind -> the adapter module that serves it (named in "not shipped" errors).
HISTORY_MODULES: Mapping[str, str] = {
    "sqlite": "etl_core.adapters.sqlite_run_history",
    "postgresql": "etl_core.adapters.pg_run_history",
}


@asynccontextmanager
async def open_run_history(url: str, adapters: Adapters) -> AsyncIterator[LeasingRunHistory]:
    """Connect (creating a SQLite file and its directory if needed), yield, close. ConfigError on a
    bad URL or a kind not in adapters; the adapter's RunHistoryError if it cannot be reached."""
    parsed = parse_history_url(url)
    module = choose_adapter("run history", url, parsed.kind, adapters, HISTORY_MODULES)
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


@attrs.frozen
class RunHistoryAt:
    """The history at url through adapters, unopened: what the wiring hands the runner."""

    url: str
    adapters: Adapters

    def connect(self) -> AbstractAsyncContextManager[LeasingRunHistory]:
        """Open it for a run that writes."""
        return open_run_history(self.url, self.adapters)

    def read_only(self, stack: contextlib.AsyncExitStack) -> RunHistory:
        """A dry run's view, opened on first read (on stack)."""
        return ReadOnlyRunHistory(self, stack)


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

    at: RunHistoryAt
    stack: contextlib.AsyncExitStack
    _real: RunHistory | None = None
    _empty: bool = False

    async def _open(self) -> RunHistory | None:
        if self._real is None and not self._empty:
            if history_may_exist(self.at.url):
                self._real = await self.stack.enter_async_context(self.at.connect())
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
