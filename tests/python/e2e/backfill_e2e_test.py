"""backfill through the CLI: several agencies committing to the shared silver and dead-letter
tables, with the summary table, against the reference transform; a backfill over more days folds
in only those; a backfill killed mid-agency, or with a failing agency, re-runs only what is left."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import RunRecord

from e2e.cli_support import cli, generate
from e2e.reference_transform import reference_transform
from e2e.store_views import dead_letter_rows, silver_rows, snapshot, view

# 3 agencies x 4 files: dt 2024-01-08 .. 2024-01-11, ~250 rows per file.
GENERATE = ["--records", "3000", "--files", "12", "--agencies", "3", "--seed", "13"]
AGENCIES = (1, 2, 3)
RANGE = ["--from", "2024-01-08", "--to", "2024-01-11"]


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bronze = root / "bronze-store"

    def backfill(
        self, name: str, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return cli(
            self.root, "run", "backfill", "--", "--bronze", f"file://{self.bronze}",
            "--store", f"file://{self.root / name}", "--history", self.history(name),
            "--log-format", "json", "--workers", "1", *RANGE, *extra, env=env,
        )  # fmt: skip

    def history(self, name: str) -> str:
        return f"sqlite:///{self.root / name}.sqlite3"

    def runs(self, name: str) -> list[RunRecord]:
        async def read() -> list[RunRecord]:
            async with open_run_history(self.history(name), every_history()) as history:
                return await history.list_runs(limit=1000)

        return asyncio.run(read())

    def writers(self, name: str) -> dict[int, set[str]]:
        """agency_id -> the run_ids of its silver rows, as committed."""
        silver = DeltaTable(str(self.root / name / "silver")).to_pyarrow_table()
        found: dict[int, set[str]] = {}
        for row in silver.select(["agency_id", "_run_id"]).to_pylist():
            found.setdefault(row["agency_id"], set()).add(row["_run_id"])
        return found

    def fold(self, name: str, agency_id: int) -> int:
        """The agency's committed fold version in silver (0: never committed)."""
        path = self.root / name / "silver"
        if not (path / "_delta_log").is_dir():
            return 0
        app = f"etl-platform/silver/agency_id={agency_id}"
        return int(DeltaTable(str(path)).transaction_version(app) or 0)


