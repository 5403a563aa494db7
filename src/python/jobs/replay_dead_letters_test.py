"""Tests of the replay_dead_letters job module: flags, the corrections file, history, exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from data_pipeline.replay.track import note_key
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files
from deltalake import DeltaTable
from etl_core.adapters.object_stores import read_location
from etl_core.errors import ConfigError
from etl_core.model import PartitionRecord, RunRecord, RunStatus
from etl_core.testing.history_readback import recorded

from jobs import bronze_to_silver, registry, replay_dead_letters

WORKLOAD = WorkloadOptions(records=600, files=6, agencies=2, bad_rate=0.1, seed=3)


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    """A store with agency 1 published by run b1 (bronze in the store itself)."""
    store = tmp_path / "store"
    for key, body in iter_workload_files(WORKLOAD):
        path = store / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    argv = ["--agency-id", "1", "--run-id", "b1", *_common(tmp_path), "--workers", "1"]
    assert bronze_to_silver.entrypoint(argv) == 0
    return tmp_path


def _common(tmp_path: Path) -> list[str]:
    return ["--store", str(tmp_path / "store"), "--history", f"sqlite:///{tmp_path}/h.sqlite3",
            "--log-format", "json"]  # fmt: skip


def _replay(tmp_path: Path, *extra: str) -> int:
    argv = ["--agency-id", "1", *_common(tmp_path), "--workers", "1", *extra]
    return replay_dead_letters.entrypoint(argv)


def _dead(tmp_path: Path) -> list[dict[str, Any]]:
    """The committed rows of the dead-letter table."""
    table = tmp_path / "store" / "deadletter"
    if not (table / "_delta_log").is_dir():
        return []
    rows: list[dict[str, Any]] = DeltaTable(str(table)).to_pyarrow_table().to_pylist()
    return rows


def _silver(tmp_path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        DeltaTable(str(tmp_path / "store" / "silver")).to_pyarrow_table().to_pylist()
    )
    return rows


def _corrections(tmp_path: Path) -> Path:
    """Dead-letter rows with bad occurred_at, each with a corrected line added."""
    rows = [row for row in _dead(tmp_path) if row["reason"] == "bad_occurred_at"]
    assert rows
    path = tmp_path / "fix.ndjson"
    with path.open("w") as out:
        for row in rows:
            record = json.loads(row["raw"])
            record["occurred_at"] = "2024-01-08T12:00:00Z"
            shown = {name: row[name] for name in ("reason", "source", "line", "raw", "run_id")}
            out.write(json.dumps({**shown, "corrected": json.dumps(record)}) + "\n")
    return path


def _history(tmp_path: Path, run_id: str) -> tuple[RunRecord, list[PartitionRecord]]:
    found = recorded(f"sqlite:///{tmp_path}/h.sqlite3")
    return found.run(run_id), found.partitions[run_id]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "choose one of --source-run RUN_ID and --all"),
        (("--all", "--source-run", "b1"), "choose one of"),
        (("--all", "--corrections", "missing.ndjson"), "missing.ndjson: cannot read"),
        (("--all", "--corrections", "file:///nowhere/fix.ndjson"), "no such object"),
        (("--all", "--workers", "0"), "must be >= 1"),
    ],
)
def test_bad_flags_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    assert _replay(tmp_path, *extra) == 2

    assert message in capsys.readouterr().err


def test_a_malformed_corrections_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fix.ndjson"
    path.write_text('{"source": "agency_id=2/dt=2024-01-08/part-0.ndjson", "raw": "x", '
                    '"corrected": "y"}\n')  # fmt: skip

    assert _replay(tmp_path, "--all", "--corrections", str(path)) == 2

    assert "fix.ndjson:1: source must name a bronze file of agency 1" in capsys.readouterr().err


def test_a_replay_with_corrections_lands_rows_and_records_them_per_partition(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _corrections(world)
    fixed = len(path.read_text().splitlines())
    before = len(_dead(world))
    corrected = {
        (row["source"], row["line"]) for row in map(json.loads, path.read_text().splitlines())
    }

    assert _replay(world, "--all", "--corrections", f"file://{path}", "--run-id", "r1") == 0

    out = capsys.readouterr().out
    assert "replay_dead_letters run r1 succeeded" in out
    assert f"corrections: {fixed} supplied: {fixed} stored in corrections/agency_id=1/" in out
    assert len(_dead(world)) == before - fixed
    run, partitions = _history(world, "r1")
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts.rows_in == before
    assert run.counts.rows_out + run.counts.rows_duplicate == fixed
    assert all(p.counts.balanced for p in partitions)
    assert sum(p.counts.rows_in for p in partitions) == before
    assert any(a.startswith("corrections/") for a in run.artifacts)
    assert note_key(1, "r1") in run.artifacts
    # The corrected lines are in silver, written by the replay's run.
    landed = {(r["_source"], r["_line"]) for r in _silver(world) if r["_run_id"] == "r1"}
    assert corrected <= landed
    assert not corrected & {(row["source"], row["line"]) for row in _dead(world)}


def test_a_second_replay_writes_nothing(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _corrections(world)
    assert _replay(world, "--all", "--corrections", str(path)) == 0
    store = world / "store"
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert _replay(world, "--source-run", "b1", "--corrections", str(path)) == 0

    assert "nothing written: every selected row fails as it did" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == before


def test_a_dry_run_reports_the_replay_and_writes_nothing(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _corrections(world)
    store = world / "store"
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert _replay(world, "--all", "--corrections", str(path), "--dry-run") == 0

    out = capsys.readouterr().out
    assert "new (dry run: not stored)" in out
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == before


def test_an_unknown_source_run_is_a_usage_error(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _replay(world, "--source-run", "nope") == 2

    assert "--source-run nope: not in the run history" in capsys.readouterr().err


def test_a_correction_of_no_dead_letter_row_is_a_usage_error_and_writes_nothing(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = world / "fix.ndjson"
    row = {"source": "agency_id=1/dt=2024-01-08/part-0.ndjson", "raw": "no such line",
           "corrected": "{}"}  # fmt: skip
    path.write_text(json.dumps(row) + "\n")

    assert _replay(world, "--all", "--corrections", str(path)) == 2

    assert "1 correction(s) match no selected dead-letter row" in capsys.readouterr().err
    assert not (world / "store" / "corrections").exists()


def test_corrections_are_read_from_a_store_url(tmp_path: Path) -> None:
    (tmp_path / "fix.ndjson").write_bytes(b"{}\n")

    body = asyncio.run(read_location(f"file://{tmp_path}/fix.ndjson"))

    assert body == b"{}\n"
    with pytest.raises(ConfigError, match="names no object"):
        asyncio.run(read_location("file:///"))


def test_the_job_is_discovered() -> None:
    assert registry.load("replay_dead_letters").entrypoint is replay_dead_letters.entrypoint


def test_the_dead_letter_ratio_does_not_gate_a_replay(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _replay(world, "--all", "--max-dead-letter-ratio", "0", "--run-id", "r1") == 0

    run, _ = _history(world, "r1")
    assert run.counts.rows_dead_letter == run.counts.rows_in > 0
