"""Tests for the copy engine over FakeObjectStores: idempotence, conflicts, failures, bounds."""

from __future__ import annotations

import asyncio
import datetime as dt

import attrs
import pytest
from etl_core.errors import ObjectStoreError, TemporaryFailure
from etl_core.model import Counts, ObjectInfo
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.copy.documents import ByteBudget, CopyReport, copy_documents
from data_pipeline.copy.plan import Action, CopyOptions

DAY = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
OPTIONS = CopyOptions(agency_id=10, run_date=dt.date(2024, 5, 1))


def _source(objects: dict[str, bytes], at: dt.datetime = DAY) -> FakeObjectStore:
    return FakeObjectStore(objects=dict(objects), modified=dict.fromkeys(objects, at))


DOCS = {
    "agency_id=10/a.pdf": b"%PDF a",
    "agency_id=10/scans/b.png": b"png b",
    "agency_id=10/dt=2024-01-08/part-0.ndjson": b'{"id": 1}\n',
    "agency_id=1/other.pdf": b"agency 1",
    "agency_id=100/other.pdf": b"agency 100",
}
COPIED = {
    "bronze/agency_id=10/dt=2024-03-01/a.pdf": b"%PDF a",
    "bronze/agency_id=10/dt=2024-03-01/scans/b.png": b"png b",
    "bronze/agency_id=10/dt=2024-01-08/part-0.ndjson": b'{"id": 1}\n',
}


def _actions(report: CopyReport) -> dict[str, str]:
    return {entry.source_key: entry.action.value for entry in report.entries}


async def test_first_run_copies_the_agencys_documents_into_bronze() -> None:
    source, destination = _source(DOCS), FakeObjectStore()
    report = await copy_documents(source, destination, OPTIONS)
    assert destination.objects == COPIED
    assert set(_actions(report).values()) == {"copied"}
    assert report.counts() == Counts(rows_in=3, rows_out=3, bytes_in=21, bytes_out=21)
    assert source.objects == DOCS


async def test_second_run_skips_everything_and_writes_nothing() -> None:
    source, destination = _source(DOCS), FakeObjectStore()
    await copy_documents(source, destination, OPTIONS)
    before = dict(destination.modified)
    report = await copy_documents(source, destination, OPTIONS)
    assert set(_actions(report).values()) == {"skipped"}
    assert report.counts() == Counts(rows_in=3, rows_duplicate=3)
    assert destination.modified == before


async def test_a_changed_source_is_a_conflict_and_stays_unwritten_without_overwrite() -> None:
    source, destination = _source(DOCS), FakeObjectStore()
    await copy_documents(source, destination, OPTIONS)
    source.objects["agency_id=10/a.pdf"] = b"%PDF a, version 2"
    report = await copy_documents(source, destination, OPTIONS)
    [conflict] = report.with_action(Action.CONFLICT)
    assert conflict.source_key == "agency_id=10/a.pdf"
    assert "--overwrite" in str(conflict.reason)
    assert not conflict.temporary
    assert destination.objects == COPIED
    assert report.counts() == Counts(rows_in=3, rows_duplicate=2, rows_dead_letter=1)


async def test_overwrite_replaces_a_changed_source() -> None:
    source, destination = _source(DOCS), FakeObjectStore()
    await copy_documents(source, destination, OPTIONS)
    source.objects["agency_id=10/a.pdf"] = b"%PDF a, version 2"
    report = await copy_documents(source, destination, attrs.evolve(OPTIONS, overwrite=True))
    assert _actions(report)["agency_id=10/a.pdf"] == "replaced"
    assert destination.objects["bronze/agency_id=10/dt=2024-03-01/a.pdf"] == b"%PDF a, version 2"
    assert report.counts() == Counts(
        rows_in=3, rows_out=1, rows_duplicate=2, bytes_in=17, bytes_out=17
    )


