"""Write-once objects: created, accepted again when identical, refused when different."""

from __future__ import annotations

import attrs
import pytest
from etl_core.model import ObjectInfo
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.store.put_once import ObjectConflict, put_once, stored_equals


@attrs.define
class MultipartEtagStore(FakeObjectStore):
    """Reports etags as S3 does for multipart uploads: not an md5 of the body."""

    gets: int = 0

    async def head(self, key: str) -> ObjectInfo:
        info = await super().head(key)
        return attrs.evolve(info, etag="0123abcd-2")

    async def get(self, key: str) -> bytes:
        self.gets += 1
        return await super().get(key)


async def test_the_first_put_creates_and_a_repeat_with_the_same_body_is_accepted() -> None:
    store = FakeObjectStore()

    assert await put_once(store, "a/b", b"body") is True
    assert await put_once(store, "a/b", b"body") is False
    assert store.objects == {"a/b": b"body"}


async def test_a_different_body_is_refused_and_nothing_is_overwritten() -> None:
    store = FakeObjectStore({"a/b": b"old"})

    with pytest.raises(ObjectConflict, match="a/b already exists with different content"):
        await put_once(store, "a/b", b"new")
    assert store.objects == {"a/b": b"old"}


async def test_without_an_md5_etag_the_body_is_compared() -> None:
    store = MultipartEtagStore({"a/b": b"body"})

    assert await stored_equals(store, "a/b", b"body") is True
    assert await stored_equals(store, "a/b", b"bodx") is False
    assert await stored_equals(store, "a/b", b"longer body") is False  # size decides, no get
    assert store.gets == 2


async def test_a_missing_key_holds_nothing() -> None:
    assert await stored_equals(FakeObjectStore(), "a/b", b"") is False
