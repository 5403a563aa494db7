"""bronze_to_silver through the CLI on 10k generated records, against the reference transform."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from etl_core.model import PartitionRecord, RunRecord
from etl_core.testing.history_readback import recorded

from e2e.cli_support import cli, generate
from e2e.reference_transform import reference_transform
from e2e.store_views import dead_letter_rows, silver_rows, snapshot, summary

AGENCIES = range(1, 21)
# 20 agencies x 2 days; half the runs use a process pool, half run inline.
GENERATE = ["--records", "10000", "--files", "40", "--seed", "11"]


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bronze = root / "bronze-store"
        self.store = root / "store"
        self.history = f"sqlite:///{root}/history.sqlite3"
        self.results: dict[int, subprocess.CompletedProcess[str]] = {}

    def run(self, agency_id: int, *extra: str) -> subprocess.CompletedProcess[str]:
        workers = "2" if agency_id % 2 else "1"
        return cli(
            self.root, "run", "bronze_to_silver", "--", "--agency-id", str(agency_id),
            "--bronze", f"file://{self.bronze}", "--store", f"file://{self.store}",
            "--history", self.history, "--workers", workers, "--log-format", "json", *extra,
        )  # fmt: skip

    def history_rows(self) -> tuple[list[RunRecord], list[PartitionRecord]]:
        found = recorded(self.history, job="bronze_to_silver", limit=1000)
        return found.runs, found.all_partitions()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = World(tmp_path_factory.mktemp("b2s"))
    generate(world.root, f"file://{world.bronze}", *GENERATE, history=world.history)
    # Four runs at a time: different agencies share the store and the history database.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for agency_id, result in zip(AGENCIES, pool.map(world.run, AGENCIES), strict=True):
            world.results[agency_id] = result
    for agency_id, result in world.results.items():
        assert result.returncode == 0, (agency_id, result.stdout, result.stderr[-3000:])
    return world


@pytest.fixture(scope="module")
def reference(world: World) -> Any:
    bronze = {
        path.relative_to(world.bronze).as_posix(): path.read_bytes()
        for path in (world.bronze / "bronze").rglob("*.ndjson")
    }
    return reference_transform(bronze, (world.bronze / "agencies.csv").read_bytes())


def _job_silver(world: World) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for row in silver_rows(world.store):
        assert row["record_id"] not in rows, f"duplicate {row['record_id']}"
        rows[row["record_id"]] = row
    return rows


def test_silver_equals_the_reference_transform_field_by_field(world: World, reference: Any) -> None:
    silver = _job_silver(world)

    assert len(silver) == len(reference.silver)
    assert silver.keys() == reference.silver.keys()
    for record_id, expected in reference.silver.items():
        row = silver[record_id]
        assert list(row) == list(expected), record_id
        for field, value in expected.items():
            assert row[field] == value, (record_id, field, row[field], value)
            assert type(row[field]) is type(value), (record_id, field)


def test_dead_letters_equal_the_reference(world: World, reference: Any) -> None:
    job = collections.Counter(
        (dead["reason"], dead["source"], dead["raw"]) for dead in dead_letter_rows(world.store)
    )
    expected = collections.Counter(
        (dead["reason"], dead["source"], dead["raw"]) for dead in reference.dead_letters
    )
    assert job == expected


def test_dead_letter_rows_name_the_run_that_wrote_them_and_their_line(world: World) -> None:
    run_ids = {summary(result)["run_id"] for result in world.results.values()}
    rows = dead_letter_rows(world.store)
    assert rows
    for row in rows:
        assert row["run_id"] in run_ids
        lines = (world.bronze / "bronze" / row["source"]).read_bytes().split(b"\n")
        assert lines[row["line"] - 1].decode("utf-8", "replace") == row["raw"]
        assert f"agency_id={row['agency_id']}/dt={row['dt'].isoformat()}/" in row["source"]


def test_counts_match_the_generators_manifest_per_agency(world: World) -> None:
    expected = json.loads((world.bronze / "manifest.json").read_text())["agencies"]
    runs, ledger = world.history_rows()
    by_agency = {run.agency_id: run for run in runs if run.status.value == "succeeded"}
    for agency_id in AGENCIES:
        want, run = expected[str(agency_id)], by_agency[agency_id]
        got = run.counts
        assert (got.rows_in, got.rows_out, got.rows_duplicate, got.rows_dead_letter) == (
            want["input_rows"], want["silver_rows"], want["duplicates"], want["dead_letter_rows"],
        )  # fmt: skip
        reasons = {r: n for r, n in want["dead_letter"].items() if n}
        described = summary(world.results[agency_id])["dead-letter reasons"]
        parsed = dict(item.rsplit(" ", 1) for item in described.split(", ")) if reasons else {}
        assert {r: int(n) for r, n in parsed.items()} == reasons
        rows = [p for p in ledger if p.run_id == run.run_id]
        assert len(rows) == 2
        assert all(p.counts.balanced and p.status == "merged" for p in rows)
        assert sum(p.counts.rows_out for p in rows) == got.rows_out
        assert got.rows_inserted == got.rows_out  # a first fold inserts every survivor


def test_a_second_run_over_unchanged_input_writes_nothing(world: World) -> None:
    before = snapshot(world.store)

    for agency_id in (1, 2):
        result = world.run(agency_id)
        assert result.returncode == 0, result.stderr
        assert summary(result)["outcome"].startswith("up to date"), result.stdout

    assert snapshot(world.store) == before


def test_a_dry_run_reports_counts_and_writes_nothing(world: World) -> None:
    before = snapshot(world.store)

    result = world.run(3, "--dry-run", "--reprocess")

    assert result.returncode == 0, result.stderr
    assert "(dry run)" in result.stdout
    assert summary(result)["outcome"].startswith("rebuilt 2 bronze files as fold 2")
    assert summary(result)["outcome"].endswith("(dry run: nothing written)")
    assert snapshot(world.store) == before
