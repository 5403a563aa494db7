from __future__ import annotations

import sys
from pathlib import Path

import pytest

from etl_core.adapters.loading import available_kinds, load_adapter
from etl_core.adapters.object_stores import STORE_ADAPTERS, open_object_store
from etl_core.adapters.record_sources import SourceOptions, check_source
from etl_core.adapters.run_histories import HISTORY_ADAPTERS, open_run_history
from etl_core.errors import ConfigError, ExitCode


def leave_out(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make module unimportable, as in a PEX whose pex_binary does not list it."""
    monkeypatch.setitem(sys.modules, module, None)


def test_a_shipped_adapter_is_imported_by_name() -> None:
    module = load_adapter("run history", "sqlite:///x", "sqlite", HISTORY_ADAPTERS)
    assert module.__name__ == "etl_core.adapters.sqlite_run_history"
    assert available_kinds(HISTORY_ADAPTERS) == ["sqlite", "postgresql"]


async def test_a_history_adapter_left_out_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leave_out(monkeypatch, "etl_core.adapters.pg_run_history")
    with pytest.raises(ConfigError) as caught:
        async with open_run_history("postgresql://u:secret@h/db"):
            pass
    assert str(caught.value) == (
        "run history 'postgresql://u:***@h/db' needs etl_core.adapters.pg_run_history, which this"
        " binary does not include (it ships: sqlite). Use the data-pipeline binary or add it to"
        " this job's pex_binary."
    )
    assert caught.value.exit_code == ExitCode.USAGE


async def test_a_store_adapter_left_out_fails_before_a_dry_run_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leave_out(monkeypatch, STORE_ADAPTERS["s3"])
    with pytest.raises(
        ConfigError, match=r"needs etl_core\.adapters\.s3_object_store.*ships: file"
    ):
        async with open_object_store("s3://bucket/prefix", dry_run=True):
            pass


def test_a_source_adapter_left_out_is_reported_when_the_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    leave_out(monkeypatch, "etl_core.adapters.pg_record_source")
    leave_out(monkeypatch, "etl_core.adapters.http_record_source")
    with pytest.raises(ConfigError, match=r"pg_record_source.*\(it ships: store\)"):
        check_source("postgresql://u:pw@h/db", SourceOptions(table="events"))
    with pytest.raises(ConfigError, match=r"record source 'https://api\.example\.com/r' needs"):
        check_source("https://api.example.com/r", SourceOptions())
    assert check_source(str(tmp_path), SourceOptions()) == "store"


def test_a_module_missing_inside_a_shipped_adapter_is_not_disguised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "etl_core.adapters.pg_run_history", raising=False)
    leave_out(monkeypatch, "asyncpg")
    with pytest.raises(ModuleNotFoundError) as caught:
        load_adapter("run history", "postgresql://h/db", "postgresql", HISTORY_ADAPTERS)
    assert caught.value.name == "asyncpg"
