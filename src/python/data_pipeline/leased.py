"""Run a coroutine while holding a named lease, heartbeating it (and the run row) until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from etl_core.runner import LeaseLost, RunContext, lease_held

T = TypeVar("T")


def agency_lease(job: str, agency_id: int) -> str:
    """The lease name run_job gives a per-agency run of job: `<job>/agency=<id>`."""
    return f"{job}/agency={agency_id}"


def heartbeat_interval(ttl_seconds: float, stale_after_seconds: float) -> float:
    """As in the runner: well inside the lease TTL and the stale window, at least once a minute."""
    return max(0.05, min(60.0, ttl_seconds / 3, stale_after_seconds / 3))


async def run_leased(ctx: RunContext, body: Callable[[], Awaitable[T]]) -> T:
    """Take ctx.lease_name for ctx.run_id, run body while ctx.heartbeat() renews it, release it.

    In a dry run (no lease store) the body just runs. Raises LeaseHeld if another run holds the
    lease, and LeaseLost (after cancelling the body) if it was taken over meanwhile.
    """
    leases, name = ctx.leases, ctx.lease_name
    if ctx.dry_run or leases is None or name is None:
        return await body()
    ttl = dt.timedelta(seconds=ctx.settings.lease_ttl_seconds)
    if not await leases.acquire(name, ctx.run_id, ttl):
        raise await lease_held(leases, name)
    lost: list[LeaseLost] = []
    work = asyncio.ensure_future(body())
    interval = heartbeat_interval(ctx.settings.lease_ttl_seconds, ctx.settings.stale_after_seconds)
    beat = asyncio.create_task(_beat(ctx, work, lost, interval))
    try:
        try:
            return await work
        except asyncio.CancelledError:
            if lost and work.cancelled():
                raise lost[0] from None
            raise
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
        try:
            await leases.release(name, ctx.run_id)
        except Exception as exc:  # it expires on its own
            ctx.log.warning("could not release lease %r: %s", name, exc)


async def _beat(
    ctx: RunContext, work: asyncio.Future[Any], lost: list[LeaseLost], interval: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await ctx.heartbeat()
        except LeaseLost as exc:
            ctx.log.error(str(exc))
            lost.append(exc)
            work.cancel()
            return
        except Exception as exc:  # a blip in the history database must not kill the run
            ctx.log.warning("heartbeat failed: %s", exc)
