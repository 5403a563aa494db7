"""The TableMaintenance contract: every adapter and the fake must pass it.

A subclass provides a `world` fixture: the port under test plus a way to commit small files to a
partition as the table's writers do.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from etl_core.model import TablePartition
from etl_core.ports import TableMaintenance

D1, D2 = dt.date(2024, 1, 8), dt.date(2024, 1, 9)
LARGE = 1 << 30  # a target size every test partition fits in


class MaintenanceWorld(Protocol):
    @property
    def maintenance(self) -> TableMaintenance:
        ...

    async def write(self, agency_id: int, day: dt.date, files: int, *, fold: int = 1) -> None:
        """Commit `files` new small files (distinct keys) to the partition, as fold `fold`."""
        ...


def _paths(partition: TablePartition) -> set[str]:
    return {f.path for f in partition.files}


async def _partitions(world: MaintenanceWorld) -> dict[tuple[int, dt.date], TablePartition]:
    layout = await world.maintenance.layout()
    assert layout is not None
    return {(p.agency_id, p.day): p for p in layout.partitions}


class TableMaintenanceContract:
    """Subclasses define the fixture `world` (a MaintenanceWorld)."""

    async def test_before_the_first_commit_there_is_no_layout_and_nothing_to_vacuum(
        self, world: MaintenanceWorld
    ) -> None:
        assert await world.maintenance.layout() is None
        assert await world.maintenance.fold_version(1) == 0
        assert await world.maintenance.vacuum(0, full=False, dry_run=False) == ()

    async def test_layout_lists_each_partition_s_files_and_filters_by_agency(
        self, world: MaintenanceWorld
    ) -> None:
        await world.write(1, D1, 3)
        await world.write(1, D2, 1)
        await world.write(2, D1, 2)

        layout = await world.maintenance.layout()
        mine = await world.maintenance.layout(2)

        assert layout is not None
        assert [(p.agency_id, p.day, len(p.files)) for p in layout.partitions] == [
            (1, D1, 3),
            (1, D2, 1),
            (2, D1, 2),
        ]
        assert all(f.size > 0 for p in layout.partitions for f in p.files)
        assert mine is not None
        assert [(p.agency_id, p.day) for p in mine.partitions] == [(2, D1)]
        assert mine.version == layout.version

    async def test_sorted_compaction_rewrites_the_chosen_partitions_of_one_agency_only(
        self, world: MaintenanceWorld
    ) -> None:
        await world.write(1, D1, 3)
        await world.write(1, D2, 2)
        await world.write(2, D1, 2)
        before = await _partitions(world)

        done = await world.maintenance.compact(1, [D1], target_size=LARGE, sort_by="record_id")

        after = await _partitions(world)
        assert {f.path for f in done.removed} == _paths(before[(1, D1)])
        assert len(done.added) == 1
        assert _paths(after[(1, D1)]) == {f.path for f in done.added}
        assert after[(1, D2)] == before[(1, D2)]
        assert after[(2, D1)] == before[(2, D1)]
        assert done.version is not None
        assert done.attempts == 1

    async def test_plain_compaction_combines_small_files_and_leaves_a_lone_one(
        self, world: MaintenanceWorld
    ) -> None:
        await world.write(1, D1, 1)
        await world.write(1, D2, 3)
        before = await _partitions(world)

        lone = await world.maintenance.compact(1, [D1], target_size=LARGE, sort_by=None)
        combined = await world.maintenance.compact(1, [D2], target_size=LARGE, sort_by=None)

        after = await _partitions(world)
        assert (lone.added, lone.removed, lone.version) == ((), (), None)
        assert after[(1, D1)] == before[(1, D1)]
        assert {f.path for f in combined.removed} == _paths(before[(1, D2)])
        assert _paths(after[(1, D2)]) == {f.path for f in combined.added}
        assert len(combined.added) == 1

    async def test_compacting_no_partition_commits_nothing(self, world: MaintenanceWorld) -> None:
        await world.write(1, D1, 2)
        before = await world.maintenance.layout()

        done = await world.maintenance.compact(1, [], target_size=LARGE, sort_by="record_id")

        assert (done.added, done.removed, done.version) == ((), (), None)
        assert await world.maintenance.layout() == before

    async def test_fold_version_is_the_agency_s_own(self, world: MaintenanceWorld) -> None:
        await world.write(1, D1, 1, fold=3)
        await world.write(2, D1, 1, fold=1)

        assert await world.maintenance.fold_version(1) == 3
        assert await world.maintenance.fold_version(2) == 1
        assert await world.maintenance.fold_version(9) == 0

    async def test_checkpoint_is_of_the_newest_version_and_idempotent(
        self, world: MaintenanceWorld
    ) -> None:
        await world.write(1, D1, 2)
        layout = await world.maintenance.layout()
        assert layout is not None

        assert await world.maintenance.checkpoint() == layout.version
        assert await world.maintenance.checkpoint() == layout.version
        assert await world.maintenance.layout() == layout

    async def test_vacuum_deletes_only_files_removed_longer_ago_than_the_retention(
        self, world: MaintenanceWorld
    ) -> None:
        await world.write(1, D1, 3)
        done = await world.maintenance.compact(1, [D1], target_size=LARGE, sort_by="record_id")
        removed = tuple(sorted(f.path for f in done.removed))

        recent = await world.maintenance.vacuum(1, full=False, dry_run=False)
        listed = await world.maintenance.vacuum(0, full=False, dry_run=True)
        deleted = await world.maintenance.vacuum(0, full=False, dry_run=False)
        again = await world.maintenance.vacuum(0, full=False, dry_run=False)

        assert recent == ()
        assert listed == removed
        assert deleted == removed
        assert again == ()
        partitions = await _partitions(world)
        assert _paths(partitions[(1, D1)]) == {f.path for f in done.added}
