"""The job wiring reads the environment once and hands the runner values."""

from __future__ import annotations

import pytest
from etl_core import failpoints
from etl_core.adapters import sqlite_run_history
from etl_core.adapters.run_histories import RunHistoryAt
from etl_core.settings import CommonSettings

from jobs import _wiring


def test_the_wiring_reads_the_environment_and_names_the_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ETL_LOG_LEVEL", "debug")
    monkeypatch.setenv("ETL_PARENT_RUN_ID", " rollout-7 ")
    monkeypatch.setenv("ETL_CODE_VERSION", "v9")
    monkeypatch.setenv(failpoints.ENV, "somewhere")
    monkeypatch.setattr(failpoints, "_spec", None)
    settings = CommonSettings(history_url="sqlite:///h.sqlite3")
    shipped = {"sqlite": sqlite_run_history}

    wiring = _wiring.wiring(settings, shipped)

    assert (wiring.log_level, wiring.parent_run_id, wiring.code_version) == (
        "debug", "rollout-7", "v9"
    )  # fmt: skip
    assert wiring.history == RunHistoryAt("sqlite:///h.sqlite3", shipped)
    assert failpoints._spec == "somewhere"


def test_an_unset_parent_run_id_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_PARENT_RUN_ID", raising=False)
    monkeypatch.setattr(failpoints, "_spec", None)
    assert _wiring.wiring(CommonSettings(), {}).parent_run_id is None
