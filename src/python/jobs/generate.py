"""Generate the reference workload of WORKLOAD.md: agencies.csv, bronze files and a manifest."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Set
from types import ModuleType
from typing import TYPE_CHECKING

import attrs
from etl_core.adapters.adapter_choice import Adapters
from etl_core.errors import ConfigError
from etl_core.model import Counts
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.setting_checks import at_least, between
from etl_core.settings import CommonSettings, add_common_arguments
from etl_core.store_views import DelegatingObjectStore
from etl_core.urls import parse_store_url, redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.workload.generate import WorkloadOptions

NAME = "generate"


@attrs.frozen(kw_only=True)
class GenerateSettings(CommonSettings):
    """Generator options (WORKLOAD.md); `out` defaults to the configured store."""

    records: int = attrs.field(default=100_000, validator=at_least(0))
    files: int = attrs.field(default=20, validator=at_least(1))
    bad_rate: float = attrs.field(default=0.01, validator=between(0, 1))
    dup_rate: float = attrs.field(default=0.05, validator=between(0, 1))
    seed: int = 7
    out: str | None = None
    gzip: bool = False
    agencies: int = attrs.field(default=20, validator=at_least(1))
    parts_per_day: int = attrs.field(default=1, validator=at_least(1))

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.out is not None:
            try:
                parse_store_url(self.out)
            except ConfigError as exc:
                yield "out", str(exc)

    def embedded_defaults_used(self, configured: Set[str]) -> Iterator[str]:
        # --out, when given, is the store written to.
        extra = {"store_url"} if "out" in configured else set()
        yield from super().embedded_defaults_used(configured | extra)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"data-pipeline {NAME}", description=__doc__, allow_abbrev=False
    )
    parser.add_argument("--records", type=int, help="total rows (default 100000)")
    parser.add_argument("--files", type=int, help="bronze files (default 20)")
    parser.add_argument("--bad-rate", dest="bad_rate", type=float, help="default 0.01")
    parser.add_argument("--dup-rate", dest="dup_rate", type=float, help="default 0.05")
    parser.add_argument("--seed", type=int, help="default 7")
    parser.add_argument("--out", metavar="URL", help="object store URL (default: --store)")
    parser.add_argument("--gzip", action="store_true", default=None, help="write .ndjson.gz")
    parser.add_argument("--agencies", type=int, help="default 20")
    parser.add_argument("--parts-per-day", dest="parts_per_day", type=int, help="default 1")
    add_common_arguments(parser, agency_required=False)
    return parser


def entrypoint(argv: list[str]) -> int:
    return _wiring.main(NAME, argv, _parser(), GenerateSettings, _plan, histories=_histories)


def _plan(settings: GenerateSettings, args: argparse.Namespace) -> _wiring.Planned:
    from data_pipeline.workload.generate import WorkloadOptions  # not at import: `list` stays cheap

    options = WorkloadOptions(
        records=settings.records,
        files=settings.files,
        bad_rate=settings.bad_rate,
        dup_rate=settings.dup_rate,
        seed=settings.seed,
        gzip=settings.gzip,
        agencies=settings.agencies,
        parts_per_day=settings.parts_per_day,
    )
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
