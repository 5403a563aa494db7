"""Tests of replay: rows land once, replays are idempotent, later runs keep them.

Bronze and the run history are fakes; the tables are the real Delta adapters on a temporary
directory, with the store (corrections, fold ledgers, replay notes) on the same directory.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import attrs
import orjson
import pytest
from etl_core.adapters.delta_tables import Tables, open_tables
from etl_core.adapters.local_object_store import LocalObjectStore
from etl_core.errors import ConfigError, LeaseHeld, TableError
from etl_core.model import Counts, RunStatus
from etl_core.runner import JobOutcome, RunContext
from etl_core.testing.fakes import FakeRunHistory
from etl_core.testing.run_contexts import started_run

import data_pipeline.replay.run as replay_module
from data_pipeline.bronze_to_silver.corrections import (
    Correction,
    corrections_body,
    line_key,
    load_corrections,
)
from data_pipeline.bronze_to_silver.run import PromoteOptions, promote
from data_pipeline.replay.run import ReplayOptions, replay
from data_pipeline.replay.select import DeadRow, current_dead_letters
from data_pipeline.replay.track import note_key
from data_pipeline.silver import file_transform as transform
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.arrow import silver_batch
from data_pipeline.silver.dedupe import Deduper
from data_pipeline.silver.file_transform import transform_file
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.validate import Rejected, validate_line
from data_pipeline.workload.bronze_store import workload_bronze
from data_pipeline.workload.generate import WorkloadOptions

# Agency 1: dt 2024-01-08, -09, -10, with dead letters of every kind.
WORKLOAD = WorkloadOptions(records=600, files=6, agencies=2, bad_rate=0.1, dup_rate=0.2, seed=3)
DAYS = (dt.date(2024, 1, 8), dt.date(2024, 1, 9), dt.date(2024, 1, 10))
PARTITIONS = tuple(f"agency_id=1/dt={day}" for day in DAYS)
FIXED_AT = "2024-01-08T12:00:00-08:00"

Row = dict[str, Any]


class World:
    def __init__(self, root: Path) -> None:
        self.bronze = workload_bronze(WORKLOAD)
        self.root = root / "store"
        self.store = LocalObjectStore(self.root, durable=False)
        self.history = FakeRunHistory()

    def tables(self, run_id: str = "test", *, dry_run: bool = False) -> Tables:
        return open_tables(
            str(self.root), self.store, {}, dry_run=dry_run, run_id=run_id, rows_per_file=40
        )

    async def context(self, run_id: str, job: str, *, dry_run: bool = False) -> RunContext:
        return await started_run(
            self.history, job, run_id=run_id, agency_id=1, dry_run=dry_run, leased=True
        )

    async def promote(self, run_id: str, **options: Any) -> JobOutcome:
        ctx = await self.context(run_id, "bronze_to_silver")
        return await promote(
            ctx,
            self.store,
            self.bronze,
            self.tables(run_id),
            PromoteOptions(workers=1, **options),
        )

    async def replay(
        self,
        run_id: str,
        corrections: Iterable[Correction] = (),
        *,
        source_run: str | None = None,
        dry_run: bool = False,
    ) -> JobOutcome:
        ctx = await self.context(run_id, "replay_dead_letters", dry_run=dry_run)
        options = ReplayOptions(
            agency_id=1,
            source_run=source_run,
            corrections=tuple(corrections),
            promote=PromoteOptions(workers=1),
        )
        tables = self.tables(run_id, dry_run=dry_run)
        outcome = await replay(ctx, self.store, self.bronze, tables, options)
        if not dry_run:  # as the runner records a run that returned
            await self.history.finish_run(
                run_id,
                status=RunStatus.SUCCEEDED,
                finished_at=dt.datetime.now(dt.UTC),
                counts=outcome.counts,
            )
        return outcome

    async def dead(self) -> list[DeadRow]:
        tables = self.tables()
        return list(await current_dead_letters(tables, 1, await tables.silver.version(1)))

    async def silver_table(self) -> list[Row]:
        """Silver rows of agency 1 by record_id, lineage included; record_ids unique."""
        table = await self.tables().silver.read(1)
        rows = [] if table is None else table.to_pylist()
        ids = [row["record_id"] for row in rows]
        assert len(ids) == len(set(ids)), "a record_id twice in silver"
        return sorted(rows, key=lambda row: str(row["record_id"]))

    async def silver(self) -> list[Row]:
        """Silver rows without the run that wrote them."""
        return [_without_run(row) for row in await self.silver_table()]

    def snapshot(self) -> dict[str, int]:
        """Every file of the store (tables, ledgers, corrections, notes) -> mtime_ns."""
        files = self.root.rglob("*") if self.root.exists() else ()
        return {p.relative_to(self.root).as_posix(): p.stat().st_mtime_ns for p in files}

    def reference(self, fixes: dict[tuple[str, str], str]) -> tuple[Deduper, list[tuple[Any, ...]]]:
        """A clean run over the corrected bronze ((source, raw) -> corrected): its Deduper and
        its dead letters as (reason, source, line, raw)."""
        agencies = parse_agencies(self.bronze.objects["agencies.csv"])
        deduper, dead = Deduper(), []
        for key, body in sorted(self.bronze.objects.items()):
            if key.startswith("bronze/agency_id=1/"):
                source = key.removeprefix("bronze/")
                lines = [
                    fixes.get((source, line.decode()), line.decode()).encode()
                    for line in body.split(b"\n")
                ]
                result = transform_file(key, b"\n".join(lines), agencies)
                deduper.add(result)
                dead += [(d.reason, d.source, d.line, d.raw) for d in result.dead_letters]
        return deduper, sorted(dead)

    def expected(self, fixes: dict[tuple[str, str], str]) -> list[Row]:
        """The silver rows a clean run over the corrected bronze commits."""
        survivors = list(self.reference(fixes)[0].survivors())
        batch = silver_batch(
            [s.silver for s in survivors],
            [s.source for s in survivors],
            [s.line for s in survivors],
            "",
        )
        rows = [_without_run(row) for row in batch.to_pylist()]
        return sorted(rows, key=lambda row: str(row["record_id"]))


def _without_run(row: Row) -> Row:
    return {name: value for name, value in row.items() if name != "_run_id"}


def fix(row: DeadRow, **changes: Any) -> Correction:
    """A correction of a dead-letter row: its JSON with fields replaced."""
    record = json.loads(row.raw)
    for name, value in changes.items():
        if name in ("lat", "lon"):
            record["location"][name] = value
        else:
            record[name] = value
    return Correction(row.source, line_key(row.raw), json.dumps(record))


def fixable(rows: Iterable[DeadRow]) -> list[Correction]:
    """Corrections that make every bad_occurred_at and lat_out_of_range row valid."""
    fixes = []
    for row in rows:
        if row.reason == "bad_occurred_at":
            fixes.append(fix(row, occurred_at=FIXED_AT))
        elif row.reason == "lat_out_of_range":
            fixes.append(fix(row, lat="45.5"))
    return fixes


def applied(
    corrections: Iterable[Correction], rows: Iterable[DeadRow]
) -> dict[tuple[str, str], str]:
    by_key = {(c.source, c.raw_sha256): c.corrected for c in corrections}
    return {
        (row.source, row.raw): by_key[(row.source, line_key(row.raw))]
        for row in rows
        if (row.source, line_key(row.raw)) in by_key
    }


@pytest.fixture()
async def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    await world.promote("r1")
    return world


async def test_corrected_rows_land_in_silver_exactly_once_and_leave_dead_letter(
    world: World,
) -> None:
    before = await world.dead()
    corrections = fixable(before)
    assert len(corrections) >= 3

    outcome = await world.replay("r2", corrections)

    assert await world.silver() == world.expected(applied(corrections, before))
    after = await world.dead()
    fixed = {(c.source, c.raw_sha256) for c in corrections}
    remaining = [r for r in before if (r.source, line_key(r.raw)) not in fixed]
    assert sorted((r.source, r.line, r.raw, r.reason) for r in after) == sorted(
        (r.source, r.line, r.raw, r.reason) for r in remaining
    )
    counts = outcome.counts
    assert (counts.rows_in, counts.rows_dead_letter) == (len(before), len(after))
    assert counts.rows_out + counts.rows_duplicate == len(corrections)
    assert counts.balanced
    ledger = await world.history.partitions("r2")
    assert [row.partition for row in ledger] == list(PARTITIONS)
    assert all(row.counts.balanced for row in ledger)
    assert sum((row.counts for row in ledger), start=Counts()) == counts
    stored = await load_corrections(world.store, 1)
    assert stored.keys == ("corrections/agency_id=1/000001-r2.ndjson",)


async def test_the_tables_equal_a_clean_run_over_the_corrected_input_and_reconcile(
    world: World,
) -> None:
    before = await world.dead()
    corrections = fixable(before)

    await world.replay("r2", corrections)

    deduper, dead = world.reference(applied(corrections, before))
    silver = await world.silver()
    after = sorted((r.reason, r.source, r.line, r.raw) for r in await world.dead())
    assert after == dead
    assert len(silver) + deduper.counts.rows_duplicate + len(after) == 300
    assert deduper.counts.balanced


async def test_replayed_rows_carry_the_replays_run_and_its_note_names_each_line(
    world: World,
) -> None:
    before = await world.dead()
    corrections = fixable(before)

    outcome = await world.replay("r2", corrections)

    key = note_key(1, "r2")
    assert key in outcome.artifacts
    noted = [orjson.loads(line) for line in (await world.store.get(key)).splitlines()]
    assert len(noted) == len(before)
    assert {(n["source"], n["line"]) for n in noted} == {(r.source, r.line) for r in before}
    silver = {(row["_source"], row["_line"]): row for row in await world.silver_table()}
    landed = [n for n in noted if n["outcome"] == "silver"]
    assert len(landed) == outcome.counts.rows_out > 0
    for n in landed:
        row = silver[(n["source"], n["line"])]
        assert (row["record_id"], row["_run_id"], n["run_id"]) == (n["record_id"], "r2", "r2")
    assert all(n["outcome"] != "dead_letter" or n["reason"] for n in noted)
    with_rows = {n["partition"] for n in noted}
    for record in await world.history.partitions("r2"):
        assert record.artifacts == ((key,) if record.partition in with_rows else ())


async def test_a_second_replay_of_the_same_rows_writes_nothing(world: World) -> None:
    corrections = fixable(await world.dead())
    await world.replay("r2", corrections)
    before = world.snapshot()

    outcome = await world.replay("r3", corrections)

    assert world.snapshot() == before
    assert outcome.summary["partitions"] == "nothing written: every selected row fails as it did"
    assert outcome.summary["corrections"].endswith("nothing new to store")
    assert outcome.counts.rows_in == outcome.counts.rows_dead_letter == len(await world.dead())
    assert outcome.artifacts == ()


async def test_later_bronze_to_silver_runs_neither_undo_nor_duplicate_replayed_rows(
    world: World,
) -> None:
    before = await world.dead()
    corrections = fixable(before)
    await world.replay("r2", corrections)
    replayed, dead = await world.silver(), await world.dead()
    files = world.snapshot()

    fast = await world.promote("r3")
    assert fast.summary["outcome"].startswith("up to date")
    assert world.snapshot() == files

    await world.promote("r4", reprocess=True)
    assert await world.silver() == replayed
    assert [(r.source, r.line, r.raw) for r in await world.dead()] == [
        (r.source, r.line, r.raw) for r in dead
    ]

    extra = b'{"record_id": "A001-99999999", "agency_id": 1, "record_type": "incident", '
    extra += b'"occurred_at": 1704740000, "updated_at": "2024-01-09T00:00:00Z", '
    extra += b'"status": "open", "location": {"lat": "34", "lon": "-118"}}\n'
    world.bronze.objects["bronze/agency_id=1/dt=2024-01-09/part-7.ndjson"] = extra
    outcome = await world.promote("r5")
    assert await world.silver() == world.expected(applied(corrections, before))
    assert (outcome.counts.rows_in, outcome.counts.rows_out) == (1, 1)
    assert outcome.counts.balanced


async def test_a_replay_leaves_bronze_no_run_folded_in_to_the_next_bronze_to_silver_run(
    world: World,
) -> None:
    before = await world.dead()
    corrections = fixable(before)
    extra = b'{"record_id": "A001-99999999", "agency_id": 1, "record_type": "incident", '
    extra += b'"occurred_at": 1704740000, "updated_at": "2024-01-09T00:00:00Z", '
    extra += b'"status": "open", "location": {"lat": "34", "lon": "-118"}}\n'
    world.bronze.objects["bronze/agency_id=1/dt=2024-01-09/part-7.ndjson"] = extra

    await world.replay("r2", corrections)

    assert "A001-99999999" not in {row["record_id"] for row in await world.silver()}
    later = await world.promote("r3")
    assert (later.counts.rows_in, later.counts.rows_out) == (1, 1)
    assert await world.silver() == world.expected(applied(corrections, before))


async def test_rows_still_failing_stay_with_their_new_reason_and_text(world: World) -> None:
    [row, *_] = [r for r in await world.dead() if r.reason == "lat_out_of_range"]
    still_bad = fix(row, amount="1,2,3x")
    half = fix(row, lat="45.5", amount="not a number")

    await world.replay("r2", [still_bad])
    [shown] = [r for r in await world.dead() if r.raw == still_bad.corrected]
    assert (shown.reason, shown.run_id, shown.line) == ("lat_out_of_range", "r2", row.line)
    second = await world.replay("r3", [Correction(row.source, line_key(still_bad.corrected),
                                                  half.corrected)])  # fmt: skip

    [shown] = [r for r in await world.dead() if r.source == row.source and "45.5" in r.raw]
    assert (shown.reason, shown.raw, shown.run_id) == ("bad_amount", half.corrected, "r3")
    assert second.counts.rows_dead_letter == second.counts.rows_in
    stored = await load_corrections(world.store, 1)
    assert stored.fixes == {row.source: {line_key(row.raw): half.corrected}}


async def test_source_run_selects_only_the_rows_that_run_wrote(world: World) -> None:
    outcome = await world.replay("r2", source_run="r1")
    assert outcome.counts.rows_in == len(await world.dead())

    nothing = await world.replay("r3", source_run="r2")
    assert nothing.counts == Counts()
    with pytest.raises(ConfigError, match="--source-run nope"):
        await world.replay("r4", source_run="nope")


async def test_corrections_that_match_no_selected_row_are_refused_and_nothing_is_written(
    world: World,
) -> None:
    before = world.snapshot()
    line = world.bronze.objects["bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"].split(b"\n")[0]
    valid = Correction("agency_id=1/dt=2024-01-08/part-0.ndjson", line_key(line.decode()), "{}")

    with pytest.raises(ConfigError, match="1 correction"):
        await world.replay("r2", [valid])

    assert world.snapshot() == before


async def test_a_replay_of_an_agency_never_published_has_nothing_to_do(tmp_path: Path) -> None:
    world = World(tmp_path)

    outcome = await world.replay("r1", [])

    assert outcome.counts == Counts()
    assert world.snapshot() == {}


async def test_a_dry_run_replay_reports_counts_and_writes_nothing(world: World) -> None:
    before, ledger = world.snapshot(), list(world.history.ledger)
    corrections = fixable(await world.dead())

    outcome = await world.replay("r2", corrections, dry_run=True)

    assert world.snapshot() == before
    assert world.history.ledger == ledger
    assert outcome.counts.rows_out + outcome.counts.rows_duplicate == len(corrections)
    assert outcome.artifacts == ()


async def test_a_held_lease_refuses_the_replay(world: World) -> None:
    lease = "bronze_to_silver/agency=1"
    await world.history.acquire(lease, "someone-else", dt.timedelta(minutes=5))
    before = world.snapshot()

    with pytest.raises(LeaseHeld):
        await world.replay("r2", fixable(await world.dead()))

    assert world.snapshot() == before


def _record_line(record_id: str, updated_at: str, lat: str) -> bytes:
    return orjson.dumps({
        "record_id": record_id, "agency_id": 1, "record_type": "incident",
        "occurred_at": 1704800000, "updated_at": updated_at, "status": "closed",
        "location": {"lat": lat, "lon": "-118"},
    })  # fmt: skip


def _per_day(rows: Iterable[Row]) -> collections.Counter[dt.date]:
    return collections.Counter(row["dt"] for row in rows)


@pytest.mark.parametrize(
    ("updated_at", "out", "duplicate"),
    [("2030-01-01T00:00:00Z", 1, 0), ("2000-01-01T00:00:00Z", 0, 1)],
)
async def test_a_replayed_version_of_a_record_in_another_partition_follows_the_dedupe_rule(
    tmp_path: Path, updated_at: str, out: int, duplicate: int
) -> None:
    world = World(tmp_path)
    record_id = next(r["record_id"] for r in world.expected({}) if r["dt"] == DAYS[0])
    late = "bronze/agency_id=1/dt=2024-01-10/part-0.ndjson"
    bad = _record_line(record_id, updated_at, "95")
    world.bronze.objects[late] += bad + b"\n"
    await world.promote("r1")
    [row] = [r for r in await world.dead() if r.raw == bad.decode()]
    old = _per_day(await world.silver())

    outcome = await world.replay("r2", [fix(row, lat="45")])

    counts = outcome.counts
    assert (counts.rows_out, counts.rows_duplicate) == (out, duplicate)
    silver = await world.silver()
    [where] = [r["dt"] for r in silver if r["record_id"] == record_id]
    assert where == (DAYS[2] if out else DAYS[0])
    # The displaced survivor leaves its partition; the replayed version lands in its own.
    new = _per_day(silver)
    assert (new[DAYS[0]], new[DAYS[2]]) == (old[DAYS[0]] - out, old[DAYS[2]] + out)
    assert silver == world.expected({(row.source, row.raw): fix(row, lat="45").corrected})


@pytest.mark.parametrize(("position", "won"), [("after", True), ("before", False)])
async def test_a_corrected_copy_of_a_valid_line_is_ranked_by_the_dedupe_order(
    tmp_path: Path, position: str, won: bool
) -> None:
    world = World(tmp_path)
    key = "bronze/agency_id=1/dt=2024-01-09/part-0.ndjson"
    lines = world.bronze.objects[key].split(b"\n")
    survivors = {(s.source, s.line) for s in world.reference({})[0].survivors()}
    agencies = parse_agencies(world.bronze.objects["agencies.csv"])
    result = transform_file(key, world.bronze.objects[key], agencies)
    source = key.removeprefix("bronze/")
    good = lines[next(r.line_no for r in result.valid_rows if (source, r.line_no) in survivors) - 1]
    record = json.loads(good)
    record["location"]["lat"] = "123"
    bad = json.dumps(record).encode()
    lines = [*lines[:-1], bad, b""] if position == "after" else [bad, *lines]
    world.bronze.objects[key] = b"\n".join(lines)
    await world.promote("r1")
    [row] = [r for r in await world.dead() if r.raw == bad.decode()]

    outcome = await world.replay("r2", [Correction(row.source, line_key(row.raw), good.decode())])

    assert (outcome.counts.rows_out, outcome.counts.rows_duplicate) == (int(won), int(not won))
    assert await world.silver() == world.expected({(row.source, row.raw): good.decode()})


async def test_a_transform_fix_without_a_version_bump_rebuilds_the_agency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path)
    validate = validate_line

    def strict(line: bytes, *args: Any) -> Any:
        return (
            Rejected(DeadLetterReason.BAD_STATUS, "")
            if b'"open' in line.lower()
            else validate(line, *args)
        )

    monkeypatch.setattr(transform, "validate_line", strict)
    await world.promote("r1")
    monkeypatch.setattr(transform, "validate_line", validate)  # the fix, same TRANSFORM_VERSION
    before = await world.dead()
    assert [r for r in before if r.reason == "bad_status"]

    outcome = await world.replay("r2")

    assert await world.silver() == world.expected({})
    after = await world.dead()
    assert not [r for r in after if r.reason == "bad_status"]
    assert outcome.counts.rows_in == len(before)
    assert outcome.counts.rows_dead_letter == len(after)
    again = await world.replay("r3")
    assert again.summary["partitions"].startswith("nothing written")


async def test_a_replay_cut_short_after_storing_its_corrections_is_finished_by_the_next(
    world: World,
) -> None:
    before = await world.dead()
    corrections = fixable(before)
    # What a replay killed between storing the corrections and publishing leaves behind.
    await world.store.put(
        "corrections/agency_id=1/000001-killed.ndjson", corrections_body(corrections, "killed")
    )

    outcome = await world.replay("r2", corrections)

    assert outcome.summary["corrections"].endswith("nothing new to store")
    assert outcome.counts.rows_out + outcome.counts.rows_duplicate == len(corrections)
    assert await world.silver() == world.expected(applied(corrections, before))


class _SilverCommitFails:
    """A silver table whose merge fails, as a run killed between the dead-letter table's
    commit and silver's leaves the tables."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        raise TableError("cut short before silver's commit")


