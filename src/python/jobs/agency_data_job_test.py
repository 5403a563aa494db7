"""The agency_data_job command: silver tables, store sources, config errors, dry runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files
from deltalake import DeltaTable
from etl_core.model import RunRecord, RunStatus
from etl_core.testing.history_readback import recorded

from jobs import agency_data_job, bronze_to_silver, registry

WORKLOAD = WorkloadOptions(records=300, files=6, agencies=3, bad_rate=0.05, dup_rate=0.1, seed=2)


def _runs(url: str) -> list[RunRecord]:
    return recorded(url).runs


def _lake(root: Path, *, agencies: bool = True) -> dict[str, object]:
    """The workload's files under root; its manifest."""
    for key, body in iter_workload_files(WORKLOAD):
        if key == "agencies.csv" and not agencies:
            continue
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)
    manifest: dict[str, object] = json.loads((root / "manifest.json").read_text())
    return manifest


def _export_files(store: Path, agency: int) -> list[str]:
    return sorted(
        p.relative_to(store).as_posix() for p in (store / "exports").rglob("*") if p.is_file()
    )


@pytest.fixture()
def history(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/history.sqlite3"


def _table(store: Path, name: str, agency: int) -> list[dict[str, Any]]:
    """The agency's committed rows of the store's Delta table `name`."""
    table = DeltaTable(str(store / name)).to_pyarrow_table(filters=[("agency_id", "=", agency)])
    return list(table.to_pylist())


def _silver_as_exported(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Silver rows as the export writes them: no lineage, text instants and dt, by record_id."""
    shaped = []
    for row in rows:
        shaped.append(
            {
                **{name: value for name, value in row.items() if not name.startswith("_")},
                "dt": row["dt"].isoformat(),
                "occurred_at": row["occurred_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "updated_at": row["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return sorted(shaped, key=lambda row: row["record_id"])


def _ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_with_no_source_the_silver_rows_and_dead_letters_of_the_store_are_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the embedded defaults: ./.etl/store, ./.etl/history.sqlite3
    argv = ["--demo", "--agency-id", "2", "--workers", "1", "--run-id", "b1"]
    assert bronze_to_silver.entrypoint(argv) == 0  # seeds the empty store, folds agency 2

    assert agency_data_job.entrypoint(["--agency-id", "2", "--run-id", "r1"]) == 0

    store = tmp_path / ".etl" / "store"
    export = store / "exports/agency_id=2/run_id=r1"
    assert _export_files(store, 2) == [
        f"exports/agency_id=2/run_id=r1/{name}"
        for name in ("deadletter.ndjson", "manifest.json", "records.csv", "records.ndjson")
    ]
    silver = _table(store, "silver", 2)
    assert _ndjson(export / "records.ndjson") == _silver_as_exported(silver)
    dead = sorted(_table(store, "deadletter", 2), key=lambda row: (row["source"], row["line"]))
    assert _ndjson(export / "deadletter.ndjson") == [
        {"reason": row["reason"], "source": row["source"], "raw": row["raw"], "run_id": "b1",
         "detail": row["detail"]}
        for row in dead
    ]  # fmt: skip
    expected = json.loads((store / "manifest.json").read_text())["agencies"]["2"]
    runs = {run.run_id: run for run in _runs("sqlite:///.etl/history.sqlite3")}
    run = runs["r1"]
    assert (run.job, run.agency_id, run.status) == ("agency_data_job", 2, RunStatus.SUCCEEDED)
    assert (run.counts.rows_out, run.counts.rows_dead_letter, run.counts.rows_duplicate) == (
        expected["silver_rows"], expected["dead_letter_rows"], 0
    )  # fmt: skip
    assert run.counts.rows_in == len(silver) + len(dead)
    assert run.artifacts[-1] == "exports/agency_id=2/run_id=r1/manifest.json"
    assert run.parameters["source"] == "silver and dead-letter tables of the store"
    captured = capsys.readouterr()
    assert f"source: {store}/silver/" in captured.out


def test_nothing_in_silver_for_the_agency_fails_the_run_saying_to_run_bronze_to_silver(
    tmp_path: Path, history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _lake(tmp_path / "lake")  # bronze only: bronze_to_silver never ran
    argv = ["--agency-id", "3", "--store", str(tmp_path / "lake"), "--history", history]

    assert agency_data_job.entrypoint(argv) == 1

    err = capsys.readouterr().err
    assert "agency 3: nothing in silver for this agency" in err
    assert "run bronze_to_silver --agency-id 3 first" in err
    [run] = _runs(history)
    assert run.status is RunStatus.FAILED
    assert not (tmp_path / "lake" / "exports").exists()


def test_an_empty_embedded_store_is_not_seeded_by_an_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    assert agency_data_job.entrypoint(["--agency-id", "2"]) == 1

    assert "nothing in silver for this agency" in capsys.readouterr().err
    assert not (tmp_path / ".etl" / "store" / "bronze").exists()


def test_a_store_source_is_read_with_the_agencies_file_beside_its_bronze(
    tmp_path: Path, history: str
) -> None:
    manifest = _lake(tmp_path / "lake")
    out = tmp_path / "out"
    argv = ["--agency-id", "3", "--source", f"file://{tmp_path}/lake", "--store", str(out),
            "--history", history, "--format", "ndjson", "--run-id", "r2"]  # fmt: skip

    assert agency_data_job.entrypoint(argv) == 0

    rows = (out / "exports/agency_id=3/run_id=r2/records.ndjson").read_text().splitlines()
    assert len(rows) == manifest["agencies"]["3"]["silver_rows"]  # type: ignore[index]
    assert not (out / "exports/agency_id=3/run_id=r2/records.csv").exists()
    [run] = _runs(history)
    assert run.parameters["source_url"] == f"file://{tmp_path}/lake"
    assert run.parameters["format"] == "ndjson"


def test_a_missing_agencies_file_fails_the_run_naming_where_it_looked(
    tmp_path: Path, history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _lake(tmp_path / "lake", agencies=False)
    argv = ["--agency-id", "1", "--source", str(tmp_path / "lake"), "--store",
            str(tmp_path / "out"), "--history", history, "--log-format", "json"]  # fmt: skip

    assert agency_data_job.entrypoint(argv) == 1

    assert f"agencies file {tmp_path}/lake/agencies.csv not found" in capsys.readouterr().err
    [run] = _runs(history)
    assert run.status is RunStatus.FAILED
    assert not (tmp_path / "out" / "exports").exists()


def test_an_explicit_agencies_file_is_used(tmp_path: Path, history: str) -> None:
    _lake(tmp_path / "lake")
    (tmp_path / "lake" / "agencies.csv").rename(tmp_path / "ref.csv")
    argv = ["--agency-id", "1", "--source", str(tmp_path / "lake"),
            "--agencies", f"file://{tmp_path}/ref.csv",
            "--store", str(tmp_path / "out"), "--history", history]  # fmt: skip

    assert agency_data_job.entrypoint(argv) == 0


def test_a_dry_run_reads_and_counts_but_writes_nothing(
    tmp_path: Path, history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _lake(tmp_path / "lake")
    argv = ["--agency-id", "1", "--source", str(tmp_path / "lake"), "--store",
            str(tmp_path / "out"), "--history", history, "--dry-run"]  # fmt: skip

    assert agency_data_job.entrypoint(argv) == 0

    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "history.sqlite3").exists()
    assert "(dry run: nothing uploaded)" in capsys.readouterr().out


def test_the_config_file_names_the_source(tmp_path: Path, history: str) -> None:
    _lake(tmp_path / "lake")
    config = tmp_path / "etl.toml"
    config.write_text(
        f'history_url = "{history}"\n[jobs.agency_data_job]\n'
        f'source_url = "{tmp_path}/lake"\nstore_url = "{tmp_path}/out"\nformat = "csv"\n'
    )

    assert agency_data_job.entrypoint(["--agency-id", "2", "--config", str(config)]) == 0

    [run] = _runs(history)
    assert [key.rsplit("/", 1)[1] for key in run.artifacts] == [
        "records.csv", "deadletter.ndjson", "manifest.json"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--format", "xml"], "@ --format: expected a comma-separated subset of csv,ndjson"),
        (["--source", "postgresql://etl:pw123@db/x"],
         "postgresql://etl:***@db/x: a PostgreSQL source needs a table (--source-table)"),
        (["--source", "https://api.example.com/r", "--auth-env", "Bearer tok-123"],
         "@ --auth-env: must be the NAME of an environment variable"),
        (["--source", "https://api.example.com/r", "--auth-env", "ETL_TEST_UNSET_TOKEN"],
         "environment variable ETL_TEST_UNSET_TOKEN (API credentials) is not set"),
        (["--source", "/lake", "--agencies", "s3://"], "@ --agencies-url:"),
        (["--agencies", "ref.csv"], "@ --agencies-url: only with --source"),
        ([], "an agency is required"),
    ],
)  # fmt: skip
def test_configuration_errors_exit_2_with_one_line_and_no_secret(
    argv: list[str],
    problem: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ETL_TEST_UNSET_TOKEN", raising=False)
    agency = [] if problem == "an agency is required" else ["--agency-id", "1"]

    assert agency_data_job.entrypoint(agency + argv) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("agency_data_job: error: ")
    assert problem in line
    assert "pw123" not in line
    assert "tok-123" not in line


def test_the_job_tuple_is_well_formed() -> None:
    # Well formed is what the registry accepts: a plain function of argv and a description.
    job = registry.load("agency_data_job")
    assert (job.name, job.module) == ("agency_data_job", "jobs.agency_data_job")
    assert job.entrypoint is agency_data_job.entrypoint
    assert job.description == agency_data_job.JOB[1].strip() != ""
