"""Where and how a job reads records (PostgreSQL, HTTP API, bronze files): the settings, flags
and the checks that need no adapter. etl_core.adapters.record_sources opens the source."""

from __future__ import annotations

import argparse
import re
import urllib.parse
from collections.abc import Iterator

import attrs

from etl_core.errors import ConfigError
from etl_core.settings import CommonSettings
from etl_core.urls import SecretUrl, parse_source_url, redact

PAGING_STYLES = ("cursor", "next", "link", "page")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.frozen(kw_only=True)
class SourceOptions:
    """How to read a source beyond its URL; each field applies to one kind of source.

    PostgreSQL: `table` ("name" or "schema.name"; else the URL's `?schema=`, else public),
    ordered by `key_column` (unique per agency), filtered on `agency_column`. With
    `record_column` a record is that column alone: a json/jsonb object as it is, text as a raw
    line (validated exactly like a bronze line); without it a record is the whole row.
    HTTP: `paging` cursor (`?cursor=`, next cursor at `next_cursor`), next (next URL at `next`
    in the body), link (`Link: rel="next"` header) or page (`?page=&per_page=page_size`);
    `records_path` is the dotted path of the record list; `auth_env` names the environment
    variable holding the Authorization header value. `{agency_id}` in the URL puts the agency
    in the path, otherwise it is sent as `?agency_id=`. With `since_param` and `since`, every
    request carries `?<since_param>=<since>`: only what changed upstream since then (ingest_api).
    The names are the API's: `page_param` (the cursor's or page number's query parameter),
    `next_path` (the dotted path of the next cursor or URL in the body) and `agency_param`.
    Every kind: `batch_size` records per batch (HTTP: one batch per page).
    """

    table: str | None = None
    key_column: str = "id"
    agency_column: str = "agency_id"
    record_column: str | None = None
    paging: str = "cursor"
    records_path: str = "data"
    auth_env: str | None = None
    page_size: int = 100
    batch_size: int = 1000
    since_param: str | None = None
    since: str | None = None
    page_param: str | None = None  # None: cursor / page by paging style
    next_path: str | None = None  # None: next_cursor / next by paging style
    agency_param: str = "agency_id"


def check_source_options(url: str, options: SourceOptions) -> str:
    """Validate url and options without an adapter; the source kind. Raises ConfigError."""
    parsed = parse_source_url(url)
    if parsed.kind == "postgresql":
        pg_schema_table(url, options)
    elif parsed.kind == "http":
        check_http_options(options)
    return parsed.kind


def pg_schema_table(url: str, options: SourceOptions) -> tuple[str, str]:
    """The (schema, table) a PostgreSQL source reads: the table option's schema, else the URL's
    `?schema=`, else public. Raises ConfigError."""
    if not options.table:
        raise ConfigError(
            f"record source {redact(url)}: a PostgreSQL source needs a table (--source-table)"
        )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    url_schema = query.get("schema", ["public"])[-1]
    schema, dot, table = options.table.rpartition(".")
    if dot and url_schema != "public" and schema != url_schema:
        raise ConfigError(
            f"source table {options.table!r} names schema {schema!r} but the URL says "
            f"schema={url_schema!r}"
        )
    return (schema if dot else url_schema), table


def check_http_options(options: SourceOptions) -> None:
    """Raise ConfigError for the first option an HTTP source cannot use."""
    for name, problem in _option_problems(options):
        raise ConfigError(f"{name.replace('_', ' ')}: {problem}")


