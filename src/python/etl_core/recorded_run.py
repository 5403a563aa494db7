"""One run's lifecycle, written once for top-level runs (etl_core.runner) and child runs (a
backfill's agencies, a replay): take the run's lease, write its row, keep both alive while the
body runs, record how it ended, release the lease."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import attrs

from etl_core import clock
from etl_core.errors import LeaseHeld
from etl_core.model import Counts, RunRecord, RunStatus
from etl_core.ports import LeaseStore
from etl_core.run_context import JobBody, JobOutcome, LeaseLost, RunContext, check_counts
from etl_core.settings import CommonSettings

__all__ = [
    "Recording",
    "describe",
    "heartbeat_interval",
    "lease_held",
    "recorded_run",
    "running_record",
]

T = TypeVar("T")

_log = logging.getLogger("etl_core.runner")


@contextlib.asynccontextmanager
async def recorded_run(ctx: RunContext, record: RunRecord | None) -> AsyncIterator[Recording]:
    """Hold ctx's lease while the block runs, with record as the run's row (None: a lease only).

    Raises LeaseHeld, recording nothing, if another run holds the lease. The block runs the body
    with the Recording's `run` (or `hold`); on exit the row is finished with how it ended, even
    when the block was cancelled, and the lease released. A dry run takes and writes nothing.
    """
    recording = Recording(ctx, record)
    leases, name = ctx.leases, ctx.lease_name
    if ctx.dry_run or leases is None or name is None:
        leases = name = None
    elif not await leases.acquire(name, ctx.run_id, _ttl(ctx.settings)):
        raise await lease_held(leases, name)
    try:
        if record is not None and not ctx.dry_run:
            await ctx.history.start_run(record)
            ctx.log.info("run started", extra={"lease": name})
        try:
            yield recording
        except BaseException as exc:  # cancellation too: the row must not stay 'running'
            recording.error = recording.error or exc
            raise
        finally:
            await recording.finish()
    finally:
        if leases is not None and name is not None:
            await _release(ctx, leases, name)


def running_record(
    ctx: RunContext,
    parameters: Mapping[str, Any],
    *,
    trace_id: str | None,
    host: str | None,
    code_version: str | None,
) -> RunRecord:
    """The row of ctx's run, starting now: its identity and parameters, status running."""
    now = clock.now()
    return RunRecord(
        run_id=ctx.run_id,
        job=ctx.job,
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        agency_id=ctx.agency_id,
        parameters=dict(parameters),
        trace_id=trace_id,
        host=host,
        code_version=code_version,
    )


