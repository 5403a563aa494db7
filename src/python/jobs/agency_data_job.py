"""Export one agency's records as CSV and NDJSON artifacts in the store.

With no --source: the agency's committed rows and dead letters of the store's silver and
dead-letter tables, as bronze_to_silver wrote them (run it first). With --source: the records of
a PostgreSQL table, an HTTP API or the bronze files of a store, validated and deduped as
bronze_to_silver does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from data_pipeline.export.configuration import AGENCIES_KEY, AgencyDataSettings, add_arguments
from etl_core.adapters.every_history import every_history
from etl_core.adapters.every_source import every_source
from etl_core.adapters.object_stores import store_location
from etl_core.adapters.record_sources import check_source
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.urls import redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.silver.agencies import Agency
    from etl_core.ports import ObjectStore

NAME = "agency_data_job"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments)
    return _wiring.main(NAME, argv, parser, AgencyDataSettings, _plan, histories=every_history)


def _plan(settings: AgencyDataSettings, args: argparse.Namespace) -> _wiring.Planned:
    if settings.source_url is not None:  # credentials present: a usage error, not a failed run
        check_source(
            settings.source_url, settings.source_options(), os.environ, sources=every_source()
        )

    async def body(ctx: RunContext) -> JobOutcome:
        return await agency_data_job(ctx, settings)

    return _wiring.Planned(body=body, parameters={"source": settings.source_label()})


async def agency_data_job(ctx: RunContext, settings: AgencyDataSettings) -> JobOutcome:
    """Wire the store and either its tables or the source and the agencies file, then export."""
    from data_pipeline.bronze_to_silver.presence import require_known
    from data_pipeline.export.artifacts import ExportOptions, export_agency, export_prefix
    from etl_core.adapters.object_stores import open_object_store
    from etl_core.adapters.record_sources import open_record_source

    assert settings.agency_id is not None  # load_settings insists (agency_required)
    summary: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_object_store(settings.store_url, dry_run=ctx.dry_run)
        )
        if settings.source_url is None:
            from data_pipeline.export.agencies_file import require_listed
            from data_pipeline.export.from_tables import NothingInSilver, export_silver
            from etl_core.adapters.delta_tables import SILVER, open_tables

            tables = open_tables(
                settings.store_url, store, os.environ, dry_run=ctx.dry_run, run_id=ctx.run_id
            )
            label = store_location(settings.store_url, SILVER)
            export = ExportOptions(settings.agency_id, settings.formats, source_label=label)
            try:
                outcome = await export_silver(ctx, tables, store, export)
            except NothingInSilver:  # an unknown agency says so
                shown = f"{store_location(settings.store_url, '').rstrip('/')}/{AGENCIES_KEY}"
                await require_listed(store, settings.agency_id, AGENCIES_KEY, shown)
                raise
        else:
            source = await stack.enter_async_context(
                open_record_source(settings.source_url, every_source(), settings.source_options())
            )
            agencies, summary["agencies"] = await _agencies(stack, settings, store)
            require_known(settings.agency_id, agencies, summary["agencies"])
            label = redact(settings.source_url)
            export = ExportOptions(settings.agency_id, settings.formats, source_label=label)
            outcome = await export_agency(ctx, source, store, agencies, export)
    summary["source"] = label
    summary.update(outcome.summary)
    prefix = export_prefix(settings.agency_id, ctx.run_id)
    summary["export"] = store_location(settings.store_url, prefix) + (
        " (dry run: nothing uploaded)" if ctx.dry_run else ""
    )
    summary["run_id"] = ctx.run_id
    return attrs.evolve(outcome, summary=summary)


async def _agencies(
    stack: contextlib.AsyncExitStack, settings: AgencyDataSettings, store: ObjectStore
) -> tuple[Mapping[int, Agency], str]:
    """agency_id -> Agency from the configured file, a store source's, or the store's own."""
    from data_pipeline.export.agencies_file import read_agencies
    from etl_core.adapters.object_stores import open_object_store

    directory, key, shown = settings.agencies_location()
    if directory is not None:  # read-only: a dry-run view never writes
        store = await stack.enter_async_context(open_object_store(directory, dry_run=True))
    return await read_agencies(store, key, shown), shown


JOB = (
    entrypoint,
    "Export an agency's silver rows and dead letters (or a PostgreSQL, HTTP API or bronze "
    "source) as CSV + NDJSON",
)

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
