"""ObjectStore wrappers that change a few calls of the store they wrap and pass the rest on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import attrs

from etl_core.errors import ObjectStoreError
from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore

__all__ = ["DelegatingObjectStore", "ReadOnlyObjectStore"]


@attrs.define
class DelegatingObjectStore:
    """Passes every ObjectStore call to `store`; a subclass overrides the calls it changes."""

    store: ObjectStore

    async def get(self, key: str) -> bytes:
        """Whole object. Raises ObjectNotFound."""
        return await self.store.get(key)

    def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Object body in chunks. Raises ObjectNotFound on first iteration."""
        return self.store.stream(key, chunk_size)

    async def put(self, key: str, body: bytes) -> None:
        """Create or replace key atomically."""
        await self.store.put(key, body)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create key only if absent; False if it already existed."""
        return await self.store.put_if_absent(key, body)

    async def head(self, key: str) -> ObjectInfo:
        """Size, etag and last-modified time. Raises ObjectNotFound."""
        return await self.store.head(key)

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order."""
        return self.store.list(prefix)

    async def delete(self, key: str) -> None:
        """Remove key; idempotent."""
        await self.store.delete(key)


@attrs.define
class ReadOnlyObjectStore(DelegatingObjectStore):
    """Reads pass on; every write raises ObjectStoreError naming the view (VIEW)."""

    VIEW: ClassVar[str] = "this view"

    async def put(self, key: str, body: bytes) -> None:
        """Refused: raises ObjectStoreError."""
        raise self._read_only(key)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Refused: raises ObjectStoreError."""
        raise self._read_only(key)

    async def delete(self, key: str) -> None:
        """Refused: raises ObjectStoreError."""
        raise self._read_only(key)

    def _read_only(self, key: str) -> ObjectStoreError:
        return ObjectStoreError(f"{key}: {self.VIEW} is read-only")
