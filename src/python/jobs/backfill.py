"""Backfill bronze -> silver over a date range for one, several or all agencies, resumably."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING

from data_pipeline.backfill.configuration import EPILOG, BackfillSettings, add_arguments
from etl_core.adapters.every_history import every_history
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from opentelemetry import trace

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.backfill.run import BackfillOptions

NAME = "backfill"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments, epilog=EPILOG)
    return _wiring.main(NAME, argv, parser, BackfillSettings, _plan, histories=every_history)


def _plan(settings: BackfillSettings, args: argparse.Namespace) -> _wiring.Planned:
    options = settings.backfill_options()

    async def body(ctx: RunContext) -> JobOutcome:
        return await backfill(ctx, settings, options)

    parameters = settings.run_parameters()
    return _wiring.Planned(body=body, parameters=parameters, lease_scope=settings.lease_scope())


async def backfill(
    ctx: RunContext, settings: BackfillSettings, options: BackfillOptions
) -> JobOutcome:
    """Open the stores (bronze read-only) and the tables, plan, print the plan, run, print the
    summary table."""
    from data_pipeline.backfill.plan import bronze_agencies, plan_backfill
    from data_pipeline.backfill.report import plan_table, run_summary, summary_table
    from data_pipeline.backfill.run import run_backfill
    from etl_core.adapters.delta_tables import Tables, open_tables
    from etl_core.failpoints import FailpointObjectStore

    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        store, bronze = await _wiring.store_and_bronze(
            stack, settings.store_url, settings.bronze, dry_run=ctx.dry_run
        )
        tables_store = FailpointObjectStore(store, "bronze_to_silver.store")

        def tables(run_id: str) -> Tables:
            return open_tables(
                settings.store_url, tables_store, os.environ, dry_run=ctx.dry_run,
                run_id=run_id, rows_per_file=settings.rows_per_file,
            )  # fmt: skip

        root = trace.get_current_span()  # the run's own span (run_job's)
        with ctx.span("plan") as span:
            ids = settings.agency_ids() or await bronze_agencies(bronze)
            # A run of many agencies: its own spans carry them all (each child's, its own).
            for named in (root, span):
                named.set_attribute("agency_ids", list(ids))
            plans = await plan_backfill(
                store, bronze, tables(ctx.run_id).silver, ids, first=options.first,
                last=options.last, agencies_key=options.promote.agencies_key,
                reprocess=options.promote.reprocess,
            )  # fmt: skip
        mode = " (dry run: nothing is written)" if ctx.dry_run else ""
        plan = f"backfill plan {options.first}..{options.last}{mode}\n{plan_table(plans)}"
        _wiring.print_line(plan)
        with ctx.span("run", agencies=len(plans), max_parallel=options.max_parallel,
                      agency_ids=list(ids)):  # fmt: skip
            report = await run_backfill(ctx, store, bronze, tables, plans, options)
    seconds = time.monotonic() - started
    _wiring.print_line(f"backfill summary{mode}\n{summary_table(report, seconds=seconds)}")
    error = report.error()
    if error is not None:
        ctx.recorded = report.counts  # the failed run's row still shows what was done
        raise error
    summary = {**run_summary(report, plans), "run_id": ctx.run_id}
    return JobOutcome(counts=report.counts, summary=summary)


JOB = (entrypoint, "Backfill bronze -> silver over a date range for many agencies (resumable)")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
