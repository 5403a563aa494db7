"""The fakes' own knobs (fault injection, clocks, agency filter); contracts run elsewhere."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from etl_core.adapters.local_object_store import InvalidObjectKey
from etl_core.errors import ObjectStoreError, RunHistoryError, SourceError
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.testing.fakes import FakeClock, FakeObjectStore, FakeRecordSource, FakeRunHistory

T0 = dt.datetime(2024, 1, 8, tzinfo=dt.UTC)


async def test_fake_store_state_is_a_plain_dict() -> None:
    store = FakeObjectStore({"bronze/a": b"1"})
    await store.put("silver/b", b"2")
    assert store.objects == {"bronze/a": b"1", "silver/b": b"2"}


async def test_fake_store_rejects_keys_the_local_store_rejects() -> None:
    with pytest.raises(InvalidObjectKey):
        await FakeObjectStore().put("../escape", b"")


async def test_fake_store_raises_injected_failures_until_removed() -> None:
    store = FakeObjectStore(fail_on={"put_if_absent": ObjectStoreError("disk full")})
    with pytest.raises(ObjectStoreError, match="disk full"):
        await store.put_if_absent("k", b"x")
    del store.fail_on["put_if_absent"]
    assert await store.put_if_absent("k", b"x")


async def test_fake_history_state_is_assertable() -> None:
    clock = FakeClock(T0)
    history = FakeRunHistory(clock=clock)
    await history.migrate()
    await history.start_run(RunRecord("r1", "job", RunStatus.RUNNING, T0, parameters={"a": (1,)}))
    row = PartitionRecord("r1", "job", "agency_id=1/dt=2024-01-08", "fp", Counts(rows_in=1))
    await history.record_partition(row)
    assert history.migrations == 1
    assert history.runs["r1"].parameters == {"a": [1]}  # JSON round trip, as a database does
    assert history.ledger == [attrs.evolve(row, recorded_at=T0)]


async def test_fake_history_refuses_calls_after_close() -> None:
    history = FakeRunHistory()
    await history.close()
    with pytest.raises(RunHistoryError, match="after close"):
        await history.get_run("r1")


async def test_fake_clock_moves_only_when_advanced() -> None:
    clock = FakeClock(T0)
    assert clock() == clock() == T0
    assert clock.advance(dt.timedelta(minutes=5)) == T0 + dt.timedelta(minutes=5)


async def test_fake_source_serves_only_its_agency_when_told() -> None:
    source = FakeRecordSource([{"id": 1}], agency_id=10)
    assert [b async for b in source.batches(11)] == []
    assert [b.records async for b in source.batches(10)] == [({"id": 1},)]
    assert source.requests == [(11, None), (10, None)]


async def test_fake_source_fails_mid_stream_when_told() -> None:
    source = FakeRecordSource([{"id": i} for i in range(10)], batch_size=3, fail_after_batches=2)
    seen: list[str | None] = []

    async def read() -> None:
        async for batch in source.batches(1):
            seen.append(batch.checkpoint)

    with pytest.raises(SourceError, match="failed at record 6"):
        await read()
    assert seen == ["3", "6"]
    resumed = [b.checkpoint async for b in FakeRecordSource(source.records, 3).batches(1, "6")]
    assert resumed == ["9", "10"]


@pytest.mark.parametrize("checkpoint", ["-1", "x", "11", ""])
async def test_fake_source_rejects_bad_checkpoints(checkpoint: str) -> None:
    source = FakeRecordSource([{"id": i} for i in range(10)])
    with pytest.raises(SourceError, match="bad checkpoint"):
        [b async for b in source.batches(1, checkpoint)]
