"""The configuration of an agency export (the agency_data_job job): its settings (the record
source, formats, the agencies file), flags, and where the agencies file is. Cheap to import:
`data-pipeline list` and `--help` read it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import attrs
from etl_core.errors import ConfigError
from etl_core.settings import add_common_arguments
from etl_core.source_settings import RecordSourceSettings, add_source_arguments
from etl_core.urls import SecretUrl, parse_source_url, parse_store_url, redact

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
                split_object_url(self.agencies_url)
            except ConfigError as exc:
                yield "agencies_url", str(exc)

    def agencies_location(self) -> tuple[str | None, str, str]:
        """(store URL or None for the destination store, key, name shown) of the agencies file:
        the configured one, a store source's, or the destination store's own."""
        if self.agencies_url is not None:
            directory, key = split_object_url(self.agencies_url)
            return directory, key, redact(self.agencies_url)
        if self.source_url is not None and parse_source_url(self.source_url).kind == "store":
            directory = self.source_url
            return directory, AGENCIES_KEY, f"{redact(directory).rstrip('/')}/{AGENCIES_KEY}"
        return None, AGENCIES_KEY, f"{redact(self.store_url).rstrip('/')}/{AGENCIES_KEY}"

    def source_label(self) -> str:
        """The source a run records: the redacted source URL, or the store's tables."""
        return redact(self.source_url) if self.source_url else SILVER_SOURCE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """agency_data_job's flags, the record-source flags, the common ones (--agency-id
    required)."""
    parser.add_argument(
        "--format", metavar="LIST", help="artifacts to write: csv, ndjson or both (default)"
    )
    parser.add_argument(
        "--agencies", "--agencies-url", dest="agencies_url", metavar="URL",
        help="with --source: agencies.csv to enrich from (path, file:// or s3:// URL of the file)",
    )  # fmt: skip
    add_source_arguments(parser, batch_help="records per batch read (default 1000)")
    add_common_arguments(parser, agency_required=True)


def split_object_url(url: str) -> tuple[str, str]:
    """(store URL, key) of the URL of one object: its directory and file name."""
    directory, slash, key = url.rstrip().rpartition("/")
    if not slash:
        directory = "."
    if not key:
        raise ConfigError(f"{redact(url)!r} names no file (expected .../agencies.csv)")
    parse_store_url(directory or "/")
    return directory or "/", key
