"""Tests of the backfill job module: flags, tables, child runs in the history, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files
from deltalake import DeltaTable
from etl_core import telemetry
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import RunRecord, RunStatus
from etl_core.testing.history_readback import recorded
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobs import backfill, registry

WORKLOAD = WorkloadOptions(records=600, files=9, agencies=3, seed=2)  # 3 days per agency


@pytest.fixture()
def bronze(tmp_path: Path) -> Path:
    root = tmp_path / "bronze"
    for key, body in iter_workload_files(WORKLOAD):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


def _argv(tmp_path: Path, bronze: Path, *extra: str) -> list[str]:
    return ["--bronze", str(bronze), "--store", str(tmp_path / "store"),
            "--history", f"sqlite:///{tmp_path}/h.sqlite3", "--log-format", "json",
            "--from", "2024-01-08", "--to", "2024-01-10", "--workers", "1", *extra]  # fmt: skip


def _runs(tmp_path: Path) -> list[RunRecord]:
    return recorded(f"sqlite:///{tmp_path}/h.sqlite3", limit=100).runs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "choose one of --agency-id N, --agencies 1,2,3, --all-agencies"),
        (("--agencies", "1", "--all-agencies"), "choose one of"),
        (("--agency-id", "1", "--agencies", "2"), "choose one of"),
        (("--agencies", "1,x"), "expected agency ids like 1,2,3"),
        (("--all-agencies", "--max-parallel", "0"), "must be >= 1"),
        (("--all-agencies", "--from", "2024-01-11"), "is after --to"),
        (("--all-agencies", "--to", "2024-02-30"), "expected a date"),
    ],
)
def test_bad_selections_and_ranges_are_usage_errors(
    tmp_path: Path,
    bronze: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    assert backfill.entrypoint(_argv(tmp_path, bronze, *extra)) == 2

    assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_from_and_to_are_required(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--all-agencies", "--history", f"sqlite:///{tmp_path}/h.sqlite3"]

    assert backfill.entrypoint(argv) == 2

    err = capsys.readouterr().err
    assert "--from YYYY-MM-DD is required" in err
    assert "--to YYYY-MM-DD is required" in err


def test_a_backfill_prints_plan_and_summary_and_records_a_child_run_per_agency(
    tmp_path: Path, bronze: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(tmp_path, bronze, "--all-agencies", "--run-id", "b1", "--max-parallel", "2")

    assert backfill.entrypoint(argv) == 0

    out = capsys.readouterr().out
    assert "backfill plan 2024-01-08..2024-01-10" in out
    summary = out[out.index("backfill summary") :].splitlines()
    assert summary[1].split()[:3] == ["AGENCY", "PLANNED", "FOLDED"]
    assert [line.split()[0] for line in summary[2:6]] == ["1", "2", "3", "TOTAL"]
    assert summary[5].split()[1:5] == ["9", "9", "0", "0"]
    assert "backfill run b1 succeeded" in out
    assert "partitions: 9 folded in, 0 already current of 9 in range" in out
    runs = _runs(tmp_path)
    [parent] = [run for run in runs if run.job == "backfill"]
    assert parent.parameters["agencies"] == "all"
    children = [run for run in runs if run.job == "bronze_to_silver"]
    assert sorted(run.agency_id or 0 for run in children) == [1, 2, 3]
    assert {run.parameters["parent_run_id"] for run in children} == {"b1"}
    assert all(run.status is RunStatus.SUCCEEDED for run in children)
    assert parent.counts == sum((run.counts for run in children), start=type(parent.counts)())
    assert parent.counts.rows_inserted == parent.counts.rows_out > 0
    silver = DeltaTable(str(tmp_path / "store" / "silver")).to_pyarrow_table()
    assert silver.num_rows == parent.counts.rows_out
    writers = {run.agency_id: run.run_id for run in children}
    for row in silver.select(["agency_id", "_run_id"]).to_pylist():
        assert row["_run_id"] == writers[row["agency_id"]]
    dead = DeltaTable(str(tmp_path / "store" / "deadletter")).to_pyarrow_table()
    assert dead.num_rows == parent.counts.rows_dead_letter


def test_a_second_backfill_is_up_to_date_and_writes_nothing(
    tmp_path: Path, bronze: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backfill.entrypoint(_argv(tmp_path, bronze, "--agencies", "1,2")) == 0
    store = tmp_path / "store"
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert backfill.entrypoint(_argv(tmp_path, bronze, "--agencies", "1,2")) == 0

    out = capsys.readouterr().out
    plan = out[out.index("backfill plan") : out.index("backfill summary")].splitlines()
    # FOLD, CURRENT, TO_FOLD
    assert [line.split()[4:7] for line in plan[2:4]] == [["1", "3", "0"]] * 2
    assert all(line.endswith("up to date") for line in plan[2:4])
    assert "partitions: 0 folded in, 6 already current of 6 in range" in out
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == before


def test_a_busy_agency_makes_the_backfill_exit_75(
    tmp_path: Path, bronze: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def hold() -> None:
        async with open_run_history(f"sqlite:///{tmp_path}/h.sqlite3", every_history()) as history:
            await history.migrate()
            await history.acquire("bronze_to_silver/agency=2", "other", dt.timedelta(hours=1))

    asyncio.run(hold())
    # A holder whose liveness cannot be checked (it keeps no lock): only the TTL frees it.
    with contextlib.closing(sqlite3.connect(tmp_path / "h.sqlite3")) as conn, conn:
        conn.execute("UPDATE etl_leases SET live = 0")

    assert backfill.entrypoint(_argv(tmp_path, bronze, "--agencies", "1,2")) == 75

    out = capsys.readouterr().out
    summary = out[out.index("backfill summary") :].splitlines()
    [row] = [line for line in summary if line.split()[:1] == ["2"]]
    assert "busy (retry)" in row
    assert "LeaseHeld" in out


def test_a_dry_run_prints_the_plan_and_counts_and_writes_nothing(
    tmp_path: Path, bronze: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backfill.entrypoint(_argv(tmp_path, bronze, "--agency-id", "3", "--dry-run")) == 0

    out = capsys.readouterr().out
    assert "backfill plan 2024-01-08..2024-01-10 (dry run: nothing is written)" in out
    summary = out[out.index("backfill summary") :].splitlines()
    [row] = [line for line in summary if line.split()[:1] == ["3"]]
    assert row.split()[1:6] == ["3", "0", "0", "0", "200"]
    assert "dry run" in row
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "h.sqlite3").exists()


def test_the_job_is_discovered_with_its_exit_codes_in_the_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = registry.load("backfill")
    assert job.entrypoint is backfill.entrypoint

    with pytest.raises(SystemExit) as exit_info:
        backfill.entrypoint(["--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "75 no agency failed but some were busy" in out
    assert "generation" not in out
    assert "manifest" not in out


def test_every_span_names_its_agencies(
    tmp_path: Path, bronze: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "tracer", lambda: provider.get_tracer("test"))

    assert backfill.entrypoint(_argv(tmp_path, bronze, "--agencies", "1,3")) == 0

    spans = exporter.get_finished_spans()
    parent = next(s for s in spans if s.name == "backfill").attributes or {}
    for span in spans:
        attributes = span.attributes or {}
        assert attributes.get("run_id"), span.name
        if attributes["run_id"] == parent["run_id"]:  # the backfill's own spans: all its agencies
            assert attributes["agency_ids"] == (1, 3), span.name
        else:  # a child run's: its agency
            assert attributes["agency_id"] in (1, 3), span.name
    children = [s.attributes or {} for s in spans if s.name == "bronze_to_silver"]
    assert {child["agency_id"] for child in children} == {1, 3}
