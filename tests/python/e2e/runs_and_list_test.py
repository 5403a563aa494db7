"""`data-pipeline runs`, `list --json` and `--version` as users run them: a subprocess each."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import Counts, RunRecord, RunStatus

# Imported, not only run: so the build's dependency inference ships these with the test.
from jobs import cli, registry

from e2e.cli_support import cli as run_cli


def _cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, env=env, timeout=120)


def _seed(url: str) -> None:
    """A backfill b1 with two children (one failed), a lone run, a live run and a run that went
    silent (stale)."""
    now = dt.datetime.now(dt.UTC)

    def run(run_id: str, job: str, minutes_ago: int, **fields: Any) -> RunRecord:
        started = now - dt.timedelta(minutes=minutes_ago)
        return RunRecord(run_id, job, RunStatus.RUNNING, started, heartbeat_at=started, **fields)

    async def write() -> None:
        async with open_run_history(url, every_history()) as history:
            runs = [
                run("b1", "backfill", 10),
                run("b1-a1", "bronze_to_silver", 9, agency_id=1,
                    parameters={"parent_run_id": "b1"}),
                run("b1-a2", "bronze_to_silver", 8, agency_id=2,
                    parameters={"parent_run_id": "b1"}),
                run("lone", "bronze_to_silver", 5, agency_id=1),
                run("silent", "maintain", 600),
                run("live", "maintain", 1),
            ]  # fmt: skip
            for record in runs:
                await history.start_run(record)
            for run_id, status in [
                ("b1", RunStatus.FAILED),
                ("b1-a1", RunStatus.SUCCEEDED),
                ("b1-a2", RunStatus.FAILED),
                ("lone", RunStatus.SUCCEEDED),
            ]:
                await history.finish_run(
                    run_id, status=status, finished_at=now, counts=Counts(),
                    error=None if status is RunStatus.SUCCEEDED else "DataError: boom",
                )  # fmt: skip

    asyncio.run(write())


def _ids(stdout: str) -> list[str]:
    return [run["run_id"] for run in json.loads(stdout)]


def test_runs_on_a_missing_history_file_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite3"

    result = _cli(tmp_path, "runs", "--history", f"sqlite:///{missing}")

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{cli.PROG}: error: no run history at sqlite:///{missing}: ")
    assert "does not exist" in line
    assert "no runs recorded" not in result.stderr
    assert result.stdout == ""
    assert not missing.exists()


def test_runs_with_a_typo_in_the_job_names_the_known_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    _seed(url)

    typo = _cli(tmp_path, "runs", "--history", url, "--job", "bronze_to_slver")
    known_but_idle = _cli(tmp_path, "runs", "--history", url, "--job", "ingest_api")

    assert typo.returncode == 2
    [line] = typo.stderr.splitlines()
    assert line.startswith(f"{cli.PROG}: error: unknown job 'bronze_to_slver' (known jobs: ")
    assert "bronze_to_silver" in line
    assert known_but_idle.returncode == 0, known_but_idle.stderr
    assert known_but_idle.stderr.strip() == f"no runs of job ingest_api recorded in {url}"


def test_runs_filter_by_status_and_parent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    _seed(url)

    def ids(*args: str) -> list[str]:
        result = _cli(tmp_path, "runs", "--history", url, "--json", *args)
        assert result.returncode == 0, result.stderr
        return _ids(result.stdout)

    assert ids("--parent", "b1") == ["b1-a2", "b1-a1"]
    assert ids("--parent", "b1", "--status", "failed") == ["b1-a2"]
    assert ids("--status", "failed") == ["b1-a2", "b1"]
    assert ids("--status", "succeeded", "--job", "bronze_to_silver") == ["lone", "b1-a1"]
    assert ids("--status", "stale") == ["silent"]
    assert ids("--status", "running") == ["live"]
    assert ids("--parent", "nobody") == []
    table = _cli(tmp_path, "runs", "--history", url, "--parent", "b1")
    assert [row.split()[0] for row in table.stdout.splitlines()[1:]] == ["b1-a2", "b1-a1"]
    bad = _cli(tmp_path, "runs", "--history", url, "--status", "done")
    assert bad.returncode == 2
    assert "invalid choice: 'done'" in bad.stderr


def test_list_json_is_json_naming_every_job(tmp_path: Path) -> None:
    result = _cli(tmp_path, "list", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [job["name"] for job in listed["jobs"]] == registry.job_names()
    assert all(job["description"] and job["module"] == f"jobs.{job['name']}"
               for job in listed["jobs"])  # fmt: skip
    assert listed["problems"] == []


def test_version_prints_the_code_version_that_runs_record(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--version")
    pinned = _cli(tmp_path, "--version", env={"ETL_CODE_VERSION": "1.4.2+abc123"})

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"{cli.PROG} \d+\.\d+\.\d+(\+\S+)?\n", result.stdout)
    assert "dev" not in result.stdout
    assert pinned.stdout == f"{cli.PROG} 1.4.2+abc123\n"
