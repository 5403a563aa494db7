"""Outages of the run history or the object store end a run with exit 75 (retry later), never 1
(which a Kubernetes podFailurePolicy takes as final), and never hang it: real subprocess runs
against a PostgreSQL that is down or lacks the database, and S3 endpoints that refuse
connections or accept them and never answer."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from integration.cli_support import cli
from integration.s3_support import refusing_endpoint, silent_endpoint

PASSWORD = "Pw-0utage-S3cret"
pytestmark = pytest.mark.usefixtures("_aws_env")


def _generate(tmp_path: Path, out: str, history: str, env: dict[str, str] | None = None,
              timeout: float = 300):  # fmt: skip
    argv = ["run", "generate", "--", "--records", "50", "--files", "2", "--agencies", "1",
            "--out", out, "--history", history, "--log-format", "json"]  # fmt: skip
    return cli(tmp_path, *argv, env=env, timeout=timeout)


def _runs(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return list(conn.execute("SELECT status, error FROM etl_runs"))


def test_a_history_on_a_closed_port_exits_75_and_never_shows_the_password(tmp_path: Path) -> None:
    with refusing_endpoint() as url:
        port = urlsplit(url).port
        history = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/test"
        result = _generate(tmp_path, str(tmp_path / "store"), history)

    assert result.returncode == 75, result.stderr[-2000:]
    assert "RunHistoryUnavailable: cannot connect to run history" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_a_history_whose_database_is_missing_exits_75(tmp_path: Path, pg_dsn: str) -> None:
    parts = urlsplit(pg_dsn)
    missing = urlunsplit(parts._replace(path="/etl_no_such_database_here"))

    result = _generate(tmp_path, str(tmp_path / "store"), missing)

    assert result.returncode == 75, result.stderr[-2000:]
    assert 'database "etl_no_such_database_here" does not exist' in result.stderr


def test_an_s3_store_that_refuses_connections_is_retried_then_exits_75(
    tmp_path: Path, bucket: str
) -> None:
    database = tmp_path / "h.sqlite3"
    with refusing_endpoint() as url:
        env = {"AWS_ENDPOINT_URL": url, "ETL_S3_RETRY_BUDGET_SECONDS": "2"}
        started = time.monotonic()
        result = _generate(tmp_path, f"s3://{bucket}/w", f"sqlite:///{database}", env)
        elapsed = time.monotonic() - started

    assert result.returncode == 75, result.stderr[-2000:]
    [(status, error)] = _runs(database)
    assert status == "failed"
    assert error.startswith("TemporaryFailure: s3 ")
    assert re.search(r"after [2-9]\d* attempts", error), error  # retried, not given up at once
    assert "Could not connect" in error
    assert elapsed < 100


def test_an_s3_store_that_never_answers_exits_75_within_the_budget(
    tmp_path: Path, bucket: str
) -> None:
    database = tmp_path / "h.sqlite3"
    with silent_endpoint() as url:
        # The default read timeout (20 s) stays: the 3 s budget alone must end the run.
        env = {"AWS_ENDPOINT_URL": url, "ETL_S3_RETRY_BUDGET_SECONDS": "3"}
        started = time.monotonic()
        result = _generate(tmp_path, f"s3://{bucket}/w", f"sqlite:///{database}", env, timeout=120)
        elapsed = time.monotonic() - started

    assert result.returncode == 75, result.stderr[-2000:]
    [(status, error)] = _runs(database)
    assert status == "failed"
    assert error.startswith("TemporaryFailure: s3 ")
    assert elapsed < 100  # before the fix: 5 attempts x 60 s read timeout


def test_the_s3_budget_and_timeouts_are_recorded_with_the_run(tmp_path: Path) -> None:
    database = tmp_path / "h.sqlite3"
    env = {"ETL_S3_RETRY_BUDGET_SECONDS": "7", "ETL_S3_READ_TIMEOUT_SECONDS": "4"}
    result = _generate(tmp_path, str(tmp_path / "store"), f"sqlite:///{database}", env)

    assert result.returncode == 0, result.stderr[-2000:]
    with sqlite3.connect(database) as conn:
        [(text,)] = conn.execute("SELECT parameters FROM etl_runs")
    parameters = json.loads(text)
    assert (parameters["s3_retry_budget_seconds"], parameters["s3_read_timeout_seconds"]) == (7, 4)
