"""Seed an empty store with the reference workload, only when a person asks (`--demo`), so the
main job runs with no set-up; a job never fabricates data otherwise."""

from __future__ import annotations

import sys

from etl_core.errors import ObjectNotFound
from etl_core.ports import ObjectStore
from etl_core.runner import RunContext

# generate.AGENCIES_KEY. The generator (its rows, time zones and names) is imported only to seed:
# bronze_to_silver imports this module on every run, and seeds only on --demo.
AGENCIES_KEY = "agencies.csv"


async def is_empty(store: ObjectStore, agencies_key: str = AGENCIES_KEY) -> bool:
    """Neither an agencies file nor any bronze object."""
    try:
        await store.head(agencies_key)
        return False
    except ObjectNotFound:
        pass
    async for _ in store.list("bronze/"):
        return False
    return True


async def seed_reference_workload(ctx: RunContext, store: ObjectStore, store_url: str) -> str:
    """Write DEMO_WORKLOAD into store (in memory on a dry run); returns what it did. store_url is
    only shown: pass it redacted."""
    from data_pipeline.workload.generate import WorkloadOptions, write_workload

    options = WorkloadOptions(records=20_000, files=60, seed=7)
    what = (
        f"the reference workload ({options.records:,} records, {options.files} files,"
        f" seed {options.seed}) into the empty store {store_url} (--demo)"
    )
    ctx.log.info("generating %s", what)
    print(f"{ctx.job}: no bronze yet: generating {what}", file=sys.stderr, flush=True)
    with ctx.span("generate_reference_workload", records=options.records):
        await write_workload(store, options)
    return what + (" (in memory: dry run)" if ctx.dry_run else "")
