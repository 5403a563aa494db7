"""The agency export over fakes only: artifacts, counts, write-once uploads, ledger, dry runs."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import logging
import zoneinfo
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from etl_core.adapters.bronze_record_source import BronzeRecordSource
from etl_core.errors import SourceError
from etl_core.model import RunRecord, RunStatus
from etl_core.raw_records import raw_record
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeObjectStore, FakeRecordSource, FakeRunHistory

from data_pipeline.agencies import Agency, parse_agencies
from data_pipeline.agency_export import ExportOptions, export_agency
from data_pipeline.csv_export import csv_cells
from data_pipeline.dedupe import Deduper
from data_pipeline.put_once import ObjectConflict
from data_pipeline.transform import transform_file
from data_pipeline.workload import WorkloadOptions, iter_workload_files

WORKLOAD = WorkloadOptions(records=900, files=6, agencies=3, bad_rate=0.05, dup_rate=0.2, seed=11)
AGENCY = 2
PREFIX = f"exports/agency_id={AGENCY}/run_id=r1/"
KEYS = [PREFIX + name for name in
        ("records.csv", "records.ndjson", "deadletter.ndjson", "manifest.json")]  # fmt: skip


@functools.cache
def _files() -> dict[str, bytes]:
    return dict(iter_workload_files(WORKLOAD))


def _agencies() -> Mapping[int, Agency]:
    return parse_agencies(_files()["agencies.csv"])


def _bronze() -> FakeObjectStore:
    return FakeObjectStore(dict(_files()))


def _manifest() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(_files()["manifest.json"])
    return dict(document["agencies"][str(AGENCY)])


def _expected_rows() -> list[bytes]:
    deduper = Deduper()
    for key, body in sorted(_files().items()):
        if key.startswith(f"bronze/agency_id={AGENCY}/"):
            deduper.add(transform_file(key, body, _agencies()))
    return list(deduper)


async def _export(
    source: Any,
    store: FakeObjectStore,
    history: FakeRunHistory | None = None,
    *,
    run_id: str = "r1",
    dry_run: bool = False,
    formats: tuple[str, ...] = ("csv", "ndjson"),
) -> JobOutcome:
    history = history if history is not None else FakeRunHistory()
    now = dt.datetime.now(dt.UTC)
    await history.start_run(RunRecord(run_id, "agency_data_job", RunStatus.RUNNING, now, AGENCY))
    ctx = RunContext(
        run_id=run_id,
        job="agency_data_job",
        agency_id=AGENCY,
        dry_run=dry_run,
        settings=CommonSettings(agency_id=AGENCY),
        history=history,
        log=logging.getLogger("test"),
    )
    options = ExportOptions(AGENCY, formats, source_label="fake")
    return await export_agency(ctx, source, store, _agencies(), options)


async def test_export_of_bronze_matches_the_bronze_transform_and_the_manifest() -> None:
    store = _bronze()

    outcome = await _export(BronzeRecordSource(store, batch_size=50), store)

    expected = _manifest()
    counts = outcome.counts
    assert (counts.rows_in, counts.rows_out) == (expected["input_rows"], expected["silver_rows"])
    assert counts.rows_duplicate == expected["duplicates"]
    assert counts.rows_dead_letter == expected["dead_letter_rows"] > 0
    assert list(outcome.artifacts) == KEYS
    assert store.objects[PREFIX + "records.ndjson"] == b"".join(
        row + b"\n" for row in _expected_rows()
    )


async def test_csv_holds_the_same_rows_as_the_ndjson() -> None:
    store = _bronze()
    await _export(BronzeRecordSource(store), store)

    text = store.objects[PREFIX + "records.csv"].decode("utf-8")
    header, *rows = csv.reader(io.StringIO(text, newline=""))
    json_rows = store.objects[PREFIX + "records.ndjson"].splitlines()
    assert rows == [csv_cells(orjson.loads(row)) for row in json_rows]
    assert header[0] == "record_id"


async def test_dead_letters_name_reason_source_raw_and_run() -> None:
    store = _bronze()
    await _export(BronzeRecordSource(store), store)

    dead = [orjson.loads(line) for line in store.objects[PREFIX + "deadletter.ndjson"].splitlines()]
    reasons = {reason: n for reason, n in _manifest()["dead_letter"].items() if n}
    assert {row["reason"] for row in dead} == set(reasons)
    assert all(row["run_id"] == "r1" for row in dead)
    assert all(row["source"].startswith(f"agency_id={AGENCY}/dt=") for row in dead)
    assert all(row["raw"] for row in dead)


async def test_the_manifest_is_written_last_and_lists_every_artifact() -> None:
    store = _bronze()
    outcome = await _export(BronzeRecordSource(store), store)

    assert list(store.objects)[-1] == PREFIX + "manifest.json"
    manifest = orjson.loads(store.objects[PREFIX + "manifest.json"])
    assert [a["key"] for a in manifest["artifacts"]] == KEYS[:3]
    assert manifest["counts"]["rows_out"] == outcome.counts.rows_out
    assert outcome.counts.bytes_out == sum(a["bytes"] for a in manifest["artifacts"])


async def test_the_run_is_recorded_in_the_ledger() -> None:
    store, history = _bronze(), FakeRunHistory()
    outcome = await _export(BronzeRecordSource(store), store, history)

    [row] = await history.partitions("r1")
    assert (row.partition, row.status, row.counts) == (
        f"agency_id={AGENCY}",
        "published",
        outcome.counts,
    )
    assert row.artifacts == tuple(KEYS)
    assert len(row.input_fingerprint) == 64


async def test_a_retried_run_accepts_its_own_identical_objects() -> None:
    store = _bronze()
    await _export(BronzeRecordSource(store), store)
    before = dict(store.objects)

    outcome = await _export(BronzeRecordSource(store), store)

    assert store.objects == before
    assert list(outcome.artifacts) == KEYS


async def test_a_run_id_reused_over_different_records_is_refused() -> None:
    store = _bronze()
    await _export(BronzeRecordSource(store), store)
    before = dict(store.objects)

    with pytest.raises(ObjectConflict):
        await _export(FakeRecordSource([raw_record("x")]), store)
    assert store.objects == before


async def test_a_dry_run_uploads_nothing_and_writes_no_ledger_row() -> None:
    store, history = _bronze(), FakeRunHistory()
    before = dict(store.objects)

    outcome = await _export(BronzeRecordSource(store), store, history, dry_run=True)

    assert store.objects == before
    assert history.ledger == []
    assert outcome.artifacts == ()
    assert outcome.counts.rows_in == _manifest()["input_rows"]


async def test_only_the_requested_formats_are_written() -> None:
    store = _bronze()
    outcome = await _export(BronzeRecordSource(store), store, formats=("ndjson",))

    assert [key.rsplit("/", 1)[1] for key in outcome.artifacts] == [
        "records.ndjson", "deadletter.ndjson", "manifest.json"
    ]  # fmt: skip


async def test_records_from_any_source_are_shaped_like_bronze_ones() -> None:
    lines = [
        line
        for key, body in sorted(_files().items())
        if key.startswith(f"bronze/agency_id={AGENCY}/")
        for line in body.split(b"\n")
        if line
    ]
    records = [raw_record(line.decode()) for line in lines]
    store = FakeObjectStore()

    outcome = await _export(FakeRecordSource(records, batch_size=64), store)

    assert outcome.counts.rows_out == _manifest()["silver_rows"]
    # Without a file, dt is the agency-local date of occurred_at (a later version of a record
    # may sit in a later file than its occurred_at day); every other field is as from bronze.
    zone = zoneinfo.ZoneInfo(_agencies()[AGENCY].timezone)
    expected = []
    for row in map(orjson.loads, _expected_rows()):
        occurred = dt.datetime.fromisoformat(row["occurred_at"].replace("Z", "+00:00"))
        expected.append({**row, "dt": occurred.astimezone(zone).date().isoformat()})
    got = [orjson.loads(line) for line in store.objects[PREFIX + "records.ndjson"].splitlines()]
    assert got == expected


async def test_a_source_failing_mid_way_uploads_nothing() -> None:
    store = FakeObjectStore()
    source = FakeRecordSource([raw_record("x")] * 10, batch_size=3, fail_after_batches=2)

    with pytest.raises(SourceError):
        await _export(source, store)
    assert store.objects == {}


async def test_an_agency_without_records_gets_empty_artifacts() -> None:
    store = FakeObjectStore()
    outcome = await _export(FakeRecordSource([]), store)

    assert outcome.counts.rows_in == 0
    assert store.objects[PREFIX + "records.ndjson"] == b""
    assert store.objects[PREFIX + "records.csv"].startswith(b"record_id,agency_id,dt,")
