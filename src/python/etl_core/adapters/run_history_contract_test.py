"""The RunHistory and LeaseStore contracts, run against the fake and the SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from etl_core.adapters.sqlite_run_history import SqliteRunHistory, open_sqlite_run_history
from etl_core.ports import LeaseStore, RunHistory
from etl_core.testing.fakes import FakeClock, FakeRunHistory
from etl_core.testing.lease_contract import LeaseContract
from etl_core.testing.run_history_contract import RunHistoryContract


@pytest.fixture()
async def sqlite_history(tmp_path: Path) -> AsyncIterator[SqliteRunHistory]:
    async with open_sqlite_run_history(tmp_path / "etl" / "history.sqlite3") as history:
        yield history


class TestFakeRunHistory(RunHistoryContract):
    @pytest.fixture()
    def history(self) -> RunHistory:
        return FakeRunHistory()


class TestSqliteRunHistory(RunHistoryContract):
    @pytest.fixture()
    def history(self, sqlite_history: SqliteRunHistory) -> RunHistory:
        return sqlite_history


class TestFakeLeases(LeaseContract):
    @pytest.fixture()
    def leases(self) -> LeaseStore:
        return FakeRunHistory(clock=FakeClock())

    async def expire(self, leases: LeaseStore) -> None:
        assert isinstance(leases, FakeRunHistory)
        assert isinstance(leases.clock, FakeClock)
        leases.clock.advance(self.short_ttl * 2)


class TestSqliteLeases(LeaseContract):
    @pytest.fixture()
    async def leases(self, tmp_path: Path) -> AsyncIterator[LeaseStore]:
        async with open_sqlite_run_history(tmp_path / "h.sqlite3", clock=FakeClock()) as history:
            yield history

    async def expire(self, leases: LeaseStore) -> None:
        assert isinstance(leases, SqliteRunHistory)
        assert isinstance(leases.clock, FakeClock)
        leases.clock.advance(self.short_ttl * 2)
