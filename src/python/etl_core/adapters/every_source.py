"""Every record source adapter, for the jobs that read any source and for tests.

Each import is inside a loader, so that importing this module (job discovery) stays cheap and a
run imports only the source its URL names; Pants still infers all three. ingest_api, which reads
no PostgreSQL source, names its own.
"""

from __future__ import annotations

from types import ModuleType

from etl_core.adapters.adapter_choice import Adapters, LazyAdapters


def every_source() -> Adapters:
    """The PostgreSQL, HTTP API and bronze-file record sources, by URL kind."""
    return LazyAdapters({"postgresql": _postgresql, "http": _http, "store": _store})


def _postgresql() -> ModuleType:
    from etl_core.adapters import pg_record_source

    return pg_record_source


def _http() -> ModuleType:
    from etl_core.adapters import http_record_source

    return http_record_source


def _store() -> ModuleType:
    from etl_core.adapters import bronze_record_source

    return bronze_record_source
