"""Run a coroutine while holding a named lease, heartbeating it (and the run row) until it ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from etl_core.recorded_run import recorded_run
from etl_core.runner import RunContext

T = TypeVar("T")


def agency_lease(job: str, agency_id: int) -> str:
    """The lease name run_job gives a per-agency run of job: `<job>/agency=<id>`."""
    return f"{job}/agency={agency_id}"


async def run_leased(ctx: RunContext, body: Callable[[], Awaitable[T]]) -> T:
    """Take ctx.lease_name for ctx.run_id, run body while ctx.heartbeat() renews it, release it.

    In a dry run (no lease store) the body just runs. Raises LeaseHeld if another run holds the
    lease, and LeaseLost (after cancelling the body) if it was taken over meanwhile.
    """
    async with recorded_run(ctx, None) as lease:
        return await lease.hold(body())
