"""Reusable ObjectStore contract suite: subclass ObjectStoreContract and provide a `store` fixture.

```python
class TestMyStore(ObjectStoreContract):
    many_keys = 1001            # optional: fewer writes for slow backends (keep > 1000)

    @pytest.fixture()
    async def store(self) -> AsyncIterator[ObjectStore]:
        async with open_my_store(...) as store:
            yield store
```
Every test writes under its own random prefix (`ns`), so suites may share one bucket or directory
and need no cleanup between tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from etl_core.errors import ObjectNotFound
from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore
from etl_core.testing.conformance import assert_implements


async def _keys(store: ObjectStore, prefix: str) -> list[str]:
    return [info.key async for info in store.list(prefix)]


async def _drain(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


class ObjectStoreContract:
    """Behaviour every ObjectStore adapter and fake must show."""

    many_keys: int = 1100  # more than one S3 list page (1000)
    many_keys_concurrency: int = 32
    racers: int = 16

    @pytest.fixture()
    def ns(self) -> str:
        """A key prefix unique to this test."""
        return f"contract-{uuid.uuid4().hex}/"

    async def test_implements_the_port(self, store: ObjectStore) -> None:
        assert_implements(store, ObjectStore)

    async def test_put_then_get_returns_the_same_bytes(self, store: ObjectStore, ns: str) -> None:
        await store.put(f"{ns}a.ndjson", b'{"id": 1}\n')
        assert await store.get(f"{ns}a.ndjson") == b'{"id": 1}\n'

    async def test_put_replaces_an_existing_object(self, store: ObjectStore, ns: str) -> None:
        await store.put(f"{ns}k", b"old body, longer than the new one")
        await store.put(f"{ns}k", b"new")
        assert await store.get(f"{ns}k") == b"new"
        assert (await store.head(f"{ns}k")).size == 3

    async def test_binary_bodies_round_trip_exactly(self, store: ObjectStore, ns: str) -> None:
        body = bytes(range(256)) * 17 + b"\r\n\x00\xff"
        await store.put(f"{ns}bin", body)
        assert await store.get(f"{ns}bin") == body
        assert b"".join([chunk async for chunk in store.stream(f"{ns}bin", 1000)]) == body

    async def test_empty_object_exists_with_size_zero(self, store: ObjectStore, ns: str) -> None:
        await store.put(f"{ns}empty", b"")
        assert await store.get(f"{ns}empty") == b""
        assert (await store.head(f"{ns}empty")).size == 0
        assert b"".join([chunk async for chunk in store.stream(f"{ns}empty")]) == b""
        assert [info.key async for info in store.list(ns)] == [f"{ns}empty"]
        assert await store.put_if_absent(f"{ns}empty", b"x") is False

    async def test_put_if_absent_creates_once_then_refuses(
        self, store: ObjectStore, ns: str
    ) -> None:
        assert await store.put_if_absent(f"{ns}_manifest/0001.json", b"first") is True
        assert await store.put_if_absent(f"{ns}_manifest/0001.json", b"second") is False
        assert await store.get(f"{ns}_manifest/0001.json") == b"first"

    async def test_concurrent_put_if_absent_has_exactly_one_winner(
        self, store: ObjectStore, ns: str
    ) -> None:
        bodies = [f"writer-{i}".encode() * (i + 1) for i in range(self.racers)]
        results = await asyncio.gather(*(store.put_if_absent(f"{ns}commit", b) for b in bodies))
        assert sum(results) == 1
        assert await store.get(f"{ns}commit") == bodies[results.index(True)]

    async def test_missing_key_raises_object_not_found(self, store: ObjectStore, ns: str) -> None:
        key = f"{ns}missing/part-0.ndjson"
        with pytest.raises(ObjectNotFound) as get_error:
            await store.get(key)
        assert get_error.value.key == key
        with pytest.raises(ObjectNotFound):
            await store.head(key)
        with pytest.raises(ObjectNotFound):
            await _drain(store.stream(key))

    async def test_head_reports_size_and_an_etag_that_follows_content(
        self, store: ObjectStore, ns: str
    ) -> None:
        await store.put(f"{ns}k", b"12345")
        first = await store.head(f"{ns}k")
        await store.put(f"{ns}k", b"54321")
        second = await store.head(f"{ns}k")
        assert (first.key, first.size) == (f"{ns}k", 5)
        assert first.etag
        assert second.etag
        assert first.etag != second.etag
        assert await store.head(f"{ns}k") == second

    async def test_list_yields_every_key_in_full_key_order(
        self, store: ObjectStore, ns: str
    ) -> None:
        # '-' < '.' < '/': a per-directory walk would wrongly put 'a/...' before 'a.txt'.
        keys = ["b.txt", "a/x/2", "a.txt", "a/y", "a-b", "a/x/1", "z/deep/er/still/k"]
        for key in keys:  # deliberately not in key order
            await store.put(ns + key, key.encode())
        assert await _keys(store, ns) == sorted(ns + key for key in keys)

    async def test_list_filters_by_string_prefix(self, store: ObjectStore, ns: str) -> None:
        for key in ["a/x/1", "a/x/2", "a/xy", "a/y", "a.txt", "ab"]:
            await store.put(ns + key, b"")
        assert await _keys(store, f"{ns}a/x/") == [f"{ns}a/x/1", f"{ns}a/x/2"]
        assert await _keys(store, f"{ns}a/x") == [f"{ns}a/x/1", f"{ns}a/x/2", f"{ns}a/xy"]
        assert await _keys(store, f"{ns}a") == [
            f"{ns}a.txt", f"{ns}a/x/1", f"{ns}a/x/2", f"{ns}a/xy", f"{ns}a/y", f"{ns}ab",
        ]  # fmt: skip
        assert await _keys(store, f"{ns}a/x/1") == [f"{ns}a/x/1"]
        assert await _keys(store, f"{ns}nothing/") == []
        assert await _keys(store, f"{ns}a/x/1/") == []

    async def test_list_reports_what_head_reports(self, store: ObjectStore, ns: str) -> None:
        await store.put(f"{ns}p/one", b"1")
        await store.put(f"{ns}p/three", b"333")
        listed = [info async for info in store.list(f"{ns}p/")]
        heads = [await store.head(info.key) for info in listed]
        assert [(i.key, i.size) for i in listed] == [(f"{ns}p/one", 1), (f"{ns}p/three", 3)]
        for info, head in zip(listed, heads, strict=True):
            assert info.etag is None or info.etag == head.etag

    async def test_head_and_list_report_when_an_object_was_last_written(
        self, store: ObjectStore, ns: str
    ) -> None:
        before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clock skew vs a server
        await store.put(f"{ns}dated", b"x")
        head = await store.head(f"{ns}dated")
        [listed] = [info async for info in store.list(f"{ns}dated")]
        for info in (head, listed):
            assert info.last_modified is not None
            assert info.last_modified.utcoffset() == dt.timedelta(0)
            assert before <= info.last_modified <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)

    async def test_list_returns_more_keys_than_one_page(self, store: ObjectStore, ns: str) -> None:
        keys = [f"{ns}many/dt=2024-01-{i % 28 + 1:02d}/part-{i:05d}" for i in range(self.many_keys)]
        slots = asyncio.Semaphore(self.many_keys_concurrency)

        async def put(key: str) -> None:
            async with slots:
                await store.put(key, key[-5:].encode())

        await asyncio.gather(*(put(key) for key in keys))
        listed: list[ObjectInfo] = [info async for info in store.list(f"{ns}many/")]
        assert [info.key for info in listed] == sorted(keys)
        assert {info.size for info in listed} == {5}

    async def test_stream_yields_the_body_in_bounded_chunks(
        self, store: ObjectStore, ns: str
    ) -> None:
        body = os.urandom(10_000)
        await store.put(f"{ns}big", body)
        chunks = [chunk async for chunk in store.stream(f"{ns}big", chunk_size=4096)]
        assert b"".join(chunks) == body
        assert len(chunks) > 1
        assert all(0 < len(chunk) <= 4096 for chunk in chunks)

    async def test_delete_removes_the_object_and_is_idempotent(
        self, store: ObjectStore, ns: str
    ) -> None:
        await store.put(f"{ns}d/k", b"x")
        await store.put(f"{ns}d/keep", b"y")
        await store.delete(f"{ns}d/k")
        await store.delete(f"{ns}d/k")
        await store.delete(f"{ns}never/existed")
        with pytest.raises(ObjectNotFound):
            await store.get(f"{ns}d/k")
        assert await _keys(store, ns) == [f"{ns}d/keep"]

    async def test_deleted_key_can_be_created_again(self, store: ObjectStore, ns: str) -> None:
        await store.put(f"{ns}only/k", b"1")
        await store.delete(f"{ns}only/k")
        assert await _keys(store, ns) == []
        assert await store.put_if_absent(f"{ns}only/k", b"2") is True
        assert await store.get(f"{ns}only/k") == b"2"
