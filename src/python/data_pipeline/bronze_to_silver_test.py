"""Tests of bronze -> silver over fakes: accounting, idempotency, ranges, dead letters, dry runs."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import attrs
import orjson
import pytest
from etl_core.errors import DataError, ObjectNotFound, ObjectStoreError
from etl_core.model import RunRecord, RunStatus
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory

from data_pipeline.agencies import parse_agencies
from data_pipeline.bronze_to_silver import PromoteOptions, promote
from data_pipeline.dedupe import Deduper
from data_pipeline.publish import PartitionPublisher
from data_pipeline.transform import transform_file
from data_pipeline.workload import WorkloadOptions, iter_workload_files

# Agency 1 gets files 0, 2, 4: dt 2024-01-08, -09, -10.
WORKLOAD = WorkloadOptions(records=600, files=6, agencies=2, bad_rate=0.1, dup_rate=0.2, seed=3)
DAYS = ("2024-01-08", "2024-01-09", "2024-01-10")
PARTITIONS = tuple(f"agency_id=1/dt={day}" for day in DAYS)


def _bronze() -> FakeObjectStore:
    return FakeObjectStore({key: body for key, body in iter_workload_files(WORKLOAD)})


async def _context(run_id: str, history: FakeRunHistory, *, dry_run: bool = False) -> RunContext:
    now = dt.datetime.now(dt.UTC)
    await history.start_run(RunRecord(run_id, "bronze_to_silver", RunStatus.RUNNING, now, 1))
    return RunContext(
        run_id=run_id,
        job="bronze_to_silver",
        agency_id=1,
        dry_run=dry_run,
        settings=CommonSettings(agency_id=1),
        history=history,
        log=logging.getLogger("test"),
    )


async def _promote(
    run_id: str,
    store: FakeObjectStore,
    bronze: FakeObjectStore,
    history: FakeRunHistory | None = None,
    *,
    dry_run: bool = False,
    **options: Any,
) -> JobOutcome:
    ctx = await _context(run_id, history or FakeRunHistory(), dry_run=dry_run)
    return await promote(ctx, store, bronze, PromoteOptions(agency_id=1, workers=1, **options))


def _expected(bronze: FakeObjectStore) -> Deduper:
    """The Deduper over every bronze file of agency 1: what silver must hold."""
    agencies = parse_agencies(bronze.objects["agencies.csv"])
    deduper = Deduper()
    for key, body in sorted(bronze.objects.items()):
        if key.startswith("bronze/agency_id=1/"):
            deduper.add(transform_file(key, body, agencies))
    return deduper


async def _visible(store: FakeObjectStore, partition: str, kind: str = "silver") -> list[bytes]:
    files = await PartitionPublisher(store).read_files(partition)
    return [
        line
        for key, body in sorted(files.items())
        if key.startswith(f"{kind}/")
        for line in body.splitlines()
    ]


async def test_first_run_publishes_every_partition_with_what_dedupe_keeps() -> None:
    store, bronze = FakeObjectStore(), _bronze()

    outcome = await _promote("r1", store, bronze)

    expected = _expected(bronze)
    for (_, day), rows in expected.partitions().items():
        assert await _visible(store, f"agency_id=1/dt={day}") == rows
    assert outcome.counts == attrs.evolve(expected.counts, bytes_out=outcome.counts.bytes_out)
    assert outcome.counts.rows_duplicate > 0
    assert outcome.counts.rows_dead_letter > 0
    assert outcome.summary["outcome"] == "3 published of 3 partitions"
    assert sorted(outcome.artifacts) == [f"_manifests/{p}/0000000001.json" for p in PARTITIONS]


async def test_every_partition_is_recorded_balanced_with_the_input_fingerprint() -> None:
    store, bronze, history = FakeObjectStore(), _bronze(), FakeRunHistory()

    outcome = await _promote("r1", store, bronze, history)

    rows = await history.partitions("r1")
    assert [row.partition for row in rows] == list(PARTITIONS)
    manifests = [await PartitionPublisher(store).current(p) for p in PARTITIONS]
    for row, manifest in zip(rows, manifests, strict=True):
        assert manifest is not None
        assert row.status == "published"
        assert row.counts.balanced
        assert row.input_fingerprint == manifest.input_fingerprint
        assert row.counts.rows_out == manifest.counts.rows_out
        assert set(manifest.files) < set(row.artifacts)
    assert sum((row.counts for row in rows), start=type(outcome.counts)()) == outcome.counts


async def test_dead_letter_rows_carry_exactly_reason_source_raw_and_run_id() -> None:
    store, bronze = FakeObjectStore(), _bronze()

    await _promote("r1", store, bronze)

    rows = [json.loads(line) for p in PARTITIONS for line in await _visible(store, p, "deadletter")]
    assert rows
    for row in rows:
        assert list(row) == ["reason", "source", "raw", "run_id"]
        assert row["run_id"] == "r1"
        assert row["source"].startswith("agency_id=1/dt=")
        assert row["raw"] in bronze.objects[f"bronze/{row['source']}"].decode()


async def test_rerun_over_unchanged_input_reads_no_body_and_writes_nothing() -> None:
    store, bronze, history = FakeObjectStore(), _bronze(), FakeRunHistory()
    await _promote("r1", store, bronze, history)
    before = dict(store.objects)
    bronze.fail_on["get"] = ObjectStoreError("bodies must not be read")
    store.fail_on["put"] = store.fail_on["put_if_absent"] = ObjectStoreError("no writes")

    outcome = await _promote("r2", store, bronze, history)

    assert store.objects == before
    assert outcome.summary["outcome"].startswith("up to date: 3 partitions")
    assert outcome.counts.rows_in == 0
    assert [row.status for row in await history.partitions("r2")] == ["unchanged"] * 3


async def test_identical_output_from_a_new_input_writes_only_restamped_manifests() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    await _promote("r1", store, bronze)
    key = "bronze/agency_id=1/dt=2024-01-09/part-0.ndjson"
    bronze.objects[key] += b"\n   \n"  # blank lines: new etag, same rows

    outcome = await _promote("r2", store, bronze)

    assert outcome.summary["outcome"] == "3 unchanged of 3 partitions"
    assert not [k for k in store.objects if "r2" in k and not k.startswith("_manifests/")]
    third = await _promote("r3", store, bronze)
    assert third.summary["outcome"].startswith("up to date")


async def test_reprocess_commits_new_generations_and_removes_the_old_files() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    await _promote("r1", store, bronze)

    outcome = await _promote("r2", store, bronze, reprocess=True)

    assert outcome.summary["outcome"] == "3 published of 3 partitions"
    data = [k for k in store.objects if not k.startswith("_manifests/")]
    assert data
    assert all("part-r2" in k for k in data)
    for partition in PARTITIONS:
        manifest = await PartitionPublisher(store).current(partition)
        assert manifest is not None
        assert (manifest.seq, manifest.run_id) == (2, "r2")


async def test_changed_input_republishes_only_the_partitions_whose_content_changed() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    await _promote("r1", store, bronze)
    key = "bronze/agency_id=1/dt=2024-01-10/part-0.ndjson"
    bronze.objects[key] += b"not json\n"

    outcome = await _promote("r2", store, bronze)

    assert outcome.summary["outcome"] == "1 published, 2 unchanged of 3 partitions"
    dead = [json.loads(x) for x in await _visible(store, PARTITIONS[2], "deadletter")]
    assert {"reason": "invalid_json", "source": key[7:], "raw": "not json", "run_id": "r2"} in dead


async def test_range_limits_what_is_published_but_dedupe_spans_the_whole_agency() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    first = parse_agencies(bronze.objects["agencies.csv"])
    early_key = "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"
    [early, *_] = transform_file(early_key, bronze.objects[early_key], first).valid_rows
    # A later version of an early record, in the last day: out of range, yet it wins.
    late = orjson.loads(early.silver)
    raw = {
        "record_id": early.record_id, "agency_id": 1, "record_type": "incident",
        "occurred_at": 1704700000, "updated_at": "2030-01-01T00:00:00Z", "status": "closed",
        "location": {"lat": "34", "lon": "-118"},
    }  # fmt: skip
    bronze.objects["bronze/agency_id=1/dt=2024-01-10/part-9.ndjson"] = orjson.dumps(raw) + b"\n"
    history = FakeRunHistory()

    outcome = await _promote(
        "r1", store, bronze, history, first=dt.date(2024, 1, 8), last=dt.date(2024, 1, 9)
    )

    assert outcome.summary["outcome"] == "2 published of 2 partitions"
    assert not [k for k in store.objects if "dt=2024-01-10" in k]
    silver = [json.loads(x) for p in PARTITIONS[:2] for x in await _visible(store, p)]
    assert late["record_id"] not in {row["record_id"] for row in silver}
    rows = await history.partitions("r1")
    assert [row.partition for row in rows] == list(PARTITIONS[:2])
    expected = _expected(bronze).partitions()
    assert rows[0].counts.rows_out == len(expected[(1, DAYS[0])])
    assert outcome.counts.rows_in == sum(row.counts.rows_in for row in rows)


async def test_dry_run_transforms_and_counts_but_writes_and_records_nothing() -> None:
    store, bronze, history = FakeObjectStore(), _bronze(), FakeRunHistory()

    outcome = await _promote("r1", store, bronze, history, dry_run=True)

    assert store.objects == {}
    assert history.ledger == []
    assert outcome.counts.rows_in == _expected(bronze).counts.rows_in
    assert outcome.summary["outcome"] == "3 would publish of 3 partitions"


async def test_the_fast_path_sweeps_files_a_crashed_run_left_behind() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    await _promote("r1", store, bronze)
    orphan = f"silver/{PARTITIONS[1]}/part-crashed-0.ndjson"
    store.objects[orphan] = b"{}\n"

    outcome = await _promote("r2", store, bronze)

    assert orphan not in store.objects
    assert outcome.summary["leftovers removed"] == 1


async def test_a_row_naming_another_agency_is_dead_lettered_not_published_there() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    key = "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"
    record = json.loads(
        bronze.objects["bronze/agency_id=2/dt=2024-01-08/part-0.ndjson"].split(b"\n")[0]
    )
    line = json.dumps(record).encode()
    bronze.objects[key] += line + b"\n"

    await _promote("r1", store, bronze)

    assert not [k for k in store.objects if "agency_id=2" in k]
    dead = [json.loads(x) for x in await _visible(store, PARTITIONS[0], "deadletter")]
    assert {
        "reason": "agency_mismatch",
        "source": key[7:],
        "raw": line.decode(),
        "run_id": "r1",
    } in dead


async def test_large_partitions_are_split_into_files_of_at_most_rows_per_file() -> None:
    store, bronze = FakeObjectStore(), _bronze()

    await _promote("r1", store, bronze, rows_per_file=40)

    files = await PartitionPublisher(store).read_files(PARTITIONS[0])
    silver = [body for key, body in sorted(files.items()) if key.startswith("silver/")]
    assert len(silver) > 1
    assert all(body.count(b"\n") <= 40 for body in silver)
    assert f"silver/{PARTITIONS[0]}/part-r1-0.ndjson" in files


async def test_a_missing_agencies_file_fails_with_a_data_error() -> None:
    bronze = _bronze()
    del bronze.objects["agencies.csv"]

    with pytest.raises(DataError, match="agencies.csv"):
        await _promote("r1", FakeObjectStore(), bronze)


async def test_an_agency_without_bronze_has_nothing_to_do() -> None:
    store = FakeObjectStore()
    bronze = FakeObjectStore({"agencies.csv": _bronze().objects["agencies.csv"]})

    outcome = await _promote("r1", store, bronze)

    assert store.objects == {}
    assert "nothing to do" in outcome.summary["outcome"]


async def test_an_unreadable_bronze_file_fails_the_run_before_any_commit() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    bronze.fail_on["get"] = ObjectNotFound("bronze/agency_id=1/dt=2024-01-09/part-0.ndjson")

    with pytest.raises(ObjectNotFound):
        await _promote("r1", store, bronze)

    assert store.objects == {}


async def test_a_dry_run_tells_what_would_change() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    await _promote("r1", store, bronze)
    bronze.objects["bronze/agency_id=1/dt=2024-01-10/part-0.ndjson"] += b"not json\n"
    before = dict(store.objects)

    outcome = await _promote("r2", store, bronze, dry_run=True)

    assert outcome.summary["outcome"] == "1 would publish, 2 would stay unchanged of 3 partitions"
    assert store.objects == before


async def test_a_partition_whose_committed_files_vanished_is_republished() -> None:
    store, bronze = FakeObjectStore(), _bronze()
    await _promote("r1", store, bronze)
    lost = next(k for k in store.objects if k.startswith(f"silver/{PARTITIONS[1]}/"))
    del store.objects[lost]

    outcome = await _promote("r2", store, bronze)

    assert outcome.summary["outcome"] == "1 published, 2 unchanged of 3 partitions"
    assert await _visible(store, PARTITIONS[1]) == _expected(bronze).partitions()[(1, DAYS[1])]
    assert (await _promote("r3", store, bronze)).summary["outcome"].startswith("up to date")