def table(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    """The summary table: AGENCY -> column -> cell."""
    lines = result.stdout[result.stdout.index("backfill summary") :].splitlines()[1:]
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        if not cells or not (cells[0].isdigit() or cells[0] == "TOTAL"):
            break
        # STATUS may hold spaces ("up to date"): the cells between SECONDS and RUN_ID.
        fixed = dict(zip(header[:12], cells[:12], strict=True))
        fixed["STATUS"] = " ".join(cells[12:-1] if cells[0] != "TOTAL" else cells[12:])
        rows[cells[0]] = fixed
    return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = World(tmp_path_factory.mktemp("backfill"))
    generate(world.root, f"file://{world.bronze}", *GENERATE, history=world.history("gen"))
    return world


@pytest.fixture(scope="module")
def clean(world: World) -> subprocess.CompletedProcess[str]:
    result = world.backfill("clean", "--all-agencies", "--max-parallel", "2", "--run-id", "bf-1")
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    return result


def test_a_backfill_of_all_agencies_prints_the_summary_table(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    rows = table(clean)

    assert list(rows) == ["1", "2", "3", "TOTAL"]
    for agency in ("1", "2", "3"):
        row = rows[agency]
        assert (row["PLANNED"], row["FOLDED"], row["CURRENT"], row["FAILED"]) == (
            "4", "4", "0", "0",
        )  # fmt: skip
        assert row["STATUS"] == "succeeded"
        rows_in, out, dup, dead, inserted, updated = (
            int(row[k].replace(",", ""))
            for k in ("ROWS_IN", "ROWS_OUT", "DUP", "DEAD_LETTER", "INSERTED", "UPDATED")
        )
        assert rows_in == out + dup + dead == 1000
        assert (inserted, updated) == (out, 0)  # a first fold inserts every survivor
    assert rows["TOTAL"]["ROWS_IN"] == "3,000"
    assert rows["TOTAL"]["STATUS"] == "ok"
    assert "backfill run bf-1 succeeded" in clean.stdout


def test_the_backfill_output_equals_the_reference_transform(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    bronze = {p.relative_to(world.bronze).as_posix(): p.read_bytes()
              for p in (world.bronze / "bronze").rglob("*.ndjson")}  # fmt: skip
    reference = reference_transform(bronze, (world.bronze / "agencies.csv").read_bytes())
    silver: dict[str, dict[str, Any]] = {}
    for row in silver_rows(world.root / "clean"):
        assert row["record_id"] not in silver
        silver[row["record_id"]] = row
    dead = [(d["reason"], d["source"], d["raw"]) for d in dead_letter_rows(world.root / "clean")]
    assert silver == reference.silver
    assert sorted(dead) == sorted(
        (d["reason"], d["source"], d["raw"]) for d in reference.dead_letters
    )


def test_each_agency_is_a_child_run_of_the_backfill_in_the_history(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    runs = world.runs("clean")

    [parent] = [r for r in runs if r.job == "backfill"]
    children = [r for r in runs if r.job == "bronze_to_silver"]
    assert parent.run_id == "bf-1"
    assert sorted(r.agency_id or 0 for r in children) == list(AGENCIES)
    assert {r.parameters["parent_run_id"] for r in children} == {"bf-1"}
    assert {r.trace_id for r in children} == {parent.trace_id}
    # Every child committed its own rows to the one silver table.
    assert world.writers("clean") == {r.agency_id: {r.run_id} for r in children}
    silver = silver_rows(world.root / "clean")
    assert parent.counts.rows_inserted == parent.counts.rows_out == len(silver)
    listed = cli(
        world.root, "runs", "--history", world.history("clean"), "--job", "bronze_to_silver"
    )
    assert listed.stdout.count("succeeded") == 3


def test_a_second_backfill_is_up_to_date_and_writes_nothing(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    before = snapshot(world.root / "clean")

    result = world.backfill("clean", "--agencies", "1,2,3")

    assert result.returncode == 0, result.stderr[-2000:]
    assert {r["STATUS"] for a, r in table(result).items() if a != "TOTAL"} == {"up to date"}
    assert snapshot(world.root / "clean") == before


def test_a_backfill_over_more_days_folds_in_only_those_in_parallel(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    # Small files: the new days' newer versions replace rows, so commits remove files while the
    # siblings commit to the same tables.
    argv = ["--all-agencies", "--max-parallel", "3", "--rows-per-file", "20"]
    first = world.backfill("more", *argv, "--to", "2024-01-09")
    assert first.returncode == 0, first.stderr[-2000:]
    before = world.writers("more")

    more = world.backfill("more", *argv)

    assert more.returncode == 0, (more.stdout, more.stderr[-3000:])
    rows = table(more)
    for name in "123":
        row = rows[name]
        assert (row["PLANNED"], row["FOLDED"], row["CURRENT"], row["STATUS"]) == (
            "4", "2", "2", "succeeded",
        )  # fmt: skip
    assert int(rows["TOTAL"]["UPDATED"]) > 0
    assert int(rows["TOTAL"]["ROWS_IN"].replace(",", "")) == 1500  # the two new days only
    for agency in AGENCIES:
        assert world.fold("more", agency) == 2
        assert view(world.root / "more", agency) == view(world.root / "clean", agency)
        assert before[agency] < world.writers("more")[agency]  # older rows kept their writer


def test_a_backfill_killed_mid_agency_reruns_only_the_remaining_work(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    # SIGKILL in agency 2's fold: its ledger and dead letters written, silver not committed.
    env = {"ETL_FAILPOINTS": "delta.silver.before_commit@2"}
    killed = world.backfill("killed", "--all-agencies", "--lease-ttl-seconds", "1", env=env)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert [world.fold("killed", agency) for agency in AGENCIES] == [1, 0, 0]
    assert view(world.root / "killed", 1) == view(world.root / "clean", 1)
    assert silver_rows(world.root / "killed", 2) == []
    done = world.writers("killed")
    time.sleep(1.2)  # the killed child's lease expires

    rerun = world.backfill("killed", "--all-agencies")

    assert rerun.returncode == 0, (rerun.stdout, rerun.stderr[-2000:])
    rows = table(rerun)
    progress = {a: (rows[a]["FOLDED"], rows[a]["CURRENT"], rows[a]["STATUS"]) for a in "123"}
    assert progress == {
        "1": ("0", "4", "up to date"),
        "2": ("4", "0", "succeeded"),
        "3": ("4", "0", "succeeded"),
    }
    assert [world.fold("killed", agency) for agency in AGENCIES] == [1, 1, 1]
    assert world.writers("killed")[1] == done[1]  # nothing redone
    for agency in AGENCIES:  # agency 2's dead letters of the killed attempt were replaced
        assert view(world.root / "killed", agency) == view(world.root / "clean", agency)
    runs = world.runs("killed")
    died = [r for r in runs if r.status.value == "failed" and (r.error or "").startswith("died:")]
    assert sorted(r.job for r in died) == ["backfill", "bronze_to_silver"]  # the killed pair
    assert [r.run_id for r in runs if r.status.value == "running"] == []


def test_a_failing_agency_is_reported_and_a_rerun_after_the_fix_does_the_rest(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    # A damaged corrections file fails its agency (a bad bronze file would not: it becomes a
    # file-level dead letter and the agency carries on).
    bronze = world.root / "bronze-broken"
    shutil.copytree(world.bronze, bronze)
    broken = world.root / "broken/corrections/agency_id=2/000001-damaged.ndjson"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a correction\n")
    argv = ["--bronze", f"file://{bronze}", "--all-agencies", "--continue-on-error"]

    failed = world.backfill("broken", *argv)

    assert failed.returncode == 1, (failed.stdout[-3000:], failed.stderr[-3000:])
    rows = table(failed)
    assert [rows[a]["STATUS"] for a in "123"] == ["succeeded", "failed", "succeeded"]
    assert (rows["2"]["FOLDED"], rows["2"]["FAILED"]) == ("0", "4")
    assert [world.fold("broken", agency) for agency in AGENCIES] == [1, 0, 1]
    assert "agency 2: stored corrections damaged: corrections/agency_id=2/000001-damaged" in (
        failed.stdout
    )
    broken.unlink()

    fixed = world.backfill("broken", *argv)

    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert [table(fixed)[a]["STATUS"] for a in "123"] == ["up to date", "succeeded", "up to date"]
    assert view(world.root / "broken", 2) == view(world.root / "clean", 2)


def test_an_agency_whose_lease_is_held_is_busy_and_the_backfill_exits_75(
    world: World, clean: subprocess.CompletedProcess[str]
) -> None:
    async def backfill_while_held() -> subprocess.CompletedProcess[str]:
        # The holder stays alive meanwhile: a holder that exits frees its lease at once.
        async with open_run_history(world.history("busy"), every_history()) as history:
            await history.migrate()
            await history.acquire(
                "bronze_to_silver/agency=3", "a-standalone-run", dt.timedelta(hours=1)
            )
            return await asyncio.to_thread(world.backfill, "busy", "--agencies", "1,3")

    result = asyncio.run(backfill_while_held())

    assert result.returncode == 75
    rows = table(result)
    assert (rows["1"]["STATUS"], rows["3"]["STATUS"]) == ("succeeded", "busy (retry)")
    assert "LeaseHeld" in result.stdout
