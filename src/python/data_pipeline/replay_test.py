"""Tests of replay over fakes: rows land once, replays are idempotent, later runs keep them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from typing import Any

import orjson
import pytest
from etl_core.errors import ConfigError, LeaseHeld
from etl_core.model import Counts, RunRecord, RunStatus
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory

from data_pipeline import transform
from data_pipeline.agencies import parse_agencies
from data_pipeline.bronze_to_silver import PromoteOptions, promote
from data_pipeline.corrections import Correction, corrections_body, line_key, load_corrections
from data_pipeline.dedupe import Deduper
from data_pipeline.publish import PartitionPublisher
from data_pipeline.replay import ReplayOptions, replay
from data_pipeline.replay_select import DeadRow, current_dead_letters
from data_pipeline.transform import transform_file
from data_pipeline.validate import Rejected, validate_line
from data_pipeline.workload import WorkloadOptions, iter_workload_files

# Agency 1: dt 2024-01-08, -09, -10, with dead letters of every kind.
WORKLOAD = WorkloadOptions(records=600, files=6, agencies=2, bad_rate=0.1, dup_rate=0.2, seed=3)
PARTITIONS = tuple(f"agency_id=1/dt=2024-01-{d}" for d in ("08", "09", "10"))
FIXED_AT = "2024-01-08T12:00:00-08:00"


class World:
    def __init__(self) -> None:
        self.bronze = FakeObjectStore(dict(iter_workload_files(WORKLOAD)))
        self.store = FakeObjectStore()
        self.history = FakeRunHistory()

    async def context(self, run_id: str, job: str, *, dry_run: bool = False) -> RunContext:
        now = dt.datetime.now(dt.UTC)
        if not dry_run:
            await self.history.start_run(RunRecord(run_id, job, RunStatus.RUNNING, now, 1))
        return RunContext(
            run_id=run_id,
            job=job,
            agency_id=1,
            dry_run=dry_run,
            settings=CommonSettings(agency_id=1),
            history=self.history,
            log=logging.getLogger("test"),
            leases=None if dry_run else self.history,
        )

    async def promote(self, run_id: str, **options: Any) -> JobOutcome:
        ctx = await self.context(run_id, "bronze_to_silver")
        return await promote(
            ctx, self.store, self.bronze, PromoteOptions(agency_id=1, workers=1, **options)
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
            agency_id=1, source_run=source_run, corrections=tuple(corrections), workers=1
        )
        return await replay(ctx, self.store, self.bronze, options)

    async def dead(self) -> list[DeadRow]:
        return list((await current_dead_letters(self.store, 1)).rows)

    async def silver(self) -> dict[str, list[bytes]]:
        """partition -> its visible silver lines; record_ids unique across the agency."""
        publisher, seen, views = PartitionPublisher(self.store), set(), {}
        for partition in PARTITIONS:
            files = await publisher.read_files(partition)
            lines = [
                line
                for key, body in sorted(files.items())
                if key.startswith("silver/")
                for line in body.splitlines()
            ]
            for line in lines:
                record_id = json.loads(line)["record_id"]
                assert record_id not in seen, f"{record_id} twice in silver"
                seen.add(record_id)
            views[partition] = lines
        return views

    def expected(self, fixes: dict[tuple[str, str], str]) -> dict[str, list[bytes]]:
        """What a clean run over the corrected bronze publishes: (source, raw) -> corrected."""
        agencies = parse_agencies(self.bronze.objects["agencies.csv"])
        deduper = Deduper()
        for key, body in sorted(self.bronze.objects.items()):
            if key.startswith("bronze/agency_id=1/"):
                source = key.removeprefix("bronze/")
                lines = [
                    fixes.get((source, line.decode()), line.decode()).encode()
                    for line in body.split(b"\n")
                ]
                deduper.add(transform_file(key, b"\n".join(lines), agencies))
        return {f"agency_id=1/dt={day}": rows for (_, day), rows in deduper.partitions().items()}


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
async def world() -> World:
    world = World()
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
    assert sorted((r.source, r.raw, r.reason) for r in after) == sorted(
        (r.source, r.raw, r.reason) for r in remaining
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


async def test_every_generation_stays_balanced_and_counts_the_same_input(world: World) -> None:
    corrections = fixable(await world.dead())

    await world.replay("r2", corrections)

    rows_in = 0
    for partition in PARTITIONS:
        manifest = await PartitionPublisher(world.store).current(partition)
        assert manifest is not None
        assert manifest.counts.balanced
        rows_in += manifest.counts.rows_in
    assert rows_in == 300


async def test_a_second_replay_of_the_same_rows_writes_nothing(world: World) -> None:
    corrections = fixable(await world.dead())
    await world.replay("r2", corrections)
    before = dict(world.store.objects)

    outcome = await world.replay("r3", corrections)

    assert world.store.objects == before
    assert outcome.summary["partitions"] == "nothing written: every selected row fails as it did"
    assert outcome.summary["corrections"].endswith("nothing new to store")
    assert outcome.counts.rows_in == outcome.counts.rows_dead_letter == len(await world.dead())


async def test_later_bronze_to_silver_runs_neither_undo_nor_duplicate_replayed_rows(
    world: World,
) -> None:
    before = await world.dead()
    corrections = fixable(before)
    await world.replay("r2", corrections)
    replayed = await world.silver()
    objects = dict(world.store.objects)

    fast = await world.promote("r3")
    assert fast.summary["outcome"].startswith("up to date")
    assert world.store.objects == objects

    await world.promote("r4", reprocess=True)
    assert await world.silver() == replayed

    extra = b'{"record_id": "A001-99999999", "agency_id": 1, "record_type": "incident", '
    extra += b'"occurred_at": 1704740000, "updated_at": "2024-01-09T00:00:00Z", '
    extra += b'"status": "open", "location": {"lat": "34", "lon": "-118"}}\n'
    world.bronze.objects["bronze/agency_id=1/dt=2024-01-09/part-7.ndjson"] = extra
    outcome = await world.promote("r5")
    assert await world.silver() == world.expected(applied(corrections, before))
    assert outcome.counts.rows_in == 301
    assert outcome.counts.balanced


async def test_rows_still_failing_stay_with_their_new_reason_and_text(world: World) -> None:
    [row, *_] = [r for r in await world.dead() if r.reason == "lat_out_of_range"]
    still_bad = fix(row, amount="1,2,3x")
    half = fix(row, lat="45.5", amount="not a number")

    await world.replay("r2", [still_bad])
    [shown] = [r for r in await world.dead() if r.raw == still_bad.corrected]
    assert (shown.reason, shown.run_id) == ("lat_out_of_range", "r2")
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
    before = dict(world.store.objects)
    line = world.bronze.objects["bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"].split(b"\n")[0]
    valid = Correction("agency_id=1/dt=2024-01-08/part-0.ndjson", line_key(line.decode()), "{}")

    with pytest.raises(ConfigError, match="1 correction"):
        await world.replay("r2", [valid])

    assert world.store.objects == before


async def test_a_replay_of_an_agency_never_published_has_nothing_to_do() -> None:
    world = World()

    outcome = await world.replay("r1", [])

    assert outcome.counts == Counts()
    assert world.store.objects == {}


async def test_a_dry_run_replay_reports_counts_and_writes_nothing(world: World) -> None:
    before, ledger = dict(world.store.objects), list(world.history.ledger)
    corrections = fixable(await world.dead())

    outcome = await world.replay("r2", corrections, dry_run=True)

    assert world.store.objects == before
    assert world.history.ledger == ledger
    assert outcome.counts.rows_out + outcome.counts.rows_duplicate == len(corrections)


async def test_a_held_lease_refuses_the_replay(world: World) -> None:
    lease = "bronze_to_silver/agency=1"
    await world.history.acquire(lease, "someone-else", dt.timedelta(minutes=5))
    before = dict(world.store.objects)

    with pytest.raises(LeaseHeld):
        await world.replay("r2", fixable(await world.dead()))

    assert world.store.objects == before


def _record_line(record_id: str, updated_at: str, lat: str) -> bytes:
    return orjson.dumps({
        "record_id": record_id, "agency_id": 1, "record_type": "incident",
        "occurred_at": 1704800000, "updated_at": updated_at, "status": "closed",
        "location": {"lat": lat, "lon": "-118"},
    })  # fmt: skip


@pytest.mark.parametrize(
    ("updated_at", "out", "duplicate"),
    [("2030-01-01T00:00:00Z", 1, 0), ("2000-01-01T00:00:00Z", 0, 1)],
)
async def test_a_replayed_version_of_a_record_in_another_partition_follows_the_dedupe_rule(
    updated_at: str, out: int, duplicate: int
) -> None:
    world = World()
    record_id = json.loads(world.expected({})[PARTITIONS[0]][0])["record_id"]
    late = "bronze/agency_id=1/dt=2024-01-10/part-0.ndjson"
    bad = _record_line(record_id, updated_at, "95")
    world.bronze.objects[late] += bad + b"\n"
    await world.promote("r1")
    [row] = [r for r in await world.dead() if r.raw == bad.decode()]
    publisher = PartitionPublisher(world.store)
    old = await publisher.current(PARTITIONS[0])

    outcome = await world.replay("r2", [fix(row, lat="45")])

    counts = outcome.counts
    assert (counts.rows_out, counts.rows_duplicate) == (out, duplicate)
    silver = await world.silver()
    where = [p for p, lines in silver.items() for x in lines if record_id in x.decode()]
    assert where == [PARTITIONS[2] if out else PARTITIONS[0]]
    new = await publisher.current(PARTITIONS[0])
    assert old is not None
    assert new is not None
    # The displaced survivor is now a duplicate of its partition; its input is unchanged.
    assert new.counts.rows_out == old.counts.rows_out - out
    assert new.counts.rows_duplicate == old.counts.rows_duplicate + out
    assert new.counts.balanced
    assert await world.silver() == world.expected(
        {(row.source, row.raw): fix(row, lat="45").corrected}
    )


@pytest.mark.parametrize(("position", "won"), [("after", True), ("before", False)])
async def test_a_corrected_copy_of_a_valid_line_is_ranked_by_the_dedupe_order(
    position: str, won: bool
) -> None:
    world = World()
    key = "bronze/agency_id=1/dt=2024-01-09/part-0.ndjson"
    lines = world.bronze.objects[key].split(b"\n")
    survivors = set(world.expected({})[PARTITIONS[1]])
    agencies = parse_agencies(world.bronze.objects["agencies.csv"])
    result = transform_file(key, world.bronze.objects[key], agencies)
    good = lines[next(r.line_no for r in result.valid_rows if r.silver in survivors) - 1]
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


async def test_a_transform_fix_without_a_version_bump_republishes_the_agency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    validate = validate_line

    def strict(line: bytes, *args: Any) -> Any:
        return Rejected("bad_status", "") if b'"open' in line.lower() else validate(line, *args)

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
    world.store.objects["corrections/agency_id=1/000001-killed.ndjson"] = corrections_body(
        corrections, "killed"
    )

    outcome = await world.replay("r2", corrections)

    assert outcome.summary["corrections"].endswith("nothing new to store")
    assert outcome.counts.rows_out + outcome.counts.rows_duplicate == len(corrections)
    assert await world.silver() == world.expected(applied(corrections, before))