@attrs.frozen(kw_only=True)
class RecordSourceSettings(CommonSettings):
    """CommonSettings plus where and how to read records (flags, ETL_* env, TOML keys alike).

    `source_url` None means the job's default source.
    """

    source_url: SecretUrl | None = attrs.field(
        default=None, converter=attrs.converters.optional(SecretUrl)
    )
    source_table: str | None = None
    source_key: str = "id"
    source_agency_column: str = "agency_id"
    source_record_column: str | None = None
    paging: str = "cursor"
    records_path: str = "data"
    auth_env: str | None = None
    page_size: int = 100
    batch_size: int = 1000
    page_param: str | None = None
    next_path: str | None = None
    agency_param: str = "agency_id"

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        own = list(_option_problems(self.source_options()))
        yield from own
        if self.source_url is not None and not own:
            try:
                check_source_options(self.source_url, self.source_options())
            except ConfigError as exc:
                yield "source_url", str(exc)

    def source_options(self) -> SourceOptions:
        """The source options these settings spell."""
        return SourceOptions(
            table=self.source_table,
            key_column=self.source_key,
            agency_column=self.source_agency_column,
            record_column=self.source_record_column,
            paging=self.paging,
            records_path=self.records_path,
            auth_env=self.auth_env,
            page_size=self.page_size,
            batch_size=self.batch_size,
            page_param=self.page_param,
            next_path=self.next_path,
            agency_param=self.agency_param,
        )


def _option_problems(options: SourceOptions) -> Iterator[tuple[str, str]]:
    """(settings field, problem) of the options that need no URL to check."""
    if options.auth_env is not None and not _ENV_NAME.fullmatch(options.auth_env):
        # Never echo it: a credential pasted here by mistake must not reach the logs.
        yield "auth_env", "must be the NAME of an environment variable (letters, digits, _)"
    if options.paging not in PAGING_STYLES:
        yield "paging", f"must be one of {', '.join(PAGING_STYLES)}, got {options.paging!r}"
    for name in ("page_size", "batch_size"):
        if getattr(options, name) < 1:
            yield name, f"must be >= 1, got {getattr(options, name)}"


def add_source_arguments(parser: argparse.ArgumentParser, *, batch_help: str) -> None:
    """The record-source flags of RecordSourceSettings; unset flags stay None."""
    group = parser.add_argument_group("record source")
    add = group.add_argument
    # fmt: off
    add("--source", "--source-url", dest="source_url", metavar="URL",
        help="postgresql://..., http(s)://... API, or an object store URL of bronze files")
    add("--source-table", dest="source_table", metavar="[SCHEMA.]TABLE", help="PostgreSQL table")
    add("--source-key", dest="source_key", metavar="COLUMN",
        help="PostgreSQL: unique ordering column (default id)")
    add("--source-agency-column", dest="source_agency_column", metavar="COLUMN",
        help="PostgreSQL: agency column (default agency_id)")
    add("--source-record-column", dest="source_record_column", metavar="COLUMN",
        help="PostgreSQL: the json/jsonb (or raw text line) column holding each record")
    add("--paging", choices=PAGING_STYLES,
        help="HTTP paging (default cursor). cursor: GET URL?agency_id=<id>&cursor=<c> (no cursor "
             "at first), a page is {\"data\": [records], \"next_cursor\": <c or null on the "
             "last page>}; next: the next page's URL at `next` in the body; link: the "
             "`Link: <url>; rel=\"next\"` header; page: ?page=<n>&per_page=<page-size>, a "
             "short or empty page is the last. {agency_id} in the URL replaces ?agency_id=. "
             "The names are the API's: --records-path, --page-param, --next-path, "
             "--agency-param")
    add("--page-param", dest="page_param", metavar="NAME",
        help="HTTP: the cursor's or page number's query parameter (default cursor / page)")
    add("--next-path", dest="next_path", metavar="PATH",
        help="HTTP: dotted path of the next cursor or next URL in a page "
             "(default next_cursor / next)")
    add("--agency-param", dest="agency_param", metavar="NAME",
        help="HTTP: query parameter carrying the agency id (default agency_id)")
    add("--records-path", dest="records_path", metavar="PATH",
        help="HTTP: dotted path of the record list in a page ('' = the body; default data)")
    add("--auth-env", dest="auth_env", metavar="NAME",
        help="HTTP: NAME of the environment variable holding the Authorization header value")
    add("--page-size", dest="page_size", type=int, metavar="N",
        help="HTTP page paging: per_page (default 100)")
    add("--batch-size", dest="batch_size", type=int, metavar="N", help=batch_help)
    # fmt: on
