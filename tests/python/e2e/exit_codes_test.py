"""A job's process exits with the job's own code after Delta merges, run after run: delta-rs'
teardown can abort the interpreter (SIGABRT, exit 134; delta-rs issue 2184), so jobs leave through
etl_core.process_exit, after flushing logs and spans."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from e2e.cli_support import cli, generate
from e2e.store_views import silver_rows, summary


def test_consecutive_merge_runs_each_exit_with_the_jobs_own_code(tmp_path: Path) -> None:
    full, bronze, store = tmp_path / "full", tmp_path / "bronze", tmp_path / "store"
    history = f"sqlite:///{tmp_path}/h.sqlite3"
    generate(tmp_path, str(full), "--records", "1600", "--files", "8", "--agencies", "1",
             "--seed", "3", history=history)  # fmt: skip
    days = sorted((full / "bronze" / "agency_id=1").iterdir())
    (bronze / "bronze" / "agency_id=1").mkdir(parents=True)
    shutil.copy(full / "agencies.csv", bronze / "agencies.csv")
    argv = ["run", "bronze_to_silver", "--", "--agency-id", "1", "--bronze", str(bronze),
            "--store", str(store), "--history", history, "--log-format", "json"]  # fmt: skip
    codes, outcomes = [], []
    for day in days:  # eight merges, each its own process
        shutil.copytree(day, bronze / "bronze" / "agency_id=1" / day.name)
        result = cli(tmp_path, *argv)
        codes.append(result.returncode)
        outcomes.append(summary(result).get("outcome", result.stderr[-500:]))
        assert result.stderr.strip().splitlines()[-1].startswith("{"), "logs flushed last"
    again = cli(tmp_path, *argv)
    bad_flag = cli(tmp_path, *argv, "--workers", "0")

    assert codes == [0] * len(days), outcomes
    assert all(o.startswith(f"folded in 1 bronze files as fold {i + 1}") for i, o in
               enumerate(outcomes)), outcomes  # fmt: skip
    assert again.returncode == 0
    assert summary(again)["outcome"].startswith("up to date")
    assert bad_flag.returncode == 2
    expected = json.loads((full / "manifest.json").read_text())
    assert len(silver_rows(store)) == expected["silver_rows"]
