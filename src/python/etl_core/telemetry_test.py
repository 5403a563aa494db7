"""Tests for the API-level telemetry helpers: run scope, attributes and current ids."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from etl_core import telemetry


def test_run_attributes_omit_a_missing_agency() -> None:
    assert telemetry.run_attributes(run_id="r", job="j", agency_id=None) == {
        "run_id": "r",
        "job": "j",
    }
    assert telemetry.run_attributes(run_id="r", job="j", agency_id=0)["agency_id"] == 0


def test_run_scope_sets_and_restores_the_current_attributes() -> None:
    assert telemetry.current_run_attributes() == {}
    outer = telemetry.run_attributes(run_id="outer", job="j", agency_id=1)
    inner = telemetry.run_attributes(run_id="inner", job="j", agency_id=2)
    with telemetry.run_scope(outer):
        assert telemetry.current_run_attributes() == outer
        with telemetry.run_scope(inner):
            assert telemetry.current_run_attributes() == inner
        assert telemetry.current_run_attributes() == outer
    assert telemetry.current_run_attributes() == {}


def test_threads_without_the_context_see_the_active_run() -> None:
    seen = []
    attributes = telemetry.run_attributes(run_id="r", job="j", agency_id=3)
    with telemetry.run_scope(attributes):
        thread = threading.Thread(target=lambda: seen.append(telemetry.current_run_attributes()))
        thread.start()
        thread.join()
    assert seen == [attributes]


def test_no_ids_outside_a_recording_span() -> None:
    assert telemetry.current_ids() == (None, None)


def test_span_drops_none_attributes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "tracer", lambda: provider.get_tracer("test"))
    run = telemetry.run_attributes(run_id="r", job="j", agency_id=None)

    with telemetry.run_scope(run), telemetry.span("x", present=1, zero=0, missing=None):
        pass

    [span] = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {"run_id": "r", "job": "j", "present": 1, "zero": 0}
    # Dropped before the SDK sees them: it would drop a None itself, with a warning each time.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")] == []
