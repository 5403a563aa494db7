"""bronze_to_silver refuses to run on the embedded default store (the local directory a run with
no --store uses) while it is empty, unless --demo asks to seed it: a job never fabricates data."""

from __future__ import annotations

import asyncio

from data_pipeline.bronze_to_silver.configuration import (
    EMPTY_EMBEDDED_STORE,
    BronzeToSilverSettings,
)
from data_pipeline.workload.demo_seed import is_empty
from etl_core.adapters.object_stores import open_object_store
from etl_core.errors import ConfigError
from etl_core.settings import DEFAULT_STORE_URL


def require_input(settings: BronzeToSilverSettings, *, demo: bool) -> None:
    """Raise ConfigError (a usage error) if the run would read the embedded store and it holds
    neither the agencies file nor any bronze, and --demo was not given."""
    if not demo and settings.reads_embedded_store() and embedded_store_is_empty(settings):
        raise ConfigError(EMPTY_EMBEDDED_STORE)


def embedded_store_is_empty(settings: BronzeToSilverSettings) -> bool:
    """Neither the agencies file nor any bronze in the embedded store (opened read-only)."""

    async def check() -> bool:
        async with open_object_store(DEFAULT_STORE_URL, dry_run=True) as store:
            return await is_empty(store, settings.agencies_key)

    return asyncio.run(check())
