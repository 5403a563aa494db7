"""Every record source adapter, for the jobs that read any source and for tests.

The import is inside the function so that importing this module (job discovery) stays cheap;
Pants still infers it. ingest_api, which reads no PostgreSQL source, names its own.
"""

from __future__ import annotations

from etl_core.adapters.adapter_choice import Adapters


def every_source() -> Adapters:
    """The PostgreSQL, HTTP API and bronze-file record sources, by URL kind."""
    from etl_core.adapters import bronze_record_source, http_record_source, pg_record_source

    return {
        "postgresql": pg_record_source,
        "http": http_record_source,
        "store": bronze_record_source,
    }
