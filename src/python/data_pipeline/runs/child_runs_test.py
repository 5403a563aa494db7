"""Tests of child runs: own run row and lease, heartbeats, failures, busy agencies, dry runs."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from etl_core.errors import DataError, DeadLetterThresholdExceeded, InvariantViolation, LeaseHeld
from etl_core.model import Counts, PartitionRecord, RunStatus
from etl_core.runner import JobOutcome, LeaseLost, RunContext, check_counts
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeRunHistory, Lease
from etl_core.testing.run_contexts import started_run

from data_pipeline.runs.child_runs import run_child

LEASE = "bronze_to_silver/agency=3"


async def _parent(history: FakeRunHistory, *, dry_run: bool = False, ttl: float = 60) -> RunContext:
    settings = CommonSettings(lease_ttl_seconds=ttl, max_dead_letter_ratio=0.5)
    return await started_run(
        history, "backfill", run_id="parent", dry_run=dry_run, leased=True, settings=settings,
        host="h", code_version="v1",
    )  # fmt: skip


async def _publish_one(ctx: RunContext) -> JobOutcome:
    counts = Counts(rows_in=3, rows_out=2, rows_duplicate=1)
    await ctx.record_partition(
        PartitionRecord(ctx.run_id, ctx.job, "agency_id=3/dt=2024-01-08", "fp", counts, 3)
    )
    return JobOutcome(counts=counts, artifacts=("m.json",))


async def test_a_child_run_is_recorded_with_its_own_run_id_and_the_parent_run_id() -> None:
    history = FakeRunHistory()
    parent = await _parent(history)

    result = await run_child(parent, "bronze_to_silver", 3, _publish_one, parameters={"x": 1})

    assert result.error is None
    run = history.runs[result.run_id]
    assert result.run_id != "parent"
    assert (run.job, run.agency_id, run.status) == ("bronze_to_silver", 3, RunStatus.SUCCEEDED)
    assert run.parameters == {"x": 1, "parent_run_id": "parent"}
    assert (run.host, run.code_version, run.artifacts) == ("h", "v1", ("m.json",))
    assert run.counts == Counts(rows_in=3, rows_out=2, rows_duplicate=1)
    assert [p.run_id for p in history.ledger] == [result.run_id]
    assert [r.partition for r in result.records] == ["agency_id=3/dt=2024-01-08"]
    assert history.leases == {}


async def test_a_failing_child_is_recorded_failed_with_what_it_did() -> None:
    history = FakeRunHistory()

    async def body(ctx: RunContext) -> JobOutcome:
        await _publish_one(ctx)
        raise DataError("bronze/x.ndjson: broken")

    result = await run_child(await _parent(history), "bronze_to_silver", 3, body, parameters={})

    assert isinstance(result.error, DataError)
    run = history.runs[result.run_id]
    assert run.status is RunStatus.FAILED
    assert run.error == "DataError: bronze/x.ndjson: broken"
    assert run.counts.rows_in == 3
    assert len(result.records) == 1
    assert history.leases == {}


async def test_a_held_lease_makes_the_child_busy_and_records_nothing() -> None:
    history = FakeRunHistory()
    parent = await _parent(history)
    await history.acquire(LEASE, "standalone-run", dt.timedelta(minutes=5))

    result = await run_child(parent, "bronze_to_silver", 3, _publish_one, parameters={})

    assert isinstance(result.error, LeaseHeld)
    assert list(history.runs) == ["parent"]
    assert history.leases[LEASE].owner == "standalone-run"


async def test_a_lost_lease_cancels_the_child_and_fails_its_run() -> None:
    history = FakeRunHistory()
    parent = await _parent(history, ttl=0.15)  # heartbeats every 0.05 s
    events: list[str] = []

    async def body(ctx: RunContext) -> JobOutcome:
        now = dt.datetime.now(dt.UTC)
        history.leases[LEASE] = Lease("thief", now, now + dt.timedelta(minutes=5))
        events.append("lease stolen")
        try:
            await asyncio.sleep(60)  # only the next heartbeat's cancellation ends this early
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        events.append("finished")
        return JobOutcome()

    result = await run_child(parent, "bronze_to_silver", 3, body, parameters={})

    assert isinstance(result.error, LeaseLost)
    assert events == ["lease stolen", "cancelled"]
    assert history.runs[result.run_id].status is RunStatus.FAILED
    assert history.leases[LEASE].owner == "thief"


async def test_a_long_child_keeps_its_lease_and_run_alive() -> None:
    history = FakeRunHistory()
    parent = await _parent(history, ttl=0.15)
    beats: list[dt.datetime | None] = []

    async def body(ctx: RunContext) -> JobOutcome:
        for _ in range(4):
            await asyncio.sleep(0.1)
            beats.append(history.runs[ctx.run_id].heartbeat_at)
        return JobOutcome()

    result = await run_child(parent, "bronze_to_silver", 3, body, parameters={})

    assert result.error is None
    assert len(set(beats)) > 1


async def test_counts_that_break_the_checks_fail_the_child() -> None:
    history = FakeRunHistory()

    async def body(ctx: RunContext) -> JobOutcome:
        return JobOutcome(counts=Counts(rows_in=2, rows_dead_letter=2))

    result = await run_child(await _parent(history), "bronze_to_silver", 3, body, parameters={})

    assert isinstance(result.error, DeadLetterThresholdExceeded)
    assert history.runs[result.run_id].status is RunStatus.FAILED


async def test_a_dry_run_child_takes_no_lease_and_writes_no_history() -> None:
    history = FakeRunHistory()
    parent = await _parent(history, dry_run=True)

    result = await run_child(parent, "bronze_to_silver", 3, _publish_one, parameters={})

    assert result.error is None
    assert (history.runs, history.ledger, history.leases) == ({}, [], {})
    assert len(result.records) == 1


def test_child_runs_use_the_runners_count_checks() -> None:
    assert check_counts(Counts(), None) is None
    assert isinstance(check_counts(Counts(rows_in=2, rows_out=1), None), InvariantViolation)
    assert check_counts(Counts(rows_in=4, rows_out=3, rows_dead_letter=1), 0.25) is None
    too_many = check_counts(Counts(rows_in=4, rows_out=2, rows_dead_letter=2), 0.25)
    assert isinstance(too_many, DeadLetterThresholdExceeded)


@pytest.mark.parametrize("dry_run", [False, True])
async def test_a_cancelled_child_leaves_no_running_row(dry_run: bool) -> None:
    history = FakeRunHistory()
    parent = await _parent(history, dry_run=dry_run)
    started = asyncio.Event()

    async def body(ctx: RunContext) -> JobOutcome:
        started.set()
        await asyncio.sleep(5)
        return JobOutcome()

    task = asyncio.create_task(run_child(parent, "bronze_to_silver", 3, body, parameters={}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    children = [run for run in history.runs.values() if run.run_id != "parent"]
    assert all(run.status is RunStatus.FAILED for run in children)
    assert len(children) == (0 if dry_run else 1)
    assert history.leases == {}
