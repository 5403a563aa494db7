"""An ApiServer (http_support) that goes down for good after answering a number of pages."""

from __future__ import annotations

import asyncio

import attrs
from aiohttp import web

from integration.http_support import ApiServer


@attrs.define
class FlakyApiServer(ApiServer):
    """After `pages_before_outage` answered pages every request fails: `outage` "drop" closes
    the connection unanswered, "status" answers 503. None: healthy."""

    pages_before_outage: int | None = None
    outage: str = "drop"
    answered: int = 0

    async def _gate(self, request: web.Request) -> web.Response | None:
        if self.pages_before_outage is not None and self.answered >= self.pages_before_outage:
            self.seen.append(request.path_qs)
            if self.outage == "status":
                return web.json_response({"error": "down"}, status=503)
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        denied = await super()._gate(request)
        if denied is None:
            self.answered += 1
        return denied
