"""Transform bronze files in worker processes while the parent reads the next bodies."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import attrs
from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore

from data_pipeline.bronze_to_silver.priority_gate import PriorityGate
from data_pipeline.silver.agencies import Agency

if TYPE_CHECKING:
    from data_pipeline.silver.file_transform import FileBatch

__all__ = [
    "FileTransformer",
    "TransformPool",
    "choose_workers",
    "transform_for_agency",
]

# Below this much bronze a pool costs more than it saves. Measured on 2 cores: two spawned workers
# cost ~0.5 s CPU to start plus ~4 us/row to ship results, +60% CPU over inline for a 15 MB
# agency (50k rows): break-even on idle cores, much slower on busy ones. From ~30 MB the pool
# wins (100k rows: ~30% less wall on idle cores).
SMALL_INPUT_BYTES = 16 << 20


def transform_for_agency(
    key: str,
    body: bytes,
    agencies: Mapping[int, Agency],
    agency_id: int,
    etag: str | None = None,
) -> FileBatch:
    """transform_batch, with valid rows of another agency moved to dead letters (and an
    unreadable body one dead letter naming etag)."""
    # Imported here, not with this module: a run with nothing new to fold imports no Arrow.
    from data_pipeline.silver.file_transform import transform_batch

    return transform_batch(key, body, agencies, agency_id, etag=etag)


def _init_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides to stop (and cancels).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed with SIGKILL cannot shut the pool down: leave rather than linger.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(70)


@attrs.define
class TransformPool:
    """Worker processes that transform bronze files, shareable by every agency of a run (a
    backfill's agencies all feed one pool, so a full build keeps every core busy). Use as an
    async context manager."""

    workers: int
    _executor: concurrent.futures.ProcessPoolExecutor | None = None
    # Files handed to the executor at once: one running and one queued per worker, so a worker
    # never waits for the parent's next dispatch. Earlier tickets are dispatched first.
    _gate: PriorityGate = attrs.field(init=False)
    _tickets: itertools.count[int] = attrs.field(factory=itertools.count, init=False)

    def __attrs_post_init__(self) -> None:
        self._gate = PriorityGate(2 * max(1, self.workers))

    def ticket(self) -> int:
        """A priority for one caller's files: callers that took theirs earlier go first."""
        return next(self._tickets)

    async def __aenter__(self) -> TransformPool:
        import multiprocessing  # here: a run that needs no pool (most) does not load it

        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            # spawn: not fork (this process has threads), nor forkserver (its socket needs a
            # writable temp dir, which read-only containers lack). Workers import the main
            # module again, so it must be import-safe (`if __name__ == "__main__":`).
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            # Never block the event loop on a worker: queued files are dropped, running ones end.
            self._executor.shutdown(wait=exc_type is None, cancel_futures=True)
            self._executor = None

    async def transform(
        self,
        key: str,
        body: bytes,
        agencies: Mapping[int, Agency],
        agency_id: int,
        etag: str | None = None,
        *,
        priority: int = 0,
    ) -> FileBatch:
        """transform_for_agency in a worker process, dispatched in priority order (lowest
        first: see ticket)."""
        if self._executor is None:
            raise RuntimeError("TransformPool used outside `async with`")
        loop = asyncio.get_running_loop()
        async with self._gate.held(priority):
            return await loop.run_in_executor(
                self._executor, transform_for_agency, key, body, agencies, agency_id, etag
            )


@attrs.define
class FileTransformer:
    """Reads bodies (at most `in_flight` files held at once) and transforms them: in `pool`
    when one is given (shared, left open), else in a pool of `workers` processes of its own,
    or inline in one thread when workers is 1. Use as an async context manager."""

    agencies: Mapping[int, Agency]
    agency_id: int
    workers: int
    in_flight: int
    pool: TransformPool | None = None
    _own: TransformPool | None = None
    _thread: concurrent.futures.ThreadPoolExecutor | None = None
    _priority: int = 0

    async def __aenter__(self) -> FileTransformer:
        if self.pool is None and self.workers > 1:
            self._own = await TransformPool(self.workers).__aenter__()
        elif self.pool is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        pool = self.pool or self._own
        if pool is not None:
            self._priority = pool.ticket()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._own is not None:
            await self._own.__aexit__(exc_type, exc, traceback)
            self._own = None
        if self._thread is not None:
            self._thread.shutdown(wait=exc_type is None, cancel_futures=True)
            self._thread = None

    async def results(
        self, store: ObjectStore, files: Sequence[ObjectInfo]
    ) -> AsyncIterator[FileBatch]:
        """One FileBatch per file, in completion order (dedupe does not depend on order)."""
        if self.pool is None and self._own is None and self._thread is None:
            raise RuntimeError("FileTransformer used outside `async with`")
        pending: set[asyncio.Task[FileBatch]] = set()
        queue = iter(files)
        try:
            while True:
                for info in queue:
                    pending.add(asyncio.create_task(self._one(store, info)))
                    if len(pending) >= self.in_flight:
                        break
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pending, return_exceptions=True)

    async def _one(self, store: ObjectStore, info: ObjectInfo) -> FileBatch:
        key, etag = info.key, info.etag
        body = await store.get(key)
        pool = self.pool or self._own
        if pool is not None:
            return await pool.transform(
                key, body, self.agencies, self.agency_id, etag, priority=self._priority
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, transform_for_agency, key, body, self.agencies, self.agency_id, etag
        )


def choose_workers(requested: int | None, files: Sequence[ObjectInfo]) -> int:
    """requested if given; otherwise os.cpu_count(), or 1 (inline) for small inputs."""
    if requested is not None:
        return requested
    if len(files) < 2 or sum(info.size for info in files) < SMALL_INPUT_BYTES:
        return 1
    return os.cpu_count() or 1
