"""Tests for the recorded get_s3_files run: copy manifest, ledger rows, outcome, errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from etl_core.errors import ObjectStoreError, TemporaryFailure
from etl_core.model import Counts
from etl_core.runner import RunContext
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory
from etl_core.testing.run_contexts import started_run

from data_pipeline.copy.plan import CopyOptions
from data_pipeline.copy.run import CopyJob, get_s3_files

DAY = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
DOCS = {
    "agency_id=10/a.pdf": b"%PDF a",
    "agency_id=10/dt=2024-01-08/part-0.ndjson": b'{"id": 1}\n',
    "agency_id=11/b.pdf": b"agency 11",
}
JOB = CopyJob(
    source_url="s3://docs",
    destination_url="s3://lake/",
    options=CopyOptions(agency_id=10, run_date=dt.date(2024, 5, 1)),
)


def _source() -> FakeObjectStore:
    return FakeObjectStore(objects=dict(DOCS), modified=dict.fromkeys(DOCS, DAY))


async def _context(run_id: str, history: FakeRunHistory, *, dry_run: bool = False) -> RunContext:
    settings = CommonSettings(agency_id=10, max_dead_letter_ratio=0.0)
    return await started_run(
        history, "get_s3_files", run_id=run_id, agency_id=10, dry_run=dry_run, settings=settings,
        started_at=DAY,
    )  # fmt: skip


async def test_a_run_writes_a_manifest_and_one_ledger_row_per_partition() -> None:
    source, destination, history = _source(), FakeObjectStore(), FakeRunHistory()
    outcome = await get_s3_files(await _context("r1", history), source, destination, JOB)
    key = "_copies/get_s3_files/agency_id=10/r1.json"
    assert outcome.artifacts == (key,)
    assert outcome.counts == Counts(rows_in=2, rows_out=2, bytes_in=16, bytes_out=16)
    document = json.loads(destination.objects[key])
    assert (document["source"], document["source_prefix"]) == ("s3://docs", "agency_id=10/")
    assert [(e["source_key"], e["destination_key"], e["action"]) for e in document["entries"]] == [
        ("agency_id=10/a.pdf", "bronze/agency_id=10/dt=2024-03-01/a.pdf", "copied"),
        (
            "agency_id=10/dt=2024-01-08/part-0.ndjson",
            "bronze/agency_id=10/dt=2024-01-08/part-0.ndjson",
            "copied",
        ),
    ]
    assert document["entries"][0]["etag"] == hashlib.md5(b"%PDF a").hexdigest()
    assert document["entries"][0]["size"] == 6
    rows = await history.partitions("r1")
    assert [(row.partition, row.status, row.counts.rows_out, row.artifacts) for row in rows] == [
        ("agency_id=10/dt=2024-01-08", "published", 1, (key,)),
        ("agency_id=10/dt=2024-03-01", "published", 1, (key,)),
    ]
    assert all(row.counts.balanced and row.input_fingerprint for row in rows)


async def test_a_rerun_writes_nothing_and_records_skipped_partitions() -> None:
    source, destination, history = _source(), FakeObjectStore(), FakeRunHistory()
    await get_s3_files(await _context("r1", history), source, destination, JOB)
    before = dict(destination.objects)
    outcome = await get_s3_files(await _context("r2", history), source, destination, JOB)
    assert destination.objects == before
    assert outcome.artifacts == ()
    assert outcome.counts == Counts(rows_in=2, rows_duplicate=2)
    assert outcome.summary["already present (skipped)"] == 2
    rows = await history.partitions("r2")
    assert {row.status for row in rows} == {"skipped"}
    first = {row.partition: row.input_fingerprint for row in await history.partitions("r1")}
    assert {row.partition: row.input_fingerprint for row in rows} == first


async def test_a_conflict_is_listed_in_the_manifest_and_the_summary() -> None:
    source, destination, history = _source(), FakeObjectStore(), FakeRunHistory()
    await get_s3_files(await _context("r1", history), source, destination, JOB)
    source.objects["agency_id=10/a.pdf"] = b"%PDF a, version 2"
    outcome = await get_s3_files(await _context("r2", history), source, destination, JOB)
    assert outcome.counts == Counts(rows_in=2, rows_duplicate=1, rows_dead_letter=1)
    conflicts = str(outcome.summary["conflicts (not copied)"])
    assert conflicts.startswith("agency_id=10/a.pdf (destination differs")
    [key] = outcome.artifacts
    [entry] = [
        e for e in json.loads(destination.objects[key])["entries"] if e["action"] != "skipped"
    ]
    assert (entry["source_key"], entry["action"]) == ("agency_id=10/a.pdf", "conflict")


class _Throttled(FakeObjectStore):
    """Every put of a bronze object is throttled past the adapter's retries."""

    async def put(self, key: str, body: bytes) -> None:
        if key.startswith("bronze/"):
            raise TemporaryFailure("SlowDown outlasted 5 attempts")
        await super().put(key, body)


async def test_only_temporary_failures_raise_a_temporary_failure_after_recording() -> None:
    source, destination, history = _source(), _Throttled(), FakeRunHistory()
    with pytest.raises(TemporaryFailure, match="2 of 2 objects could not be copied for now"):
        await get_s3_files(await _context("r1", history), source, destination, JOB)
    [key] = destination.objects
    assert [e["action"] for e in json.loads(destination.objects[key])["entries"]] == ["failed"] * 2
    rows = await history.partitions("r1")
    assert sum((row.counts for row in rows), Counts()) == Counts(rows_in=2, rows_dead_letter=2)
    assert all(row.artifacts == (key,) for row in rows)


async def test_temporary_failures_within_a_configured_ratio_do_not_raise() -> None:
    source, destination, history = _source(), _Throttled(), FakeRunHistory()
    ctx = await _context("r1", history)
    ctx.settings = CommonSettings(agency_id=10, max_dead_letter_ratio=1.0)
    outcome = await get_s3_files(ctx, source, destination, JOB)
    assert outcome.counts == Counts(rows_in=2, rows_dead_letter=2)


async def test_a_manifest_that_cannot_be_written_fails_the_run_after_the_ledger() -> None:
    source, history = _source(), FakeRunHistory()

    class _NoManifest(FakeObjectStore):
        async def put(self, key: str, body: bytes) -> None:
            if key.startswith("_copies/"):
                raise ObjectStoreError("disk full")
            await super().put(key, body)

    destination = _NoManifest()
    with pytest.raises(ObjectStoreError, match="disk full"):
        await get_s3_files(await _context("r1", history), source, destination, JOB)
    assert len(destination.objects) == 2
    rows = await history.partitions("r1")
    assert sum((row.counts for row in rows), Counts()) == Counts(
        rows_in=2, rows_out=2, bytes_in=16, bytes_out=16
    )


async def test_a_dry_run_records_nothing_and_writes_nothing() -> None:
    source, destination, history = _source(), FakeObjectStore(), FakeRunHistory()
    ctx = await _context("r1", history, dry_run=True)
    outcome = await get_s3_files(ctx, source, destination, JOB)
    assert destination.objects == {}
    assert history.ledger == []
    assert outcome.counts.rows_out == 2
    assert outcome.summary["would be copied"] == 2
    assert outcome.artifacts == ()
