"""What agency_data_job does once its store (and source) are open: export the agency from the
silver and dead-letter tables or from a record source, and say where the artifacts went."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from etl_core.ports import ObjectStore, RecordSource, SilverTables
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.bronze_to_silver.presence import require_known
from data_pipeline.export.agencies_file import AgenciesFile, require_listed
from data_pipeline.export.artifacts import ExportOptions, export_agency, export_prefix
from data_pipeline.export.configuration import AGENCIES_KEY
from data_pipeline.export.from_tables import NothingInSilver, export_silver

Where = Callable[[str], str]
"""Where a key prefix of the store is, as a person would open it (a directory or a URL)."""


async def export_from_tables(
    ctx: RunContext,
    tables: SilverTables,
    store: ObjectStore,
    options: ExportOptions,
    where: Where,
) -> JobOutcome:
    """The agency's committed rows of both tables; an agency with none and not listed in the
    store's agencies file fails as unknown (UnknownAgency), a listed one with NothingInSilver."""
    try:
        outcome = await export_silver(ctx, tables, store, options)
    except NothingInSilver:
        shown = f"{where('').rstrip('/')}/{AGENCIES_KEY}"
        await require_listed(store, options.agency_id, AGENCIES_KEY, shown)
        raise
    return _located(ctx, outcome, options, where, {})


async def export_from_source(
    ctx: RunContext,
    source: RecordSource,
    store: ObjectStore,
    agencies_file: AgenciesFile,
    options: ExportOptions,
    where: Where,
) -> JobOutcome:
    """The source's records of the agency, validated, deduped and enriched from the agencies
    file. Raises DataError if it cannot be read, UnknownAgency if it does not list the agency."""
    agencies = await agencies_file.read()
    require_known(options.agency_id, agencies, agencies_file.shown)
    outcome = await export_agency(ctx, source, store, agencies, options)
    return _located(ctx, outcome, options, where, {"agencies": agencies_file.shown})


def _located(
    ctx: RunContext,
    outcome: JobOutcome,
    options: ExportOptions,
    where: Where,
    first: Mapping[str, Any],
) -> JobOutcome:
    """The outcome with its source and where its artifacts are (or would have been) uploaded."""
    export = where(export_prefix(options.agency_id, ctx.run_id))
    if ctx.dry_run:
        export += " (dry run: nothing uploaded)"
    summary = {**first, "source": options.source_label, **outcome.summary, "export": export}
    return attrs.evolve(outcome, summary=summary)
