"""Tests of backfill: planning, child runs on shared tables, resumability, failures, busy agencies.

Bronze and the run history are fakes; the tables are the real Delta adapters on a temporary
directory (fast, and the children's concurrent commits meet a real Delta log).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from etl_core.adapters.delta_tables import Tables, open_tables
from etl_core.adapters.local_object_store import LocalObjectStore
from etl_core.errors import DataError, ExitCode
from etl_core.model import Counts, RunRecord, RunStatus
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory
from etl_core.testing.run_contexts import started_run

from data_pipeline.backfill.plan import AgencyPlan, bronze_agencies, plan_backfill
from data_pipeline.backfill.report import plan_table, summary_table
from data_pipeline.backfill.run import (
    AgencyStatus,
    BackfillFailed,
    BackfillIncomplete,
    BackfillOptions,
    BackfillReport,
    run_backfill,
)
from data_pipeline.bronze_to_silver.run import PromoteOptions
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files

# Three agencies, four files each: dt 2024-01-08 .. 2024-01-11.
WORKLOAD = WorkloadOptions(records=900, files=12, agencies=3, bad_rate=0.05, dup_rate=0.1, seed=9)
FIRST, LAST = dt.date(2024, 1, 8), dt.date(2024, 1, 10)


@attrs.define
class FlakyStore(FakeObjectStore):
    """Fails reading one agency's bronze bodies."""

    broken: str = "bronze/agency_id=2/"

    async def get(self, key: str) -> bytes:
        if key.startswith(self.broken):
            raise DataError(f"{key}: unreadable")
        return await super().get(key)


@attrs.define
class OrderedHistory(FakeRunHistory):
    """A FakeRunHistory that also notes, in order, each run it starts and finishes."""

    events: list[tuple[str, str]] = attrs.field(factory=list)

    async def start_run(self, run: RunRecord) -> None:
        """Insert a RUNNING run, then note it."""
        await super().start_run(run)
        self.events.append(("start", run.run_id))

    async def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        finished_at: dt.datetime,
        counts: Counts,
        artifacts: Sequence[str] = (),
        error: str | None = None,
    ) -> None:
        """Record the outcome, then note it."""
        await super().finish_run(
            run_id,
            status=status,
            finished_at=finished_at,
            counts=counts,
            artifacts=artifacts,
            error=error,
        )
        self.events.append(("finish", run_id))


class World:
    def __init__(self, root: Path, bronze: FakeObjectStore | None = None) -> None:
        self.bronze = bronze or FakeObjectStore()
        if not self.bronze.objects:
            self.bronze.objects.update(iter_workload_files(WORKLOAD))
        self.root = root / "store"
        self.store = LocalObjectStore(self.root, durable=False)
        self.history = OrderedHistory()
        self.runs = 0

    def tables(self, run_id: str = "test", *, dry_run: bool = False) -> Tables:
        # Tiny files, so that a merge that replaces rows also removes files.
        return open_tables(
            str(self.root), self.store, {}, dry_run=dry_run, run_id=run_id, rows_per_file=40
        )

    async def plan(
        self, agencies: tuple[int, ...], *, reprocess: bool = False, last: dt.date = LAST
    ) -> tuple[AgencyPlan, ...]:
        return await plan_backfill(
            self.store, self.bronze, self.tables().silver, agencies, first=FIRST, last=last,
            agencies_key="agencies.csv", reprocess=reprocess,
        )  # fmt: skip

    async def backfill(
        self, agencies: tuple[int, ...] | None = None, *, dry_run: bool = False, **options: Any
    ) -> BackfillReport:
        self.runs += 1
        run_id = f"backfill-{self.runs}"
        ctx = await started_run(
            self.history, "backfill", run_id=run_id, dry_run=dry_run, leased=True
        )
        ids = agencies or await bronze_agencies(self.bronze)
        first, last = options.pop("first", FIRST), options.pop("last", LAST)
        reprocess = options.pop("reprocess", False)
        plans = await plan_backfill(
            self.store, self.bronze, self.tables().silver, ids, first=first, last=last,
            agencies_key="agencies.csv", reprocess=reprocess,
        )  # fmt: skip
        promote = PromoteOptions(first=first, last=last, reprocess=reprocess, workers=1)
        backfill = BackfillOptions(promote=promote, **options)

        def tables(child_run_id: str) -> Tables:
            return self.tables(child_run_id, dry_run=dry_run)

        return await run_backfill(ctx, self.store, self.bronze, tables, plans, backfill)

    def children(self, parent: str) -> list[RunRecord]:
        runs = [
            r for r in self.history.runs.values() if r.parameters.get("parent_run_id") == parent
        ]
        return sorted(runs, key=lambda r: r.agency_id or 0)

    async def silver(self, agency_id: int | None = None) -> list[dict[str, Any]]:
        """Silver rows by key, without the run that wrote them."""
        table = await self.tables().silver.read(agency_id)
        rows = [] if table is None else table.to_pylist()
        for row in rows:
            del row["_run_id"]
        return sorted(rows, key=lambda row: (row["agency_id"], row["record_id"]))

    async def dead_letters(self, agency_id: int | None = None) -> list[tuple[Any, ...]]:
        table = await self.tables().deadletter.read(agency_id)
        rows = [] if table is None else table.to_pylist()
        return sorted((r["agency_id"], r["source"], r["line"], r["reason"]) for r in rows)

    def files(self) -> dict[str, int]:
        """Every file of the store -> mtime_ns."""
        return {
            path.relative_to(self.root).as_posix(): path.stat().st_mtime_ns
            for path in self.root.rglob("*")
            if path.is_file()
        }


