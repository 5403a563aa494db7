"""Open the record source a URL names (PostgreSQL, HTTP API, bronze files). The settings and
flags they share are etl_core.source_settings' (re-exported here).

The job's wiring imports the source adapters it supports and passes them by kind (adapter_choice):
Pants ships exactly those in its PEX, and a URL for another kind is a ConfigError naming the module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs

from etl_core.adapters.adapter_choice import Adapters, choose_adapter
from etl_core.adapters.object_stores import open_object_store
from etl_core.errors import ConfigError
from etl_core.model import SourceBatch
from etl_core.ports import RecordSource
from etl_core.raw_records import raw_record
from etl_core.source_settings import (
    PAGING_STYLES,
    RecordSourceSettings,
    SourceOptions,
    add_source_arguments,
    check_http_options,
    pg_schema_table,
)
from etl_core.urls import SourceUrl, parse_source_url

__all__ = [
    "PAGING_STYLES",
    "SOURCE_MODULES",
    "RecordSourceSettings",
    "SourceOptions",
    "add_source_arguments",
    "check_source",
    "open_record_source",
]

# Source URL kind -> the adapter module that serves it (named in "not shipped" errors). A "store"
# (bronze files) source also needs the object store adapter of its URL (object_stores).
SOURCE_MODULES: Mapping[str, str] = {
    "postgresql": "etl_core.adapters.pg_record_source",
    "http": "etl_core.adapters.http_record_source",
    "store": "etl_core.adapters.bronze_record_source",
}


def check_source(
    url: str,
    options: SourceOptions,
    env: Mapping[str, str] | None = None,
    *,
    sources: Adapters | None = None,
) -> str:
    """Validate url and options without connecting; the source kind. Raises ConfigError, also
    when sources (the adapters the job ships) lack that kind.

    Without sources (settings, before the wiring), only what needs no adapter is checked. With
    env, also check that the credentials variable is set (never showing its value).
    """
    parsed = parse_source_url(url)
    module = None
    if sources is not None:
        module = choose_adapter("record source", url, parsed.kind, sources, SOURCE_MODULES)
    if parsed.kind == "postgresql":
        _pg_table(url, options, module)
    elif parsed.kind == "http":
        _http_config(url, options, module)
        if env is not None and options.auth_env and not env.get(options.auth_env):
            raise ConfigError(
                f"environment variable {options.auth_env} (API credentials) is not set"
            )
    return parsed.kind


@asynccontextmanager
async def open_record_source(
    url: str, sources: Adapters, options: SourceOptions | None = None
) -> AsyncIterator[RecordSource]:
    """The source at url, opened and closed around the block. ConfigError for a bad URL or
    options (passwords redacted); SourceError when it cannot be reached. Bronze sources only
    read: a missing local directory reads as empty rather than being created."""
    options = options or SourceOptions()
    check_source(url, options, sources=sources)
    parsed = parse_source_url(url)
    module = sources[parsed.kind]
    if parsed.kind == "postgresql":
        open_pg: Callable[..., AbstractAsyncContextManager[RecordSource]]
        open_pg = module.open_pg_record_source
        table = _pg_table(url, options, module)
        async with open_pg(parsed.url, table, batch_size=options.batch_size) as pg_source:
            column = options.record_column
            yield pg_source if column is None else ColumnRecordSource(pg_source, column)
    elif parsed.kind == "http":
        open_http: Callable[..., AbstractAsyncContextManager[RecordSource]]
        open_http = module.open_http_record_source
        async with open_http(_http_config(url, options, module)) as http_source:
            yield http_source
    else:
        bronze: Callable[..., RecordSource] = module.BronzeRecordSource
        async with _open_bronze(parsed, options, bronze) as bronze_source:
            yield bronze_source


@asynccontextmanager
async def _open_bronze(
    parsed: SourceUrl, options: SourceOptions, bronze: Callable[..., RecordSource]
) -> AsyncIterator[RecordSource]:
    # The dry-run view reads the real store and can write nothing, not even the root directory.
    async with open_object_store(parsed.url, dry_run=True) as store:
        yield bronze(store, batch_size=options.batch_size)


@attrs.define
class ColumnRecordSource:
    """A PostgreSQL source whose records are one column: an object stays a record, a string is a
    raw line (etl_core.raw_records), anything else (array, number, null) a raw line of its JSON.
    """

    rows: RecordSource
    column: str

    async def batches(
        self, agency_id: int, checkpoint: str | None = None
    ) -> AsyncIterator[SourceBatch]:
        """The inner source's batches with each row reduced to its record column."""
        async for batch in self.rows.batches(agency_id, checkpoint):
            records = tuple(self._record(row) for row in batch.records)
            yield SourceBatch(records=records, checkpoint=batch.checkpoint)

    def _record(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        value = row.get(self.column)
        if isinstance(value, Mapping):
            return value
        if isinstance(value, str):
            return raw_record(value)
        return raw_record(json.dumps(value))


def _pg_table(url: str, options: SourceOptions, pg: Any) -> Any:
    """The adapter's PgSourceTable the options name (typed Any: the module is chosen by kind);
    without the adapter module pg, only the checks that need none (None)."""
    schema, table = pg_schema_table(url, options)
    if pg is None:
        return None
    columns = (options.record_column,) if options.record_column else ()
    return pg.PgSourceTable(
        table=table,
        key_column=options.key_column,
        agency_column=options.agency_column,
        columns=columns,
        schema=schema,
    )


def _http_config(url: str, options: SourceOptions, http: Any) -> Any:
    """The adapter's HttpSourceConfig for the options (typed Any: the module is chosen by kind);
    without the adapter module http, only the checks that need none (None)."""
    check_http_options(options)
    if http is None:
        return None
    paging: object
    if options.paging == "cursor":
        paging = http.CursorPaging(
            param=options.page_param or "cursor", next_path=options.next_path or "next_cursor"
        )
    elif options.paging == "next":
        paging = http.NextLinkPaging(next_path=options.next_path or "next")
    elif options.paging == "link":
        paging = http.NextLinkPaging(next_path=None)
    else:
        paging = http.PageNumberPaging(param=options.page_param or "page", size=options.page_size)
    return http.HttpSourceConfig(
        url=url,
        paging=paging,
        records_path=options.records_path,
        agency_param=None if "{agency_id}" in url else options.agency_param,
        auth_env=options.auth_env,
        since_param=options.since_param,
        since=options.since,
    )
