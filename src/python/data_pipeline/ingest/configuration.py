"""The configuration of an ingestion (the ingest_api job): its settings (the record source, the
bronze dt, how to ask an HTTP API what changed), flags and the source id naming its pull state.
Cheap to import: `data-pipeline list` and `--help` read it."""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

import attrs
from etl_core.errors import ConfigError
from etl_core.settings import add_common_arguments
from etl_core.source_settings import RecordSourceSettings, SourceOptions, add_source_arguments
from etl_core.urls import parse_source_url, redact

if TYPE_CHECKING:
    from data_pipeline.ingest.pull import IngestOptions, IngestState

_QUERY_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")


@attrs.frozen(kw_only=True)
class IngestSettings(RecordSourceSettings):
    """Source settings (a source is required) plus the bronze dt of the pull and, for an HTTP
    API that can filter by modification time, how to ask it for what changed.

    `dt` None: the dt of the source's pull if unfinished, else today (UTC).
    `batch_size` is the records per bronze part (whole source batches; a page is never split).
    `since_param`: the API's query parameter for "changed since" (e.g. updated_since); None:
    resume by checkpoint alone. `since_field`: the record field (ISO-8601) it filters on.
    """

    dt: date | None = None
    since_param: str | None = None
    since_field: str = "updated_at"

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.source_url is None:
            yield "source_url", "a source is required (--source https://...)"
        if self.since_param is not None:
            if not _QUERY_NAME.fullmatch(self.since_param):
                yield "since_param", f"expected a query parameter name, got {self.since_param!r}"
            elif _source_kind(self.source_url) not in (None, "http"):
                yield "since_param", "only an HTTP API source can be asked what changed since"
        if not self.since_field.strip():
            yield "since_field", "expected a record field name"

    @property
    def source_id(self) -> str:
        """12 hex digits naming the source: its redacted URL and how it is read (credentials
        excluded, so rotating them keeps the checkpoint)."""
        assert self.source_url is not None
        parts: list[object] = [
            redact(self.source_url), self.paging, self.records_path, self.source_table,
            self.source_key, self.source_agency_column, self.source_record_column,
        ]  # fmt: skip
        if self.since_param is not None:  # another way of reading: its own state
            parts += ["since", self.since_param, self.since_field]
        names = (self.page_param, self.next_path, self.agency_param)
        if names != (None, None, "agency_id"):  # the API's own names (defaults keep old ids)
            parts += ["names", *names]
        identity = "|".join(str(part) for part in parts)
        return hashlib.sha256(identity.encode()).hexdigest()[:12]

    def ingest_options(self, state: IngestState) -> IngestOptions:
        """The ingestion these settings spell from the pull state: its dt is --dt, else the
        unfinished pull's, else today (UTC)."""
        from etl_core import clock

        from data_pipeline.ingest.pull import (
            IngestOptions,  # not at import: `list` stays cheap
            pending_day,
        )

        assert self.agency_id is not None  # agency_required
        day = (
            self.dt.isoformat()
            if self.dt is not None
            else pending_day(state) or clock.now().date().isoformat()
        )
        since_field = self.since_field if self.since_param else None
        return IngestOptions(
            self.agency_id, day, self.source_id, self.batch_size, since_field=since_field
        )

    def pull_source_options(self, state: IngestState, options: IngestOptions) -> SourceOptions:
        """How to open the source for this pull: asking an HTTP API for what changed since the
        state's high-water mark (with --since-param), or from the start."""
        from data_pipeline.ingest.pull import read_from  # not at import: `list` stays cheap

        _, since = read_from(state, options)
        return attrs.evolve(self.source_options(), since_param=self.since_param, since=since)


def _source_kind(url: str | None) -> str | None:
    """The kind of source url names; None if none or not valid (a problem reported apart)."""
    if url is None:
        return None
    try:
        return parse_source_url(url).kind
    except ConfigError:
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ingest_api's flags, the record-source flags, the common ones (--agency-id required)."""
    parser.add_argument(
        "--dt", metavar="YYYY-MM-DD", help="bronze dt (default: an unfinished pull's, else today)"
    )
    parser.add_argument(
        "--since-param", dest="since_param", metavar="NAME",
        help="HTTP: query parameter asking the API for records changed since a time (e.g. "
        "updated_since); each run then asks since the greatest --since-field value landed",
    )  # fmt: skip
    parser.add_argument(
        "--since-field", dest="since_field", metavar="FIELD",
        help="with --since-param: the record field (ISO-8601 instant) it filters on "
        "(default updated_at)",
    )  # fmt: skip
    add_source_arguments(parser, batch_help="records per bronze part (default 1000)")
    add_common_arguments(parser, agency_required=True)
