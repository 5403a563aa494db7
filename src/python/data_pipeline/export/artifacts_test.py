"""The agency export over fakes only: from the silver tables bronze_to_silver wrote, and from a
record source; artifacts, counts, write-once uploads, ledger, dry runs."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import zoneinfo
from collections.abc import Mapping
from typing import Any

import attrs
import orjson
import pytest
from etl_core.adapters.bronze_record_source import BronzeRecordSource
from etl_core.errors import NothingForAgency, SourceError, TableConflict
from etl_core.raw_records import raw_record
from etl_core.runner import JobOutcome, RunContext
from etl_core.testing.fake_tables import FakeTables
from etl_core.testing.fakes import FakeObjectStore, FakeRecordSource, FakeRunHistory
from etl_core.testing.run_contexts import started_run

from data_pipeline.bronze_to_silver.run import PromoteOptions, promote
from data_pipeline.export.artifacts import ExportOptions, export_agency
from data_pipeline.export.csv_format import csv_cells
from data_pipeline.export.from_tables import NothingInSilver, export_silver
from data_pipeline.silver.agencies import Agency, parse_agencies
from data_pipeline.silver.dedupe import Deduper
from data_pipeline.silver.file_transform import transform_file
from data_pipeline.store.put_once import ObjectConflict
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files

WORKLOAD = WorkloadOptions(records=900, files=6, agencies=3, bad_rate=0.05, dup_rate=0.2, seed=11)
AGENCY = 2  # files dt=2024-01-08 and dt=2024-01-09
PREFIX = f"exports/agency_id={AGENCY}/run_id=r1/"
KEYS = [PREFIX + name for name in
        ("records.csv", "records.ndjson", "deadletter.ndjson", "manifest.json")]  # fmt: skip
SILVER = "file:///store/silver/"


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
    """The bronze transform of the agency's files: the rows export_agency has always written."""
    deduper = Deduper()
    for key, body in sorted(_files().items()):
        if key.startswith(f"bronze/agency_id={AGENCY}/"):
            deduper.add(transform_file(key, body, _agencies()))
    return list(deduper)


async def _context(
    history: FakeRunHistory,
    job: str,
    *,
    run_id: str = "r1",
    dry_run: bool = False,
    agency_id: int = AGENCY,
) -> RunContext:
    # Recorded even in a dry run: these tests read the history back either way.
    ctx = await started_run(history, job, run_id=run_id, agency_id=agency_id)
    return attrs.evolve(ctx, dry_run=dry_run)


async def _promoted(
    bronze: FakeObjectStore | None = None,
    tables: FakeTables | None = None,
    *,
    agency_id: int = AGENCY,
    run_id: str = "b2s-1",
) -> FakeTables:
    """The tables after bronze_to_silver folded the agency's bronze in."""
    bronze = bronze if bronze is not None else _bronze()
    tables = tables if tables is not None else FakeTables()
    ctx = await _context(FakeRunHistory(), "bronze_to_silver", run_id=run_id, agency_id=agency_id)
    await promote(ctx, bronze, bronze, tables, PromoteOptions(workers=1))
    return tables


async def _export_silver(
    tables: FakeTables,
    store: FakeObjectStore,
    history: FakeRunHistory | None = None,
    *,
    dry_run: bool = False,
) -> JobOutcome:
    history = history if history is not None else FakeRunHistory()
    ctx = await _context(history, "agency_data_job", dry_run=dry_run)
    options = ExportOptions(AGENCY, source_label=SILVER)
    return await export_silver(ctx, tables, store, options)


async def _export(
    source: Any,
    store: FakeObjectStore,
    history: FakeRunHistory | None = None,
    *,
    formats: tuple[str, ...] = ("csv", "ndjson"),
) -> JobOutcome:
    history = history if history is not None else FakeRunHistory()
    ctx = await _context(history, "agency_data_job")
    options = ExportOptions(AGENCY, formats, source_label="fake")
    return await export_agency(ctx, source, store, _agencies(), options)


