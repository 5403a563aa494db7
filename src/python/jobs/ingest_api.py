"""Pull one agency's records from an upstream API (or any record source) into bronze, resumably."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import sys
from collections.abc import Iterator

import attrs
from etl_core.adapters.record_sources import (
    RecordSourceSettings,
    add_source_arguments,
    check_source,
)
from etl_core.errors import ConfigError
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext, run_job, usage_error
from etl_core.settings import add_common_arguments, settings_from_args
from etl_core.urls import redact

NAME = "ingest_api"


@attrs.frozen(kw_only=True)
class IngestSettings(RecordSourceSettings):
    """Source settings (a source is required) plus the bronze dt of the pull.

    `dt` None: the dt of the newest pull from this source if unfinished, else today (UTC).
    `batch_size` is the records per bronze part (whole source batches; a page is never split).
    """

    dt: str | None = None

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.source_url is None:
            yield "source_url", "a source is required (--source https://...)"
        if self.dt is not None and _parse_day(self.dt) is None:
            yield "dt", f"expected a date YYYY-MM-DD, got {self.dt!r}"

    @property
    def source_id(self) -> str:
        """12 hex digits naming the source: its redacted URL and how it is read (credentials
        excluded, so rotating them keeps the checkpoint)."""
        assert self.source_url is not None
        identity = "|".join(
            str(part)
            for part in (
                redact(self.source_url), self.paging, self.records_path, self.source_table,
                self.source_key, self.source_agency_column, self.source_record_column,
            )
        )  # fmt: skip
        return hashlib.sha256(identity.encode()).hexdigest()[:12]


def _parse_day(text: str) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if len(text) == 10 else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"data-pipeline {NAME}", description=__doc__, allow_abbrev=False
    )
    parser.add_argument(
        "--dt", metavar="YYYY-MM-DD", help="bronze dt (default: an unfinished pull's, else today)"
    )
    add_source_arguments(parser, batch_help="records per bronze part (default 1000)")
    add_common_arguments(parser, agency_required=True)
    return parser


def entrypoint(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(IngestSettings, args, job=NAME)
        assert settings.source_url is not None  # problems() insists
        check_source(settings.source_url, settings.source_options(), os.environ)
    except ConfigError as exc:
        return usage_error(NAME, exc)

    async def body(ctx: RunContext) -> JobOutcome:
        return await ingest_api(ctx, settings)

    return run_job(NAME, settings, body, parameters={"source_id": settings.source_id})


async def ingest_api(ctx: RunContext, settings: IngestSettings) -> JobOutcome:
    """Wire the store and the source, pick the dt, ingest."""
    from data_pipeline.ingest import IngestOptions, ingest, pending_day
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
        day = (
            settings.dt
            or await pending_day(store, settings.agency_id, source_id)
            or clock.now().date().isoformat()
        )
        source = await stack.enter_async_context(
            open_record_source(settings.source_url, settings.source_options())
        )
        options = IngestOptions(settings.agency_id, day, source_id, settings.batch_size)
        outcome = await ingest(ctx, source, store, options)
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


JOB = (entrypoint, "Pull an agency's records from an upstream HTTP API into bronze, checkpointed")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
