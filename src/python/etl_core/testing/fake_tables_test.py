"""The table contract against the fakes, and the fakes' own knobs (state, dry run, failures)."""

from __future__ import annotations

import pytest

from etl_core.errors import TableConflict
from etl_core.ports import SilverTables
from etl_core.testing.fakes import FakeDeadLetterTable, FakeSilverTable, FakeTables
from etl_core.testing.table_contract import TableContract
from etl_core.testing.table_rows import DAY, at, day, dead_letter, dead_letters, silver, silver_row


class TestFakeTables(TableContract):
    @pytest.fixture()
    def tables(self) -> FakeTables:
        return FakeTables()

    @pytest.fixture()
    def dry_run_tables(self, tables: FakeTables) -> SilverTables:
        return tables.dry_run()


async def test_fake_silver_state_holds_rows_by_agency_and_record_id() -> None:
    table = FakeSilverTable()
    await table.merge(1, 1, silver(silver_row("a"), silver_row("b", on=day(1))))
    await table.merge(1, 2, silver(silver_row("a", updated_at=at(1), status="closed")))

    assert table.versions == {1: 2}
    assert set(table.rows[1]) == {"a", "b"}
    assert table.rows[1]["a"]["status"] == "closed"
    assert table.rows[1]["b"]["dt"] == day(1)


async def test_fake_dead_letter_state_holds_rows_by_agency_and_fold_version() -> None:
    table = FakeDeadLetterTable()
    await table.write(1, 1, dead_letters(dead_letter(1)))
    await table.write(1, 2, dead_letters(dead_letter(2), dead_letter(3)))

    assert table.versions == {1: 2}
    assert {version: len(rows) for version, rows in table.rows[1].items()} == {1: 1, 2: 2}
    assert table.rows[1][1][0]["dt"] == DAY


async def test_fake_tables_raise_injected_failures_until_removed() -> None:
    tables = FakeTables()
    tables.silver.fail_on["merge"] = TableConflict("agency 1 lost")
    tables.deadletter.fail_on["write"] = TableConflict("agency 1 lost")

    with pytest.raises(TableConflict, match="lost"):
        await tables.silver.merge(1, 1, silver(silver_row("a")))
    with pytest.raises(TableConflict, match="lost"):
        await tables.deadletter.write(1, 1, dead_letters(dead_letter(1)))
    assert await tables.silver.read() is None

    tables.silver.fail_on.clear()
    await tables.silver.merge(1, 1, silver(silver_row("a")))
    assert tables.silver.versions == {1: 1}


async def test_a_dry_run_fake_can_be_switched_on_in_place() -> None:
    tables = FakeTables()
    tables.silver.dry_run = tables.deadletter.dry_run = True

    outcome = await tables.silver.merge(1, 1, silver(silver_row("a")))
    await tables.deadletter.write(1, 1, dead_letters(dead_letter(1)))

    assert outcome.inserted == {DAY: 1}
    assert (tables.silver.rows, tables.deadletter.rows) == ({}, {})
    assert await tables.silver.read(1) is None


async def test_rows_that_are_not_an_arrow_table_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="pyarrow.Table"):
        await FakeSilverTable().merge(1, 1, [silver_row("a")])
    with pytest.raises(TypeError, match="pyarrow.Table"):
        await FakeDeadLetterTable().write(1, 1, [dead_letter(1)])