def _silver_as_exported(table: Any) -> list[dict[str, Any]]:
    """Silver's rows of the agency as the export shapes them: no lineage, text instants and dt."""
    rows = []
    for row in table.to_pylist():
        for lineage in ("_source", "_line", "_run_id"):
            del row[lineage]
        row["dt"] = row["dt"].isoformat()
        for name in ("occurred_at", "updated_at"):
            row[name] = row[name].strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(row)
    return sorted(rows, key=lambda row: row["record_id"])


def _lines(store: FakeObjectStore, name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in store.objects[PREFIX + name].splitlines()]


# -- from the tables (the job's default: no --source) --------------------------------------------


async def test_export_of_silver_holds_exactly_silver_rows_in_the_bronze_export_format() -> None:
    tables, store = await _promoted(), FakeObjectStore()

    outcome = await _export_silver(tables, store)

    assert list(outcome.artifacts) == KEYS
    assert _lines(store, "records.ndjson") == _silver_as_exported(await tables.silver.read(AGENCY))
    # Byte for byte the rows export_agency writes for the same bronze.
    assert store.objects[PREFIX + "records.ndjson"] == b"".join(
        row + b"\n" for row in _expected_rows()
    )


async def test_exported_dead_letters_are_the_dead_letter_table_rows() -> None:
    tables, store = await _promoted(), FakeObjectStore()

    await _export_silver(tables, store)

    table = (await tables.deadletter.read(AGENCY)).to_pylist()
    expected = [
        {"reason": r["reason"], "source": r["source"], "raw": r["raw"], "run_id": "b2s-1",
         "detail": r["detail"]}
        for r in sorted(table, key=lambda r: (r["source"], r["line"]))
    ]  # fmt: skip
    assert _lines(store, "deadletter.ndjson") == expected
    assert len(expected) == _manifest()["dead_letter_rows"] > 0


async def test_silver_counts_fingerprint_and_manifest_describe_the_tables() -> None:
    tables, store, history = await _promoted(), FakeObjectStore(), FakeRunHistory()

    outcome = await _export_silver(tables, store, history)

    expected = _manifest()
    counts = outcome.counts
    assert (counts.rows_out, counts.rows_dead_letter, counts.rows_duplicate) == (
        expected["silver_rows"], expected["dead_letter_rows"], 0
    )  # fmt: skip
    assert counts.rows_in == counts.rows_out + counts.rows_dead_letter
    [row] = await history.partitions("r1")
    assert (row.input_fingerprint, row.status, row.counts) == ("fold-1", "published", counts)
    assert list(store.objects)[-1] == PREFIX + "manifest.json"
    manifest = orjson.loads(store.objects[PREFIX + "manifest.json"])
    assert manifest["source"] == SILVER
    assert manifest["counts"]["rows_in"] == counts.rows_in
    assert [a["key"] for a in manifest["artifacts"]] == KEYS[:3]
    assert counts.bytes_out == sum(a["bytes"] for a in manifest["artifacts"])


async def test_silver_csv_holds_the_same_rows_as_the_ndjson() -> None:
    tables, store = await _promoted(), FakeObjectStore()
    await _export_silver(tables, store)

    text = store.objects[PREFIX + "records.csv"].decode("utf-8")
    header, *rows = csv.reader(io.StringIO(text, newline=""))
    assert rows == [csv_cells(row) for row in _lines(store, "records.ndjson")]
    assert header[0] == "record_id"


async def test_a_later_fold_is_exported_with_its_version() -> None:
    later = f"bronze/agency_id={AGENCY}/dt=2024-01-09/part-0.ndjson"
    bronze = _bronze()
    body = bronze.objects.pop(later)
    tables = await _promoted(bronze)
    bronze.objects[later] = body
    await _promoted(bronze, tables, run_id="b2s-2")
    store, history = FakeObjectStore(), FakeRunHistory()

    await _export_silver(tables, store, history)

    assert store.objects[PREFIX + "records.ndjson"] == b"".join(
        row + b"\n" for row in _expected_rows()
    )
    assert {row["run_id"] for row in _lines(store, "deadletter.ndjson")} == {"b2s-1", "b2s-2"}
    [row] = await history.partitions("r1")
    assert row.input_fingerprint == "fold-2"


