"""Reusable SilverTable + DeadLetterTable contract suite: subclass TableContract, provide fixtures.

```python
class TestMyTables(TableContract):
    @pytest.fixture()
    def tables(self, tmp_path: Path) -> SilverTables:          # fresh, empty tables
        return open_my_tables(tmp_path)

    @pytest.fixture()
    def dry_run_tables(self, tmp_path: Path) -> SilverTables:  # dry runs over the same storage
        return open_my_tables(tmp_path, dry_run=True)
```
Every test starts from empty tables; agencies 1 and 2 share record_ids on purpose (keys are per
agency). Rows come from etl_core.testing.table_rows.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from etl_core.errors import TableError
from etl_core.ports import SilverTables
from etl_core.testing.conformance import assert_implements
from etl_core.testing.table_rows import (
    DAY,
    DEAD_LETTER_SCHEMA,
    SILVER_SCHEMA,
    Row,
    at,
    day,
    dead_letter,
    dead_letters,
    expect,
    keyed,
    old_dead_letters,
    silver,
    silver_row,
    sorted_rows,
)


class TableContract:
    """Behaviour every SilverTable and DeadLetterTable (adapter and fake) must show."""

    async def test_implements_the_ports(self, tables: SilverTables) -> None:
        assert_implements(tables, SilverTables)  # and its silver and deadletter tables

    async def test_before_any_commit_versions_are_0_and_there_is_no_table(
        self, tables: SilverTables
    ) -> None:
        assert await tables.silver.version(1) == await tables.deadletter.version(1) == 0
        assert await tables.silver.read() is None
        assert await tables.silver.read(1) is None
        assert await tables.deadletter.read() is None

    # -- silver merge -----------------------------------------------------------------------------

    async def test_a_first_merge_inserts_every_row_and_records_the_version(
        self, tables: SilverTables
    ) -> None:
        rows = [silver_row("A001-1"), silver_row("A001-2", on=day(1), amount=None, tags=[])]
        rows.append(silver_row("A001-3", officer_first=None, officer_badge=None))

        outcome = await tables.silver.merge(1, 1, silver(*rows))

        assert (outcome.inserted, outcome.updated, outcome.older) == ({DAY: 2, day(1): 1}, {}, {})
        assert await tables.silver.version(1) == 1
        stored = await tables.silver.read(1)
        assert stored is not None
        assert stored.column_names == SILVER_SCHEMA.names
        assert keyed(stored) == expect(*rows)

    async def test_a_newer_updated_at_replaces_the_stored_row(self, tables: SilverTables) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("k", status="open")))
        newer = silver_row("k", updated_at=at(1), status="closed", _run_id="run-2")

        outcome = await tables.silver.merge(1, 2, silver(newer))

        assert (outcome.inserted, outcome.updated, outcome.older) == ({}, {DAY: 1}, {})
        assert keyed(await tables.silver.read(1)) == expect(newer)

    @pytest.mark.parametrize(
        "incoming",
        [
            pytest.param({"updated_at": at(-1), "source": "z/later.ndjson", "line": 9}, id="older"),
            pytest.param({}, id="equal"),
            pytest.param({"source": "agency_id=1/dt=2024-01-07/x.ndjson"}, id="earlier-source"),
            pytest.param({"source": "agency_id=1/dt=2024-01-08/part-0.ndjson", "line": 0},
                         id="same-source-earlier-line"),  # fmt: skip
        ],
    )
    async def test_an_older_or_equal_version_changes_nothing_and_counts_as_older(
        self, tables: SilverTables, incoming: dict[str, Any]
    ) -> None:
        stored = silver_row("k", status="open")
        await tables.silver.merge(1, 1, silver(stored))

        outcome = await tables.silver.merge(1, 2, silver(silver_row("k", status="x", **incoming)))

        assert (outcome.inserted, outcome.updated, outcome.older) == ({}, {}, {DAY: 1})
        assert keyed(await tables.silver.read(1)) == expect(stored)
        assert await tables.silver.version(1) == 2

    @pytest.mark.parametrize(
        "incoming",
        [
            pytest.param({"source": "agency_id=1/dt=2024-01-09/part-0.ndjson", "line": 1},
                         id="later-source-wins-over-line"),  # fmt: skip
            pytest.param({"source": "agency_id=1/dt=2024-01-08/part-0.ndjson", "line": 6},
                         id="same-source-later-line"),  # fmt: skip
        ],
    )
    async def test_a_tie_on_updated_at_goes_to_the_later_source_then_the_later_line(
        self, tables: SilverTables, incoming: dict[str, Any]
    ) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("k", line=5, status="open")))
        winner = silver_row("k", status="closed", **incoming)

        outcome = await tables.silver.merge(1, 2, silver(winner))

        assert outcome.updated == {DAY: 1}
        assert keyed(await tables.silver.read(1)) == expect(winner)

    async def test_a_newer_version_moves_the_row_to_its_own_dt(self, tables: SilverTables) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("k"), silver_row("stays")))
        moved = silver_row("k", on=day(2), updated_at=at(60))

        outcome = await tables.silver.merge(1, 2, silver(moved))

        assert outcome.updated == {day(2): 1}
        stored = keyed(await tables.silver.read(1))
        assert stored == expect(moved, silver_row("stays"))
        assert stored[(1, "k")]["dt"] == day(2)

    async def test_keys_stay_unique_per_agency_after_every_merge(
        self, tables: SilverTables
    ) -> None:
        rng = random.Random(7)  # noqa: S311 (a seeded test sequence, not a secret)
        model: dict[str, Row] = {}
        for version in range(1, 6):
            rows = [
                silver_row(
                    key,
                    on=day(rng.randrange(3)),
                    updated_at=at(rng.randrange(3)),
                    source=f"s{rng.randrange(2)}",
                    line=rng.randrange(1, 3),
                )  # fmt: skip
                for key in rng.sample([f"k{i}" for i in range(10)], 6)
            ]
            won = [r for r in rows if r["record_id"] not in model or _newer(r, model)]
            model |= {r["record_id"]: r for r in won}

            outcome = await tables.silver.merge(1, version, silver(*rows))

            assert outcome.total(outcome.older) == len(rows) - len(won)
            assert keyed(await tables.silver.read(1)) == expect(*model.values())

    async def test_merge_outcome_counts_rows_by_the_dt_of_the_incoming_rows(
        self, tables: SilverTables
    ) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("a"), silver_row("b"), silver_row("c")))
        incoming = silver(
            silver_row("a", on=day(1), updated_at=at(5)),  # updated, moves to day 1
            silver_row("b", on=day(2), updated_at=at(-5)),  # older
            silver_row("c", on=day(2), source=silver_row("c")["_source"]),  # equal: older
            silver_row("d", on=day(1)),  # new
            silver_row("e", on=day(2)),  # new
        )

        outcome = await tables.silver.merge(1, 2, incoming)

        assert outcome.inserted == {day(1): 1, day(2): 1}
        assert outcome.updated == {day(1): 1}
        assert outcome.older == {day(2): 2}

    async def test_replace_leaves_exactly_the_given_rows_of_the_agency(
        self, tables: SilverTables
    ) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("a", updated_at=at(9)), silver_row("b")))
        await tables.silver.merge(2, 1, silver(silver_row("a", agency_id=2)))
        rebuilt = [silver_row("a", on=day(1)), silver_row("c")]  # older "a" than stored: kept

        await tables.silver.merge(1, 2, silver(*rebuilt), replace=True)

        assert keyed(await tables.silver.read(1)) == expect(*rebuilt)
        assert keyed(await tables.silver.read(2)) == expect(silver_row("a", agency_id=2))
        assert (await tables.silver.version(1), await tables.silver.version(2)) == (2, 1)

    async def test_replace_with_no_rows_empties_the_agency(self, tables: SilverTables) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("a"), silver_row("b", on=day(1))))

        await tables.silver.merge(1, 2, silver(), replace=True)

        assert keyed(await tables.silver.read(1)) == {}
        assert await tables.silver.version(1) == 2

    async def test_an_empty_merge_still_records_the_version(self, tables: SilverTables) -> None:
        outcome = await tables.silver.merge(1, 1, silver())
        assert await tables.silver.version(1) == 1
        assert (outcome.inserted, outcome.updated, outcome.older) == ({}, {}, {})
        assert keyed(await tables.silver.read(1)) == {}
        assert await tables.silver.read(1) is not None  # the table exists, the agency is empty

        await tables.silver.merge(1, 2, silver(silver_row("a")))
        await tables.silver.merge(1, 3, silver())

        assert await tables.silver.version(1) == 3
        assert keyed(await tables.silver.read(1)) == expect(silver_row("a"))

    async def test_a_merge_of_one_agency_never_touches_another_agencys_rows(
        self, tables: SilverTables
    ) -> None:
        first = [silver_row("same", agency_id=1), silver_row("only-1", agency_id=1)]
        await tables.silver.merge(1, 7, silver(*first))

        await tables.silver.merge(2, 1, silver(silver_row("same", agency_id=2, updated_at=at(-9))))
        newer = silver_row("same", agency_id=2, on=day(1), updated_at=at(9))
        outcome = await tables.silver.merge(2, 2, silver(newer))

        assert outcome.updated == {day(1): 1}
        assert keyed(await tables.silver.read(1)) == expect(*first)
        assert keyed(await tables.silver.read(2)) == expect(newer)
        assert keyed(await tables.silver.read()) == expect(*first, newer)
        assert (await tables.silver.version(1), await tables.silver.version(2)) == (7, 2)
        assert await tables.silver.version(3) == 0

    async def test_rows_of_another_agency_or_repeated_keys_are_refused(
        self, tables: SilverTables
    ) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("a")))
        with pytest.raises(TableError):
            await tables.silver.merge(1, 2, silver(silver_row("b"), silver_row("c", agency_id=2)))
        with pytest.raises(TableError):
            await tables.silver.merge(1, 2, silver(silver_row("b"), silver_row("b", line=2)))

        assert await tables.silver.version(1) == 1
        assert keyed(await tables.silver.read()) == expect(silver_row("a"))

    # -- dead letters -----------------------------------------------------------------------------

    async def test_dead_letters_read_back_as_written_and_record_the_version(
        self, tables: SilverTables
    ) -> None:
        rows = [dead_letter(3), dead_letter(1, on=day(1), detail=None, reason="invalid_json")]

        assert await tables.deadletter.write(1, 1, dead_letters(*rows)) == 2

        assert await tables.deadletter.version(1) == 1
        stored = await tables.deadletter.read(1)
        assert stored is not None
        assert stored.column_names == DEAD_LETTER_SCHEMA.names
        assert sorted_rows(stored) == sorted_rows(dead_letters(*rows))

    async def test_writing_the_same_version_again_replaces_the_earlier_attempt(
        self, tables: SilverTables
    ) -> None:
        await tables.deadletter.write(1, 1, dead_letters(dead_letter(1), dead_letter(2)))
        attempt = [dead_letter(1, run_id="run-2"), dead_letter(2, on=day(1), run_id="run-2")]
        await tables.deadletter.write(1, 2, dead_letters(*attempt))

        rerun = [dead_letter(1, run_id="run-3"), dead_letter(2, on=day(1), run_id="run-3")]
        assert await tables.deadletter.write(1, 2, dead_letters(*rerun)) == 2

        expected = dead_letters(dead_letter(1), dead_letter(2), *rerun)
        assert sorted_rows(await tables.deadletter.read(1)) == sorted_rows(expected)
        assert await tables.deadletter.version(1) == 2

    async def test_dead_letter_replace_drops_every_earlier_row_of_the_agency_only(
        self, tables: SilverTables
    ) -> None:
        await tables.deadletter.write(1, 1, dead_letters(dead_letter(1)))
        await tables.deadletter.write(1, 2, dead_letters(dead_letter(2, on=day(1))))
        other = dead_letter(1, agency_id=2)
        await tables.deadletter.write(2, 1, dead_letters(other))

        await tables.deadletter.write(1, 3, dead_letters(dead_letter(5)), replace=True)

        assert sorted_rows(await tables.deadletter.read(1)) == [dead_letter(5)]
        assert sorted_rows(await tables.deadletter.read(2)) == [other]
        assert sorted_rows(await tables.deadletter.read()) == [dead_letter(5), other]

    async def test_an_earlier_fold_reads_back_as_it_left_the_agency(
        self, tables: SilverTables
    ) -> None:
        await tables.deadletter.write(1, 1, dead_letters(dead_letter(1)))
        await tables.deadletter.write(1, 2, dead_letters(dead_letter(2, on=day(1))))
        await tables.deadletter.write(2, 1, dead_letters(dead_letter(7, agency_id=2)))
        await tables.deadletter.write(1, 3, dead_letters(dead_letter(5)), replace=True)
        await tables.deadletter.write(2, 2, dead_letters(), replace=True)

        assert sorted_rows(await tables.deadletter.read_fold(1, 3)) == [dead_letter(5)]
        assert sorted_rows(await tables.deadletter.read_fold(1, 2)) == sorted_rows(
            dead_letters(dead_letter(1), dead_letter(2, on=day(1)))
        )
        assert sorted_rows(await tables.deadletter.read_fold(1, 1)) == [dead_letter(1)]
        assert sorted_rows(await tables.deadletter.read_fold(2, 1)) == [dead_letter(7, agency_id=2)]
        assert sorted_rows(await tables.deadletter.read_fold(3, 0)) == []
        with pytest.raises(TableError, match="no fold 4"):
            await tables.deadletter.read_fold(1, 4)

    async def test_an_empty_dead_letter_write_still_records_the_version(
        self, tables: SilverTables
    ) -> None:
        await tables.deadletter.write(1, 1, dead_letters(dead_letter(1)))

        assert await tables.deadletter.write(1, 2, dead_letters()) == 0

        assert await tables.deadletter.version(1) == 2
        assert sorted_rows(await tables.deadletter.read(1)) == [dead_letter(1)]
        assert (await tables.deadletter.version(2), await tables.silver.version(1)) == (0, 0)

    async def test_a_table_created_before_raw_bytes_gains_it_and_older_rows_read_null(
        self, tables: SilverTables
    ) -> None:
        await tables.deadletter.write(1, 1, old_dead_letters(dead_letter(1)))
        exact = dead_letter(2, reason="invalid_json", raw="{\ufffd", raw_bytes=b"{\xff")

        assert await tables.deadletter.write(1, 2, dead_letters(exact)) == 1
        # A run of the older release writing after the upgrade: its rows read null there too.
        await tables.deadletter.write(2, 1, old_dead_letters(dead_letter(3, agency_id=2)))

        stored = await tables.deadletter.read()
        assert stored is not None
        assert stored.column_names == DEAD_LETTER_SCHEMA.names
        assert sorted_rows(stored) == [dead_letter(1), exact, dead_letter(3, agency_id=2)]
        assert await tables.deadletter.version(1) == 2

    async def test_dead_letters_of_another_agency_are_refused(self, tables: SilverTables) -> None:
        with pytest.raises(TableError):
            await tables.deadletter.write(1, 1, dead_letters(dead_letter(1, agency_id=2)))
        assert await tables.deadletter.version(1) == 0

    # -- dry runs ---------------------------------------------------------------------------------

    async def test_dry_runs_on_new_tables_report_what_they_would_do_and_create_nothing(
        self, tables: SilverTables, dry_run_tables: SilverTables
    ) -> None:
        outcome = await dry_run_tables.silver.merge(1, 1, silver(silver_row("a")))
        written = await dry_run_tables.deadletter.write(1, 1, dead_letters(dead_letter(1)))

        assert (outcome.inserted, written) == ({DAY: 1}, 1)
        assert await tables.silver.read() is None
        assert await tables.deadletter.read() is None
        assert await tables.silver.version(1) == await tables.deadletter.version(1) == 0

    async def test_a_dry_run_over_committed_tables_changes_nothing(
        self, tables: SilverTables, dry_run_tables: SilverTables
    ) -> None:
        await tables.silver.merge(1, 1, silver(silver_row("a"), silver_row("b")))
        await tables.deadletter.write(1, 1, dead_letters(dead_letter(1)))
        newer = silver(silver_row("a", updated_at=at(1)), silver_row("b"), silver_row("c"))

        outcome = await dry_run_tables.silver.merge(1, 2, newer)
        await dry_run_tables.silver.merge(1, 3, silver(), replace=True)
        await dry_run_tables.deadletter.write(1, 1, dead_letters(), replace=True)

        assert (outcome.inserted, outcome.updated, outcome.older) == ({DAY: 1}, {DAY: 1}, {DAY: 1})
        assert keyed(await tables.silver.read()) == expect(silver_row("a"), silver_row("b"))
        assert sorted_rows(await tables.deadletter.read()) == [dead_letter(1)]
        assert await tables.silver.version(1) == await tables.deadletter.version(1) == 1


def _newer(row: Row, model: dict[str, Row]) -> bool:
    stored = model[row["record_id"]]
    order = ("updated_at", "_source", "_line")
    return tuple(row[k] for k in order) > tuple(stored[k] for k in order)
