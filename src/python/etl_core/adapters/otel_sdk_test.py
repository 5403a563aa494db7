"""Tests for the SDK wiring: exporters from OTEL_*, and run attributes on every span of a run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from etl_core import telemetry
from etl_core.adapters import otel_sdk, run_histories
from etl_core.errors import ConfigError
from etl_core.model import Counts
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeRunHistory
from etl_core.testing.run_wiring import run_job

_exporter = InMemorySpanExporter()


@pytest.fixture()
def spans() -> Iterator[InMemorySpanExporter]:
    """The global SDK provider (installed once per process) also exports to this memory."""
    provider = otel_sdk.install_tracing({})
    assert provider is not None
    if not getattr(provider, "_test_exporter_added", False):
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        provider._test_exporter_added = True  # type: ignore[attr-defined]
    _exporter.clear()
    yield _exporter
    _exporter.clear()


@pytest.fixture()
def history(monkeypatch: pytest.MonkeyPatch) -> FakeRunHistory:
    fake = FakeRunHistory()

    @asynccontextmanager
    async def opener(url: str, adapters: object) -> AsyncIterator[FakeRunHistory]:
        yield fake

    monkeypatch.setattr(run_histories, "open_run_history", opener)
    return fake


def _library_span(name: str) -> None:
    # Code that knows nothing about runs: its spans must still carry the run attributes.
    with trace.get_tracer("some.library").start_as_current_span(name):
        pass


async def _traced_body(ctx: RunContext) -> JobOutcome:
    with ctx.span("extract", files=3):
        _library_span("library.read")
        await asyncio.to_thread(_library_span, "library.in_to_thread")
    thread = threading.Thread(target=_library_span, args=("library.in_bare_thread",))
    thread.start()
    thread.join()
    with telemetry.span("transform"):
        pass
    return JobOutcome(counts=Counts(rows_in=1, rows_out=1))


def test_every_span_of_a_run_carries_run_id_and_agency_id(
    spans: InMemorySpanExporter, history: FakeRunHistory
) -> None:
    settings = CommonSettings(agency_id=10, run_id="run-1", log_format="json")
    assert run_job("bronze_to_silver", settings, _traced_body) == 0
    finished = spans.get_finished_spans()
    names = {span.name for span in finished}
    assert names == {
        "bronze_to_silver",
        "extract",
        "library.read",
        "library.in_to_thread",
        "library.in_bare_thread",
        "transform",
    }
    for span in finished:
        assert span.attributes is not None
        assert span.attributes["run_id"] == "run-1", span.name
        assert span.attributes["agency_id"] == 10, span.name
        assert span.attributes["job"] == "bronze_to_silver", span.name
    [extract] = [span for span in finished if span.name == "extract"]
    assert extract.attributes is not None
    assert extract.attributes["files"] == 3


def test_the_root_span_trace_id_is_stored_in_the_history(
    spans: InMemorySpanExporter, history: FakeRunHistory
) -> None:
    settings = CommonSettings(agency_id=10, run_id="run-2", log_format="json")
    assert run_job("demo", settings, _traced_body) == 0
    [root] = [span for span in spans.get_finished_spans() if span.name == "demo"]
    assert root.parent is None
    assert root.context is not None
    assert history.runs["run-2"].trace_id == format(root.context.trace_id, "032x")
    assert root.attributes is not None
    assert root.attributes["status"] == "succeeded"
    # A thread started without the context begins its own trace (it still carries run_id).
    trace_ids = {
        span.context.trace_id
        for span in spans.get_finished_spans()
        if span.context and span.name != "library.in_bare_thread"
    }
    assert trace_ids == {root.context.trace_id}


def test_a_failed_run_marks_the_root_span_as_an_error(
    spans: InMemorySpanExporter, history: FakeRunHistory
) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        raise ValueError("boom")

    settings = CommonSettings(agency_id=None, run_id="run-3", log_format="json")
    assert run_job("demo", settings, body) == 1
    [root] = [span for span in spans.get_finished_spans() if span.name == "demo"]
    assert root.status.status_code is trace.StatusCode.ERROR
    assert root.attributes is not None
    assert "agency_id" not in root.attributes
    assert [event.name for event in root.events] == ["exception"]


def test_spans_outside_a_run_carry_no_run_attributes(spans: InMemorySpanExporter) -> None:
    _library_span("outside")
    [span] = spans.get_finished_spans()
    assert span.attributes is not None
    assert "run_id" not in span.attributes


def _pipeline(provider: TracerProvider) -> list[str]:
    """The provider's span processors, each named by its exporter if it has one. The SDK keeps
    them private; naming them is the one way to see which exporters OTEL_* chose."""
    processors = provider._active_span_processor._span_processors
    return [
        type(getattr(processor, "span_exporter", processor)).__name__ for processor in processors
    ]


@pytest.mark.parametrize(
    ("value", "exporters"),
    [
        ("none", []),
        ("", []),
        (" None ", []),
        ("console", ["ConsoleSpanExporter"]),
        ("otlp", ["OTLPSpanExporter"]),
        ("console,otlp", ["ConsoleSpanExporter", "OTLPSpanExporter"]),
    ],
)
def test_known_exporters_build_a_provider(value: str, exporters: list[str]) -> None:
    provider = otel_sdk.build_provider({"OTEL_TRACES_EXPORTER": value})
    try:
        # Run attributes are stamped first, whatever exports the spans.
        assert _pipeline(provider) == ["RunAttributesProcessor", *exporters]
    finally:
        provider.shutdown()


def test_unknown_exporter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER: unknown exporter 'jaeger'"):
        otel_sdk.build_provider({"OTEL_TRACES_EXPORTER": "jaeger"})


def test_unsupported_otlp_protocol_is_a_config_error() -> None:
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    with pytest.raises(ConfigError, match="unsupported protocol 'http/json'"):
        otel_sdk.build_provider(env)


def test_service_name_defaults_to_the_job_and_yields_to_otel_service_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    provider = otel_sdk.build_provider({}, default_service_name="generate")
    assert provider.resource.attributes["service.name"] == "generate"
    assert provider.resource.attributes["deployment.environment"] == "test"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "etl-prod")
    provider = otel_sdk.build_provider({}, default_service_name="generate")
    assert provider.resource.attributes["service.name"] == "etl-prod"


def test_console_exporter_writes_spans_to_stderr_not_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    provider = otel_sdk.build_provider({"OTEL_TRACES_EXPORTER": "console"})
    with provider.get_tracer("t").start_as_current_span("visible"):
        pass
    provider.shutdown()
    captured = capsys.readouterr()
    assert '"name": "visible"' in captured.err
    assert captured.out == ""


def test_disabled_sdk_installs_nothing() -> None:
    assert otel_sdk.install_tracing({"OTEL_SDK_DISABLED": "true"}) is None
