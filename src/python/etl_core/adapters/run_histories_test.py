"""Tests for open_run_history (URL -> adapter) and the read-only dry-run view."""

from __future__ import annotations

import contextlib
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from etl_core import clock
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import (
    LeasingRunHistory,
    ReadOnlyRunHistory,
    RunHistoryAt,
    history_may_exist,
    open_run_history,
)
from etl_core.errors import ConfigError, RunNotFound
from etl_core.model import Counts, RunRecord, RunStatus
from etl_core.testing.fakes import FakeRunHistory


def _run(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, job="j", status=RunStatus.RUNNING, started_at=clock.now())


async def test_sqlite_url_opens_a_sqlite_history_with_leases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deep/dir/h.sqlite3"
    assert not history_may_exist(url)
    async with open_run_history(url, every_history()) as history:
        assert isinstance(history, LeasingRunHistory)
        await history.start_run(_run("r1"))
    assert history_may_exist(url)
    async with open_run_history(url, every_history()) as history:
        assert (await history.get_run("r1")).run_id == "r1"


async def test_postgres_url_opens_the_pg_adapter_with_dsn_and_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    fake = FakeRunHistory()

    @asynccontextmanager
    async def opener(dsn: str, *, schema: str = "public") -> AsyncIterator[FakeRunHistory]:
        calls.append((dsn, schema))
        yield fake

    module = types.ModuleType("etl_core.adapters.pg_run_history")
    module.open_pg_run_history = opener  # type: ignore[attr-defined]
    async with open_run_history(
        "postgres://etl:pw@db/etl?schema=audit", {"postgresql": module}
    ) as history:
        assert history is fake
    assert calls == [("postgresql://etl:pw@db/etl", "audit")]
    assert history_may_exist("postgresql://db/etl")


async def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid run history URL"):
        async with open_run_history("mysql://db/etl", every_history()):
            pass


async def test_read_only_view_of_a_missing_sqlite_file_is_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/none.sqlite3"
    async with contextlib.AsyncExitStack() as stack:
        view = ReadOnlyRunHistory(RunHistoryAt(url, every_history()), stack)
        assert await view.list_runs() == []
        assert await view.partitions("r") == []
        with pytest.raises(RunNotFound):
            await view.get_run("r")
    assert not (tmp_path / "none.sqlite3").exists()


async def test_read_only_view_reads_but_never_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    async with open_run_history(url, every_history()) as history:
        await history.start_run(_run("r1"))
    async with contextlib.AsyncExitStack() as stack:
        view = ReadOnlyRunHistory(RunHistoryAt(url, every_history()), stack)
        await view.migrate()
        await view.start_run(_run("r2"))
        await view.heartbeat("r1", clock.now())
        await view.finish_run(
            "r1", status=RunStatus.FAILED, finished_at=clock.now(), counts=Counts()
        )
        assert [run.run_id for run in await view.list_runs()] == ["r1"]
        assert (await view.get_run("r1")).status is RunStatus.RUNNING
        await view.close()
