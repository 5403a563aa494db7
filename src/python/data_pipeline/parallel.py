"""Transform bronze files in worker processes while the parent reads the next bodies."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType

import attrs
from etl_core.model import DeadLetter, ObjectInfo
from etl_core.ports import ObjectStore

from data_pipeline.agencies import Agency
from data_pipeline.layout import relative_to_bronze
from data_pipeline.transform import FileResult, decompress, transform_file

AGENCY_MISMATCH = "agency_mismatch"
"""A valid row whose agency_id names another agency than the file's path: a one-agency run must
not write another agency's partition, so the row is dead-lettered (never generated)."""

# Below this much bronze a pool costs more than it saves. Measured on 2 cores: two spawned workers
# cost ~0.5 s CPU to start plus ~4 us/row to ship results, +60% CPU over inline for a 15 MB
# agency (50k rows): break-even on idle cores, much slower on busy ones. From ~30 MB the pool
# wins (100k rows: ~30% less wall on idle cores).
SMALL_INPUT_BYTES = 16 << 20

# Set in each worker process by _init_worker; the parent never touches them.
_worker_agencies: Mapping[int, Agency] = {}
_worker_agency_id = 0


def transform_for_agency(
    key: str, body: bytes, agencies: Mapping[int, Agency], agency_id: int
) -> FileResult:
    """transform_file, with valid rows of another agency moved to dead letters."""
    result = transform_file(key, body, agencies)
    if all(row.agency_id == agency_id for row in result.valid_rows):
        return result
    lines = decompress(body).split(b"\n")
    source = relative_to_bronze(key)
    moved = [row for row in result.valid_rows if row.agency_id != agency_id]
    dead = [
        DeadLetter(
            reason=AGENCY_MISMATCH,
            source=source,
            raw=lines[row.line_no - 1].decode("utf-8", errors="replace"),
            detail=f"{source}:{row.line_no}: {AGENCY_MISMATCH} {row.agency_id}",
            line=row.line_no,
        )
        for row in moved
    ]
    return attrs.evolve(
        result,
        valid_rows=tuple(row for row in result.valid_rows if row.agency_id == agency_id),
        dead_letters=result.dead_letters + tuple(dead),
    )


def _init_worker(agencies: Mapping[int, Agency], agency_id: int, parent: int) -> None:
    global _worker_agencies, _worker_agency_id
    _worker_agencies, _worker_agency_id = agencies, agency_id
    # Ctrl-C reaches the whole process group: the parent alone decides to stop (and cancels).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed with SIGKILL cannot shut the pool down: leave rather than linger.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(70)


def _work(key: str, body: bytes) -> FileResult:
    return transform_for_agency(key, body, _worker_agencies, _worker_agency_id)


@attrs.define
class FileTransformer:
    """Reads bodies (at most `in_flight` files held at once) and transforms them, with `workers`
    processes, or inline in one thread when workers is 1. Use as an async context manager."""

    agencies: Mapping[int, Agency]
    agency_id: int
    workers: int
    in_flight: int
    _executor: concurrent.futures.Executor | None = None

    async def __aenter__(self) -> FileTransformer:
        if self.workers > 1:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                # spawn: not fork (this process has threads), nor forkserver (its socket needs a
                # writable temp dir, which read-only containers lack). Workers import the main
                # module again, so it must be import-safe (`if __name__ == "__main__":`).
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(dict(self.agencies), self.agency_id, os.getpid()),
            )
        else:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
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

    async def results(
        self, store: ObjectStore, files: Sequence[ObjectInfo]
    ) -> AsyncIterator[FileResult]:
        """One FileResult per file, in completion order (dedupe does not depend on order)."""
        if self._executor is None:
            raise RuntimeError("FileTransformer used outside `async with`")
        pending: set[asyncio.Task[FileResult]] = set()
        queue = iter(files)
        try:
            while True:
                for info in queue:
                    pending.add(asyncio.create_task(self._one(store, info.key)))
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

    async def _one(self, store: ObjectStore, key: str) -> FileResult:
        body = await store.get(key)
        loop = asyncio.get_running_loop()
        if isinstance(self._executor, concurrent.futures.ProcessPoolExecutor):
            return await loop.run_in_executor(self._executor, _work, key, body)
        return await loop.run_in_executor(
            self._executor, transform_for_agency, key, body, self.agencies, self.agency_id
        )


def choose_workers(requested: int | None, files: Sequence[ObjectInfo]) -> int:
    """requested if given; otherwise os.cpu_count(), or 1 (inline) for small inputs."""
    if requested is not None:
        return requested
    if len(files) < 2 or sum(info.size for info in files) < SMALL_INPUT_BYTES:
        return 1
    return os.cpu_count() or 1
