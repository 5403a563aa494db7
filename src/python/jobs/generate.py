"""Generate the reference workload of WORKLOAD.md: agencies.csv, bronze files and a manifest."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from data_pipeline.workload.configuration import GenerateSettings, add_arguments
from etl_core.adapters.adapter_choice import Adapters
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.urls import redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.workload.generate import WorkloadOptions

NAME = "generate"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments)
    return _wiring.main(NAME, argv, parser, GenerateSettings, _plan, histories=_histories)


def _plan(settings: GenerateSettings, args: argparse.Namespace) -> _wiring.Planned:
    options = settings.workload_options()
    out = settings.out or settings.store_url

    async def body(ctx: RunContext) -> JobOutcome:
        return await generate(ctx, options, out)

    return _wiring.Planned(
        body=body, parameters={"out": redact(out)}, lease_scope=f"out={redact(out)}"
    )


def _histories() -> Adapters:
    """SQLite; PostgreSQL too where the binary has it (the umbrella). The generator's own PEX
    records its run locally and carries no asyncpg: its import of the PostgreSQL adapter is not
    inferred, so only a binary whose other jobs import it ships it."""
    from etl_core.adapters import sqlite_run_history

    shipped: dict[str, ModuleType] = {"sqlite": sqlite_run_history}
    try:
        import etl_core.adapters.pg_run_history as pg  # pants: no-infer-dep
    except ModuleNotFoundError as exc:
        if exc.name != "etl_core.adapters.pg_run_history":
            raise  # the adapter is there but asyncpg is not: a packaging defect
        return shipped
    return {**shipped, "postgresql": pg}


async def generate(ctx: RunContext, options: WorkloadOptions, out: str) -> JobOutcome:
    """Write the workload to out (nothing in a dry run); counts, manifest key and expectations."""
    from data_pipeline.workload.run import workload_outcome, write_reported
    from etl_core.adapters.object_stores import DryRunObjectStore, open_object_store

    async with open_object_store(out, dry_run=ctx.dry_run) as store:
        manifest = await write_reported(ctx, store, options)
        not_written = len(store.written) if isinstance(store, DryRunObjectStore) else 0
    shown = not_written if ctx.dry_run else None
    return workload_outcome(manifest, out=redact(out), not_written=shown)


JOB = (entrypoint, "Generate the reference workload (bronze files + manifest) into a store")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
