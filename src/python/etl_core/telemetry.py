"""Tracing on the OpenTelemetry API: run-scoped span attributes, spans, and current trace ids."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

__all__ = [
    "TRACER_NAME",
    "current_ids",
    "current_run_attributes",
    "flush",
    "run_attributes",
    "run_scope",
    "span",
    "tracer",
]

TRACER_NAME = "etl_core"

Attributes = Mapping[str, AttributeValue]

_run_attributes: contextvars.ContextVar[Attributes | None] = contextvars.ContextVar(
    "etl_run_attributes", default=None
)
# Threads started without copying the context (some libraries' pools) still belong to the run:
# one run per process is the deployment model, so the innermost active run is the fallback.
_active_runs: list[Attributes] = []


def run_attributes(*, run_id: str, job: str, agency_id: int | None) -> dict[str, AttributeValue]:
    """The attributes every span of a run carries (agency_id omitted when there is none)."""
    attributes: dict[str, AttributeValue] = {"run_id": run_id, "job": job}
    if agency_id is not None:
        attributes["agency_id"] = agency_id
    return attributes


@contextmanager
def run_scope(attributes: Attributes) -> Iterator[None]:
    """While active, every span started (by any code) gets these attributes via the SDK hook."""
    token = _run_attributes.set(attributes)
    _active_runs.append(attributes)
    try:
        yield
    finally:
        _active_runs.remove(attributes)
        _run_attributes.reset(token)


def current_run_attributes() -> Attributes:
    """Attributes of the run this code is part of; empty outside a run."""
    attributes = _run_attributes.get()
    if attributes is not None:
        return attributes
    return _active_runs[-1] if _active_runs else {}


def tracer() -> trace.Tracer:
    """The project's tracer from the global provider (a no-op until the SDK is installed)."""
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(name: str, **attributes: AttributeValue | None) -> Iterator[trace.Span]:
    """A child span of the current one, carrying the run attributes plus `attributes`."""
    merged = dict(current_run_attributes())
    merged.update({key: value for key, value in attributes.items() if value is not None})
    with tracer().start_as_current_span(name, attributes=merged) as current:
        yield current


def current_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of the current span as lower-case hex, or (None, None)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def flush(timeout_millis: int = 10_000) -> None:
    """Export buffered spans (end of a run) through the global provider; a no-op without an SDK.

    API only: the SDK provider is installed by the process's wiring (adapters/otel_sdk.py)."""
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if callable(force_flush):
        force_flush(timeout_millis)
