"""Generate the reference workload of WORKLOAD.md: agencies.csv, bronze files and a manifest."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import TYPE_CHECKING

import attrs
from data_pipeline.workload.configuration import GenerateSettings, add_arguments
from etl_core.adapters.adapter_choice import Adapters
from etl_core.model import Counts
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.store_views import DelegatingObjectStore
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
    from data_pipeline.workload.generate import MANIFEST_KEY, write_workload
    from etl_core.adapters.object_stores import DryRunObjectStore, open_object_store

    async with open_object_store(out, dry_run=ctx.dry_run) as store:
        with ctx.span("write_workload", records=options.records, files=options.files):
            manifest = await write_workload(_Progress(store, ctx, options.files + 2), options)
        not_written = len(store.written) if isinstance(store, DryRunObjectStore) else 0
    rows = int(manifest["input_rows"])
    summary: dict[str, object] = {
        "out": redact(out),
        "manifest": MANIFEST_KEY,
        "expected silver rows": manifest.get("silver_rows"),
        "expected duplicates": manifest.get("duplicates"),
        "expected dead-letter rows": manifest.get("dead_letter_rows"),
    }
    if ctx.dry_run:
        summary["objects not written (dry run)"] = not_written
    return JobOutcome(
        # Every generated row is written: rows_in == rows_out keeps the audit invariant.
        counts=Counts(rows_in=rows, rows_out=rows, bytes_out=int(manifest["input_bytes"])),
        artifacts=(MANIFEST_KEY,),
        summary=summary,
    )


@attrs.define
class _Progress(DelegatingObjectStore):
    """Delegates to the store, updating the progress line as objects are written."""

    ctx: RunContext
    total: int  # bronze files + agencies.csv + manifest.json
    written: int = 0

    async def put(self, key: str, body: bytes) -> None:
        await self.store.put(key, body)
        self.written += 1
        self.ctx.progress(f"generate: {self.written}/{self.total} objects written")


JOB = (entrypoint, "Generate the reference workload (bronze files + manifest) into a store")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
