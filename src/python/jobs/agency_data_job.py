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
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from etl_core.adapters.every_history import every_history
from etl_core.adapters.every_source import every_source
from etl_core.adapters.object_stores import store_location
from etl_core.adapters.record_sources import (
    RecordSourceSettings,
    add_source_arguments,
    check_source,
)
from etl_core.errors import ConfigError
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import add_common_arguments
from etl_core.urls import SecretUrl, parse_source_url, parse_store_url, redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.silver.agencies import Agency
    from etl_core.ports import ObjectStore

NAME = "agency_data_job"
FORMATS = ("csv", "ndjson")
AGENCIES_KEY = "agencies.csv"
SILVER_SOURCE = "silver and dead-letter tables of the store"


@attrs.frozen(kw_only=True)
class AgencyDataSettings(RecordSourceSettings):
    """Source settings plus the artifact formats and where agencies.csv is.

    No source: the store's silver and dead-letter tables (already enriched: no agencies file).
    No agencies: agencies.csv beside the bronze of a store source, else at the root of the
    destination store.
    """

    format: str = ",".join(FORMATS)
    agencies_url: SecretUrl | None = attrs.field(
        default=None, converter=attrs.converters.optional(SecretUrl)
    )

    @property
    def formats(self) -> tuple[str, ...]:
        """The requested formats, in FORMATS order."""
        asked = {item.strip().lower() for item in self.format.split(",") if item.strip()}
        return tuple(name for name in FORMATS if name in asked)

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        asked = {item.strip().lower() for item in self.format.split(",") if item.strip()}
        if not asked or asked - set(FORMATS):
            yield "format", f"expected a comma-separated subset of {','.join(FORMATS)}"
        if self.agencies_url is not None and self.source_url is None:
            yield "agencies_url", "only with --source: silver rows are enriched already"
        elif self.agencies_url is not None:
            try:
                _split_object_url(self.agencies_url)
            except ConfigError as exc:
                yield "agencies_url", str(exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"data-pipeline {NAME}", description=__doc__, allow_abbrev=False
    )
    parser.add_argument(
        "--format", metavar="LIST", help="artifacts to write: csv, ndjson or both (default)"
    )
    parser.add_argument(
        "--agencies", "--agencies-url", dest="agencies_url", metavar="URL",
        help="with --source: agencies.csv to enrich from (path, file:// or s3:// URL of the file)",
    )  # fmt: skip
    add_source_arguments(parser, batch_help="records per batch read (default 1000)")
    add_common_arguments(parser, agency_required=True)
    return parser


def entrypoint(argv: list[str]) -> int:
    return _wiring.main(NAME, argv, _parser(), AgencyDataSettings, _plan, histories=every_history)


def _plan(settings: AgencyDataSettings, args: argparse.Namespace) -> _wiring.Planned:
    if settings.source_url is not None:  # credentials present: a usage error, not a failed run
        check_source(
            settings.source_url, settings.source_options(), os.environ, sources=every_source()
        )

    async def body(ctx: RunContext) -> JobOutcome:
        return await agency_data_job(ctx, settings)

    source = redact(settings.source_url) if settings.source_url else SILVER_SOURCE
    return _wiring.Planned(body=body, parameters={"source": source})


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
            from data_pipeline.export.from_tables import NothingInSilver, export_silver
            from etl_core.adapters.delta_tables import SILVER, open_tables

            tables = open_tables(
                settings.store_url, store, os.environ, dry_run=ctx.dry_run, run_id=ctx.run_id
            )
            label = store_location(settings.store_url, SILVER)
            export = ExportOptions(settings.agency_id, settings.formats, source_label=label)
            try:
                outcome = await export_silver(ctx, tables, store, export)
            except NothingInSilver:
                await _known_to_the_store(store, settings)  # an unknown agency says so
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
    from data_pipeline.silver.agencies import parse_agencies
    from etl_core.adapters.object_stores import open_object_store
    from etl_core.errors import DataError, ObjectNotFound

    if settings.agencies_url is not None:
        directory, key = _split_object_url(settings.agencies_url)
        shown = redact(settings.agencies_url)
    elif settings.source_url is not None and parse_source_url(settings.source_url).kind == "store":
        directory, key = settings.source_url, AGENCIES_KEY
        shown = f"{redact(directory).rstrip('/')}/{key}"
    else:
        directory, key = None, AGENCIES_KEY
        shown = f"{redact(settings.store_url).rstrip('/')}/{key}"
    if directory is not None:  # read-only: a dry-run view never writes
        store = await stack.enter_async_context(open_object_store(directory, dry_run=True))
    try:
        body = await store.get(key)
    except ObjectNotFound:
        raise DataError(f"agencies file {shown} not found (pass --agencies URL)") from None
    return parse_agencies(body, source=shown), shown


async def _known_to_the_store(store: ObjectStore, settings: AgencyDataSettings) -> None:
    """Raise UnknownAgency if the store's agencies file (bronze_to_silver's reference data)
    does not list the agency; nothing if it does or there is no such file."""
    from data_pipeline.bronze_to_silver.presence import require_known
    from data_pipeline.silver.agencies import parse_agencies
    from etl_core.errors import ObjectNotFound

    assert settings.agency_id is not None
    shown = f"{store_location(settings.store_url, '').rstrip('/')}/{AGENCIES_KEY}"
    try:
        body = await store.get(AGENCIES_KEY)
    except ObjectNotFound:
        return
    require_known(settings.agency_id, parse_agencies(body, source=shown), shown)


def _split_object_url(url: str) -> tuple[str, str]:
    """(store URL, key) of the URL of one object: its directory and file name."""
    directory, slash, key = url.rstrip().rpartition("/")
    if not slash:
        directory = "."
    if not key:
        raise ConfigError(f"{redact(url)!r} names no file (expected .../agencies.csv)")
    parse_store_url(directory or "/")
    return directory or "/", key


JOB = (
    entrypoint,
    "Export an agency's silver rows and dead letters (or a PostgreSQL, HTTP API or bronze "
    "source) as CSV + NDJSON",
)

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
