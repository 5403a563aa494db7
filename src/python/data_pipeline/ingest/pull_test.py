"""Ingestion over fakes: parts then checkpoint, resume after failures and across days,
exactly-once bronze."""

from __future__ import annotations

from typing import Any

import attrs
import orjson
import pytest
from etl_core.errors import DataError, ObjectStoreError, SourceError
from etl_core.raw_records import SOURCE_KEY, raw_record
from etl_core.runner import JobOutcome
from etl_core.testing.fakes import FakeObjectStore, FakeRecordSource, FakeRunHistory
from etl_core.testing.run_contexts import started_run

from data_pipeline.ingest.pull import (
    IngestOptions,
    IngestState,
    dump_state,
    ingest,
    load_pull_state,
    load_state,
    pending_day,
    read_from,
)

OPTIONS = IngestOptions(agency_id=7, day="2024-03-01", source_id="abc123", records_per_part=10)
RECORDS = [{"record_id": f"A007-{i:08d}", "agency_id": 7, "n": i} for i in range(45)]


async def _ingest(
    source: Any,
    store: FakeObjectStore,
    *,
    history: FakeRunHistory | None = None,
    run_id: str = "r1",
    options: IngestOptions = OPTIONS,
    dry_run: bool = False,
) -> JobOutcome:
    history = history if history is not None else FakeRunHistory()
    ctx = await started_run(history, "ingest_api", run_id=run_id, agency_id=7)
    ctx = attrs.evolve(ctx, dry_run=dry_run)  # recorded even in a dry run, as before
    return await ingest(ctx, source, store, options)


def _parts(store: FakeObjectStore) -> dict[str, bytes]:
    return {k: v for k, v in store.objects.items() if k.startswith("bronze/")}


def _bronze_records(store: FakeObjectStore) -> list[dict[str, Any]]:
    return [orjson.loads(line) for body in _parts(store).values() for line in body.splitlines()]


async def _state(store: FakeObjectStore) -> IngestState:
    return await load_state(store, OPTIONS.checkpoint_key)


async def test_a_full_pull_writes_whole_batches_per_part_then_a_complete_checkpoint() -> None:
    store = FakeObjectStore()
    outcome = await _ingest(FakeRecordSource(RECORDS, batch_size=4), store)

    assert list(_parts(store)) == [
        f"bronze/agency_id=7/dt=2024-03-01/part-abc123-{n:06d}.ndjson" for n in range(4)
    ]
    assert [len(body.splitlines()) for body in _parts(store).values()] == [12, 12, 12, 9]
    assert _bronze_records(store) == RECORDS
    assert await _state(store) == IngestState("45", 4, 45, True, "r1", day="2024-03-01")
    assert (outcome.counts.rows_in, outcome.counts.rows_out) == (45, 45)
    assert outcome.artifacts == tuple(_parts(store))


async def test_after_a_source_failure_the_next_run_resumes_and_every_record_lands_once() -> None:
    store = FakeObjectStore()
    failing = FakeRecordSource(RECORDS, batch_size=10, fail_after_batches=2)

    with pytest.raises(SourceError):
        await _ingest(failing, store)
    assert await _state(store) == IngestState("20", 2, 20, False, "r1", day="2024-03-01")

    source = FakeRecordSource(RECORDS, batch_size=10)
    outcome = await _ingest(source, store, run_id="r2")

    assert source.requests == [(7, "20")]
    assert _bronze_records(store) == RECORDS
    assert (outcome.counts.rows_in, outcome.counts.rows_out) == (25, 25)
    assert (await _state(store)).complete


async def test_a_crash_between_a_part_and_its_checkpoint_never_writes_the_part_twice() -> None:
    store = FakeObjectStore()
    store.fail_on["put"] = ObjectStoreError("killed before the checkpoint")

    with pytest.raises(ObjectStoreError):
        await _ingest(FakeRecordSource(RECORDS, batch_size=10), store)
    assert len(_parts(store)) == 1  # the part is durable, its checkpoint is not
    del store.fail_on["put"]

    outcome = await _ingest(FakeRecordSource(RECORDS, batch_size=10), store, run_id="r2")

    assert _bronze_records(store) == RECORDS
    assert len(_parts(store)) == 5
    assert (outcome.counts.rows_duplicate, outcome.counts.rows_out) == (10, 35)
    assert outcome.summary["parts already there (resumed)"] == 1


