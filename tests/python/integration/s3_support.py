"""Test support for S3: moto's server on loopback and a fault-injecting reverse proxy before it;
endpoints that refuse connections, or accept them and never answer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import aiohttp
import attrs
from aiohttp import web

Match = Callable[[web.Request], bool]

# Hop-by-hop or recomputed headers that a proxy must not copy verbatim.
_SKIP = frozenset({"host", "content-length", "transfer-encoding", "connection", "date", "server"})


def _always(_: web.Request) -> bool:
    return True


@attrs.frozen
class Fault:
    """One injected failure: `status` answers with an S3 error document instead of forwarding;
    `reset` drops the connection before forwarding; `reset_after` forwards (the request takes
    effect upstream) and then drops the connection; `truncate` sends half of the body and drops;
    `stall` answers nothing until the proxy stops (a request that never ends)."""

    action: str
    status: int = 503
    code: str = "SlowDown"
    match: Match = _always


@attrs.define
class FaultProxy:
    """aiohttp reverse proxy on 127.0.0.1 that applies queued faults, then forwards to upstream."""

    upstream: str
    faults: list[Fault] = attrs.Factory(list)
    seen: list[web.Request] = attrs.Factory(list)
    url: str = ""
    in_flight: int = 0
    max_in_flight: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _stopping: asyncio.Event = attrs.Factory(asyncio.Event)

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def count(self, match: Match = _always) -> int:
        return sum(1 for request in self.seen if match(request))

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stopping.set()  # stalled requests end now, not at the server's shutdown timeout
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _take(self, request: web.Request) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.match(request):
                return self.faults.pop(index)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._serve(request, body)
        finally:
            self.in_flight -= 1

    async def _serve(self, request: web.Request, body: bytes) -> web.StreamResponse:
        fault = self._take(request)
        if fault is not None and fault.action == "status":
            document = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
                f"<Message>injected by FaultProxy</Message></Error>"
            )
            return web.Response(status=fault.status, text=document, content_type="application/xml")
        if fault is not None and fault.action == "reset":
            return _drop(request)
        if fault is not None and fault.action == "stall":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=300)
            return _drop(request)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as upstream:
            content = await upstream.read()
            reply = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP}
            status = upstream.status
        if fault is not None and fault.action == "reset_after":
            return _drop(request)
        if fault is not None and fault.action == "truncate":
            response = web.StreamResponse(status=status, headers=reply)
            response.content_length = len(content)
            await response.prepare(request)
            await response.write(content[: len(content) // 2])
            return _drop(request)
        if request.method == "HEAD":
            # keep upstream's Content-Length: it is the object size HeadObject reports
            reply["Content-Length"] = upstream.headers.get("Content-Length", "0")
            return web.Response(status=status, headers=reply)
        return web.Response(status=status, headers=reply, body=content)


def _drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.abort()
    raise asyncio.CancelledError  # the handler has nothing left to answer


@contextlib.contextmanager
def refusing_endpoint() -> Iterator[str]:
    """An http:// URL on loopback whose port is bound but not listening: connections are refused
    (and no other process can start listening there meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def silent_endpoint() -> Iterator[str]:
    """An http:// URL on loopback that accepts connections and never answers: the kernel completes
    the handshakes of a listening socket that nobody accept()s, then the requests go unread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
