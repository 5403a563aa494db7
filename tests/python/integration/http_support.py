"""Test support for HTTP sources: a paginated JSON API on 127.0.0.1 with injectable faults."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
from aiohttp import web

TOKEN = "Bearer t0k3n-for-tests"


@attrs.frozen
class Fault:
    """`status` answers with that status (and headers); `drop` closes the connection unanswered;
    `truncate` sends headers and half the body, then closes."""

    action: str
    status: int = 500
    headers: dict[str, str] = attrs.Factory(dict)


@attrs.define
class ApiServer:
    """Serves `records[agency]` as /cursor, /next, /link and /pages, `page_size` per page.

    /cursor honours `?updated_since=T` as incremental APIs do: only the records whose
    updated_at >= T (inclusive; instants compared as their `...Z` text), cursors counting within
    that selection. Tests change `records` between runs to play upstream changes.
    """

    records: dict[int, list[dict[str, Any]]]
    page_size: int = 5
    faults: list[Fault] = attrs.Factory(list)
    seen: list[str] = attrs.Factory(list)
    foreign_next: str | None = None  # make /next point somewhere else
    url: str = ""
    _runner: web.AppRunner | None = None

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/agencies/{agency}/cursor", self._cursor)
        app.router.add_get("/next", self._next)
        app.router.add_get("/link", self._link)
        app.router.add_get("/pages", self._pages)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _gate(self, request: web.Request) -> web.Response | None:
        """Record the request, apply the next fault, check credentials."""
        self.seen.append(request.path_qs)
        if self.faults:
            fault = self.faults.pop(0)
            if fault.action == "status":
                return web.json_response(
                    {"error": "injected"}, status=fault.status, headers=fault.headers
                )
            assert request.transport is not None
            if fault.action == "truncate":
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                response.content_length = 1000
                await response.prepare(request)
                await response.write(b'{"data": [')
            request.transport.abort()
            raise asyncio.CancelledError
        if request.headers.get("Authorization") != TOKEN:
            return web.json_response({"error": "unauthorised"}, status=401)
        return None

    def _slice(self, agency: int, start: int) -> list[dict[str, Any]]:
        return self.records.get(agency, [])[start : start + self.page_size]

    async def _cursor(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        start = int(request.query.get("cursor", "c0")[1:])
        agency = int(request.match_info["agency"])
        selected = self.records.get(agency, [])
        since = request.query.get("updated_since")
        if since is not None:
            selected = [r for r in selected if str(r.get("updated_at", "")) >= since]
        page = selected[start : start + self.page_size]
        more = start + len(page) < len(selected)
        return web.json_response(
            {"data": page, "next_cursor": f"c{start + len(page)}" if more else None}
        )

    async def _next(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        agency, start = int(request.query["agency_id"]), int(request.query.get("offset", 0))
        page = self._slice(agency, start)
        more = start + len(page) < len(self.records.get(agency, []))
        link = self.foreign_next or f"/next?agency_id={agency}&offset={start + len(page)}"
        return web.json_response(
            {"result": {"items": page}, "links": {"next": link if more else None}}
        )

    async def _link(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        agency, start = int(request.query["agency_id"]), int(request.query.get("offset", 0))
        page = self._slice(agency, start)
        headers = {}
        if start + len(page) < len(self.records.get(agency, [])):
            nxt = f"{self.url}/link?agency_id={agency}&offset={start + len(page)}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return web.json_response(page, headers=headers)

    async def _pages(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        agency, number = int(request.query["agency_id"]), int(request.query["page"])
        size = int(request.query["per_page"])
        records = self.records.get(agency, [])[(number - 1) * size : number * size]
        return web.json_response({"data": records, "page": number})
