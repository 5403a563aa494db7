"""How long S3 requests may take: connect/read timeouts and the time budget of their retries.

Settings carry them (ETL_S3_RETRY_BUDGET_SECONDS, ETL_S3_CONNECT_TIMEOUT_SECONDS,
ETL_S3_READ_TIMEOUT_SECONDS, or the config file); the runner puts them in scope for the run, and
the object store opener (etl_core.adapters.object_stores) hands them to the S3 adapter, so no job
has to pass them along.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import attrs


@attrs.frozen
class S3Limits:
    """An S3 outage ends the run with exit 75 after retry_budget_s, never hangs it.

    Each request (with its retries) ends within retry_budget_s; each attempt also gives up on a
    connection not made in connect_timeout_s or a socket silent for read_timeout_s.
    """

    retry_budget_s: float = 60.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0


_current: contextvars.ContextVar[S3Limits] = contextvars.ContextVar("s3_limits")


def current() -> S3Limits:
    """The limits in scope (the defaults outside a run)."""
    return _current.get(S3Limits())


@contextlib.contextmanager
def scope(limits: S3Limits) -> Iterator[None]:
    """Make limits current for this block (and the tasks it starts)."""
    token = _current.set(limits)
    try:
        yield
    finally:
        _current.reset(token)
