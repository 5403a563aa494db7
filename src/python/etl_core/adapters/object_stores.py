"""Open the object store a URL names (local directory or S3).

Every job supports both stores, so both adapters are imported here (each inside its loader, so
that importing this module stays cheap and a run imports only the one its URL needs); a caller may
pass fewer (adapter_choice), as tests do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import ModuleType

import attrs

from etl_core import s3_limits
from etl_core.adapters.adapter_choice import Adapters, LazyAdapters, choose_adapter
from etl_core.errors import ConfigError, ObjectNotFound, ObjectStoreError
from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore
from etl_core.urls import StoreUrl, parse_store_url, redact

__all__ = [
    "STORE_MODULES",
    "DryRunObjectStore",
    "every_store",
    "open_object_store",
    "read_location",
    "store_location",
]

# Store URL kind -> the adapter module that serves it (named in "not shipped" errors).
STORE_MODULES: Mapping[str, str] = {
    "file": "etl_core.adapters.local_object_store",
    "s3": "etl_core.adapters.s3_object_store",
}


def every_store() -> Adapters:
    """Both store adapters, each imported when a URL of its kind is opened (aioboto3 and aiohttp
    take ~0.2 s to import, which a run on a local directory need not pay)."""
    return LazyAdapters({"file": _local, "s3": _s3})


def _local() -> ModuleType:
    from etl_core.adapters import local_object_store

    return local_object_store


def _s3() -> ModuleType:
    from etl_core.adapters import s3_object_store

    return s3_object_store


# A dry run keeps small bodies it "wrote" (manifests, markers) so the job can read them back,
# within a total budget; other bodies keep only their size.
_KEEP_BODY_BYTES = 1 << 20
_KEEP_TOTAL_BYTES = 64 << 20


@asynccontextmanager
async def open_object_store(
    url: str,
    *,
    dry_run: bool = False,
    max_concurrency: int = 16,
    stores: Adapters | None = None,
) -> AsyncIterator[ObjectStore]:
    """The store at url; with dry_run a view whose writes never reach it. ConfigError on bad URL."""
    parsed = parse_store_url(url)
    # Load the adapter now, so that a missing one fails before any work, dry run or not.
    opener = _opener(url, parsed, max_concurrency, every_store() if stores is None else stores)
    if not dry_run:
        # A run that writes first clears the litter of killed writes (local stores only).
        async with opener(True) as store:
            yield store
        return
    # A missing local root reads as empty rather than being created by the adapter.
    exists = parsed.kind != "file" or (parsed.path is not None and parsed.path.exists())
    async with AsyncExitStack() as stack:
        yield DryRunObjectStore(opener=opener if exists else None, stack=stack)


def _opener(
    url: str, parsed: StoreUrl, max_concurrency: int, stores: Adapters
) -> Callable[[bool], AbstractAsyncContextManager[ObjectStore]]:
    """opener(writes): the store; writes=True for a run that may write (not a dry run)."""
    module = choose_adapter("object store", url, parsed.kind, stores, STORE_MODULES)
    if parsed.kind == "file":
        open_local: Callable[..., AbstractAsyncContextManager[ObjectStore]]
        open_local = module.open_local_object_store
        root = parsed.path
        assert root is not None

        def local(writes: bool) -> AbstractAsyncContextManager[ObjectStore]:
            return open_local(root, sweep=writes)

        return local
    open_s3: Callable[..., AbstractAsyncContextManager[ObjectStore]]
    open_s3 = module.open_s3_object_store
    bucket = parsed.bucket
    assert bucket is not None
    limits = s3_limits.current()  # the run's settings (runner), else the defaults

    def s3(writes: bool) -> AbstractAsyncContextManager[ObjectStore]:
        return open_s3(bucket, parsed.prefix, max_concurrency=max_concurrency, limits=limits)

    return s3


def store_location(url: str, key_prefix: str) -> str:
    """Where key_prefix of the store at url is, as a person would open it: an absolute directory
    for a local store, else the URL (password redacted) with the prefix."""
    parsed = parse_store_url(url)
    if parsed.kind == "file" and parsed.path is not None:
        return str(parsed.path.absolute() / key_prefix) + "/"
    return f"{redact(url).rstrip('/')}/{key_prefix}"


async def read_location(location: str) -> bytes:
    """A local file, or the object a store URL names (file:// or s3://). Raises ConfigError."""
    if "://" not in location:
        try:
            return Path(location).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{location}: cannot read: {exc.strerror or exc}") from None
    base, _, key = location.rpartition("/")
    if not key or base.endswith(":/"):
        raise ConfigError(f"{redact(location)}: names no object")
    try:
        async with open_object_store(base) as store:
            return await store.get(key)
    except ObjectNotFound:
        raise ConfigError(f"{redact(location)}: no such object") from None


@attrs.define
class DryRunObjectStore:
    """Reads go to the real store (opened on first read); writes and deletes stay in memory.

    `written` maps each key written during the run to its size, for reporting.
    """

    opener: Callable[[bool], AbstractAsyncContextManager[ObjectStore]] | None
    stack: AsyncExitStack
    written: dict[str, int] = attrs.field(factory=dict)
    deleted: set[str] = attrs.field(factory=set)
    _bodies: dict[str, bytes] = attrs.field(factory=dict)
    _kept_bytes: int = 0
    _real: ObjectStore | None = None

    async def _store(self) -> ObjectStore | None:
        if self._real is None and self.opener is not None:
            self._real = await self.stack.enter_async_context(self.opener(False))
        return self._real

    async def get(self, key: str) -> bytes:
        """Body written during the dry run, else the real object. Raises ObjectNotFound."""
        if key in self.written:
            if key not in self._bodies:
                raise ObjectStoreError(f"dry run: body of {key} was not kept (too large)")
            return self._bodies[key]
        store = await self._store()
        if key in self.deleted or store is None:
            raise ObjectNotFound(key)
        return await store.get(key)

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Like get, in chunks."""
        if key in self.written or key in self.deleted or await self._store() is None:
            body = await self.get(key)
            for start in range(0, len(body), chunk_size):
                yield body[start : start + chunk_size]
            return
        store = await self._store()
        assert store is not None
        async for chunk in store.stream(key, chunk_size):
            yield chunk

    async def put(self, key: str, body: bytes) -> None:
        """Remember the size (and a small body); write nothing."""
        self._forget_body(key)
        self.written[key] = len(body)
        if len(body) <= _KEEP_BODY_BYTES and self._kept_bytes + len(body) <= _KEEP_TOTAL_BYTES:
            self._bodies[key] = bytes(body)
            self._kept_bytes += len(body)
        self.deleted.discard(key)

    def _forget_body(self, key: str) -> None:
        body = self._bodies.pop(key, None)
        if body is not None:
            self._kept_bytes -= len(body)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """False if the key exists in the view; otherwise remember it like put."""
        try:
            await self.head(key)
        except ObjectNotFound:
            await self.put(key, body)
            return True
        return False

    async def head(self, key: str) -> ObjectInfo:
        """Size of a key written during the dry run, else the real head. Raises ObjectNotFound."""
        if key in self.written:
            return ObjectInfo(key=key, size=self.written[key])
        store = await self._store()
        if key in self.deleted or store is None:
            raise ObjectNotFound(key)
        return await store.head(key)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Real objects not deleted or rewritten, merged with the dry run's writes, in key order."""
        merged: dict[str, ObjectInfo] = {}
        store = await self._store()
        if store is not None:
            async for info in store.list(prefix):
                if info.key not in self.deleted:
                    merged[info.key] = info
        for key, size in self.written.items():
            if key.startswith(prefix):
                merged[key] = ObjectInfo(key=key, size=size)
        for key in sorted(merged):
            yield merged[key]

    async def delete(self, key: str) -> None:
        """Hide key from this view; idempotent."""
        self.written.pop(key, None)
        self._forget_body(key)
        self.deleted.add(key)