@pytest.mark.parametrize("other_agency", [None, 1], ids=["no_table", "other_agency_only"])
async def test_an_agency_with_nothing_in_silver_fails_and_uploads_nothing(
    other_agency: int | None,
) -> None:
    tables = FakeTables() if other_agency is None else await _promoted(agency_id=other_agency)
    store, history = FakeObjectStore(), FakeRunHistory()

    with pytest.raises(NothingInSilver) as raised:
        await _export_silver(tables, store, history)

    assert str(raised.value) == (
        f"agency {AGENCY}: nothing in silver for this agency at {SILVER} (no silver rows, no "
        f"dead letters): run bronze_to_silver --agency-id {AGENCY} first"
    )
    assert store.objects == {}
    assert history.ledger == []


async def test_a_fold_caught_between_its_two_commits_is_not_exported() -> None:
    tables, store = await _promoted(), FakeObjectStore()
    tables.deadletter.versions[AGENCY] = 2  # fold 2 committed its dead letters, not silver

    with pytest.raises(TableConflict, match="silver at fold 1, dead letters at fold 2"):
        await _export_silver(tables, store)
    assert store.objects == {}


async def test_a_retried_silver_export_accepts_its_own_identical_objects() -> None:
    tables, store = await _promoted(), FakeObjectStore()
    await _export_silver(tables, store)
    before = dict(store.objects)

    outcome = await _export_silver(tables, store)

    assert store.objects == before
    assert list(outcome.artifacts) == KEYS


async def test_a_silver_dry_run_uploads_nothing_and_writes_no_ledger_row() -> None:
    tables, store, history = await _promoted(), FakeObjectStore(), FakeRunHistory()

    outcome = await _export_silver(tables, store, history, dry_run=True)

    assert store.objects == {}
    assert history.ledger == []
    assert outcome.artifacts == ()
    assert outcome.counts.rows_out == _manifest()["silver_rows"]


# -- from a record source (--source: PostgreSQL, HTTP API, bronze files) -------------------------


async def test_export_of_bronze_files_matches_the_bronze_transform_and_the_manifest() -> None:
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


async def test_source_dead_letters_name_reason_source_raw_and_run() -> None:
    store = _bronze()
    await _export(BronzeRecordSource(store), store)

    dead = _lines(store, "deadletter.ndjson")
    reasons = {reason: n for reason, n in _manifest()["dead_letter"].items() if n}
    assert {row["reason"] for row in dead} == set(reasons)
    assert all(row["run_id"] == "r1" for row in dead)
    assert all(row["source"].startswith(f"agency_id={AGENCY}/dt=") for row in dead)
    assert all(row["raw"] for row in dead)


async def test_a_source_run_is_recorded_with_the_fingerprint_of_what_it_read() -> None:
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


async def test_a_run_id_reused_over_different_records_is_refused() -> None:
    store = _bronze()
    await _export(BronzeRecordSource(store), store)
    before = dict(store.objects)

    with pytest.raises(ObjectConflict):
        await _export(FakeRecordSource([raw_record("x")]), store)
    assert store.objects == before


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
    assert _lines(store, "records.ndjson") == expected


async def test_a_source_failing_mid_way_uploads_nothing() -> None:
    store = FakeObjectStore()
    source = FakeRecordSource([raw_record("x")] * 10, batch_size=3, fail_after_batches=2)

    with pytest.raises(SourceError):
        await _export(source, store)
    assert store.objects == {}


async def test_a_source_without_records_for_the_agency_fails_and_uploads_nothing() -> None:
    store = FakeObjectStore()

    with pytest.raises(NothingForAgency, match=f"agency {AGENCY}: nothing to export: .* holds no"):
        await _export(FakeRecordSource([], agency_id=AGENCY + 1), store)

    assert store.objects == {}
