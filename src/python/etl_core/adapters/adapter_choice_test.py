"""A URL whose adapter the job's wiring did not import is a configuration error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_core.adapters import (
    bronze_record_source,
    local_object_store,
    sqlite_run_history,
)
from etl_core.adapters.adapter_choice import choose_adapter
from etl_core.adapters.every_history import every_history
from etl_core.adapters.object_stores import open_object_store
from etl_core.adapters.record_sources import SourceOptions, check_source
from etl_core.adapters.run_histories import HISTORY_MODULES, open_run_history
from etl_core.errors import ConfigError, ExitCode
from etl_core.testing.fresh_interpreter import run_fresh


def test_the_adapter_of_the_urls_kind_is_chosen() -> None:
    module = choose_adapter(
        "run history", "sqlite:///x", "sqlite", every_history(), HISTORY_MODULES
    )
    assert module is sqlite_run_history
    assert list(every_history()) == ["sqlite", "postgresql"]


async def test_a_history_adapter_left_out_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        async with open_run_history("postgresql://u:secret@h/db", {"sqlite": sqlite_run_history}):
            pass
    assert str(caught.value) == (
        "run history 'postgresql://u:***@h/db' needs etl_core.adapters.pg_run_history, which this"
        " binary does not include (it ships: sqlite). Use the data-pipeline binary or import it in"
        " this job's wiring."
    )
    assert caught.value.exit_code == ExitCode.USAGE


async def test_a_store_adapter_left_out_fails_before_a_dry_run_reads() -> None:
    with pytest.raises(
        ConfigError, match=r"needs etl_core\.adapters\.s3_object_store.*ships: file"
    ):
        async with open_object_store(
            "s3://bucket/prefix", dry_run=True, stores={"file": local_object_store}
        ):
            pass


def test_a_source_adapter_left_out_is_reported_when_the_settings_are_checked(
    tmp_path: Path,
) -> None:
    shipped = {"store": bronze_record_source}
    with pytest.raises(ConfigError, match=r"pg_record_source.*\(it ships: store\)"):
        check_source("postgresql://u:pw@h/db", SourceOptions(table="events"), sources=shipped)
    with pytest.raises(ConfigError, match=r"record source 'https://api\.example\.com/r' needs"):
        check_source("https://api.example.com/r", SourceOptions(), sources=shipped)
    assert check_source(str(tmp_path), SourceOptions(), sources=shipped) == "store"


def test_only_the_adapter_a_url_names_is_imported() -> None:
    # A fresh interpreter: this test process has imported every adapter already.
    probe = (
        "import sys\n"
        "from etl_core.adapters.every_history import every_history\n"
        "from etl_core.adapters.object_stores import every_store\n"
        "stores, histories = every_store(), every_history()\n"
        "assert list(stores) == ['file', 's3'] and len(histories) == 2\n"
        "stores['file'], histories['sqlite']\n"
        "print(sorted(name for name in sys.modules if name.startswith('etl_core.adapters.')\n"
        "      and name.rsplit('.', 1)[1] in {'local_object_store', 's3_object_store',\n"
        "      'sqlite_run_history', 'pg_run_history'}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    imported = "['etl_core.adapters.local_object_store', 'etl_core.adapters.sqlite_run_history']"
    assert run_fresh(probe, source_root=root) == imported
