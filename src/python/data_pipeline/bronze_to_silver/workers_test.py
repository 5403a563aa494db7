"""Tests of the file transformer: a process pool gives what inline gives, read-ahead is bounded."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import attrs
import pytest
from etl_core.errors import ObjectNotFound
from etl_core.model import ObjectInfo
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.bronze_to_silver.workers import (
    SMALL_INPUT_BYTES,
    FileTransformer,
    choose_workers,
)
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.file_transform import FileBatch
from data_pipeline.workload.bronze_store import workload_bronze
from data_pipeline.workload.generate import WorkloadOptions

WORKLOAD = WorkloadOptions(records=400, files=8, agencies=2, bad_rate=0.05, seed=5)


def _bronze() -> FakeObjectStore:
    return workload_bronze(WORKLOAD)


async def _files(store: FakeObjectStore, agency_id: int = 1) -> list[ObjectInfo]:
    return [info async for info in store.list(f"bronze/agency_id={agency_id}/")]


async def _results(store: FakeObjectStore, workers: int, in_flight: int = 2) -> list[FileBatch]:
    agencies = parse_agencies(store.objects["agencies.csv"])
    async with FileTransformer(agencies, 1, workers, in_flight) as transformer:
        results = [r async for r in transformer.results(store, await _files(store))]
    return sorted(results, key=lambda result: result.source)


async def test_a_process_pool_gives_the_same_results_as_inline() -> None:
    store = _bronze()
    broken = "bronze/agency_id=1/dt=2024-01-20/part-0.ndjson.gz"
    store.objects[broken] = gzip.compress(b'{"record_id": "A1"}\n', mtime=0) + b"garbage"

    pooled, inline = await _results(store, workers=2), await _results(store, workers=1)

    assert len(inline) == 5
    assert pooled == inline
    [unreadable] = [r for r in inline if r.source == broken.removeprefix("bronze/")]
    [dead] = unreadable.dead_letters
    etag = (await store.head(broken)).etag
    assert (dead.reason, unreadable.rows_in) == ("unreadable_file", 1)
    assert dead.detail is not None
    assert f"(etag {etag}, " in dead.detail


@attrs.define
class _SlowStore(FakeObjectStore):
    reading: int = 0
    most: int = 0

    async def get(self, key: str) -> bytes:
        self.reading += 1
        self.most = max(self.most, self.reading)
        await asyncio.sleep(0.01)
        self.reading -= 1
        return await super().get(key)


async def test_no_more_than_in_flight_files_are_read_at_once() -> None:
    store = _SlowStore(objects=_bronze().objects)

    results = await _results(store, workers=1, in_flight=2)

    assert len(results) == 4
    assert store.most == 2


async def _drain(store: FakeObjectStore, infos: list[ObjectInfo]) -> None:
    agencies = parse_agencies(store.objects["agencies.csv"])
    async with FileTransformer(agencies, 1, 1, 2) as transformer:
        async for _ in transformer.results(store, infos):
            pass


async def test_a_failed_read_propagates_and_cancels_the_rest() -> None:
    store = _bronze()
    infos = await _files(store)
    del store.objects[infos[1].key]

    with pytest.raises(ObjectNotFound, match="object not found"):
        await _drain(store, infos)


async def test_results_outside_the_context_manager_are_refused() -> None:
    iterator: AsyncIterator[FileBatch] = FileTransformer({}, 1, 1, 1).results(_bronze(), [])
    with pytest.raises(RuntimeError, match="async with"):
        await iterator.__anext__()


def test_small_inputs_run_inline_unless_workers_are_given() -> None:
    small = [ObjectInfo("a", 10), ObjectInfo("b", 10)]
    big = [ObjectInfo("a", SMALL_INPUT_BYTES), ObjectInfo("b", 1)]
    assert choose_workers(None, small) == 1
    assert choose_workers(None, big[:1]) == 1
    assert choose_workers(None, big) >= 1
    assert choose_workers(3, small) == 3
