"""Compact, vacuum and checkpoint the silver and dead-letter Delta tables of a store."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from data_pipeline.maintenance.configuration import EPILOG, MaintainSettings, add_arguments
from etl_core import logs
from etl_core.adapters.every_history import every_history
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.maintenance.run import MaintenanceOptions

NAME = "maintain"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments, epilog=EPILOG)
    return _wiring.main(NAME, argv, parser, MaintainSettings, _plan, histories=every_history)


def _plan(settings: MaintainSettings, args: argparse.Namespace) -> _wiring.Planned:
    async def body(ctx: RunContext) -> JobOutcome:
        return await maintain(ctx, settings, settings.maintenance_options())

    # One maintain run at a time, whichever agencies it names: vacuum and checkpoint are per table.
    return _wiring.Planned(body=body, parameters=settings.parameters(), lease_scope="tables")


async def maintain(
    ctx: RunContext, settings: MaintainSettings, options: MaintenanceOptions
) -> JobOutcome:
    """Open the store's two tables for maintenance, maintain them, report per table."""
    from data_pipeline.maintenance import run as maintenance
    from data_pipeline.maintenance.report import summary
    from etl_core.adapters.delta_maintenance import maintenance_of
    from etl_core.adapters.delta_tables import open_tables
    from etl_core.adapters.object_stores import open_object_store

    async with open_object_store(settings.store_url, dry_run=ctx.dry_run) as store:
        tables = open_tables(settings.store_url, store, os.environ, dry_run=ctx.dry_run)
        report = await maintenance.maintain(ctx, maintenance_of(tables), options)
    lines = summary(report, dry_run=ctx.dry_run, retention_hours=options.retention_hours)
    error = report.error()
    if error is not None:  # the runner prints no summary for a failed run: show what was done
        logs.print_text("\n".join(f"{table}: {line}" for table, line in lines.items()))
        raise error
    checkpoints = tuple(
        f"checkpoint:{step.table}@v{step.checkpoint}"
        for step in report.tables
        if step.checkpoint is not None
    )
    return JobOutcome(counts=report.counts, artifacts=checkpoints, summary=lines)


JOB = (entrypoint, "Compact, vacuum and checkpoint the silver and dead-letter Delta tables")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
