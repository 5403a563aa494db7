"""Concurrent-commit contract of the real table adapters (fakes are sequential): subclass
ConcurrentTablesContract and provide `store` and `open_on`.

```python
class TestMyTablesConcurrency(ConcurrentTablesContract):
    @pytest.fixture()
    def open_on(self, tmp_path: Path) -> OpenTables:  # a new adapter instance per call
        return lambda store: open_my_tables(tmp_path, store)
```
Each test lets two merges (or writes) load their snapshot before either commits (HeldPuts), so
the second commit is always made from a stale snapshot: exactly the case a lost race produces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from etl_core.errors import ExitCode, TableConflict
from etl_core.ports import ObjectStore, SilverTables
from etl_core.store_views import DelegatingObjectStore
from etl_core.testing.table_rows import (
    at,
    day,
    dead_letter,
    dead_letters,
    expect,
    keyed,
    silver,
    silver_row,
    sorted_rows,
)

OpenTables = Callable[[ObjectStore], SilverTables]


@attrs.define
class HeldPuts(DelegatingObjectStore):
    """An ObjectStore whose first `barrier.parties` puts each wait until all of them arrived."""

    barrier: asyncio.Barrier
    arrived: int = 0

    async def put(self, key: str, body: bytes) -> None:
        await self.store.put(key, body)
        if self.arrived < self.barrier.parties:
            self.arrived += 1
            await asyncio.wait_for(self.barrier.wait(), timeout=60)


async def _race(*calls: Any) -> list[Any]:
    return list(await asyncio.gather(*calls, return_exceptions=True))


class ConcurrentTablesContract:
    """Commits of different agencies never conflict; commits of one agency do, retryably."""

    async def test_merges_of_two_agencies_from_stale_snapshots_both_land(
        self, store: ObjectStore, open_on: OpenTables
    ) -> None:
        tables = open_on(store)
        for agency in (1, 2):
            await tables.silver.merge(agency, 1, silver(silver_row("k", agency_id=agency)))
        held = HeldPuts(store, asyncio.Barrier(2))
        newer = {
            agency: [
                silver_row("k", agency_id=agency, on=day(1), updated_at=at(9)),
                silver_row(f"new-{agency}", agency_id=agency),
            ]  # fmt: skip
            for agency in (1, 2)
        }

        results = await _race(
            *(open_on(held).silver.merge(a, 2, silver(*rows)) for a, rows in newer.items())
        )

        assert [r.updated for r in results] == [{day(1): 1}] * 2, results  # both replaced a row
        assert keyed(await tables.silver.read()) == expect(*newer[1], *newer[2])
        assert (await tables.silver.version(1), await tables.silver.version(2)) == (2, 2)

    @pytest.mark.parametrize("newer", [False, True], ids=["inserts", "replacing-rows"])
    async def test_merges_of_one_agency_from_stale_snapshots_let_exactly_one_land(
        self, store: ObjectStore, open_on: OpenTables, newer: bool
    ) -> None:
        tables = open_on(store)
        await tables.silver.merge(1, 1, silver(silver_row("k")))
        held = HeldPuts(store, asyncio.Barrier(2))
        updated_at = at(9) if newer else at(0)
        attempts = [
            [silver_row("k", updated_at=updated_at), silver_row(f"run-{n}")] for n in (1, 2)
        ]

        results = await _race(*(open_on(held).silver.merge(1, 2, silver(*r)) for r in attempts))

        lost = [r for r in results if isinstance(r, TableConflict)]
        assert len(lost) == 1, results
        winner = attempts[1 - results.index(lost[0])]
        assert keyed(await tables.silver.read(1)) == expect(*winner)
        assert lost[0].exit_code == ExitCode.TEMPORARY  # the run is retried

    async def test_dead_letter_rewrites_of_two_agencies_from_stale_snapshots_both_land(
        self, store: ObjectStore, open_on: OpenTables
    ) -> None:
        tables = open_on(store)
        for agency in (1, 2):
            await tables.deadletter.write(agency, 1, dead_letters(dead_letter(1, agency_id=agency)))
        held = HeldPuts(store, asyncio.Barrier(2))
        rerun = {agency: dead_letter(2, agency_id=agency, run_id="run-2") for agency in (1, 2)}

        results = await _race(
            open_on(held).deadletter.write(1, 1, dead_letters(rerun[1])),  # same fold again
            open_on(held).deadletter.write(2, 2, dead_letters(rerun[2]), replace=True),
        )

        assert results == [1, 1]
        assert sorted_rows(await tables.deadletter.read()) == [rerun[1], rerun[2]]
        assert (await tables.deadletter.version(1), await tables.deadletter.version(2)) == (1, 2)
