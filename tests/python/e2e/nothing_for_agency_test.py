"""An agency with nothing for it is a failed run that says so, never an empty success: the jobs
run as users run them (`data-pipeline run <job> ...`, a subprocess each)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files
from etl_core.model import RunRecord, RunStatus
from etl_core.testing.history_readback import recorded

# Imported, not only run: the build ships these (and what they import) with the test.
from jobs import agency_data_job, bronze_to_silver

from e2e.cli_support import cli, one_error_line

# Agencies 1 and 2 in agencies.csv; bronze for agency 1 only (agency 2's is replaced below).
WORKLOAD = WorkloadOptions(records=40, files=2, agencies=2, seed=3)


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`data-pipeline run <args>` with nothing but PATH/HOME/PYTHONPATH (like `env -i`)."""
    return cli(cwd, "run", *args, "--log-format", "json")


def lake(root: Path) -> Path:
    """agencies.csv (agencies 1-2), agency 1's bronze, and only documents under agency 2's."""
    for key, body in iter_workload_files(WORKLOAD):
        if key.startswith("bronze/agency_id=2/"):
            continue
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)
    for key in ("bronze/agency_id=2/dt=2024-01-08/scans/b.png", "bronze/agency_id=2/notes.pdf"):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"a document, not bronze")
    return root


def only_run(history: str) -> RunRecord:
    [record] = recorded(history).runs
    return record


def test_export_of_an_agency_the_agencies_file_does_not_list_fails_saying_so(
    tmp_path: Path,
) -> None:
    store = lake(tmp_path / "lake")
    history = f"sqlite:///{tmp_path}/h.sqlite3"

    result = run(tmp_path, agency_data_job.NAME, "--agency-id", "123", "--store", str(store),
                 "--history", history)  # fmt: skip

    assert result.returncode == 1, result.stderr
    line = one_error_line(result, agency_data_job.NAME)
    assert f"UnknownAgency: agency 123 is not in the agencies file {store}/agencies.csv" in line
    assert "(it lists agencies 1-2)" in line
    assert not (store / "exports").exists()
    record = only_run(history)
    assert (record.status, record.agency_id) == (RunStatus.FAILED, 123)
    assert record.error is not None
    assert "UnknownAgency" in record.error


def test_export_from_a_source_of_an_unknown_agency_fails_before_reading_it(
    tmp_path: Path,
) -> None:
    source = lake(tmp_path / "lake")
    out = tmp_path / "out"

    result = run(tmp_path, agency_data_job.NAME, "--agency-id", "123", "--source",
                 f"file://{source}", "--store", str(out), "--history",
                 f"sqlite:///{tmp_path}/h.sqlite3")  # fmt: skip

    assert result.returncode == 1, result.stderr
    line = one_error_line(result, agency_data_job.NAME)
    assert (
        f"UnknownAgency: agency 123 is not in the agencies file file://{source}/agencies.csv"
        in (line)
    )
    assert not (out / "exports").exists()


def test_export_of_a_known_agency_the_source_holds_nothing_of_fails_uploading_nothing(
    tmp_path: Path,
) -> None:
    source = lake(tmp_path / "lake")
    out = tmp_path / "out"

    result = run(tmp_path, agency_data_job.NAME, "--agency-id", "2", "--source",
                 f"file://{source}", "--store", str(out), "--history",
                 f"sqlite:///{tmp_path}/h.sqlite3")  # fmt: skip

    assert result.returncode == 1, result.stderr
    line = one_error_line(result, agency_data_job.NAME)
    assert (
        f"NothingForAgency: agency 2: nothing to export: file://{source} holds no record of this "
        "agency"
    ) in line
    assert not (out / "exports").exists()


def test_bronze_to_silver_of_a_prefix_holding_only_documents_fails_naming_what_it_found(
    tmp_path: Path,
) -> None:
    store = lake(tmp_path / "lake")
    history = f"sqlite:///{tmp_path}/h.sqlite3"

    result = run(tmp_path, bronze_to_silver.NAME, "--agency-id", "2", "--store", str(store),
                 "--history", history, "--workers", "1")  # fmt: skip

    assert result.returncode == 1, result.stderr
    line = one_error_line(result, bronze_to_silver.NAME)
    assert "NothingForAgency: agency 2 (Phoenix Police Department): no bronze to fold: " in line
    assert "bronze/agency_id=2/ holds 2 object(s) but no bronze file (.ndjson or .ndjson.gz)" in (
        line
    )
    assert "no bronze files" not in line
    assert not (store / "silver").exists()
    assert only_run(history).status is RunStatus.FAILED


def test_bronze_to_silver_of_an_unknown_agency_fails_saying_so(tmp_path: Path) -> None:
    store = lake(tmp_path / "lake")

    result = run(tmp_path, bronze_to_silver.NAME, "--agency-id", "123", "--store", str(store),
                 "--history", f"sqlite:///{tmp_path}/h.sqlite3", "--workers", "1")  # fmt: skip

    assert result.returncode == 1, result.stderr
    line = one_error_line(result, bronze_to_silver.NAME)
    assert "UnknownAgency: agency 123 is not in the agencies file agencies.csv" in line
    assert "(it lists agencies 1-2)" in line
    assert not (store / "silver").exists()
