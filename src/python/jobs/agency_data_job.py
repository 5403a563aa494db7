"""Export one agency's records as CSV and NDJSON artifacts in the store.

With no --source: the agency's committed rows and dead letters of the store's silver and
dead-letter tables, as bronze_to_silver wrote them (run it first). With --source: the records of
a PostgreSQL table, an HTTP API or the bronze files of a store, validated and deduped as
bronze_to_silver does.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys

from data_pipeline.export.configuration import AgencyDataSettings, add_arguments
from etl_core.adapters.every_history import every_history
from etl_core.adapters.every_source import every_source
from etl_core.adapters.object_stores import store_location
from etl_core.adapters.record_sources import check_source
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.urls import redact

from jobs import _wiring

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
    """Wire the store and either its tables or the source and the agencies file, then export
    (data_pipeline.export.command)."""
    from data_pipeline.export import command
    from data_pipeline.export.agencies_file import AgenciesFile
    from data_pipeline.export.artifacts import ExportOptions
    from etl_core.adapters.delta_tables import SILVER
    from etl_core.adapters.object_stores import open_object_store
    from etl_core.adapters.record_sources import open_record_source

    from jobs import _tables

    assert settings.agency_id is not None  # load_settings insists (agency_required)
    where = functools.partial(store_location, settings.store_url)
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_object_store(settings.store_url, dry_run=ctx.dry_run)
        )
        if settings.source_url is None:
            export = ExportOptions(settings.agency_id, settings.formats, where(SILVER))
            tables = _tables.tables(ctx, settings.store_url, store)
            return await command.export_from_tables(ctx, tables, store, export, where)
        source = await stack.enter_async_context(
            open_record_source(settings.source_url, every_source(), settings.source_options())
        )
        directory, key, shown = settings.agencies_location()
        listing = store
        if directory is not None:  # read-only: a dry-run view never writes
            listing = await stack.enter_async_context(open_object_store(directory, dry_run=True))
        agencies = AgenciesFile(listing, key, shown)
        export = ExportOptions(settings.agency_id, settings.formats, redact(settings.source_url))
        return await command.export_from_source(ctx, source, store, agencies, export, where)


JOB = (
    entrypoint,
    "Export an agency's silver rows and dead letters (or a PostgreSQL, HTTP API or bronze "
    "source) as CSV + NDJSON",
)

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
