"""Fold one agency's new bronze into the silver and dead-letter Delta tables (WORKLOAD.md),
exactly once: only bronze not folded in before is read, and a commit publishes it atomically."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from etl_core.adapters.every_history import every_history
from etl_core.adapters.object_stores import store_location
from etl_core.dates import date_flag
from etl_core.errors import ConfigError
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import (
    DEFAULT_STORE_URL,
    add_common_arguments,
)
from etl_core.urls import redact

from jobs import _wiring
from jobs._promote_args import PromoteSettings, add_promote_arguments

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.run import PromoteOptions

NAME = "bronze_to_silver"


@attrs.frozen(kw_only=True)
class BronzeToSilverSettings(PromoteSettings):
    """Job options; `bronze` defaults to the store itself."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    reprocess: bool = False

    def promote_options(self) -> PromoteOptions:
        """The pass these settings spell (a backfill's: each agency's)."""
        return attrs.evolve(
            super().promote_options(),
            first=self.date_from,
            last=self.date_to,
            reprocess=self.reprocess,
        )

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        first, last = self.date_from, self.date_to
        if first is not None and last is not None and first > last:
            yield "date_from", f"--from {first} is after --to {last}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"data-pipeline {NAME}", description=__doc__, allow_abbrev=False
    )
    add = parser.add_argument
    add(
        "--from",
        dest="date_from",
        type=date_flag,
        metavar="YYYY-MM-DD",
        help="fold in only new bronze of dt >= this (merges still span all of silver)",
    )
    add(
        "--to",
        dest="date_to",
        type=date_flag,
        metavar="YYYY-MM-DD",
        help="fold in only new bronze of dt <= this",
    )
    add(
        "--reprocess",
        action="store_true",
        default=None,
        help="rebuild the agency's silver and dead letters from its whole bronze",
    )
    add(
        "--demo",
        action="store_true",
        help="if the store holds no agencies file and no bronze, first generate the reference "
        "data set (WORKLOAD.md) into it; without store settings, the embedded local store. "
        "Never done unless asked",
    )
    add_promote_arguments(
        parser, workers_help="transform processes (default: CPU count; 1 = inline, no pool)"
    )
    add_common_arguments(parser, agency_required=True)
    return parser


def entrypoint(argv: list[str]) -> int:
    return _wiring.main(
        NAME, argv, _parser(), BronzeToSilverSettings, _plan, histories=every_history
    )


def _plan(settings: BronzeToSilverSettings, args: argparse.Namespace) -> _wiring.Planned:
    assert settings.agency_id is not None  # agency_required
    if not args.demo and _reads_an_empty_embedded_store(settings):
        raise ConfigError(_EMPTY_EMBEDDED_STORE)
    options = settings.promote_options()

    async def body(ctx: RunContext) -> JobOutcome:
        return await bronze_to_silver(ctx, settings, options, demo=args.demo)

    parameters = {
        "from": settings.date_from,
        "to": settings.date_to,
        "reprocess": settings.reprocess,
        "workers": settings.workers,
        "batch_files": settings.batch_files,
        "bronze": redact(settings.bronze or settings.store_url),
        "agencies_key": settings.agencies_key,
        "demo": args.demo,
    }
    return _wiring.Planned(body=body, parameters=parameters)


_EMPTY_EMBEDDED_STORE = (
    f"the embedded local store {DEFAULT_STORE_URL} holds no agencies file and no bronze: point "
    "--store (or ETL_STORE_URL) at your store, or pass --demo to generate the reference data set "
    "into the embedded store first"
)


def _reads_an_empty_embedded_store(settings: BronzeToSilverSettings) -> bool:
    """Bronze is the embedded default store, and it is empty: a run would find nothing, because
    nobody configured a store (demo data is generated only on --demo)."""
    if settings.store_url != DEFAULT_STORE_URL or settings.bronze not in (None, DEFAULT_STORE_URL):
        return False
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
    from etl_core.adapters.object_stores import open_object_store
    from etl_core.failpoints import FailpointObjectStore

    summary: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_object_store(settings.store_url, dry_run=ctx.dry_run)
        )
        bronze = store
        if settings.bronze is not None and settings.bronze != settings.store_url:
            # A dry-run view: whatever happens, the job cannot write to bronze.
            bronze = await stack.enter_async_context(
                open_object_store(settings.bronze, dry_run=True)
            )
        elif demo and await is_empty(store, options.agencies_key):
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