@attrs.define
class Recording:
    """A run under way in recorded_run: what its body returned or raised, and why it was
    stopped; `finish_error` holds a failure to write the outcome (the outcome is then lost)."""

    ctx: RunContext
    record: RunRecord | None
    outcome: JobOutcome | None = None
    error: BaseException | None = None
    finish_error: Exception | None = None
    stop_reason: BaseException | None = None
    _task: asyncio.Future[Any] | None = None

    @property
    def status(self) -> RunStatus:
        """Succeeded unless the body raised, was stopped or failed the end-of-run checks."""
        return RunStatus.SUCCEEDED if self.error is None else RunStatus.FAILED

    @property
    def counts(self) -> Counts:
        """The outcome's counts; without one, the sum of the partitions recorded so far."""
        return self.outcome.counts if self.outcome is not None else self.ctx.recorded

    def stop(self, reason: BaseException) -> None:
        """Stop the body (cancel it, or never start it) for reason, which becomes the error."""
        self.stop_reason = self.stop_reason or reason
        if self._task is not None:
            self._task.cancel()

    async def run(self, body: JobBody, *, interrupted: BaseException | None = None) -> None:
        """Run body(ctx) under `hold`, then the end-of-run checks: sets outcome and error, never
        raises the body's errors. Cancelled from outside, the error is `interrupted` if given
        (the runner's Ctrl-C), else the cancellation is recorded and propagates (a child run)."""
        if self.stop_reason is not None:  # stopped during set-up: the body never starts
            self.error = self.stop_reason
            return
        try:
            self.outcome = await self.hold(self._call(body))
        except asyncio.CancelledError as exc:
            self.error = interrupted or exc
            if interrupted is None:
                raise
            return
        except Exception as exc:
            self.error = exc
            return
        self.error = check_counts(
            self.outcome.counts, self.ctx.settings.max_dead_letter_ratio, self.outcome.dead_letters
        )

    async def _call(self, body: JobBody) -> JobOutcome:
        outcome = await body(self.ctx)
        if not isinstance(outcome, JobOutcome):
            raise TypeError(f"job body returned {type(outcome).__name__}, not JobOutcome")
        return outcome

    async def hold(self, work: Awaitable[T]) -> T:
        """Await work as a task while heartbeats renew the lease and the run row. Raises what
        work raises, or the stop reason (a lost lease: LeaseLost) if stopped; cancelled from
        outside, it cancels work first."""
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        self._task = task
        beat = asyncio.create_task(self._heartbeats())
        try:
            try:
                return await task
            except asyncio.CancelledError:
                if self.stop_reason is not None and task.cancelled():
                    raise self.stop_reason from None
                raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _heartbeats(self) -> None:
        ctx = self.ctx
        if ctx.dry_run:
            return
        interval = heartbeat_interval(
            ctx.settings.lease_ttl_seconds, ctx.settings.stale_after_seconds
        )
        while True:
            await asyncio.sleep(interval)
            try:
                await ctx.heartbeat()
            except LeaseLost as exc:
                ctx.log.error(str(exc))
                self.stop(exc)
                return
            except Exception as exc:  # a blip in the history database must not kill the run
                ctx.log.warning("heartbeat failed: %s", exc)

    async def finish(self) -> None:
        """Write how the run ended to its row (shielded: a cancelled run still gets it)."""
        ctx, outcome = self.ctx, self.outcome
        if ctx.dry_run or self.record is None:
            return
        try:
            await asyncio.shield(
                ctx.history.finish_run(
                    ctx.run_id,
                    status=self.status,
                    finished_at=clock.now(),
                    counts=self.counts,
                    artifacts=outcome.artifacts if outcome is not None else (),
                    error=None if self.error is None else describe(self.error),
                )
            )
        except Exception as exc:
            ctx.log.error("could not record the outcome of run %s: %s", ctx.run_id, exc)
            self.finish_error = exc


def heartbeat_interval(ttl_seconds: float, stale_after_seconds: float) -> float:
    """Well inside the lease TTL and the staleness window, and at least once a minute."""
    return max(0.05, min(60.0, ttl_seconds / 3, stale_after_seconds / 3))


def describe(exc: BaseException) -> str:
    """`Type: message` on one line (what the run history's error column holds)."""
    if isinstance(exc, asyncio.CancelledError):
        return "Cancelled: interrupted, or the lease was lost"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def lease_held(leases: LeaseStore, name: str) -> LeaseHeld:
    """The LeaseHeld error for name, naming its holder (run_id, host, pid, expiry) if known."""
    try:
        holder = await leases.holder(name)
    except Exception as exc:  # the message is only less specific
        _log.debug("could not read the holder of lease %r: %s", name, exc)
        holder = None
    return LeaseHeld(name, holder.describe() if holder is not None else None)


def _ttl(settings: CommonSettings) -> dt.timedelta:
    return dt.timedelta(seconds=settings.lease_ttl_seconds)


async def _release(ctx: RunContext, leases: LeaseStore, name: str) -> None:
    try:
        await leases.release(name, ctx.run_id)
    except Exception as exc:  # it expires on its own; the outcome is already recorded
        ctx.log.warning("could not release lease %r: %s", name, exc)
