"""replay_dead_letters through the CLI: corrected rows land in silver exactly once (= the reference
transform of the corrected bronze), a second replay writes nothing, and later bronze_to_silver
runs (fast path, --reprocess, new bronze) keep every row in silver, dead-letter or duplicates once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import PartitionRecord, RunRecord

from e2e.cli_support import cli
from e2e.reference_transform import reference_transform
from e2e.store_views import dead_letter_rows, silver_rows, snapshot, summary

AGENCY = 1
GENERATE = ["--records", "3000", "--files", "12", "--agencies", "3", "--seed", "21",
            "--bad-rate", "0.05"]  # fmt: skip
FIXED_AT = "2024-01-09T12:00:00-08:00"


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bronze = root / "bronze-store"
        self.store = root / "store"
        self.history = f"sqlite:///{root}/history.sqlite3"
        self.fixes: dict[tuple[str, str], str] = {}  # (source, raw) -> corrected
        self.selected = 0  # dead-letter rows before the replay

    def run(self, job: str, *extra: str, store: Path | None = None,
            bronze: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return cli(
            self.root, "run", job, "--", "--agency-id", str(AGENCY),
            "--bronze", f"file://{bronze or self.bronze}",
            "--store", f"file://{store or self.store}",
            "--history", self.history, "--workers", "1", "--log-format", "json", *extra,
        )  # fmt: skip

    def dead(self, store: Path | None = None) -> list[dict[str, Any]]:
        """The agency's committed dead-letter rows, with their line and run_id."""
        return dead_letter_rows(store or self.store, AGENCY)

    def reference(self, bronze: Path | None = None) -> Any:
        """The reference transform of the agency's bronze with the corrections applied."""
        root = bronze or self.bronze
        corrected = {}
        for path in (root / f"bronze/agency_id={AGENCY}").rglob("*.ndjson"):
            key = path.relative_to(root).as_posix()
            source = key.removeprefix("bronze/")
            lines = path.read_text().split("\n")
            fixed = [self.fixes.get((source, line), line) for line in lines]
            corrected[key] = "\n".join(fixed).encode()
        return reference_transform(corrected, (root / "agencies.csv").read_bytes())

    def ledger(self, run_id: str) -> tuple[RunRecord, list[PartitionRecord]]:
        async def read() -> tuple[RunRecord, list[PartitionRecord]]:
            async with open_run_history(self.history, every_history()) as history:
                return await history.get_run(run_id), await history.partitions(run_id)

        return asyncio.run(read())


