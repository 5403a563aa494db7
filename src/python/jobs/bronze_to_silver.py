"""Fold one agency's new bronze into the silver and dead-letter Delta tables (WORKLOAD.md),
exactly once: only bronze not folded in before is read, and a commit publishes it atomically."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

import attrs
from data_pipeline.bronze_to_silver.configuration import (
    EMPTY_EMBEDDED_STORE,
    BronzeToSilverSettings,
    add_arguments,
)
from etl_core.adapters.every_history import every_history
from etl_core.adapters.object_stores import store_location
from etl_core.errors import ConfigError
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import DEFAULT_STORE_URL
from etl_core.urls import redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.run import PromoteOptions

NAME = "bronze_to_silver"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments)
    return _wiring.main(NAME, argv, parser, BronzeToSilverSettings, _plan, histories=every_history)


def _plan(settings: BronzeToSilverSettings, args: argparse.Namespace) -> _wiring.Planned:
    assert settings.agency_id is not None  # agency_required
    if not args.demo and settings.reads_embedded_store() and _embedded_store_is_empty(settings):
        raise ConfigError(EMPTY_EMBEDDED_STORE)
    options = settings.promote_options()

    async def body(ctx: RunContext) -> JobOutcome:
        return await bronze_to_silver(ctx, settings, options, demo=args.demo)

    return _wiring.Planned(body=body, parameters=settings.parameters(demo=args.demo))


def _embedded_store_is_empty(settings: BronzeToSilverSettings) -> bool:
    """A run would find nothing there (demo data is generated only on --demo)."""
    from data_pipeline.workload.demo_seed import is_empty
    from etl_core.adapters.object_stores import open_object_store

    async def check() -> bool:
        async with open_object_store(DEFAULT_STORE_URL, dry_run=True) as store:
            return await is_empty(store, settings.agencies_key)

    return asyncio.run(check())


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
    from etl_core.adapters.delta_tables import open_tables
    from etl_core.failpoints import FailpointObjectStore

    summary: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        store, bronze = await _wiring.store_and_bronze(
            stack, settings.store_url, settings.bronze, dry_run=ctx.dry_run
        )
        if bronze is store and demo and await is_empty(store, options.agencies_key):
            summary["generated"] = await seed_reference_workload(
                ctx, store, redact(settings.store_url)
            )
        tables = open_tables(
            settings.store_url,
            FailpointObjectStore(store, "bronze_to_silver.store"),
            os.environ,
            dry_run=ctx.dry_run,
            run_id=ctx.run_id,
            rows_per_file=settings.rows_per_file,
        )
        outcome = await promote(ctx, store, bronze, tables, options)
    summary.update(outcome.summary)
    summary["silver"] = store_location(settings.store_url, "silver/")
    summary["dead-letter"] = store_location(settings.store_url, "deadletter/")
    summary["run_id"] = ctx.run_id
    return attrs.evolve(outcome, summary=summary)


JOB = (
    entrypoint,
    "Fold an agency's new bronze into the silver Delta table (dedupe, dead-letter, merge)",
)

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
