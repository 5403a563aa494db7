"""bronze_to_silver against moto's S3 endpoint with a PostgreSQL history, killed (SIGKILL) at each
commit boundary of a fold: each Delta table on S3 shows its old or its new version, and the re-run
leaves silver and dead letters exactly as an uninterrupted run does."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from etl_core.adapters.delta_tables import storage_options, table_uri

from integration.cli_support import cli

AGENCY = 1
BOUNDARIES = (
    "bronze_to_silver.ledger_saved",
    "bronze_to_silver.store.after_put@2",  # a data file on S3, its commit not yet
    "delta.deadletter.after_commit",
    "delta.silver.before_commit",
    "delta.silver.after_commit",
)

View = tuple[tuple[tuple[Any, ...], ...], tuple[tuple[Any, ...], ...]]


@pytest.fixture(scope="module")
def bronze(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bronze")
    generated = cli(root, "run", "generate", "--", "--records", "900", "--files", "6",
                    "--agencies", "2", "--seed", "4", "--out", str(root / "data"),
                    "--history", f"sqlite:///{root}/g.sqlite3")  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    return root / "data"


def _env(moto_url: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL_S3": moto_url}


def _run(tmp_path: Path, bronze: Path, store: str, history: str, env: dict[str, str]) -> Any:
    return cli(tmp_path, "run", "bronze_to_silver", "--", "--agency-id", str(AGENCY),
               "--bronze", str(bronze), "--store", store, "--history", history,
               "--lease-ttl-seconds", "1", "--workers", "1", "--log-format", "json",
               env=env)  # fmt: skip


def _view(store: str, moto_url: str) -> View:
    options = storage_options(store, {**os.environ, **_env(moto_url)})

    def rows(name: str, drop: tuple[str, ...]) -> tuple[tuple[Any, ...], ...]:
        try:
            table = DeltaTable(table_uri(store, name), storage_options=options)
        except TableNotFoundError:  # no table yet: nothing committed
            return ()
        found = table.to_pyarrow_table(filters=[("agency_id", "=", AGENCY)]).to_pylist()
        return tuple(sorted(tuple(v for k, v in sorted(r.items()) if k not in drop) for r in found))

    return rows("silver", ("_run_id",)), rows("deadletter", ("run_id",))


@pytest.fixture(scope="module")
def expected(bronze: Path, moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> View:
    import boto3

    root = tmp_path_factory.mktemp("clean")
    name = f"clean-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").create_bucket(Bucket=name)
    store = f"s3://{name}/lake"
    result = _run(root, bronze, store, f"sqlite:///{root}/h.sqlite3", _env(moto_url))
    assert result.returncode == 0, result.stderr[-3000:]
    view = _view(store, moto_url)
    assert view[0]
    assert view[1]
    return view


@pytest.mark.parametrize("failpoint", BOUNDARIES)
def test_a_fold_killed_at_a_commit_boundary_on_s3_is_finished_exactly_once_by_the_rerun(
    failpoint: str,
    bronze: Path,
    expected: View,
    moto_url: str,
    bucket: str,
    pg_dsn: str,
    pg_schema: str,
    tmp_path: Path,
) -> None:
    store, history = f"s3://{bucket}/lake", f"{pg_dsn}?schema={pg_schema}"
    env = _env(moto_url)

    killed = _run(tmp_path, bronze, store, history, {**env, "ETL_FAILPOINTS": failpoint})

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    silver, dead = _view(store, moto_url)
    assert silver in ((), expected[0]), "silver shows a mix of two versions"
    assert dead in ((), expected[1]), "dead letters show a mix of two versions"
    deadline = time.monotonic() + 60
    while (repaired := _run(tmp_path, bronze, store, history, env)).returncode == 75:
        assert time.monotonic() < deadline, repaired.stderr[-2000:]  # the killed run's lease
        time.sleep(0.3)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert _view(store, moto_url) == expected
    again = _run(tmp_path, bronze, store, history, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "up to date" in again.stdout
