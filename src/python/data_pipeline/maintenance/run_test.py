"""Table maintenance over fakes: what is compacted, under which lease, what is recorded."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from etl_core.errors import ExitCode, TableConflict, TableError
from etl_core.model import Compaction, PartitionStatus, TableFile, TablePartition
from etl_core.testing.fakes import FakeClock, FakeRunHistory, FakeTableMaintenance
from etl_core.testing.run_contexts import started_run

from data_pipeline.maintenance.report import summary
from data_pipeline.maintenance.run import (
    DEADLETTER,
    PROMOTE_JOB,
    SILVER,
    MaintenanceFailed,
    MaintenanceIncomplete,
    MaintenanceOptions,
    MaintenanceReport,
    fragmented,
    maintain,
)

D1, D2 = dt.date(2024, 1, 8), dt.date(2024, 1, 9)
TARGET = 1000
LEASE_1 = "bronze_to_silver/agency=1"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.silver = FakeTableMaintenance(clock=self.clock)
        self.deadletter = FakeTableMaintenance(clock=self.clock)
        self.history = FakeRunHistory(clock=self.clock)
        self.runs = 0

    async def run(self, *, dry_run: bool = False, **options: Any) -> MaintenanceReport:
        self.runs += 1
        run_id = f"maintain-{self.runs}"
        ctx = await started_run(
            self.history, "maintain", run_id=run_id, dry_run=dry_run, leased=True,
            started_at=self.clock(),
        )  # fmt: skip
        tables = {SILVER: self.silver, DEADLETTER: self.deadletter}
        return await maintain(ctx, tables, MaintenanceOptions(target_size=TARGET, **options))

    def ledger(self) -> dict[str, Any]:
        return {row.partition: row for row in self.history.ledger}


def statuses(report: MaintenanceReport) -> dict[tuple[str, int], str]:
    return {(s.table, s.agency_id): s.status for s in report.agencies}


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ((300,), False),  # one file is never fragmented
        ((300, 300), True),
        ((900, 900), False),  # two files are what 1800 bytes call for
        ((900, 900, 100), True),
        ((1200, 1500), False),
    ],
)
def test_a_partition_is_fragmented_when_it_has_more_files_than_its_size_calls_for(
    sizes: tuple[int, ...], expected: bool
) -> None:
    files = tuple(TableFile(f"f{i}", size) for i, size in enumerate(sizes))

    assert fragmented(TablePartition(1, D1, files), TARGET) is expected


def test_the_lease_is_the_one_bronze_to_silver_takes() -> None:
    from data_pipeline.bronze_to_silver.run import JOB

    assert PROMOTE_JOB == JOB


async def test_fragmented_partitions_are_compacted_silver_sorted_and_dead_letters_combined() -> (
    None
):
    world = World()
    world.silver.write(1, D1, 300, 300, 300)
    world.silver.write(1, D2, 300)
    world.silver.write(2, D1, 1200)
    world.deadletter.write(1, D1, 200, 200)

    report = await world.run()

    assert world.silver.compactions == [(1, (D1,), "record_id")]
    assert world.deadletter.compactions == [(1, (D1,), None)]
    assert statuses(report) == {
        (SILVER, 1): PartitionStatus.COMPACTED,
        (DEADLETTER, 1): PartitionStatus.COMPACTED,
        (SILVER, 2): PartitionStatus.UP_TO_DATE,
        (DEADLETTER, 2): PartitionStatus.UP_TO_DATE,
    }
    assert report.error() is None
    assert (report.counts.bytes_in, report.counts.bytes_out) == (1300, 1300)


async def test_each_compaction_and_each_table_is_recorded_with_its_files() -> None:
    world = World()
    removed = world.silver.write(1, D1, 300, 300)

    report = await world.run()

    ledger = world.ledger()
    assert set(ledger) == {"silver/agency_id=1", SILVER}  # no rows for what needed nothing
    row = ledger["silver/agency_id=1"]
    [added] = report.agencies[0].compaction.added
    assert row.status == PartitionStatus.COMPACTED
    assert row.agency_id == 1
    assert row.input_fingerprint == "silver@v0"
    assert row.artifacts == (
        f"added:silver/{added.path}",
        *(f"removed:silver/{f.path}" for f in removed),
    )
    assert (row.counts.bytes_in, row.counts.bytes_out) == (600, 600)
    assert ledger[SILVER].status == PartitionStatus.MAINTAINED
    assert ledger[SILVER].artifacts == ("checkpoint:silver@v1",)


async def test_the_agency_lease_is_held_while_its_files_are_compacted_and_released_after() -> None:
    world = World()
    world.silver.write(1, D1, 300, 300)
    held: list[str | None] = []

    @attrs.define
    class Watching(FakeTableMaintenance):
        async def compact(self, agency_id: int, days: Any, **kwargs: Any) -> Compaction:
            lease = world.history.leases.get(LEASE_1)
            held.append(None if lease is None else lease.owner)
            return await super().compact(agency_id, days, **kwargs)

    world.silver = Watching(partitions=world.silver.partitions, version=world.silver.version)

    await world.run()

    assert held == ["maintain-1"]
    assert LEASE_1 not in world.history.leases


async def test_an_agency_whose_lease_is_held_is_skipped_and_reported_not_failed() -> None:
    world = World()
    world.silver.write(1, D1, 300, 300)
    world.silver.write(2, D1, 300, 300)
    await world.history.acquire(LEASE_1, "a-bronze-to-silver-run", dt.timedelta(minutes=5))

    report = await world.run()

    assert world.silver.compactions == [(2, (D1,), "record_id")]
    assert statuses(report)[(SILVER, 1)] == PartitionStatus.LEASE_HELD
    assert statuses(report)[(SILVER, 2)] == PartitionStatus.COMPACTED
    assert report.error() is None
    assert world.ledger()["silver/agency_id=1"].status == PartitionStatus.LEASE_HELD
    assert (
        "agency 1: bronze_to_silver lease held"
        in summary(report, dry_run=False, retention_hours=168)["skipped"]
    )


async def test_a_dry_run_plans_without_compacting_checkpointing_deleting_or_recording() -> None:
    world = World()
    world.silver.write(1, D1, 300, 300, 700)
    world.deadletter.write(1, D1, 200, 200, 1500)
    world.silver.orphans.append((TableFile("agency_id=1/dt=x/old.parquet", 9), world.clock()))
    world.silver.removed.append((TableFile("agency_id=1/dt=x/gone.parquet", 9), world.clock()))
    before = attrs.asdict(world.silver), attrs.asdict(world.deadletter)

    report = await world.run(dry_run=True, retention_hours=0)

    assert (attrs.asdict(world.silver), attrs.asdict(world.deadletter)) == before
    assert world.silver.compactions == world.deadletter.compactions == []
    assert world.history.ledger == []
    [silver, deadletter] = report.agencies
    assert (silver.status, deadletter.status) == (PartitionStatus.DRY_RUN, PartitionStatus.DRY_RUN)
    assert len(silver.compaction.removed) == 3  # sorted: every file of the partition
    assert [f.size for f in deadletter.compaction.removed] == [200, 200]  # the small ones
    assert report.tables[0].vacuumed == ("agency_id=1/dt=x/gone.parquet",)
    lines = summary(report, dry_run=True, retention_hours=0)
    assert lines[SILVER].startswith("would compact 1 agency: 3 files (1.3 kB) in 1 partitions")
    assert "vacuum would delete 1 files" in lines[SILVER]


async def test_dead_letters_of_a_fold_not_yet_in_silver_are_left_for_its_re_run() -> None:
    world = World()
    world.silver.write(1, D1, 300, 300, fold=2)
    world.deadletter.write(1, D1, 200, 200, fold=3)  # fold 3 died before its silver commit

    report = await world.run()

    assert world.deadletter.compactions == []
    assert statuses(report) == {
        (SILVER, 1): PartitionStatus.COMPACTED,
        (DEADLETTER, 1): PartitionStatus.UNFINISHED,
    }
    assert world.ledger()["deadletter/agency_id=1"].status == PartitionStatus.UNFINISHED
    assert report.error() is None


async def test_a_compaction_that_keeps_losing_is_reported_and_the_run_exits_75() -> None:
    world = World()
    world.silver.write(1, D1, 300, 300)
    world.silver.write(2, D1, 300, 300)
    world.deadletter.write(1, D1, 200, 200)
    world.silver.fail_on["compact"] = TableConflict("lost to concurrent commits 5 times")

    report = await world.run()

    assert statuses(report)[(SILVER, 1)] == PartitionStatus.CONFLICT
    assert statuses(report)[(DEADLETTER, 1)] == PartitionStatus.COMPACTED
    assert world.silver.checkpoints == [world.silver.version]
    error = report.error()
    assert isinstance(error, MaintenanceIncomplete)
    assert error.exit_code == ExitCode.TEMPORARY
    assert "agencies 1, 2" in str(error)


async def test_a_table_that_cannot_be_vacuumed_fails_the_run_after_the_other_is_done() -> None:
    world = World()
    world.silver.write(1, D1, 300)
    world.deadletter.write(1, D1, 200)
    world.deadletter.fail_on["vacuum"] = TableError("deadletter table: vacuum failed: denied")

    report = await world.run()

    error = report.error()
    assert isinstance(error, MaintenanceFailed)
    assert error.exit_code == ExitCode.FAILED
    assert world.silver.checkpoints == [0]
    assert world.deadletter.checkpoints == []
    assert world.ledger()[DEADLETTER].status == "failed"


async def test_vacuum_deletes_what_left_longer_ago_than_the_retention_then_checkpoints() -> None:
    world = World()
    world.silver.write(1, D1, 300, 300)
    await world.run()  # compacts: two files leave the table now
    world.clock.advance(dt.timedelta(hours=100))
    kept = await world.run(retention_hours=168)
    world.clock.advance(dt.timedelta(hours=100))

    report = await world.run(retention_hours=168, full_vacuum=True)

    assert kept.tables[0].vacuumed == ()
    assert len(report.tables[0].vacuumed) == 2
    assert world.silver.removed == []
    assert report.tables[0].checkpoint == world.silver.version
    assert world.ledger()[SILVER].artifacts[0] == "checkpoint:silver@v1"


async def test_only_the_agencies_asked_for_are_visited() -> None:
    world = World()
    world.silver.write(1, D1, 300, 300)
    world.silver.write(2, D1, 300, 300)

    report = await world.run(agencies=(2, 9))

    assert world.silver.compactions == [(2, (D1,), "record_id")]
    assert statuses(report) == {
        (SILVER, 2): PartitionStatus.COMPACTED,
        (DEADLETTER, 2): PartitionStatus.UP_TO_DATE,
        (SILVER, 9): PartitionStatus.UP_TO_DATE,
        (DEADLETTER, 9): PartitionStatus.UP_TO_DATE,
    }


async def test_without_tables_there_is_nothing_to_do() -> None:
    world = World()

    report = await world.run()

    assert report.agencies == ()
    assert [t.version for t in report.tables] == [None, None]
    assert summary(report, dry_run=False, retention_hours=168) == {
        SILVER: "no table yet",
        DEADLETTER: "no table yet",
    }
    assert world.history.ledger == []


async def test_an_agency_with_nothing_to_compact_is_not_visited_so_its_lease_is_not_taken() -> (
    None
):
    world = World()
    world.silver.write(1, D1, 300)
    world.silver.write(2, D1, 300, 300)
    await world.history.acquire(LEASE_1, "a-bronze-to-silver-run", dt.timedelta(minutes=5))

    report = await world.run()

    assert (
        statuses(report)[(SILVER, 1)] == PartitionStatus.UP_TO_DATE
    )  # not "skipped": nothing to wait for
    assert statuses(report)[(SILVER, 2)] == PartitionStatus.COMPACTED
    assert "silver/agency_id=1" not in world.ledger()
    assert "skipped" not in summary(report, dry_run=False, retention_hours=168)
