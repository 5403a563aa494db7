"""Backfill bronze -> silver over a date range for one, several or all agencies, resumably."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from data_pipeline.backfill.configuration import EPILOG, BackfillSettings, add_arguments
from etl_core.adapters.every_history import every_history
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.backfill.run import BackfillOptions
    from etl_core.ports import SilverTables

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
    """Open the stores (bronze read-only) and the tables each child run commits to, and backfill
    (data_pipeline.backfill.command)."""
    from data_pipeline.backfill import command
    from etl_core.failpoints import FailpointObjectStore

    from jobs import _tables

    async with contextlib.AsyncExitStack() as stack:
        store, bronze = await _wiring.store_and_bronze(
            stack, settings.store_url, settings.bronze, dry_run=ctx.dry_run
        )
        tables_store = FailpointObjectStore(store, "bronze_to_silver.store")

        def tables(run_id: str) -> SilverTables:
            return _tables.tables(
                ctx, settings.store_url, tables_store, rows_per_file=settings.rows_per_file,
                run_id=run_id,
            )  # fmt: skip

        ids = settings.agency_ids()
        return await command.backfill(ctx, store, bronze, tables, ids, options)


JOB = (entrypoint, "Backfill bronze -> silver over a date range for many agencies (resumable)")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
