"""Crash-test failpoints: named places where the process SIGKILLs itself if ETL_FAILPOINTS says."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import attrs

from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore

__all__ = ["ENV", "FailpointObjectStore", "failpoint", "parse_spec"]

ENV = "ETL_FAILPOINTS"
"""Comma-separated `name` or `name@N` (fire on the N-th pass, default the first)."""

_hits: dict[str, int] = {}


def parse_spec(spec: str) -> dict[str, int]:
    """name -> the pass number that fires. Raises ValueError naming a malformed entry."""
    armed: dict[str, int] = {}
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, _, count = entry.partition("@")
        if not name or (count and (not count.isdigit() or int(count) < 1)):
            raise ValueError(f"{ENV}: malformed entry {entry!r} (expected name or name@N, N >= 1)")
        armed[name] = int(count) if count else 1
    return armed


def failpoint(name: str) -> None:
    """Kill this process (SIGKILL: no cleanup, like a power cut) if ETL_FAILPOINTS arms name.

    The variable is read at every call, so tests can arm points in a subprocess's environment;
    unset, the cost is one environment lookup.
    """
    spec = os.environ.get(ENV)
    if not spec:
        return
    fire_at = parse_spec(spec).get(name)
    if fire_at is None:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == fire_at:
        os.kill(os.getpid(), signal.SIGKILL)


@attrs.define
class FailpointObjectStore:
    """An ObjectStore that passes `<prefix>.after_put`, `.before_commit`, `.after_commit` (a
    put_if_absent that created its key) and `.after_delete` failpoints around the real calls."""

    store: ObjectStore
    prefix: str

    async def get(self, key: str) -> bytes:
        """Whole object. Raises ObjectNotFound."""
        return await self.store.get(key)

    def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Object body in chunks. Raises ObjectNotFound on first iteration."""
        return self.store.stream(key, chunk_size)

    async def put(self, key: str, body: bytes) -> None:
        """Create or replace key atomically, then pass `<prefix>.after_put`."""
        await self.store.put(key, body)
        failpoint(f"{self.prefix}.after_put")

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create key only if absent, between `.before_commit` and `.after_commit`."""
        failpoint(f"{self.prefix}.before_commit")
        created = await self.store.put_if_absent(key, body)
        if created:
            failpoint(f"{self.prefix}.after_commit")
        return created

    async def head(self, key: str) -> ObjectInfo:
        """Size and etag of key. Raises ObjectNotFound."""
        return await self.store.head(key)

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order."""
        return self.store.list(prefix)

    async def delete(self, key: str) -> None:
        """Remove key (idempotent), then pass `<prefix>.after_delete`."""
        await self.store.delete(key)
        failpoint(f"{self.prefix}.after_delete")
