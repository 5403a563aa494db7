"""Fold one agency's new bronze into the silver and dead-letter Delta tables (WORKLOAD.md),
exactly once: only bronze not folded in before is read, and a commit publishes it atomically."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

import attrs
from data_pipeline.bronze_to_silver.configuration import BronzeToSilverSettings, add_arguments
from etl_core.adapters.every_history import every_history
from etl_core.adapters.object_stores import store_location
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.urls import redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.run import PromoteOptions

NAME = "bronze_to_silver"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments)
    return _wiring.main(NAME, argv, parser, BronzeToSilverSettings, _plan, histories=every_history)


def _plan(settings: BronzeToSilverSettings, args: argparse.Namespace) -> _wiring.Planned:
    from jobs._embedded_store import require_input

    assert settings.agency_id is not None  # agency_required
    require_input(settings, demo=args.demo)
    options = settings.promote_options()

    async def body(ctx: RunContext) -> JobOutcome:
        return await bronze_to_silver(ctx, settings, options, demo=args.demo)

    return _wiring.Planned(body=body, parameters=settings.parameters(demo=args.demo))


async def bronze_to_silver(
    ctx: RunContext,
    settings: BronzeToSilverSettings,
    options: PromoteOptions,
    *,
    demo: bool = False,
) -> JobOutcome:
    """Wire the stores (bronze opened read-only) and promote; on --demo, seed an empty store."""
    from data_pipeline.bronze_to_silver.run import promote
    from data_pipeline.workload.demo_seed import is_empty, seed_reference_workload
    from etl_core.failpoints import FailpointObjectStore

    from jobs import _tables

    seeded: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        store, bronze = await _wiring.store_and_bronze(
            stack, settings.store_url, settings.bronze, dry_run=ctx.dry_run
        )
        if bronze is store and demo and await is_empty(store, options.agencies_key):
            shown = redact(settings.store_url)
            seeded["generated"] = await seed_reference_workload(ctx, store, shown)
        tables_store = FailpointObjectStore(store, "bronze_to_silver.store")
        tables = _tables.tables(
            ctx, settings.store_url, tables_store, rows_per_file=settings.rows_per_file
        )
        outcome = await promote(ctx, store, bronze, tables, options)
    where = {"silver": "silver/", "dead-letter": "deadletter/"}
    places = {name: store_location(settings.store_url, key) for name, key in where.items()}
    return attrs.evolve(outcome, summary={**seeded, **outcome.summary, **places})


JOB = (
    entrypoint,
    "Fold an agency's new bronze into the silver Delta table (dedupe, dead-letter, merge)",
)

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
