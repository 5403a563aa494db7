"""Jobs as a pod or a bare PEX runs them: demo data only on --demo, and a job told nothing about
its store and history (where the embedded defaults are off, as in images and pods) exits 2 saying
what to set, writing nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Imported, not only run: the build ships these (and what they import) with the test.
from jobs import agency_data_job, bronze_to_silver, cli

from e2e.cli_support import cli as run_cli
from e2e.cli_support import one_error_line

# What an image (docker/Dockerfile) and a rendered pod set.
IMAGE_ENV = {"ETL_EMBEDDED_DEFAULTS": "off"}
# An Indexed Job's pod: the renderer's ETL_AGENCY_IDS and Kubernetes' completion index.
POD_ENV = {**IMAGE_ENV, "ETL_AGENCY_IDS": "1,2,3", "JOB_COMPLETION_INDEX": "1"}


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`data-pipeline <args>` with nothing but PATH/HOME/PYTHONPATH and env (like `env -i`)."""
    return run_cli(cwd, *args, env=env)


def test_a_pod_told_nothing_exits_2_naming_what_to_set_and_writes_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, bronze_to_silver.NAME, "--workers", "1", env=POD_ENV)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result, bronze_to_silver.NAME)
    assert "not configured (ETL_EMBEDDED_DEFAULTS=off" in line
    assert "set ETL_STORE_URL or --store to the object store" in line
    assert "set ETL_HISTORY_URL or --history to the run history" in line
    assert "pass --demo" in line
    assert list(tmp_path.iterdir()) == []


def test_a_bare_pex_run_on_an_empty_embedded_store_generates_nothing(tmp_path: Path) -> None:
    # The embedded defaults are allowed here (no ETL_EMBEDDED_DEFAULTS): a person's machine.
    env = {"ETL_AGENCY_IDS": "1,2,3", "JOB_COMPLETION_INDEX": "1"}

    result = run(tmp_path, bronze_to_silver.NAME, "--workers", "1", env=env)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result, bronze_to_silver.NAME)
    assert (
        "the embedded local store file://./.etl/store holds no agencies file and no bronze" in line
    )
    assert "pass --demo" in line
    assert list(tmp_path.iterdir()) == []


def test_an_export_without_source_told_nothing_exits_2(tmp_path: Path) -> None:
    result = run(tmp_path, agency_data_job.NAME, env=POD_ENV)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result, agency_data_job.NAME)
    assert "ETL_STORE_URL" in line
    assert "ETL_HISTORY_URL" in line
    assert "--demo" not in line  # the export has no demo data to offer
    assert list(tmp_path.iterdir()) == []


def test_a_store_without_a_history_names_only_the_history(tmp_path: Path) -> None:
    env = {**POD_ENV, "ETL_STORE_URL": f"file://{tmp_path}/lake"}

    result = run(tmp_path, bronze_to_silver.NAME, env=env)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result, bronze_to_silver.NAME)
    assert "ETL_HISTORY_URL" in line
    assert "ETL_STORE_URL" not in line
    assert list(tmp_path.iterdir()) == []


def test_runs_told_no_history_exits_2_naming_only_the_history(tmp_path: Path) -> None:
    result = run(tmp_path, "runs", env=IMAGE_ENV)

    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{cli.PROG}: error: runs: not configured")
    assert "ETL_HISTORY_URL" in line
    assert "ETL_STORE_URL" not in line


def test_demo_is_the_one_way_to_generate_data_even_in_an_image(tmp_path: Path) -> None:
    result = run(
        tmp_path, bronze_to_silver.NAME, "--demo", "--dry-run", "--agency-id", "1",
        "--workers", "1", env=IMAGE_ENV,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "generating the reference workload (20,000 records, 60 files, seed 7)" in result.stderr
    assert "(in memory: dry run)" in result.stdout
    assert list(tmp_path.iterdir()) == []  # a dry run: nothing written anywhere
