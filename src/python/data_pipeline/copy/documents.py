"""Copy one agency's documents from a source store into the destination's bronze layout.

Idempotent: a destination that already holds the same content (s3_copy_plan.same_content) is
skipped; one that differs is replaced only with `overwrite`, else it is a conflict. Objects are
listed lazily and copied by `concurrency` workers; the port has no streaming put, so each object
is held whole while it is copied, and a byte budget caps the bodies in memory at once (an object
larger than the budget is copied alone). Per-object failures are recorded, not raised, so one
bad object never hides what happened to the others; a failed listing raises.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable

import attrs
from etl_core.errors import EtlError, ObjectNotFound, TemporaryFailure
from etl_core.model import Counts, ObjectInfo
from etl_core.ports import ObjectStore

from data_pipeline.copy.plan import (
    Action,
    CopyOptions,
    Entry,
    Target,
    is_md5,
    same_content,
    target_of,
)

MIB = 1 << 20
_HASH_IN_THREAD = MIB  # hashlib releases the GIL for large buffers: hash those off the loop

Progress = Callable[[int, Entry], None]


@attrs.frozen
class CopyReport:
    """What a copy did: one entry per listed object (source-key order) and the bytes moved."""

    entries: tuple[Entry, ...]
    ignored: tuple[str, ...] = ()  # 'folder' marker keys (ending in '/'): not documents
    bytes_in: int = 0  # read from the source (planned sizes in a dry run: nothing is read)
    bytes_out: int = 0  # written to the destination (planned sizes in a dry run)

    def with_action(self, *actions: Action) -> list[Entry]:
        """Entries whose action is one of actions."""
        return [entry for entry in self.entries if entry.action in actions]

    def counts(self) -> Counts:
        """in = listed; out = copied + replaced; duplicate = skipped; dead letter = not written."""
        return sum(self.partition_counts().values(), Counts())

    def partition_counts(self) -> dict[str, Counts]:
        """Counts per destination partition (bytes count only what was or would be written)."""
        counts: dict[str, Counts] = {}
        for entry in self.entries:
            written = entry.action in (Action.COPIED, Action.REPLACED)
            one = Counts(
                rows_in=1,
                rows_out=int(written),
                rows_duplicate=int(entry.action is Action.SKIPPED),
                rows_dead_letter=int(entry.action in (Action.CONFLICT, Action.FAILED)),
                bytes_in=entry.size if written else 0,
                bytes_out=entry.size if written else 0,
            )
            counts[entry.partition] = counts.get(entry.partition, Counts()) + one
        return counts


@attrs.define
class ByteBudget:
    """A FIFO weighted semaphore over bytes: holds of at most `limit` bytes run at once."""

    limit: int = attrs.field(validator=attrs.validators.ge(1))
    used: int = 0
    _queue: collections.deque[object] = attrs.field(factory=collections.deque)
    _changed: asyncio.Condition = attrs.field(factory=asyncio.Condition)

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Wait for size bytes (capped at limit, so any object fits alone), in arrival order."""
        want = min(max(size, 1), self.limit)
        ticket = object()
        async with self._changed:
            self._queue.append(ticket)
            try:
                await self._changed.wait_for(
                    lambda: self._queue[0] is ticket and self.used + want <= self.limit
                )
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()
            self.used += want
        try:
            yield
        finally:
            async with self._changed:
                self.used -= want
                self._changed.notify_all()