def silver_of(store: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for row in silver_rows(store, AGENCY):
        assert row["record_id"] not in rows, f"{row['record_id']} twice in silver"
        rows[row["record_id"]] = row
    return rows


def dead_of(store: Path) -> list[tuple[str, str, str]]:
    return sorted((d["reason"], d["source"], d["raw"]) for d in dead_letter_rows(store, AGENCY))


def assert_matches_reference(store: Path, reference: Any) -> None:
    assert silver_of(store) == reference.silver
    expected = sorted((d["reason"], d["source"], d["raw"]) for d in reference.dead_letters)
    assert dead_of(store) == expected


def _corrections(world: World) -> Path:
    """Fix every bad_occurred_at and lat_out_of_range row; 'fix' one missing_record_id row into
    a row that still fails (bad_status)."""
    lines = []
    still_failing = 0
    for row in world.dead():
        try:
            record = json.loads(row["raw"])
        except json.JSONDecodeError:
            continue
        if row["reason"] == "bad_occurred_at":
            record["occurred_at"] = FIXED_AT
        elif row["reason"] == "lat_out_of_range":
            record["location"]["lat"] = "45.5"
        elif row["reason"] == "missing_record_id" and not still_failing:
            record.update(record_id="A001-77777777", status="unknown-status")
            still_failing += 1
        else:
            continue
        corrected = json.dumps(record)
        world.fixes[(row["source"], row["raw"])] = corrected
        shown = {name: row[name] for name in ("reason", "source", "line", "raw", "run_id")}
        lines.append(json.dumps({**shown, "corrected": corrected}))
    assert still_failing == 1
    assert len(lines) >= 5
    path = world.root / "corrections.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = World(tmp_path_factory.mktemp("replay"))
    generated = cli(world.root, "run", "generate", "--", *GENERATE, "--out",
                    f"file://{world.bronze}", "--history", world.history)  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    first = world.run("bronze_to_silver", "--run-id", "b2s-1")
    assert first.returncode == 0, first.stderr[-3000:]
    return world


@pytest.fixture(scope="module")
def replayed(world: World) -> subprocess.CompletedProcess[str]:
    world.selected = len(world.dead())
    path = _corrections(world)
    bronze_before = snapshot(world.bronze)
    result = world.run("replay_dead_letters", "--all", "--corrections", str(path),
                       "--run-id", "rp-1")  # fmt: skip
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    assert snapshot(world.bronze) == bronze_before  # bronze is only read
    return result


def test_corrected_rows_land_in_silver_exactly_once(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    assert_matches_reference(world.store, world.reference())
    landed = {json.loads(corrected).get("record_id") for corrected in world.fixes.values()}
    silver = silver_of(world.store)
    assert sum(1 for record_id in landed if record_id in silver) >= len(landed) - 1


def test_the_replays_run_is_on_the_rows_it_resolved_and_its_note_names_them(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    note = world.store / "_replays" / f"agency_id={AGENCY}" / "rp-1.ndjson"
    noted = [json.loads(line) for line in note.read_text().splitlines()]
    lineage = {
        (row["_source"], row["_line"]): row
        for row in DeltaTable(str(world.store / "silver")).to_pyarrow_table().to_pylist()
    }

    run, partitions = world.ledger("rp-1")
    landed = [n for n in noted if n["outcome"] == "silver"]
    assert len(noted) == world.selected
    assert len(landed) == run.counts.rows_out > 0
    for n in landed:
        row = lineage[(n["source"], n["line"])]
        assert (row["record_id"], row["_run_id"]) == (n["record_id"], "rp-1")
    assert note.relative_to(world.store).as_posix() in run.artifacts
    assert {p.partition for p in partitions if p.artifacts} == {n["partition"] for n in noted}


def test_rows_still_failing_stay_in_dead_letter_with_their_new_reason(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    [row] = [r for r in world.dead() if "A001-77777777" in r["raw"]]

    assert (row["reason"], row["run_id"]) == ("bad_status", "rp-1")
    assert "still failing: " in replayed.stdout


def test_the_replay_accounts_every_replayed_row_per_partition(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    run, partitions = world.ledger("rp-1")
    selected = world.selected
    fixed = len(world.fixes) - 1  # one correction still fails

    assert run.status.value == "succeeded"
    counts = run.counts
    assert counts.rows_in == selected
    assert counts.rows_out + counts.rows_duplicate == fixed
    assert counts.rows_dead_letter == selected - fixed == len(world.dead())
    assert all(p.counts.balanced for p in partitions)
    assert sum(p.counts.rows_in for p in partitions) == selected
    line = summary(replayed)["replayed"]
    assert line.startswith(f"{selected} rows: {counts.rows_out} now in silver")
    assert summary(replayed)["corrections"].startswith(f"{len(world.fixes)} supplied: ")


def test_a_second_replay_of_the_same_rows_writes_nothing(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    before = snapshot(world.store)

    again = world.run("replay_dead_letters", "--all", "--corrections",
                      str(world.root / "corrections.ndjson"))  # fmt: skip
    of_run = world.run("replay_dead_letters", "--source-run", "rp-1")

    assert again.returncode == 0, again.stderr[-2000:]
    assert of_run.returncode == 0, of_run.stderr[-2000:]
    assert summary(again)["partitions"] == "nothing written: every selected row fails as it did"
    assert summary(again)["corrections"].endswith("nothing new to store")
    # rp-1 rebuilt the agency: every dead-letter row is its.
    rewritten = sum(1 for row in world.dead() if row["run_id"] == "rp-1")
    assert summary(of_run)["selected"].startswith(f"{rewritten} dead-letter rows")
    assert summary(of_run)["partitions"].startswith("nothing written")
    assert snapshot(world.store) == before


def test_a_later_bronze_to_silver_run_takes_the_fast_path_and_writes_nothing(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    before = snapshot(world.store)

    result = world.run("bronze_to_silver")

    assert result.returncode == 0, result.stderr[-2000:]
    assert summary(result)["outcome"].startswith("up to date")
    assert snapshot(world.store) == before


def test_a_reprocess_recomputes_the_same_rows_once(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    store = world.root / "store-reprocess"
    shutil.copytree(world.store, store)

    result = world.run("bronze_to_silver", "--reprocess", "--run-id", "b2s-re", store=store)

    assert result.returncode == 0, result.stderr[-2000:]
    reference = world.reference()
    assert_matches_reference(store, reference)
    run, _ = world.ledger("b2s-re")
    assert (run.counts.rows_in, run.counts.rows_out, run.counts.rows_dead_letter) == (
        reference.rows_in, len(reference.silver), len(reference.dead_letters),
    )  # fmt: skip
    assert run.counts.balanced


def test_new_bronze_after_a_replay_keeps_the_replayed_rows(
    world: World, replayed: subprocess.CompletedProcess[str]
) -> None:
    store, bronze = world.root / "store-new-bronze", world.root / "bronze-new"
    shutil.copytree(world.store, store)
    shutil.copytree(world.bronze, bronze)
    # A later version of a replayed record, and a new record, in a new file of another day.
    landed = silver_of(world.store)
    fixed = (json.loads(text) for text in world.fixes.values())
    corrected = next(r for r in fixed if r.get("record_id") in landed)
    later = {**corrected, "updated_at": "2024-02-01T00:00:00Z", "status": "closed"}
    new = {**corrected, "record_id": "A001-88888888"}
    extra = bronze / f"bronze/agency_id={AGENCY}/dt=2024-01-10/part-5.ndjson"
    extra.write_text(json.dumps(later) + "\n" + json.dumps(new) + "\n")

    result = world.run("bronze_to_silver", "--run-id", "b2s-new", store=store, bronze=bronze)

    assert result.returncode == 0, result.stderr[-2000:]
    assert_matches_reference(store, world.reference(bronze))
    silver = silver_of(store)
    assert silver[corrected["record_id"]]["status"] == "closed"
    assert "A001-88888888" in silver