async def test_a_part_left_with_other_content_is_kept_and_the_batch_takes_the_next_number() -> None:
    store = FakeObjectStore()
    store.objects[OPTIONS.part_key(0)] = b'{"record_id":"stale page"}\n'

    await _ingest(FakeRecordSource(RECORDS, batch_size=10), store)

    assert store.objects[OPTIONS.part_key(0)] == b'{"record_id":"stale page"}\n'
    assert _bronze_records(store)[1:] == RECORDS
    assert (await _state(store)).next_part == 6


async def test_a_run_after_a_complete_pull_writes_nothing() -> None:
    store = FakeObjectStore()
    await _ingest(FakeRecordSource(RECORDS, batch_size=10), store)
    before = dict(store.objects)

    outcome = await _ingest(FakeRecordSource(RECORDS, batch_size=10), store, run_id="r2")

    assert store.objects == before
    assert outcome.counts.rows_in == 0
    assert outcome.summary["checkpoint"].endswith("(unchanged)")


async def test_records_appended_upstream_are_pulled_by_the_next_run() -> None:
    store = FakeObjectStore()
    await _ingest(FakeRecordSource(RECORDS[:30], batch_size=10), store)

    await _ingest(FakeRecordSource(RECORDS, batch_size=10), store, run_id="r2")

    assert _bronze_records(store) == RECORDS


async def test_raw_lines_are_written_verbatim_and_provenance_is_dropped() -> None:
    store = FakeObjectStore()
    records = [raw_record('{"record_id": "A007-1", trunc', "x:1"), {"a": 1, SOURCE_KEY: "x:2"}]

    await _ingest(FakeRecordSource(records), store)

    [body] = _parts(store).values()
    assert body == b'{"record_id": "A007-1", trunc\n{"a":1}\n'


async def test_every_part_gets_a_ledger_row_naming_its_cursor_range() -> None:
    history, store = FakeRunHistory(), FakeObjectStore()
    store.objects[OPTIONS.part_key(0)] = b"".join(orjson.dumps(r) + b"\n" for r in RECORDS[:20])

    await _ingest(FakeRecordSource(RECORDS, batch_size=20), store, history=history)

    rows = await history.partitions("r1")
    assert [(r.partition, r.status, r.input_fingerprint) for r in rows] == [
        ("agency_id=7/dt=2024-03-01/part-abc123-000000.ndjson", "skipped", "abc123:None..20"),
        ("agency_id=7/dt=2024-03-01/part-abc123-000001.ndjson", "published", "abc123:20..40"),
        ("agency_id=7/dt=2024-03-01/part-abc123-000002.ndjson", "published", "abc123:40..45"),
    ]
    assert [(r.counts.rows_out, r.counts.rows_duplicate) for r in rows] == [
        (0, 20),
        (20, 0),
        (5, 0),
    ]
    assert rows[1].artifacts == (OPTIONS.part_key(1),)


async def test_a_dry_run_reports_counts_and_records_no_ledger_row() -> None:
    dry = FakeRunHistory()
    outcome = await _ingest(FakeRecordSource(RECORDS), FakeObjectStore(), history=dry, dry_run=True)

    assert dry.ledger == []
    assert outcome.counts.rows_in == 45


def test_the_pending_day_is_the_unfinished_pulls() -> None:
    assert pending_day(IngestState("c", 1, 1, False, day="2024-03-02")) == "2024-03-02"
    assert pending_day(IngestState("c", 1, 1, True, day="2024-03-02")) is None
    assert pending_day(IngestState()) is None


async def test_a_store_of_per_day_checkpoints_goes_on_from_the_newest() -> None:
    store = FakeObjectStore()
    prefix = "_checkpoints/ingest_api/agency_id=7/source=abc123/"
    store.objects[prefix + "dt=2024-03-01.json"] = dump_state(IngestState("10", 1, 10, True))
    store.objects[prefix + "dt=2024-03-02.json"] = dump_state(IngestState("30", 3, 20, False))

    state = await load_pull_state(store, 7, "abc123")

    assert state == IngestState("30", 3, 20, False, day="2024-03-02")
    assert await load_pull_state(store, 7, "other") == IngestState()
    assert await load_pull_state(store, 8, "abc123") == IngestState()


