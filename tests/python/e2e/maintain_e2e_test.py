"""maintain through the CLI between incremental bronze_to_silver runs: readers see the same rows,
the files shrink to a few sorted ones, and later merges into them still equal the reference."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jobs.maintain  # noqa: F401 (imported so the build ships the job with the test)
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from e2e.cli_support import cli, cli_env, generate
from e2e.reference_transform import reference_transform
from e2e.store_views import silver_rows, snapshot, summary, view

AGENCIES = (1, 2)
# 2 agencies x 4 days x 2 parts: 8 bronze files per agency, folded one at a time, so each dt
# partition gets a second file from the fold of its second part.
GENERATE = ["--records", "4000", "--files", "16", "--agencies", "2", "--parts-per-day", "2",
            "--seed", "5"]  # fmt: skip


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / "staging"
        self.bronze = root / "bronze-store"
        self.store = root / "store"
        self.history = f"sqlite:///{root}/history.sqlite3"

    def common(self) -> list[str]:
        return ["--store", f"file://{self.store}", "--history", self.history,
                "--log-format", "json"]  # fmt: skip

    def feed(self, step: int) -> None:
        """Publish each agency's bronze file of this step (the step-th of 8, in key order)."""
        for agency_id in AGENCIES:
            files = sorted((self.staging / "bronze" / f"agency_id={agency_id}").rglob("*.ndjson"))
            for path in files[step : step + 1]:
                target = self.bronze / path.relative_to(self.staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)

    def fold(self) -> None:
        for agency_id in AGENCIES:
            result = cli(self.root, "run", "bronze_to_silver", "--", "--agency-id",
                         str(agency_id), "--bronze", f"file://{self.bronze}", "--workers", "1",
                         *self.common())  # fmt: skip
            assert result.returncode == 0, (agency_id, result.stdout, result.stderr[-3000:])

    def maintain(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(self.root, "run", "maintain", "--", *self.common(), *extra)

    def silver_files(self) -> list[dict[str, Any]]:
        table = DeltaTable(str(self.store / "silver"))
        return list(pa.table(table.get_add_actions(flatten=True)).to_pylist())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = World(tmp_path_factory.mktemp("maintain"))
    generate(world.root, f"file://{world.staging}", *GENERATE, history=world.history)
    world.bronze.mkdir()
    shutil.copy(world.staging / "agencies.csv", world.bronze / "agencies.csv")
    for step in range(6):
        world.feed(step)
        world.fold()
    return world


def test_a_dry_run_of_the_job_module_changes_nothing(world: World) -> None:
    before = snapshot(world.store)

    result = subprocess.run(
        [sys.executable, "-m", "jobs.maintain", *world.common(), "--dry-run"],
        cwd=world.root, env=cli_env(world.root), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert summary(result)["silver"].startswith("would compact 2 agencies")
    assert snapshot(world.store) == before


def test_maintain_keeps_every_row_and_leaves_few_sorted_files_that_later_merges_use(
    world: World,
) -> None:
    views = {agency_id: view(world.store, agency_id) for agency_id in AGENCIES}
    files_before = len(world.silver_files())

    result = world.maintain("--retention-hours", "0")

    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    lines = summary(result)
    assert lines["silver"].startswith("2 agencies compacted"), lines
    assert "checkpoint at v" in lines["silver"]
    assert {agency_id: view(world.store, agency_id) for agency_id in AGENCIES} == views
    files = world.silver_files()
    partitions = {(f["partition.agency_id"], f["partition.dt"]) for f in files}
    assert len(files) == len(partitions) < files_before  # one file per partition at 32 MB
    for file in files:
        keys = pq.read_table(world.store / "silver" / file["path"])["record_id"].to_pylist()
        assert keys == sorted(keys)
        assert (file["min.record_id"], file["max.record_id"]) == (keys[0], keys[-1])
    on_disk = {
        p.relative_to(world.store / "silver").as_posix()
        for p in (world.store / "silver").rglob("*.parquet")
        if "_delta_log" not in p.parts
    }
    assert on_disk == {f["path"] for f in files}  # vacuum (retention 0) deleted the rest

    # The last bronze merges into the compacted files: silver equals the reference.
    for step in (6, 7):
        world.feed(step)
        world.fold()
    bronze = {
        path.relative_to(world.bronze).as_posix(): path.read_bytes()
        for path in (world.bronze / "bronze").rglob("*.ndjson")
    }
    reference = reference_transform(bronze, (world.bronze / "agencies.csv").read_bytes())
    silver = {row["record_id"]: row for row in silver_rows(world.store)}
    assert silver == reference.silver

    runs = cli(world.root, "runs", "--job", "maintain", "--history", world.history, "--json")
    assert [row["status"] for row in json.loads(runs.stdout)] == ["succeeded"]
