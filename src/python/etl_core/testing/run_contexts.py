"""The RunContext a job body gets from the runner, for tests that call a body directly.

One place instead of a copy per test module: the run is recorded as RUNNING in the history first
(as run_job does), except in a dry run, which records nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, cast

from etl_core.model import RunRecord, RunStatus
from etl_core.ports import LeaseStore, RunHistory
from etl_core.runner import RunContext
from etl_core.settings import CommonSettings


async def started_run(
    history: RunHistory,
    job: str,
    *,
    run_id: str = "r1",
    agency_id: int | None = None,
    dry_run: bool = False,
    leased: bool = False,
    settings: CommonSettings | None = None,
    started_at: dt.datetime | None = None,
    **record: Any,
) -> RunContext:
    """A RunContext for run_id of job, its RunRecord started in history (not in a dry run).

    leased: the context's lease store is the history (as the runner gives a leased run);
    settings: default CommonSettings(agency_id=agency_id); record: more RunRecord fields."""
    if not dry_run:
        started = started_at or dt.datetime.now(dt.UTC)
        await history.start_run(
            RunRecord(run_id, job, RunStatus.RUNNING, started, agency_id, **record)
        )
    return RunContext(
        run_id=run_id,
        job=job,
        agency_id=agency_id,
        dry_run=dry_run,
        settings=settings if settings is not None else CommonSettings(agency_id=agency_id),
        history=history,
        log=logging.getLogger("test"),
        leases=cast(LeaseStore, history) if leased and not dry_run else None,
    )