def _day(day: str) -> IngestOptions:
    return attrs.evolve(OPTIONS, day=day)


async def test_the_next_day_pulls_only_what_is_new_into_its_own_dt() -> None:
    store = FakeObjectStore()
    await _ingest(FakeRecordSource(RECORDS[:30], batch_size=10), store)
    day_one = dict(_parts(store))

    source = FakeRecordSource(RECORDS, batch_size=10)
    outcome = await _ingest(source, store, run_id="r2", options=_day("2024-03-02"))

    assert source.requests == [(7, "30")]
    assert {k: v for k, v in _parts(store).items() if "dt=2024-03-01" in k} == day_one
    day_two = [k for k in _parts(store) if "dt=2024-03-02" in k]
    assert day_two == [_day("2024-03-02").part_key(n) for n in (3, 4)]
    assert _bronze_records(store) == RECORDS  # each record once, the new ones on the new day
    assert (outcome.counts.rows_in, outcome.counts.rows_out) == (15, 15)
    assert await _state(store) == IngestState("45", 5, 15, True, "r2", day="2024-03-02")


async def test_a_day_with_nothing_new_upstream_writes_nothing() -> None:
    store = FakeObjectStore()
    await _ingest(FakeRecordSource(RECORDS, batch_size=10), store)
    before = dict(store.objects)

    outcome = await _ingest(
        FakeRecordSource(RECORDS), store, run_id="r2", options=_day("2024-03-05")
    )

    assert store.objects == before
    assert outcome.counts.rows_in == 0


SINCE = attrs.evolve(OPTIONS, since_field="updated_at")


def _versioned(n: int, updated_at: str, **fields: Any) -> dict[str, Any]:
    return {"record_id": f"A007-{n:08d}", "agency_id": 7, "updated_at": updated_at, **fields}


async def test_since_mode_asks_from_the_high_water_mark_and_lands_no_line_twice() -> None:
    store = FakeObjectStore()
    old = [_versioned(n, f"2024-03-01T10:00:0{n}Z") for n in range(4)]
    # The newest line is a bad one (no occurred_at a date): at the boundary, so asked for again.
    bad = _versioned(9, "2024-03-01T10:00:09Z", occurred_at="not a date")
    await _ingest(FakeRecordSource([*old, bad]), store, options=SINCE)
    state = await _state(store)
    assert (state.high_water, state.cursor, state.complete) == ("2024-03-01T10:00:09Z", None, True)
    assert read_from(state, SINCE) == (None, "2024-03-01T10:00:09Z")

    # Upstream answers `updated_at >= high water`: the bad line again, and two changed records.
    changed = [_versioned(1, "2024-03-02T08:00:00Z", status="closed"),
               _versioned(2, "2024-03-02T08:00:00Z", status="open")]  # fmt: skip
    since = attrs.evolve(SINCE, day="2024-03-02")
    outcome = await _ingest(FakeRecordSource([bad, *changed]), store, run_id="r2", options=since)

    assert [r for r in _bronze_records(store) if r["record_id"] == bad["record_id"]] == [bad]
    day_two = [orjson.loads(line) for k, body in _parts(store).items() if "dt=2024-03-02" in k
               for line in body.splitlines()]  # fmt: skip
    assert day_two == changed
    assert (outcome.counts.rows_in, outcome.counts.rows_out, outcome.counts.rows_duplicate) == (
        3, 2, 1
    )  # fmt: skip
    assert outcome.summary["already landed (skipped)"] == 1
    state = await _state(store)
    assert (state.since, state.high_water, len(state.boundary)) == (
        "2024-03-01T10:00:09Z", "2024-03-02T08:00:00Z", 2
    )  # fmt: skip

    # The same day again, nothing changed since: the boundary lines come back and are skipped.
    before = dict(store.objects)
    again = await _ingest(FakeRecordSource(changed), store, run_id="r3", options=since)
    assert store.objects == before
    assert (again.counts.rows_in, again.counts.rows_duplicate) == (2, 2)


async def test_an_unreadable_checkpoint_is_a_data_error_naming_it() -> None:
    store = FakeObjectStore({OPTIONS.checkpoint_key: b'{"next_part": "x"}'})

    with pytest.raises(DataError, match="_checkpoints/ingest_api/agency_id=7/source=abc123/"):
        await _ingest(FakeRecordSource(RECORDS), store)
