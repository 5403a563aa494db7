"""OpenTelemetry SDK wiring: tracer provider and exporters from OTEL_* variables."""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from etl_core import telemetry
from etl_core.errors import ConfigError

__all__ = ["RunAttributesProcessor", "build_provider", "flush", "install_tracing"]

_EXPORTERS = ("none", "console", "otlp")
_stamped: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


class RunAttributesProcessor(SpanProcessor):
    """Stamps run_id/agency_id/job on every span started during a run, whoever starts it."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        attributes = telemetry.current_run_attributes()
        if attributes:
            span.set_attributes(attributes)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _resource(default_service_name: str) -> Resource:
    # Resource.create() applies OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; ours is a fallback.
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    return resource


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get("OTEL_TRACES_EXPORTER", "none")
    names = [name.strip().lower() for name in raw.split(",") if name.strip()] or ["none"]
    unknown = [name for name in names if name not in _EXPORTERS]
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r} (expected none, console, otlp)"
        )
    return [name for name in names if name != "none"]


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc but the gRPC exporter is not installed; "
                "use http/protobuf"
            ) from None
        exporter: SpanExporter = GrpcSpanExporter()
        return exporter
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r} (use http/protobuf)"
    )


def build_provider(
    environ: Mapping[str, str], *, default_service_name: str = "data-pipeline"
) -> TracerProvider:
    """A provider with the run-attributes processor and the exporters OTEL_* asks for."""
    exporters = _exporter_names(environ)
    provider = TracerProvider(resource=_resource(default_service_name))
    provider.add_span_processor(RunAttributesProcessor())
    _stamped.add(provider)
    for name in exporters:
        if name == "console":
            # stdout carries the run summary; spans go to stderr with the logs, one JSON object
            # per line like them (the SDK's default is indented, multi-line JSON).
            console = ConsoleSpanExporter(out=sys.stderr, formatter=_one_line)
            provider.add_span_processor(SimpleSpanProcessor(console))
        else:
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(environ)))
    return provider


def install_tracing(
    environ: Mapping[str, str] | None = None, *, default_service_name: str = "data-pipeline"
) -> TracerProvider | None:
    """Install the global provider once, or reuse (and stamp) an installed one; None if disabled."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Installed by an earlier run in this process, a test, or a host application.
        if current not in _stamped:
            current.add_span_processor(RunAttributesProcessor())
            _stamped.add(current)
        return current
    provider = build_provider(env, default_service_name=default_service_name)
    trace.set_tracer_provider(provider)
    return provider


def flush(timeout_millis: int = 10_000) -> None:
    """Export what is buffered (end of a run); a no-op without an SDK provider."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.force_flush(timeout_millis)


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"
