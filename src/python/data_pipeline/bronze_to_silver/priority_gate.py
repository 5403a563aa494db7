"""A counted gate whose waiters enter lowest priority number first (FIFO among equals)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

import attrs


@attrs.define
class PriorityGate:
    """At most `slots` holders at once; when a slot frees, the waiter with the lowest priority
    number gets it (an asyncio.Semaphore wakes the longest waiter instead).

    A shared worker pool uses it so that the agency that started first has its files transformed
    first: it reaches its commit (parent CPU) while a later agency's files keep the workers busy,
    rather than every agency transforming side by side, all committing at once, and the workers
    idling through the commits.
    """

    slots: int
    _free: int = attrs.field(init=False)
    _waiters: list[tuple[int, int, asyncio.Future[None]]] = attrs.field(factory=list, init=False)
    _arrival: itertools.count[int] = attrs.field(factory=itertools.count, init=False)

    def __attrs_post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"PriorityGate needs at least one slot, got {self.slots}")
        self._free = self.slots

    @contextlib.asynccontextmanager
    async def held(self, priority: int) -> AsyncIterator[None]:
        """Hold a slot for the body of the `async with`."""
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, priority: int) -> None:
        if self._free and not self._waiters:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrival), granted))
        try:
            await granted
        except asyncio.CancelledError:
            # Granted, then cancelled before this task resumed: the slot is ours to pass on.
            if granted.done() and not granted.cancelled():
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():  # a cancelled waiter is skipped
                granted.set_result(None)
                return
        self._free += 1
        if self._free > self.slots:
            raise RuntimeError("PriorityGate released more often than acquired")