def _statuses(report: BackfillReport) -> list[str]:
    return [result.status for result in report.results]


async def test_the_plan_covers_every_agency_with_bronze_and_counts_current_partitions(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    assert await bronze_agencies(world.bronze) == (1, 2, 3)

    plans = await world.plan((1, 4))

    assert [(p.agency_id, p.days, p.files, p.current, p.action) for p in plans] == [
        (1, ("2024-01-08", "2024-01-09", "2024-01-10"), 3, 0, "fold"),
        (4, (), 0, 0, "nothing"),
    ]
    await world.backfill((1,))
    [done] = await world.plan((1,))
    assert (done.up_to_date, done.fold, done.current, done.files) == (True, 1, 3, 0)
    [more] = await world.plan((1,), last=dt.date(2024, 1, 11))
    assert (more.current, more.to_fold, more.files, more.action) == (3, 1, 1, "fold")
    [again] = await world.plan((1,), reprocess=True)
    assert (again.current, again.files, again.action) == (0, 4, "rebuild")


async def test_each_agency_runs_as_a_recorded_child_committing_to_the_shared_tables(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)

    report = await world.backfill()

    assert _statuses(report) == [AgencyStatus.SUCCEEDED] * 3
    assert report.error() is None
    children = world.children("backfill-1")
    assert [(c.agency_id, c.job, c.status) for c in children] == [
        (agency, "bronze_to_silver", RunStatus.SUCCEEDED) for agency in (1, 2, 3)
    ]
    assert [r.run_id for r in report.results] == [c.run_id for c in children]
    for result in report.results:
        assert (result.folded, result.current, result.failed) == (3, 0, 0)
        ledger = await world.history.partitions(result.run_id or "")
        assert sum((p.counts for p in ledger), start=Counts()) == result.counts
        assert result.counts.rows_inserted == result.counts.rows_out  # a first fold inserts
        assert await world.tables().silver.version(result.plan.agency_id) == 1
        table = await world.tables().silver.read(result.plan.agency_id)
        assert table is not None
        assert set(table["_run_id"].to_pylist()) == {result.run_id}
        assert len(await world.silver(result.plan.agency_id)) == result.counts.rows_out
        dead = await world.dead_letters(result.plan.agency_id)
        assert len(dead) == result.counts.rows_dead_letter
    assert report.counts.balanced
    silver = await world.silver()
    assert not [row for row in silver if row["dt"] == dt.date(2024, 1, 11)]
    assert len({(row["agency_id"], row["record_id"]) for row in silver}) == len(silver)


async def test_a_rerun_skips_every_agency_that_is_done_and_writes_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.backfill()
    before = world.files()

    report = await world.backfill()

    assert _statuses(report) == [AgencyStatus.UP_TO_DATE] * 3
    assert world.files() == before
    assert report.counts == Counts()
    assert [(r.folded, r.current) for r in report.results] == [(0, 3)] * 3


async def test_an_interrupted_backfill_rerun_folds_in_only_what_is_left(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.backfill((1,), last=dt.date(2024, 1, 9))  # cut short: agency 1, two days
    [first_child] = world.children("backfill-1")

    report = await world.backfill()

    [one, two, three] = report.results
    assert (one.status, one.folded, one.current) == (AgencyStatus.SUCCEEDED, 1, 2)
    assert (two.folded, three.folded) == (3, 3)
    assert [p.partition for p in await world.history.partitions(one.run_id or "")] == [
        "agency_id=1/dt=2024-01-10"
    ]
    assert await world.tables().silver.version(1) == 2  # one more fold, nothing redone
    assert one.counts.rows_in == 75  # the one new file
    clean = World(tmp_path / "clean")
    await clean.backfill()
    assert await world.silver() == await clean.silver()
    assert await world.dead_letters() == await clean.dead_letters()
    table = await world.tables().silver.read(1)
    assert table is not None
    assert set(table["_run_id"].to_pylist()) <= {first_child.run_id, one.run_id}


async def test_children_in_parallel_commit_to_the_same_tables_without_conflicts(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    await world.backfill(max_parallel=3, last=dt.date(2024, 1, 9))

    # A second day replaces rows (files removed) while siblings commit; then a rebuild of all.
    folded = await world.backfill(max_parallel=3)
    rebuilt = await world.backfill(max_parallel=3, reprocess=True)

    assert _statuses(folded) == _statuses(rebuilt) == [AgencyStatus.SUCCEEDED] * 3
    assert folded.counts.rows_updated > 0
    assert [await world.tables().silver.version(a) for a in (1, 2, 3)] == [3, 3, 3]
    clean = World(tmp_path / "clean")
    await clean.backfill(last=dt.date(2024, 1, 11))  # a rebuild reads the whole bronze
    assert await world.silver() == await clean.silver()
    assert await world.dead_letters() == await clean.dead_letters()


async def test_a_failure_stops_launching_agencies_without_continue_on_error(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, FlakyStore())

    report = await world.backfill()

    assert _statuses(report) == [
        AgencyStatus.SUCCEEDED,
        AgencyStatus.FAILED,
        AgencyStatus.NOT_STARTED,
    ]
    assert isinstance(report.error(), BackfillFailed)
    assert report.exit_code == ExitCode.FAILED
    [_, two, three] = report.results
    assert two.error is not None
    assert "unreadable" in two.error
    assert (two.failed, three.failed) == (3, 3)
    assert [c.status for c in world.children("backfill-1")] == [
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
    ]
    assert [await world.tables().silver.version(a) for a in (1, 2, 3)] == [1, 0, 0]


async def test_continue_on_error_runs_every_agency_and_still_exits_1(tmp_path: Path) -> None:
    world = World(tmp_path, FlakyStore())

    report = await world.backfill(continue_on_error=True)

    assert _statuses(report) == [
        AgencyStatus.SUCCEEDED,
        AgencyStatus.FAILED,
        AgencyStatus.SUCCEEDED,
    ]
    assert report.exit_code == ExitCode.FAILED


async def test_a_busy_agency_is_left_for_a_retry_and_the_others_run(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.history.acquire("bronze_to_silver/agency=2", "standalone", dt.timedelta(hours=1))

    report = await world.backfill()

    assert _statuses(report) == [AgencyStatus.SUCCEEDED, AgencyStatus.BUSY, AgencyStatus.SUCCEEDED]
    assert isinstance(report.error(), BackfillIncomplete)
    assert report.exit_code == ExitCode.TEMPORARY
    assert [c.agency_id for c in world.children("backfill-1")] == [1, 3]
    assert await world.tables().silver.version(2) == 0
    await world.history.release("bronze_to_silver/agency=2", "standalone")
    retry = await world.backfill()
    assert _statuses(retry) == [
        AgencyStatus.UP_TO_DATE,
        AgencyStatus.SUCCEEDED,
        AgencyStatus.UP_TO_DATE,
    ]
    assert retry.exit_code == ExitCode.OK


@pytest.mark.parametrize("max_parallel", [1, 3])
async def test_at_most_max_parallel_agencies_run_at_once(tmp_path: Path, max_parallel: int) -> None:
    world = World(tmp_path)

    await world.backfill(max_parallel=max_parallel)

    # From the order of starts and finishes, not from timestamps a loaded machine can blur.
    children = {c.run_id for c in world.children("backfill-1")}
    running, most = 0, 0
    for event, run_id in world.history.events:
        if run_id in children:
            running += 1 if event == "start" else -1
            most = max(most, running)
    assert len(children) == 3
    assert running == 0
    assert most == max_parallel


async def test_an_agency_without_bronze_in_range_has_nothing_to_do(tmp_path: Path) -> None:
    world = World(tmp_path)

    report = await world.backfill((1, 2), first=dt.date(2030, 1, 1), last=dt.date(2030, 1, 31))

    assert _statuses(report) == [AgencyStatus.NOTHING, AgencyStatus.NOTHING]
    assert report.exit_code == ExitCode.OK
    assert world.children("backfill-1") == []


async def test_an_agency_with_no_bronze_at_all_fails_saying_so(tmp_path: Path) -> None:
    world = World(tmp_path)

    report = await world.backfill((1, 9), continue_on_error=True)

    assert _statuses(report) == [AgencyStatus.SUCCEEDED, AgencyStatus.FAILED]
    assert report.exit_code == ExitCode.FAILED
    [failed] = [r for r in report.results if r.status == AgencyStatus.FAILED]
    assert "agency 9 is not in the agencies file agencies.csv" in str(failed.error)
    assert len(world.children("backfill-1")) == 2


async def test_a_dry_run_transforms_and_counts_but_writes_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)

    report = await world.backfill(dry_run=True)

    assert world.files() == {}
    assert world.history.runs == {}
    assert _statuses(report) == [AgencyStatus.DRY_RUN] * 3
    assert report.counts.rows_in == 3 * 225
    assert report.counts.balanced
    assert await world.tables().silver.read() is None


async def test_the_tables_show_every_agency_and_a_total(tmp_path: Path) -> None:
    world = World(tmp_path)
    plans = await world.plan((1, 2))
    report = await world.backfill((1, 2))

    plan = plan_table(plans).splitlines()
    summary = summary_table(report, seconds=1.5).splitlines()

    assert plan[0].split() == ["AGENCY", "PARTITIONS", "FIRST", "LAST", "FOLD", "CURRENT",
                               "TO_FOLD", "FILES_TO_READ", "MB_TO_READ", "ACTION"]  # fmt: skip
    assert plan[1].split()[4:] == ["0", "0", "3", "3", f"{plans[0].bytes_in / 1e6:.1f}", "fold"]
    assert plan[-1].split()[:5] == ["TOTAL", "6", "0", "6", "6"]
    assert summary[0].split()[:5] == ["AGENCY", "PLANNED", "FOLDED", "CURRENT", "FAILED"]
    assert summary[0].split()[8:11] == ["DEAD_LETTER", "INSERTED", "UPDATED"]
    total = summary[-1].split()
    assert total[:5] == ["TOTAL", "6", "6", "0", "0"]
    assert total[-2:] == ["1.5", "ok"]
    assert f"{report.counts.rows_in:,}" in total
    assert f"{report.counts.rows_inserted:,}" in total


async def test_the_plan_says_why_an_agency_will_rebuild(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.backfill((1,))
    world.bronze.objects["bronze/agency_id=1/dt=2024-01-09/part-0.ndjson"] += b"\n"

    plans = await world.plan((1,))

    assert plans[0].action == "rebuild"
    lines = plan_table(plans).splitlines()
    assert lines[-1].startswith("agency 1: rebuild: 1 change(s) in its input, e.g. ")
    assert "bronze/agency_id=1/dt=2024-01-09/part-0.ndjson changed" in lines[-1]
