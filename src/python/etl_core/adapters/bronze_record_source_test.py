"""BronzeRecordSource over a fake store: the RecordSource contract, raw lines, gzip, failures."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from etl_core.adapters.bronze_record_source import BronzeRecordSource
from etl_core.errors import ObjectStoreError, SourceError, TemporaryFailure
from etl_core.raw_records import RAW_KEY, SOURCE_KEY
from etl_core.testing.fakes import FakeObjectStore
from etl_core.testing.record_source_contract import RecordSourceContract, SeededSource

DAY1 = "bronze/agency_id=7/dt=2024-01-08/part-0.ndjson"
DAY2 = "bronze/agency_id=7/dt=2024-01-09/part-0.ndjson.gz"


def _lines(start: int, count: int) -> list[bytes]:
    return [b'{"record_id":"A007-%08d","agency_id":7}' % i for i in range(start, start + count)]


def _store() -> tuple[FakeObjectStore, list[dict[str, Any]]]:
    """Two files of agency 7 (one gzip), one of agency 8, and a stray key; the expected records."""
    first, second = _lines(0, 9), _lines(9, 8)
    store = FakeObjectStore(
        {
            DAY1: b"\n".join(first) + b"\n",
            DAY2: gzip.compress(b"\n".join(second)),  # no final newline
            "bronze/agency_id=8/dt=2024-01-08/part-0.ndjson": b'{"record_id":"x"}\n',
            "bronze/agency_id=7/dt=2024-01-08/_manifest.json": b"{}",
        }
    )
    expected = [
        {"record_id": f"A007-{i:08d}", "agency_id": 7, SOURCE_KEY: f"{key[7:]}:{line}"}
        for key, start, count in ((DAY1, 0, 9), (DAY2, 9, 8))
        for line, i in enumerate(range(start, start + count), start=1)
    ]
    return store, expected


class TestBronzeRecordSourceContract(RecordSourceContract):
    @pytest.fixture(params=[1 << 20, 7], ids=["whole-chunks", "7-byte-chunks"])
    def seeded(self, request: pytest.FixtureRequest) -> SeededSource:
        store, expected = _store()
        return SeededSource(BronzeRecordSource(store, 4, chunk_size=request.param), 7, expected)


async def _records(source: BronzeRecordSource, checkpoint: str | None = None) -> list[Any]:
    return [r async for batch in source.batches(7, checkpoint) for r in batch.records]


async def test_a_batch_never_spans_two_files() -> None:
    store, _ = _store()
    checkpoints = [b.checkpoint async for b in BronzeRecordSource(store, 4).batches(7)]

    assert checkpoints == [f"{DAY1}:4", f"{DAY1}:8", f"{DAY1}:9", f"{DAY2}:4", f"{DAY2}:8"]


async def test_lines_that_are_not_json_objects_travel_raw_with_their_exact_text() -> None:
    lines = [b'{"record_id": "a"', b"[1, 2]", b'"text"', b"\xff\xfe{}", b'{"__raw__": "x"}\r']
    store = FakeObjectStore({DAY1: b"\n".join(lines)})

    records = await _records(BronzeRecordSource(store))

    assert [set(r) for r in records] == [{RAW_KEY, SOURCE_KEY}] * len(lines)
    assert [r[RAW_KEY].encode("utf-8", "surrogateescape") for r in records] == lines


async def test_blank_lines_are_skipped_but_keep_their_line_numbers() -> None:
    store = FakeObjectStore({DAY1: b'\n  \t\r\n{"n":1}\n\n{"n":2}\n'})

    records = await _records(BronzeRecordSource(store))

    assert [r[SOURCE_KEY] for r in records] == [f"{DAY1[7:]}:3", f"{DAY1[7:]}:5"]


async def test_every_gzip_member_is_read() -> None:
    body = gzip.compress(b'{"n":1}\n') + gzip.compress(b'{"n":2}\n')
    store = FakeObjectStore({DAY2: body})

    assert [r["n"] for r in await _records(BronzeRecordSource(store, chunk_size=5))] == [1, 2]


@pytest.mark.parametrize("body", [b"\x1f\x8bnot gzip at all", gzip.compress(b'{"n":1}\n')[:-6]])
async def test_corrupt_or_truncated_gzip_is_a_source_error(body: bytes) -> None:
    store = FakeObjectStore({DAY2: body})

    with pytest.raises(SourceError, match="gzip"):
        await _records(BronzeRecordSource(store))


@pytest.mark.parametrize(
    "checkpoint",
    ["bronze/agency_id=8/dt=2024-01-08/part-0.ndjson:1", f"{DAY1}:x", DAY1, f"{DAY1}:-1"],
)
async def test_a_checkpoint_of_another_agency_or_shape_is_refused(checkpoint: str) -> None:
    store, _ = _store()

    with pytest.raises(SourceError, match="checkpoint"):
        await _records(BronzeRecordSource(store), checkpoint)


async def test_resuming_after_a_file_that_was_removed_continues_with_the_next_key() -> None:
    store, expected = _store()
    del store.objects[DAY1]

    records = await _records(BronzeRecordSource(store), f"{DAY1}:3")

    assert records == expected[9:]


async def test_store_failures_become_source_errors_naming_the_key() -> None:
    store, _ = _store()
    store.fail_on["stream"] = ObjectStoreError("disk on fire")

    with pytest.raises(SourceError, match="cannot read bronze/agency_id=7/.*disk on fire"):
        await _records(BronzeRecordSource(store))


async def test_throttling_stays_a_temporary_failure() -> None:
    store, _ = _store()
    store.fail_on["list"] = TemporaryFailure("SlowDown")

    with pytest.raises(TemporaryFailure):
        await _records(BronzeRecordSource(store))


async def test_an_agency_without_bronze_has_no_batches() -> None:
    store, _ = _store()

    assert [b async for b in BronzeRecordSource(store).batches(99)] == []
