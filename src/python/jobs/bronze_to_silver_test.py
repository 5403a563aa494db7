"""Tests of the bronze_to_silver job module: flags, wiring, the run record, embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files
from etl_core.model import PartitionRecord, RunRecord, RunStatus
from etl_core.testing.history_readback import recorded

from jobs import bronze_to_silver, registry


def _history(url: str) -> tuple[list[RunRecord], list[PartitionRecord]]:
    found = recorded(url)
    return found.runs, found.all_partitions()


def _bronze(root: Path) -> None:
    options = WorkloadOptions(records=300, files=6, agencies=2, seed=1)
    for key, body in iter_workload_files(options):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture()
def bronze(tmp_path: Path) -> Path:
    _bronze(tmp_path / "bronze")
    return tmp_path / "bronze"


def _argv(tmp_path: Path, bronze: Path, *extra: str) -> list[str]:
    return ["--agency-id", "1", "--bronze", str(bronze), "--store", str(tmp_path / "store"),
            "--history", f"sqlite:///{tmp_path}/h.sqlite3", "--log-format", "json",
            *extra]  # fmt: skip


def test_a_run_publishes_records_and_summarises(
    tmp_path: Path, bronze: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bronze_to_silver.entrypoint(_argv(tmp_path, bronze, "--run-id", "r1")) == 0

    out = capsys.readouterr().out
    assert "bronze_to_silver run r1 succeeded" in out
    assert "outcome: folded in 3 bronze files as fold 1: " in out
    assert f"silver: {tmp_path / 'store'}/silver/" in out
    assert "run_id: r1" in out
    [run], partitions = _history(f"sqlite:///{tmp_path}/h.sqlite3")
    assert (run.status, run.agency_id, run.counts.rows_in) == (RunStatus.SUCCEEDED, 1, 150)
    assert run.counts.balanced
    assert [p.status for p in partitions] == ["merged"] * 3
    assert run.counts.rows_inserted == run.counts.rows_out > 0
    assert run.parameters["bronze"] == str(bronze)
    assert any(
        f.startswith("silver/agency_id=1/dt=2024-01-10/") for f in _files(tmp_path / "store")
    )


def test_a_second_run_is_up_to_date_and_writes_nothing(
    tmp_path: Path, bronze: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bronze_to_silver.entrypoint(_argv(tmp_path, bronze)) == 0
    store = tmp_path / "store"
    before = {f: (store / f).stat().st_mtime_ns for f in _files(store)}
    capsys.readouterr()

    assert bronze_to_silver.entrypoint(_argv(tmp_path, bronze)) == 0

    assert "outcome: up to date" in capsys.readouterr().out
    assert {f: (store / f).stat().st_mtime_ns for f in _files(store)} == before


def test_dry_run_writes_no_object_and_no_history(
    tmp_path: Path, bronze: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bronze_to_silver.entrypoint(_argv(tmp_path, bronze, "--dry-run")) == 0

    out = capsys.readouterr().out
    assert "(dry run)" in out
    assert "rows: in 150" in out
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "h.sqlite3").exists()
    assert _files(bronze) == _files(bronze)


def test_on_demo_the_embedded_store_is_seeded_with_the_reference_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ETL_STORE_URL", "ETL_HISTORY_URL", "ETL_CONFIG_PATH", "ETL_EMBEDDED_DEFAULTS"):
        monkeypatch.delenv(name, raising=False)

    code = bronze_to_silver.entrypoint(
        ["--demo", "--agency-id", "4", "--workers", "1", "--log-format", "json"]
    )

    assert code == 0
    captured = capsys.readouterr()
    assert "generating the reference workload (20,000 records, 60 files, seed 7)" in captured.err
    assert "(--demo)" in captured.err
    assert "outcome: folded in 3 bronze files as fold 1: " in captured.out
    assert "dead-letter reasons: " in captured.out
    store = tmp_path / ".etl" / "store"
    assert (store / "agencies.csv").exists()
    assert [f for f in _files(store) if f.startswith("silver/agency_id=4/")]
    assert [f for f in _files(store) if f.startswith("_ledger/agency_id=4/")]
    assert (tmp_path / ".etl" / "history.sqlite3").exists()


def test_without_demo_an_empty_embedded_store_is_a_usage_error_and_nothing_is_generated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ETL_STORE_URL", "ETL_HISTORY_URL", "ETL_CONFIG_PATH", "ETL_EMBEDDED_DEFAULTS"):
        monkeypatch.delenv(name, raising=False)

    code = bronze_to_silver.entrypoint(["--agency-id", "4", "--workers", "1"])

    assert code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("bronze_to_silver: error: the embedded local store file://./.etl/store")
    assert "--store (or ETL_STORE_URL)" in line
    assert "pass --demo" in line
    assert not (tmp_path / ".etl").exists()


def test_demo_never_seeds_a_store_that_holds_bronze(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    _bronze(store)  # agencies.csv and bronze/ of a 300-record workload
    before = _files(store)
    argv = ["--demo", "--agency-id", "1", "--store", str(store), "--workers", "1",
            "--history", f"sqlite:///{tmp_path}/h.sqlite3"]  # fmt: skip

    assert bronze_to_silver.entrypoint(argv) == 0

    assert "generating" not in capsys.readouterr().err
    assert [f for f in _files(store) if f.startswith(("bronze/", "agencies"))] == [
        f for f in before if f.startswith(("bronze/", "agencies"))
    ]


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--from", "2024-13-01"], "argument --from: expected a date YYYY-MM-DD"),
        (["--from", "2024-01-09", "--to", "2024-01-08"], "--from 2024-01-09 is after --to"),
        (["--workers", "0"], "--workers: must be >= 1, got 0"),
        (["--bronze", "ftp://x/y"], "invalid object store URL"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path,
    bronze: Path,
    argv: list[str],
    problem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = _argv(tmp_path, bronze)
    try:
        code = bronze_to_silver.entrypoint([*base, *argv])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_the_agency_is_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ETL_AGENCY_ID", raising=False)
    assert bronze_to_silver.entrypoint(["--dry-run"]) == 2
    assert "an agency is required" in capsys.readouterr().err


def test_job_tuple_is_well_formed() -> None:
    # Well formed is what the registry accepts: a plain function of argv and a description.
    job = registry.load("bronze_to_silver")
    assert (job.name, job.module) == ("bronze_to_silver", "jobs.bronze_to_silver")
    assert job.entrypoint is bronze_to_silver.entrypoint
    assert job.description == bronze_to_silver.JOB[1].strip() != ""