async def test_a_source_changed_on_a_later_day_lands_in_that_days_partition() -> None:
    source, destination = _source(DOCS), FakeObjectStore()
    await copy_documents(source, destination, OPTIONS)
    source.objects["agency_id=10/a.pdf"] = b"%PDF a, version 2"
    source.modified["agency_id=10/a.pdf"] = DAY + dt.timedelta(days=1)
    report = await copy_documents(source, destination, OPTIONS)
    assert _actions(report)["agency_id=10/a.pdf"] == "copied"
    assert destination.objects["bronze/agency_id=10/dt=2024-03-02/a.pdf"] == b"%PDF a, version 2"
    assert destination.objects["bronze/agency_id=10/dt=2024-03-01/a.pdf"] == b"%PDF a"


async def test_two_sources_for_one_destination_key_copy_the_first_only() -> None:
    source = _source({"agency_id=10/a.pdf": b"undated", "agency_id=10/dt=2024-03-01/a.pdf": b"d"})
    destination = FakeObjectStore()
    report = await copy_documents(source, destination, OPTIONS)
    assert _actions(report) == {
        "agency_id=10/a.pdf": "copied",
        "agency_id=10/dt=2024-03-01/a.pdf": "conflict",
    }
    assert destination.objects == {"bronze/agency_id=10/dt=2024-03-01/a.pdf": b"undated"}
    [conflict] = report.with_action(Action.CONFLICT)
    assert conflict.reason == "maps to the same destination as agency_id=10/a.pdf"


async def test_folder_markers_are_ignored_not_counted() -> None:
    source = _source({"agency_id=10/": b"", "agency_id=10/docs/": b"", "agency_id=10/x": b"x"})
    report = await copy_documents(source, FakeObjectStore(), OPTIONS)
    assert report.ignored == ("agency_id=10/", "agency_id=10/docs/")
    assert report.counts().rows_in == 1


async def test_nothing_under_the_prefix_is_an_empty_report() -> None:
    report = await copy_documents(_source({"agency_id=1/a": b"a"}), FakeObjectStore(), OPTIONS)
    assert report.entries == ()
    assert report.counts() == Counts()


async def test_dry_run_plans_without_reading_bodies_or_writing() -> None:
    source, destination = _source(DOCS), FakeObjectStore()
    source.fail_on["get"] = AssertionError("a dry run reads no bodies")
    report = await copy_documents(source, destination, OPTIONS, dry_run=True)
    assert destination.objects == {}
    assert report.counts() == Counts(rows_in=3, rows_out=3, bytes_in=21, bytes_out=21)


@attrs.define
class _FailingPut:
    """A destination whose puts of one key fail with the given error."""

    store: FakeObjectStore
    key: str
    error: Exception

    async def head(self, key: str) -> ObjectInfo:
        return await self.store.head(key)

    async def put(self, key: str, body: bytes) -> None:
        if key == self.key:
            raise self.error
        await self.store.put(key, body)


@pytest.mark.parametrize(
    ("error", "temporary"),
    [(ObjectStoreError("access denied"), False), (TemporaryFailure("SlowDown"), True)],
)
async def test_a_failed_copy_is_recorded_and_the_others_still_copied(
    error: Exception, temporary: bool
) -> None:
    destination = _FailingPut(FakeObjectStore(), "bronze/agency_id=10/dt=2024-03-01/a.pdf", error)
    report = await copy_documents(_source(DOCS), destination, OPTIONS)  # type: ignore[arg-type]
    [failed] = report.with_action(Action.FAILED)
    assert (failed.source_key, failed.reason, failed.temporary) == (
        "agency_id=10/a.pdf",
        str(error),
        temporary,
    )
    assert len(destination.store.objects) == 2
    assert report.counts() == Counts(
        rows_in=3, rows_out=2, rows_dead_letter=1, bytes_in=15, bytes_out=15
    )