async def copy_documents(
    source: ObjectStore,
    destination: ObjectStore,
    options: CopyOptions,
    *,
    concurrency: int = 8,
    max_inflight_bytes: int = 256 * MIB,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy (or in a dry run, plan) every object under options.agency_prefix. Raises only when
    the source cannot be listed; per-object outcomes are in the report."""
    copier = _Copier(source, destination, options, ByteBudget(max_inflight_bytes), dry_run)
    queue: asyncio.Queue[tuple[ObjectInfo, Target] | None] = asyncio.Queue(2 * concurrency)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            entry = await copier.copy(*item)
            copier.entries.append(entry)
            if progress is not None:
                progress(len(copier.entries), entry)

    workers = [asyncio.create_task(work()) for _ in range(max(concurrency, 1))]
    try:
        await copier.feed(queue, progress)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    entries = tuple(sorted(copier.entries, key=lambda entry: entry.source_key))
    written = sum(e.size for e in entries if e.action in (Action.COPIED, Action.REPLACED))
    return CopyReport(
        entries=entries, ignored=tuple(copier.ignored), bytes_in=written, bytes_out=written
    )


@attrs.define
class _Copier:
    source: ObjectStore
    destination: ObjectStore
    options: CopyOptions
    budget: ByteBudget
    dry_run: bool
    entries: list[Entry] = attrs.field(factory=list)
    ignored: list[str] = attrs.field(factory=list)
    claimed: dict[str, str] = attrs.field(factory=dict)  # destination key -> first source key

    async def feed(
        self, queue: asyncio.Queue[tuple[ObjectInfo, Target] | None], progress: Progress | None
    ) -> None:
        """List the agency's objects (key order) and queue them; collisions are settled here."""
        async for info in self.source.list(self.options.agency_prefix):
            target = target_of(info, self.options)
            if target is None:
                self.ignored.append(info.key)
                continue
            first = self.claimed.setdefault(target.key, info.key)
            if first != info.key:
                reason = f"maps to the same destination as {first}"
                self.entries.append(_entry(info, target, Action.CONFLICT, reason))
                if progress is not None:
                    progress(len(self.entries), self.entries[-1])
                continue
            await queue.put((info, target))

    async def copy(self, info: ObjectInfo, target: Target) -> Entry:
        """Skip, copy, replace, or record why not; never raises an EtlError."""
        try:
            try:
                existing: ObjectInfo | None = await self.destination.head(target.key)
            except ObjectNotFound:
                existing = None
            if existing is not None and same_content(info, existing):
                return _entry(info, target, Action.SKIPPED)
            if existing is not None and not self.options.overwrite:
                reason = (
                    f"destination differs (size {existing.size}, etag {existing.etag}) from the "
                    f"source (size {info.size}, etag {info.etag}); --overwrite replaces it"
                )
                return _entry(info, target, Action.CONFLICT, reason)
            action = Action.COPIED if existing is None else Action.REPLACED
            if not self.dry_run:
                async with self.budget.hold(info.size):
                    problem = await self._transfer(info, target)
                if problem is not None:
                    return _entry(info, target, Action.FAILED, problem, temporary=True)
            return _entry(info, target, action)
        except EtlError as exc:
            temporary = isinstance(exc, TemporaryFailure)
            return _entry(info, target, Action.FAILED, str(exc), temporary=temporary)
        except Exception as exc:  # a defect must not hide what happened to the other objects
            return _entry(info, target, Action.FAILED, f"{type(exc).__name__}: {exc}")

    async def _transfer(self, info: ObjectInfo, target: Target) -> str | None:
        """Copy the body; a problem text if the source is no longer the object listed."""
        try:
            body = await self.source.get(info.key)
        except ObjectNotFound:
            return "source object was deleted after it was listed; a re-run settles it"
        if len(body) != info.size or not await _matches_etag(body, info.etag):
            return "source object changed after it was listed; a re-run copies the new version"
        await self.destination.put(target.key, body)
        return None


async def _matches_etag(body: bytes, etag: str | None) -> bool:
    if not is_md5(etag):
        return True  # a multipart etag is not the MD5 of the body: the size check must do
    if len(body) >= _HASH_IN_THREAD:
        digest = await asyncio.to_thread(_md5, body)
    else:
        digest = _md5(body)
    return digest == etag


def _md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def _entry(
    info: ObjectInfo,
    target: Target,
    action: Action,
    reason: str | None = None,
    *,
    temporary: bool = False,
) -> Entry:
    return Entry(
        source_key=info.key,
        size=info.size,
        etag=info.etag,
        last_modified=info.last_modified,
        destination_key=target.key,
        partition=target.partition,
        action=action,
        reason=reason,
        temporary=temporary,
    )
