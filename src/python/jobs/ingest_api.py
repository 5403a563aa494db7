"""Pull one agency's records from an upstream API (or any record source) into bronze,
incrementally: each run fetches only what is new upstream since the last one, on any day.

The pull state is one object per agency and source (`_checkpoints/ingest_api/agency_id=<id>/
source=<source_id>/state.json`), kept across days: a run goes on from the last checkpoint (an
HTTP API's last page is asked again and only what follows what was read is kept), or, with
--since-param, asks for what changed since the greatest --since-field value landed so far
(`?updated_since=<it>`), skipping the lines it already landed at that instant. What is new lands
in this run's dt; what landed on earlier days stays in their dt.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
from collections.abc import Iterator
from datetime import date

import attrs
from etl_core.adapters.adapter_choice import Adapters
from etl_core.adapters.every_history import every_history
from etl_core.adapters.record_sources import (
    RecordSourceSettings,
    add_source_arguments,
    check_source,
)
from etl_core.errors import ConfigError
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import add_common_arguments
from etl_core.urls import parse_source_url, redact

from jobs import _wiring

NAME = "ingest_api"
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


def _source_kind(url: str | None) -> str | None:
    """The kind of source url names; None if none or not valid (a problem reported apart)."""
    if url is None:
        return None
    try:
        return parse_source_url(url).kind
    except ConfigError:
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"data-pipeline {NAME}", description=__doc__, allow_abbrev=False
    )
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
    return parser


def entrypoint(argv: list[str]) -> int:
    return _wiring.main(NAME, argv, _parser(), IngestSettings, _plan, histories=every_history)


def _plan(settings: IngestSettings, args: argparse.Namespace) -> _wiring.Planned:
    assert settings.source_url is not None  # problems() insists
    check_source(settings.source_url, settings.source_options(), os.environ, sources=_sources())

    async def body(ctx: RunContext) -> JobOutcome:
        return await ingest_api(ctx, settings)

    return _wiring.Planned(body=body, parameters={"source_id": settings.source_id})


def _sources() -> Adapters:
    """An HTTP API, or bronze files of another store: no PostgreSQL source in this binary."""
    from etl_core.adapters import bronze_record_source, http_record_source

    return {"http": http_record_source, "store": bronze_record_source}


async def ingest_api(ctx: RunContext, settings: IngestSettings) -> JobOutcome:
    """Wire the store, read the pull state, pick the dt, open the source asking for what is
    new, ingest."""
    from data_pipeline.ingest.pull import (
        IngestOptions,
        ingest,
        load_pull_state,
        pending_day,
        read_from,
    )
    from etl_core import clock
    from etl_core.adapters.object_stores import open_object_store
    from etl_core.adapters.record_sources import open_record_source

    assert settings.agency_id is not None
    assert settings.source_url is not None
    source_id = settings.source_id
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_object_store(settings.store_url, dry_run=ctx.dry_run)
        )
        state = await load_pull_state(store, settings.agency_id, source_id)
        day = (
            settings.dt.isoformat()
            if settings.dt is not None
            else pending_day(state) or clock.now().date().isoformat()
        )
        since_field = settings.since_field if settings.since_param else None
        options = IngestOptions(
            settings.agency_id, day, source_id, settings.batch_size, since_field=since_field
        )
        _, since = read_from(state, options)
        source_options = attrs.evolve(
            settings.source_options(), since_param=settings.since_param, since=since
        )
        source = await stack.enter_async_context(
            open_record_source(settings.source_url, _sources(), source_options)
        )
        outcome = await ingest(ctx, source, store, options, state)
    summary = {
        "source": redact(settings.source_url),
        "dt": day,
        **outcome.summary,
        "store": redact(settings.store_url),
        "run_id": ctx.run_id,
    }
    if ctx.dry_run:
        summary["note"] = "dry run: no part or checkpoint was written"
    return attrs.evolve(outcome, summary=summary)


JOB = (
    entrypoint,
    "Pull what is new upstream (an HTTP API or other source) into an agency's bronze",
)

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
