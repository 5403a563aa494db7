"""Tests of backfill over fakes: planning, child runs, resumability, failures, busy agencies."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import attrs
import pytest
from etl_core.errors import DataError, ExitCode
from etl_core.model import Counts, RunRecord, RunStatus
from etl_core.runner import RunContext
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory

from data_pipeline.backfill import (
    BUSY,
    DRY_RUN,
    FAILED,
    NOT_STARTED,
    NOTHING,
    SUCCEEDED,
    UP_TO_DATE,
    BackfillFailed,
    BackfillIncomplete,
    BackfillOptions,
    BackfillReport,
    run_backfill,
)
from data_pipeline.backfill_plan import bronze_agencies, plan_backfill
from data_pipeline.backfill_report import plan_table, summary_table
from data_pipeline.publish import PartitionPublisher
from data_pipeline.workload import WorkloadOptions, iter_workload_files

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


class World:
    def __init__(self, bronze: FakeObjectStore | None = None) -> None:
        self.bronze = bronze or FakeObjectStore(dict(iter_workload_files(WORKLOAD)))
        if not self.bronze.objects:
            self.bronze.objects.update(iter_workload_files(WORKLOAD))
        self.store = FakeObjectStore()
        self.history = FakeRunHistory()
        self.runs = 0

    async def backfill(
        self, agencies: tuple[int, ...] | None = None, *, dry_run: bool = False, **options: Any
    ) -> BackfillReport:
        self.runs += 1
        run_id = f"backfill-{self.runs}"
        if not dry_run:
            now = dt.datetime.now(dt.UTC)
            await self.history.start_run(RunRecord(run_id, "backfill", RunStatus.RUNNING, now))
        ctx = RunContext(
            run_id=run_id,
            job="backfill",
            agency_id=None,
            dry_run=dry_run,
            settings=CommonSettings(),
            history=self.history,
            log=logging.getLogger("test"),
            leases=None if dry_run else self.history,
        )
        ids = agencies or await bronze_agencies(self.bronze)
        first, last = options.pop("first", FIRST), options.pop("last", LAST)
        reprocess = options.get("reprocess", False)
        plans = await plan_backfill(
            self.store, self.bronze, ids, first=first, last=last,
            agencies_key="agencies.csv", reprocess=reprocess,
        )  # fmt: skip
        backfill = BackfillOptions(first=first, last=last, workers=1, **options)
        return await run_backfill(ctx, self.store, self.bronze, plans, backfill)

    def children(self, parent: str) -> list[RunRecord]:
        runs = [
            r for r in self.history.runs.values() if r.parameters.get("parent_run_id") == parent
        ]
        return sorted(runs, key=lambda r: r.agency_id or 0)


def _statuses(report: BackfillReport) -> list[str]:
    return [result.status for result in report.results]


async def test_the_plan_covers_every_agency_with_bronze_and_counts_current_partitions() -> None:
    world = World()
    assert await bronze_agencies(world.bronze) == (1, 2, 3)

    plans = await plan_backfill(world.store, world.bronze, (1, 4), first=FIRST, last=LAST,
                                agencies_key="agencies.csv")  # fmt: skip

    assert [(p.agency_id, p.days, p.files, p.current) for p in plans] == [
        (1, ("2024-01-08", "2024-01-09", "2024-01-10"), 4, 0),
        (4, (), 0, 0),
    ]
    await world.backfill((1,))
    [done] = await plan_backfill(world.store, world.bronze, (1,), first=FIRST, last=LAST,
                                 agencies_key="agencies.csv")  # fmt: skip
    assert done.up_to_date
    [again] = await plan_backfill(world.store, world.bronze, (1,), first=FIRST, last=LAST,
                                  agencies_key="agencies.csv", reprocess=True)  # fmt: skip
    assert again.current == 0


async def test_each_agency_runs_as_a_recorded_child_of_the_backfill() -> None:
    world = World()

    report = await world.backfill()

    assert _statuses(report) == [SUCCEEDED] * 3
    assert report.error() is None
    children = world.children("backfill-1")
    assert [(c.agency_id, c.job, c.status) for c in children] == [
        (agency, "bronze_to_silver", RunStatus.SUCCEEDED) for agency in (1, 2, 3)
    ]
    assert [r.run_id for r in report.results] == [c.run_id for c in children]
    for result in report.results:
        assert (result.published, result.unchanged, result.failed) == (3, 0, 0)
        ledger = await world.history.partitions(result.run_id or "")
        assert sum((p.counts for p in ledger), start=Counts()) == result.counts
    assert report.counts.balanced
    assert not [k for k in world.store.objects if "dt=2024-01-11" in k]


async def test_a_rerun_skips_every_agency_that_is_done_and_writes_nothing() -> None:
    world = World()
    await world.backfill()
    before = dict(world.store.objects)

    report = await world.backfill()

    assert _statuses(report) == [UP_TO_DATE] * 3
    assert world.store.objects == before
    assert report.counts == Counts()
    assert [(r.published, r.unchanged) for r in report.results] == [(0, 3)] * 3


async def test_an_interrupted_backfill_rerun_publishes_only_what_is_left() -> None:
    world = World()
    await world.backfill((1,), last=dt.date(2024, 1, 9))  # cut short: agency 1, two days
    publisher = PartitionPublisher(world.store)

    report = await world.backfill()

    [one, two, three] = report.results
    assert (one.status, one.published, one.unchanged) == (SUCCEEDED, 1, 2)
    assert (two.published, three.published) == (3, 3)
    for day in ("08", "09"):
        manifest = await publisher.current(f"agency_id=1/dt=2024-01-{day}")
        assert manifest is not None
        assert manifest.seq == 1  # not republished


async def test_a_failure_stops_launching_agencies_without_continue_on_error() -> None:
    world = World(FlakyStore())

    report = await world.backfill()

    assert _statuses(report) == [SUCCEEDED, FAILED, NOT_STARTED]
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


async def test_continue_on_error_runs_every_agency_and_still_exits_1() -> None:
    world = World(FlakyStore())

    report = await world.backfill(continue_on_error=True)

    assert _statuses(report) == [SUCCEEDED, FAILED, SUCCEEDED]
    assert report.exit_code == ExitCode.FAILED


async def test_a_busy_agency_is_left_for_a_retry_and_the_others_run() -> None:
    world = World()
    await world.history.acquire("bronze_to_silver/agency=2", "standalone", dt.timedelta(hours=1))

    report = await world.backfill()

    assert _statuses(report) == [SUCCEEDED, BUSY, SUCCEEDED]
    assert isinstance(report.error(), BackfillIncomplete)
    assert report.exit_code == ExitCode.TEMPORARY
    assert [c.agency_id for c in world.children("backfill-1")] == [1, 3]
    await world.history.release("bronze_to_silver/agency=2", "standalone")
    retry = await world.backfill()
    assert _statuses(retry) == [UP_TO_DATE, SUCCEEDED, UP_TO_DATE]
    assert retry.exit_code == ExitCode.OK


@pytest.mark.parametrize("max_parallel", [1, 3])
async def test_at_most_max_parallel_agencies_run_at_once(max_parallel: int) -> None:
    world = World()

    await world.backfill(max_parallel=max_parallel)

    children = world.children("backfill-1")
    overlapping = max(
        sum(
            1
            for c in children
            if c.started_at <= run.started_at < (c.finished_at or run.started_at)
        )
        for run in children
    )
    assert overlapping == max_parallel  # itself included


async def test_an_agency_without_bronze_in_range_has_nothing_to_do() -> None:
    world = World()

    report = await world.backfill((1, 9))

    assert _statuses(report) == [SUCCEEDED, NOTHING]
    assert report.exit_code == ExitCode.OK
    assert len(world.children("backfill-1")) == 1


async def test_a_dry_run_transforms_and_counts_but_writes_nothing() -> None:
    world = World()

    report = await world.backfill(dry_run=True)

    assert world.store.objects == {}
    assert world.history.runs == {}
    assert _statuses(report) == [DRY_RUN] * 3
    assert report.counts.rows_in == 3 * 225
    assert report.counts.balanced


async def test_the_tables_show_every_agency_and_a_total() -> None:
    world = World()
    plans = await plan_backfill(world.store, world.bronze, (1, 2), first=FIRST, last=LAST,
                                agencies_key="agencies.csv")  # fmt: skip
    report = await world.backfill((1, 2))

    plan = plan_table(plans).splitlines()
    summary = summary_table(report, seconds=1.5).splitlines()

    assert plan[0].split() == ["AGENCY", "PARTITIONS", "FIRST", "LAST", "CURRENT", "STALE",
                               "FILES_TO_READ", "MB_TO_READ"]  # fmt: skip
    assert plan[-1].split()[:5] == ["TOTAL", "6", "0", "6", "8"]
    assert summary[0].split()[:5] == ["AGENCY", "PLANNED", "PUBLISHED", "UNCHANGED", "FAILED"]
    total = summary[-1].split()
    assert total[:5] == ["TOTAL", "6", "6", "0", "0"]
    assert total[-2:] == ["1.5", "ok"]
    assert f"{report.counts.rows_in:,}" in total
