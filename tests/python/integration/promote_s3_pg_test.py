"""bronze_to_silver and backfill as subprocesses on the real backends: bronze and the lake in
moto's S3 (HTTP on loopback), the run history in PostgreSQL. A clean run's history accounts for
what silver shows; a backfill SIGKILLed at an agency's commit on S3 is finished exactly once."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

# Imported, not only run: dependency inference then ships the jobs with this test.
from jobs import backfill, bronze_to_silver  # noqa: F401

from integration.cli_support import cli
from integration.lake_support import (
    View,
    generate_bronze,
    history_of,
    lake_view,
    new_bucket,
    s3_env,
    until_lease_free,
)

AGENCIES = (1, 2)
RANGE = ("--from", "2024-01-08", "--to", "2024-01-11")


@pytest.fixture(scope="module")
def bronze(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two agencies' bronze (4 files each, dt 2024-01-08..11, some bad lines) in S3."""
    url = f"s3://{new_bucket(moto_url, 'bronze')}/ref"
    generate_bronze(tmp_path_factory.mktemp("generate"), moto_url, url, "--records", "800",
                    "--files", "8", "--agencies", "2", "--seed", "7",
                    "--bad-rate", "0.05")  # fmt: skip
    return url


def _promote(
    root: Path, moto_url: str, bronze: str, store: str, history: str, *argv: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return cli(root, "run", *argv[:1], "--", *argv[1:], "--bronze", bronze, "--store", store,
               "--history", history, "--workers", "1", "--log-format", "json",
               env={**s3_env(moto_url), **(env or {})})  # fmt: skip


@pytest.fixture(scope="module")
def clean(bronze: str, moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[int, View]:
    """What an uninterrupted backfill of both agencies leaves (a SQLite history: only the lake
    is compared)."""
    root = tmp_path_factory.mktemp("clean")
    store = f"s3://{new_bucket(moto_url, 'clean')}/lake"
    history = f"sqlite:///{root}/history.sqlite3"
    result = _promote(root, moto_url, bronze, store, history, "backfill", "--all-agencies", *RANGE)
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    views = {agency: lake_view(store, moto_url, agency) for agency in AGENCIES}
    assert all(silver and dead for silver, dead in views.values())
    return views


def test_bronze_to_silver_on_s3_records_in_postgres_what_silver_shows(
    bronze: str, clean: dict[int, View], moto_url: str, bucket: str, pg_dsn: str,
    pg_schema: str, tmp_path: Path,
) -> None:  # fmt: skip
    store, history = f"s3://{bucket}/lake", f"{pg_dsn}?schema={pg_schema}"

    result = _promote(tmp_path, moto_url, bronze, store, history, "bronze_to_silver",
                      "--agency-id", "1", "--run-id", "b2s-1")  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    silver, dead = lake_view(store, moto_url, 1)
    assert (silver, dead) == clean[1]
    [(run, partitions)] = history_of(history)
    assert (run.run_id, run.job, run.agency_id, run.status.value) == (
        "b2s-1", "bronze_to_silver", 1, "succeeded",
    )  # fmt: skip
    assert run.counts.balanced
    assert (run.counts.rows_out, run.counts.rows_dead_letter) == (len(silver), len(dead))
    assert run.trace_id
    assert sorted(p.partition for p in partitions) == [
        f"agency_id=1/dt=2024-01-{day:02d}" for day in range(8, 12)
    ]
    assert all(p.counts.balanced for p in partitions)
    assert sum(p.counts.rows_in for p in partitions) == run.counts.rows_in

    again = _promote(tmp_path, moto_url, bronze, store, history, "bronze_to_silver",
                     "--agency-id", "1")  # fmt: skip

    assert again.returncode == 0, again.stderr[-3000:]
    assert "up to date" in again.stdout
    assert lake_view(store, moto_url, 1) == clean[1]
    assert [r.status.value for r, _ in history_of(history)] == ["succeeded", "succeeded"]


def test_a_backfill_on_s3_killed_at_an_agency_commit_reruns_only_what_is_left(
    bronze: str, clean: dict[int, View], moto_url: str, bucket: str, pg_dsn: str,
    pg_schema: str, tmp_path: Path,
) -> None:  # fmt: skip
    store, history = f"s3://{bucket}/lake", f"{pg_dsn}?schema={pg_schema}"

    def run_backfill(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return _promote(tmp_path, moto_url, bronze, store, history, "backfill",
                        "--all-agencies", "--max-parallel", "1", *RANGE, env=env)  # fmt: skip

    # Agency 1 is committed; agency 2's ledger and dead letters are, its silver commit is not.
    killed = run_backfill({"ETL_FAILPOINTS": "delta.silver.before_commit@2"})

    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr[-3000:])
    assert lake_view(store, moto_url, 1) == clean[1]
    assert lake_view(store, moto_url, 2)[0] == ()

    rerun = until_lease_free(run_backfill)

    assert rerun.returncode == 0, (rerun.stdout, rerun.stderr[-3000:])
    for agency in AGENCIES:
        assert lake_view(store, moto_url, agency) == clean[agency]
    runs = history_of(history)
    died = sorted(r.job for r, _ in runs if r.status.value == "failed")
    assert died == ["backfill", "bronze_to_silver"]  # the killed backfill and its agency 2
    assert all((r.error or "").startswith("died") for r, _ in runs if r.status.value == "failed")
    assert [r.run_id for r, _ in runs if r.status.value == "running"] == []
    # Every silver row is accounted once: by agency 1's child of the killed backfill and by
    # agency 2's child of the re-run (agency 1 is up to date there).
    children = [r for r, _ in runs if r.job == "bronze_to_silver" and r.status.value == "succeeded"]
    out = {a: sum(r.counts.rows_out for r in children if r.agency_id == a) for a in AGENCIES}
    assert out == {agency: len(clean[agency][0]) for agency in AGENCIES}
    assert all(r.counts.balanced for r in children)
