"""A FaultProxy (s3_support) that holds one chosen request unanswered, so a test can SIGKILL the
client exactly there: before the request reaches S3, or after it took effect but before its
answer came back (the crash windows around one write that no failpoint names)."""

from __future__ import annotations

import asyncio

import attrs
from aiohttp import web

from integration.s3_support import FaultProxy, Match


@attrs.define
class HoldProxy(FaultProxy):
    """The `nth` request that `hold` matches is never answered: it is forwarded first if
    `forward` (the write happens upstream), then `held` is set and the connection stays open
    until stop() drops it. Every other request is forwarded as FaultProxy does."""

    hold: Match | None = None
    nth: int = 1
    forward: bool = False
    held: asyncio.Event = attrs.Factory(asyncio.Event)
    matched: int = 0
    _release: asyncio.Event = attrs.Factory(asyncio.Event)

    async def _serve(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if self.hold is None or not self.hold(request):
            return await super()._serve(request, body)
        self.matched += 1
        if self.matched != self.nth:
            return await super()._serve(request, body)
        if self.forward:
            await super()._serve(request, body)  # upstream has it; its answer is dropped
        self.held.set()
        await self._release.wait()
        assert request.transport is not None
        request.transport.abort()  # the client is gone by now; nothing reaches it
        raise asyncio.CancelledError

    async def stop(self) -> None:
        self._release.set()
        await super().stop()
