"""Both run history adapters, for the jobs that support both, the operator commands and tests.

The import is inside the function so that importing this module (job discovery) stays cheap;
Pants still infers it, so whatever uses this ships asyncpg. generate, SQLite only, does not.
"""

from __future__ import annotations

from etl_core.adapters.adapter_choice import Adapters


def every_history() -> Adapters:
    """The SQLite and PostgreSQL run histories, by URL kind."""
    from etl_core.adapters import pg_run_history, sqlite_run_history

    return {"sqlite": sqlite_run_history, "postgresql": pg_run_history}
