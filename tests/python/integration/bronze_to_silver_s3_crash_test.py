"""bronze_to_silver against moto's S3 endpoint with a PostgreSQL history, killed (SIGKILL) at each
commit boundary of a fold: each Delta table on S3 shows its old or its new version, and the re-run
leaves silver and dead letters exactly as an uninterrupted run does."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from integration.cli_support import cli
from integration.lake_support import (
    View,
    history_of,
    lake_view,
    new_bucket,
    s3_env,
    until_lease_free,
)

AGENCY = 1
BOUNDARIES = (
    "bronze_to_silver.ledger_saved",
    "bronze_to_silver.store.after_put@2",  # a data file on S3, its commit not yet
    "delta.deadletter.after_commit",
    "delta.silver.before_commit",
    "delta.silver.after_commit",
)


@pytest.fixture(scope="module")
def bronze(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bronze")
    generated = cli(root, "run", "generate", "--", "--records", "900", "--files", "6",
                    "--agencies", "2", "--seed", "4", "--out", str(root / "data"),
                    "--history", f"sqlite:///{root}/g.sqlite3")  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    return root / "data"


def _run(tmp_path: Path, bronze: Path, store: str, history: str, env: dict[str, str]) -> Any:
    return cli(tmp_path, "run", "bronze_to_silver", "--", "--agency-id", str(AGENCY),
               "--bronze", str(bronze), "--store", store, "--history", history,
               "--workers", "1", "--log-format", "json", env=env)  # fmt: skip


@pytest.fixture(scope="module")
def expected(bronze: Path, moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> View:
    root = tmp_path_factory.mktemp("clean")
    store = f"s3://{new_bucket(moto_url, 'clean')}/lake"
    result = _run(root, bronze, store, f"sqlite:///{root}/h.sqlite3", s3_env(moto_url))
    assert result.returncode == 0, result.stderr[-3000:]
    view = lake_view(store, moto_url, AGENCY)
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
    env = s3_env(moto_url)

    killed = _run(tmp_path, bronze, store, history, {**env, "ETL_FAILPOINTS": failpoint})

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    silver, dead = lake_view(store, moto_url, AGENCY)
    assert silver in ((), expected[0]), "silver shows a mix of two versions"
    assert dead in ((), expected[1]), "dead letters show a mix of two versions"
    repaired = until_lease_free(lambda: _run(tmp_path, bronze, store, history, env))
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert lake_view(store, moto_url, AGENCY) == expected
    runs = history_of(history)
    assert [(r.status.value, (r.error or "")[:5]) for r, _ in runs] == [
        ("failed", "died:"), ("succeeded", ""),
    ]  # fmt: skip
    again = _run(tmp_path, bronze, store, history, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "up to date" in again.stdout
