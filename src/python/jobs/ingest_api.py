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
import os
import sys

import attrs
from data_pipeline.ingest.configuration import IngestSettings, add_arguments
from etl_core.adapters.adapter_choice import Adapters
from etl_core.adapters.every_history import every_history
from etl_core.adapters.record_sources import check_source
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.urls import redact

from jobs import _wiring

NAME = "ingest_api"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments)
    return _wiring.main(NAME, argv, parser, IngestSettings, _plan, histories=every_history)


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
    from data_pipeline.ingest.pull import ingest, load_pull_state
    from etl_core.adapters.object_stores import open_object_store
    from etl_core.adapters.record_sources import open_record_source

    assert settings.agency_id is not None
    assert settings.source_url is not None
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_object_store(settings.store_url, dry_run=ctx.dry_run)
        )
        state = await load_pull_state(store, settings.agency_id, settings.source_id)
        options = settings.ingest_options(state)
        source_options = settings.pull_source_options(state, options)
        source = await stack.enter_async_context(
            open_record_source(settings.source_url, _sources(), source_options)
        )
        outcome = await ingest(ctx, source, store, options, state)
    shown = {"source": redact(settings.source_url), **outcome.summary}
    return attrs.evolve(outcome, summary={**shown, "store": redact(settings.store_url)})


JOB = (
    entrypoint,
    "Pull what is new upstream (an HTTP API or other source) into an agency's bronze",
)

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
