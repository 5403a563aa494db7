"""Tests of the corrected bronze view, and of promote reading bronze through it (into the real
Delta tables on a temporary directory)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from etl_core.adapters.delta_tables import open_tables
from etl_core.adapters.local_object_store import LocalObjectStore
from etl_core.errors import ObjectStoreError
from etl_core.runner import JobOutcome
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory
from etl_core.testing.run_contexts import started_run

from data_pipeline.bronze_to_silver.corrected_bronze import CorrectedBronze, with_corrections
from data_pipeline.bronze_to_silver.corrections import Correction, corrections_body, line_key
from data_pipeline.bronze_to_silver.run import PromoteOptions, promote
from data_pipeline.silver.file_transform import FileBatch
from data_pipeline.workload.bronze_store import workload_bronze
from data_pipeline.workload.generate import WorkloadOptions

KEY = "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"
BAD = '{"record_id": "A001-1", "agency_id": 1, "occurred_at": "yesterday"}'


def _view(body: bytes, *, watch: frozenset[str] = frozenset()) -> CorrectedBronze:
    bronze = FakeObjectStore({KEY: body, "bronze/agency_id=1/dt=2024-01-09/part-0.ndjson": b"{}\n"})
    fixes = {KEY: {line_key(BAD): b'{"fixed": true}'}}
    return CorrectedBronze(bronze, fixes, watch={KEY: watch} if watch else {})


async def test_corrected_lines_are_replaced_in_place() -> None:
    view = _view(f"{{}}\n\n{BAD}\n{{}}\n".encode())

    body = await view.get(KEY)

    assert body.split(b"\n") == [b"{}", b"", b'{"fixed": true}', b"{}", b""]


async def test_a_corrected_gzip_file_reads_back_uncompressed_and_corrected() -> None:
    view = _view(gzip.compress(f"{BAD}\n".encode()))

    assert await view.get(KEY) == b'{"fixed": true}\n'


async def test_a_corrected_file_that_no_longer_reads_as_gzip_is_handed_on_as_stored() -> None:
    broken = gzip.compress(f"{BAD}\n".encode())[:-6]  # the transform's unreadable_file to say
    view = _view(broken)

    assert await view.get(KEY) == broken


async def test_only_corrected_files_list_with_a_stamped_etag() -> None:
    view = _view(f"{BAD}\n".encode())
    plain = [info async for info in view.store.list("bronze/")]

    listed = [info async for info in view.list("bronze/")]

    assert str(listed[0].etag).startswith(f"{plain[0].etag}+fix-")
    assert listed[1] == plain[1]
    assert (await view.head(KEY)).etag == listed[0].etag


async def test_watched_lines_are_located_by_line_number() -> None:
    view = _view(f"{BAD}\nx\n{BAD}\n".encode(), watch=frozenset({line_key(BAD), line_key("x")}))

    await view.get(KEY)

    assert view.found == {(KEY, line_key(BAD)): [1, 3], (KEY, line_key("x")): [2]}


async def test_the_view_is_read_only() -> None:
    view = _view(b"{}\n")

    with pytest.raises(ObjectStoreError, match="read-only"):
        await view.put(KEY, b"")
    with pytest.raises(ObjectStoreError, match="read-only"):
        await view.delete(KEY)


async def test_without_stored_corrections_bronze_is_used_as_is() -> None:
    bronze = FakeObjectStore()

    assert await with_corrections(FakeObjectStore(), bronze, 1) is bronze
    view = _view(b"")
    assert await with_corrections(FakeObjectStore(), view, 1) is view


WORKLOAD = WorkloadOptions(records=300, files=4, agencies=2, bad_rate=0.1, dup_rate=0.1, seed=4)


async def _promote(
    run_id: str,
    store: LocalObjectStore,
    bronze: FakeObjectStore,
    *,
    on_file: Callable[[FileBatch], None] | None = None,
) -> JobOutcome:
    ctx = await started_run(FakeRunHistory(), "bronze_to_silver", run_id=run_id, agency_id=1)
    tables = open_tables(str(store.root), store, {}, run_id=run_id)
    options = PromoteOptions(workers=1, on_file=on_file)
    return await promote(ctx, store, bronze, tables, options)


async def test_promote_applies_stored_corrections_and_rebuilds_when_they_change(
    tmp_path: Path,
) -> None:
    bronze = workload_bronze(WORKLOAD)
    store = LocalObjectStore(tmp_path, durable=False)
    bronze.objects[KEY] += f"{BAD}\n".encode()
    await _promote("r1", store, bronze)
    fixed = json.dumps({
        "record_id": "A001-1", "agency_id": 1, "record_type": "incident", "status": "open",
        "occurred_at": 1704700000, "updated_at": "2024-01-09T00:00:00Z",
        "location": {"lat": "34", "lon": "-118"},
    })  # fmt: skip
    key = "corrections/agency_id=1/000001-r2.ndjson"
    await store.put(key, corrections_body([Correction(KEY[7:], line_key(BAD), fixed)], "r2"))

    outcome = await _promote("r2", store, bronze)

    tables = open_tables(str(tmp_path), store, {})
    silver = (await tables.silver.read(1)).to_pylist()
    [row] = [row for row in silver if row["record_id"] == "A001-1"]
    assert (row["_source"], row["_run_id"]) == (KEY[7:], "r2")
    dead = (await tables.deadletter.read(1)).to_pylist()
    assert not [d for d in dead if "yesterday" in d["raw"]]
    assert outcome.summary["outcome"].startswith("rebuilt 2 bronze files as fold 2:")
    again = await _promote("r3", store, bronze)
    assert again.summary["outcome"].startswith("up to date")


async def test_promote_shows_every_file_result_to_the_observer(tmp_path: Path) -> None:
    bronze = workload_bronze(WORKLOAD)
    seen: list[FileBatch] = []

    await _promote("r1", LocalObjectStore(tmp_path, durable=False), bronze, on_file=seen.append)

    assert sorted(result.source for result in seen) == [
        "agency_id=1/dt=2024-01-08/part-0.ndjson",
        "agency_id=1/dt=2024-01-09/part-0.ndjson",
    ]