async def _twins(tmp_path: Path) -> tuple[World, World]:
    """Two worlds with the same agency promoted: one replays cleanly, the other is cut short."""
    clean, cut = World(tmp_path / "clean"), World(tmp_path / "cut")
    await clean.promote("r1")
    await cut.promote("r1")
    return clean, cut


async def _assert_ends_as_clean(
    cut: World, outcome: JobOutcome, clean: World, expected: JobOutcome
) -> None:
    """The re-run's outcome and the tables equal the clean replay's (run ids aside)."""
    assert outcome.counts == expected.counts
    assert outcome.summary["replayed"] == expected.summary["replayed"]
    assert await cut.silver() == await clean.silver()
    assert [attrs.evolve(r, run_id="") for r in await cut.dead()] == [
        attrs.evolve(r, run_id="") for r in await clean.dead()
    ]


async def test_a_replay_cut_short_between_the_two_commits_ends_as_a_clean_replay(
    tmp_path: Path,
) -> None:
    clean, cut = await _twins(tmp_path)
    before = await cut.dead()
    corrections = fixable(before)
    expected = await clean.replay("r2", corrections)
    ctx = await cut.context("r2", "replay_dead_letters")
    tables = cut.tables("r2")
    broken = attrs.evolve(tables, silver=cast(Any, _SilverCommitFails(tables.silver)))
    options = ReplayOptions(
        agency_id=1, corrections=tuple(corrections), promote=PromoteOptions(workers=1)
    )

    with pytest.raises(TableError, match="cut short"):
        await replay(ctx, cut.store, cut.bronze, broken, options)

    assert await tables.deadletter.version(1) > await tables.silver.version(1)
    assert await cut.dead() == before  # the rows silver agrees with, not the newer fold's
    outcome = await cut.replay("r3", corrections)
    await _assert_ends_as_clean(cut, outcome, clean, expected)


