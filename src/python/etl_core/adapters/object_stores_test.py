"""Tests for open_object_store: URL -> adapter, and the dry-run view that writes nothing."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from etl_core import s3_limits
from etl_core.adapters.local_object_store import LocalObjectStore
from etl_core.adapters.object_stores import DryRunObjectStore, open_object_store
from etl_core.errors import ConfigError, ObjectNotFound, ObjectStoreError
from etl_core.s3_limits import S3Limits
from etl_core.testing.fakes import FakeObjectStore


async def test_file_url_opens_a_local_store(tmp_path: Path) -> None:
    async with open_object_store(f"file://{tmp_path}/store") as store:
        assert isinstance(store, LocalObjectStore)
        await store.put("a/b.txt", b"x")
    assert (tmp_path / "store" / "a" / "b.txt").read_bytes() == b"x"


async def test_relative_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_object_store("file://./.etl/store") as store:
        await store.put("k", b"v")
    async with open_object_store("out") as store:
        await store.put("k", b"w")
    assert (tmp_path / ".etl" / "store" / "k").read_bytes() == b"v"
    assert (tmp_path / "out" / "k").read_bytes() == b"w"


async def test_s3_url_opens_the_s3_adapter_with_bucket_and_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    fake = FakeObjectStore()

    @asynccontextmanager
    async def opener(
        bucket: str, prefix: str = "", *, max_concurrency: int = 16, limits: S3Limits
    ) -> AsyncIterator[FakeObjectStore]:
        calls.append((bucket, prefix, max_concurrency, limits))
        yield fake

    module = types.ModuleType("etl_core.adapters.s3_object_store")
    module.open_s3_object_store = opener  # type: ignore[attr-defined]
    limits = S3Limits(retry_budget_s=2.0, connect_timeout_s=0.5, read_timeout_s=1.0)
    with s3_limits.scope(limits):  # as the runner does with the run's settings
        async with open_object_store(
            "s3://my-bucket/runs/a/", max_concurrency=4, stores={"s3": module}
        ) as store:
            assert store is fake
    assert calls == [("my-bucket", "runs/a", 4, limits)]


async def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported scheme 'ftp'"):
        async with open_object_store("ftp://x/y"):
            pass


async def test_dry_run_on_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "nothing-here"
    async with open_object_store(str(root), dry_run=True) as store:
        assert isinstance(store, DryRunObjectStore)
        assert await store.put_if_absent("m.json", b"{}")
        await store.put("big", b"x" * 10)
        assert await store.get("m.json") == b"{}"
        assert [info.key for info in [i async for i in store.list()]] == ["big", "m.json"]
        with pytest.raises(ObjectNotFound):
            await store.get("other")
    assert not root.exists()


async def test_dry_run_reads_the_real_store_and_hides_its_own_changes(tmp_path: Path) -> None:
    async with open_object_store(str(tmp_path)) as real:
        await real.put("a", b"real-a")
        await real.put("b", b"real-b")
    async with open_object_store(str(tmp_path), dry_run=True) as store:
        assert await store.get("a") == b"real-a"
        assert not await store.put_if_absent("a", b"new")
        await store.put("b", b"dry-b")
        await store.delete("a")
        with pytest.raises(ObjectNotFound):
            await store.head("a")
        assert await store.get("b") == b"dry-b"
        assert b"".join([chunk async for chunk in store.stream("b", 2)]) == b"dry-b"
        listed = {info.key: info.size async for info in store.list()}
        assert listed == {"b": 5}
        assert isinstance(store, DryRunObjectStore)
        assert store.written == {"b": 5}
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(".")) == [
        "a",
        "b",
    ]
    assert (tmp_path / "b").read_bytes() == b"real-b"


async def test_dry_run_streams_real_objects(tmp_path: Path) -> None:
    async with open_object_store(str(tmp_path)) as real:
        await real.put("a", b"abcdef")
    async with open_object_store(str(tmp_path), dry_run=True) as store:
        assert [chunk async for chunk in store.stream("a", 4)] == [b"abcd", b"ef"]


async def test_dry_run_keeps_only_the_size_of_large_bodies(tmp_path: Path) -> None:
    async with open_object_store(str(tmp_path / "x"), dry_run=True) as store:
        await store.put("huge", b"\0" * ((1 << 20) + 1))
        assert (await store.head("huge")).size == (1 << 20) + 1
        with pytest.raises(ObjectStoreError, match="not kept"):
            await store.get("huge")
