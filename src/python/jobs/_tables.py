"""The wiring of the jobs that open the silver and dead-letter Delta tables (a module of its own
so that only their PEXes carry deltalake: Pants infers each PEX's content from imports)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from etl_core.adapters.delta_silver_table import DEFAULT_ROWS_PER_FILE
from etl_core.adapters.delta_tables import Tables, open_tables

if TYPE_CHECKING:
    from etl_core.ports import ObjectStore
    from etl_core.runner import RunContext

__all__ = ["Tables", "tables"]


def tables(
    ctx: RunContext,
    store_url: str,
    store: ObjectStore,
    *,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    run_id: str | None = None,
) -> Tables:
    """The store's silver and dead-letter Delta tables, their files written through store, their
    commits stamped with run_id (default: ctx's); credentials from this process's environment."""
    return open_tables(
        store_url,
        store,
        os.environ,
        dry_run=ctx.dry_run,
        run_id=run_id or ctx.run_id,
        rows_per_file=rows_per_file,
    )