async def test_a_replay_that_died_after_its_commits_is_accounted_for_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean, cut = await _twins(tmp_path)
    corrections = fixable(await cut.dead())
    expected = await clean.replay("r2", corrections)

    def died(*_: object) -> str:
        raise RuntimeError("died before recording")

    with monkeypatch.context() as patched:  # the pass committed; the note and history did not
        patched.setattr(replay_module, "note_key", died)
        with pytest.raises(RuntimeError, match="died before recording"):
            await cut.replay("r2", corrections)
    assert await cut.silver() == await clean.silver()

    outcome = await cut.replay("r3", corrections)

    await _assert_ends_as_clean(cut, outcome, clean, expected)
    assert (await cut.replay("r4")).summary["partitions"].startswith("nothing written")


async def test_a_file_level_dead_letter_is_reported_not_replayed_and_other_rows_still_are(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    broken = "bronze/agency_id=1/dt=2024-01-11/part-0.ndjson.gz"
    world.bronze.objects[broken] = gzip.compress(b'{"record_id": "A001-1"}\n', mtime=0)[:-9]
    await world.promote("r1")
    rows = await world.dead()
    assert [(r.line, r.raw) for r in rows if r.reason == "unreadable_file"] == [(None, "")]

    outcome = await world.replay("p1", fixable(rows))

    assert outcome.summary["unreadable files"].startswith("1 not replayed (no lines)")
    assert outcome.counts.rows_in == len(rows) - 1
    assert outcome.counts.balanced
    assert outcome.counts.rows_out > 0
    after = await world.dead()
    assert [(r.source, r.run_id) for r in after if r.reason == "unreadable_file"] == [
        (broken.removeprefix("bronze/"), "p1")
    ]


async def test_a_line_that_is_not_utf8_keeps_its_exact_bytes_through_a_replay(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    line = b'{"record_id": "A001-\xff\xfe", "agency_id": 1}'
    world.bronze.objects["bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"] += line + b"\n"
    await world.promote("r1")
    rows = await world.dead()
    [before] = [r for r in rows if r.raw_bytes == line]

    await world.replay("p1", fixable(rows))

    [after] = [r for r in await world.dead() if r.raw_bytes == line]
    shown = line.decode("utf-8", "replace")
    assert (before.reason, before.raw, before.run_id) == ("invalid_json", shown, "r1")
    assert (after.reason, after.line, after.run_id) == ("invalid_json", before.line, "p1")