@attrs.define
class _ChangesAfterListing(FakeObjectStore):
    """A source whose objects are rewritten (or deleted) between the listing and the get."""

    rewrite: dict[str, bytes | None] = attrs.field(factory=dict)

    async def get(self, key: str) -> bytes:
        if key in self.rewrite:
            body = self.rewrite[key]
            if body is None:
                await self.delete(key)
            else:
                await self.put(key, body)
        return await super().get(key)


@pytest.mark.parametrize(("body", "reason"), [(b"%PDF A", "changed"), (None, "deleted")])
async def test_a_source_that_changes_after_listing_fails_temporarily(
    body: bytes | None, reason: str
) -> None:
    source = _ChangesAfterListing(objects=dict(DOCS), rewrite={"agency_id=10/a.pdf": body})
    destination = FakeObjectStore()
    report = await copy_documents(source, destination, OPTIONS)
    [failed] = report.with_action(Action.FAILED)
    assert failed.temporary
    assert reason in str(failed.reason)
    assert not any(key.endswith("/a.pdf") for key in destination.objects)


@attrs.define
class _Gauge(FakeObjectStore):
    """Counts gets in flight (objects and bytes), each taking a moment."""

    in_flight: int = 0
    most: int = 0
    bytes_in_flight: int = 0
    most_bytes: int = 0

    async def get(self, key: str) -> bytes:
        size = len(self.objects[key])
        self.in_flight += 1
        self.bytes_in_flight += size
        self.most = max(self.most, self.in_flight)
        self.most_bytes = max(self.most_bytes, self.bytes_in_flight)
        try:
            await asyncio.sleep(0.002)
            return await super().get(key)
        finally:
            self.in_flight -= 1
            self.bytes_in_flight -= size


async def test_concurrency_bounds_the_objects_in_flight() -> None:
    source = _Gauge(objects={f"agency_id=10/{n:03d}": b"x" for n in range(60)})
    await copy_documents(source, FakeObjectStore(), OPTIONS, concurrency=4)
    assert source.most == 4


async def test_the_byte_budget_bounds_the_bodies_in_memory() -> None:
    objects = {f"agency_id=10/{n:03d}": b"x" * 400 for n in range(30)}
    objects["agency_id=10/big"] = b"y" * 5000  # larger than the budget: copied alone
    source = _Gauge(objects=objects)
    destination = FakeObjectStore()
    await copy_documents(source, destination, OPTIONS, concurrency=8, max_inflight_bytes=1000)
    assert source.most_bytes == 5000
    assert len(destination.objects) == 31
    small_only = _Gauge(objects={f"agency_id=10/{n:03d}": b"x" * 400 for n in range(30)})
    await copy_documents(
        small_only, FakeObjectStore(), OPTIONS, concurrency=8, max_inflight_bytes=1000
    )
    assert small_only.most_bytes == 800


async def test_byte_budget_serves_holders_in_arrival_order() -> None:
    budget = ByteBudget(10)
    order: list[str] = []

    async def hold(name: str, size: int, pause: float) -> None:
        async with budget.hold(size):
            order.append(name)
            await asyncio.sleep(pause)

    await asyncio.gather(hold("a", 6, 0.01), hold("big", 10, 0), hold("small", 1, 0))
    assert order == ["a", "big", "small"]
    assert budget.used == 0


async def test_a_cancelled_waiter_leaves_the_budget_usable() -> None:
    budget = ByteBudget(10)
    async with budget.hold(10):
        waiter = asyncio.create_task(_hold_once(budget, 5))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    await asyncio.wait_for(_hold_once(budget, 10), timeout=1)
    assert budget.used == 0


async def _hold_once(budget: ByteBudget, size: int) -> None:
    async with budget.hold(size):
        pass


async def test_a_failing_listing_raises() -> None:
    source = FakeObjectStore(fail_on={"list": ObjectStoreError("no such bucket")})
    with pytest.raises(ObjectStoreError, match="no such bucket"):
        await copy_documents(source, FakeObjectStore(), OPTIONS)
