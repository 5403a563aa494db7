"""What `backfill` does once its stores and tables are open: plan every agency, print the plan,
run them as child runs, print the summary table, then fail or report."""

from __future__ import annotations

import time

from etl_core import logs
from etl_core.ports import ObjectStore
from etl_core.runner import JobOutcome, RunContext
from opentelemetry import trace

from data_pipeline.backfill.plan import bronze_agencies, plan_backfill
from data_pipeline.backfill.report import plan_table, run_summary, summary_table
from data_pipeline.backfill.run import BackfillOptions, TablesFor, run_backfill


async def backfill(
    ctx: RunContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: TablesFor,
    agency_ids: tuple[int, ...] | None,
    options: BackfillOptions,
) -> JobOutcome:
    """Backfill agency_ids (none: every agency with bronze). Raises the worst agency's error
    after the summary table is printed; the failed run's row still shows what was done."""
    started = time.monotonic()
    root = trace.get_current_span()  # the run's own span (run_job's)
    with ctx.span("plan") as span:
        ids = agency_ids or await bronze_agencies(bronze)
        # A run of many agencies: its own spans carry them all (each child's, its own).
        for named in (root, span):
            named.set_attribute("agency_ids", list(ids))
        plans = await plan_backfill(
            store, bronze, tables(ctx.run_id).silver, ids, first=options.first,
            last=options.last, agencies_key=options.promote.agencies_key,
            reprocess=options.promote.reprocess,
        )  # fmt: skip
    mode = " (dry run: nothing is written)" if ctx.dry_run else ""
    logs.print_text(f"backfill plan {options.first}..{options.last}{mode}\n{plan_table(plans)}")
    with ctx.span("run", agencies=len(plans), max_parallel=options.max_parallel,
                  agency_ids=list(ids)):  # fmt: skip
        report = await run_backfill(ctx, store, bronze, tables, plans, options)
    seconds = time.monotonic() - started
    logs.print_text(f"backfill summary{mode}\n{summary_table(report, seconds=seconds)}")
    error = report.error()
    if error is not None:
        ctx.recorded = report.counts
        raise error
    return JobOutcome(counts=report.counts, summary=run_summary(report, plans))
