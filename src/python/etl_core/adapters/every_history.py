"""Both run history adapters, for the jobs that support both, the operator commands and tests.

Each import is inside a loader, so that importing this module (job discovery) stays cheap and a
run imports only the adapter its URL names (asyncpg is not loaded for SQLite); Pants still infers
both, so whatever uses this ships asyncpg. generate, SQLite only, does not.
"""

from __future__ import annotations

from types import ModuleType

from etl_core.adapters.adapter_choice import Adapters, LazyAdapters


def every_history() -> Adapters:
    """The SQLite and PostgreSQL run histories, by URL kind."""
    return LazyAdapters({"sqlite": _sqlite, "postgresql": _postgresql})


def _sqlite() -> ModuleType:
    from etl_core.adapters import sqlite_run_history

    return sqlite_run_history


def _postgresql() -> ModuleType:
    from etl_core.adapters import pg_run_history

    return pg_run_history
