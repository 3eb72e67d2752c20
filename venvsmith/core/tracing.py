"""OpenTelemetry traces, sent to an OTLP (gRPC) collector when one is configured: a server span per RPC, a client
span per call to another service, W3C ``traceparent`` in the calls' metadata.

Off unless a collector is named (``serve --otlp-endpoint``, config key ``otlp_endpoint``, or the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``): then, and only then, OpenTelemetry is
imported; every function here is a cheap no-op otherwise (the CLI never pays for it). The parent of a client span
is the server span being served, carried by :data:`venvsmith.core.jsonlog.trace_span` (a context variable that
follows work into pools), so no OpenTelemetry context needs attaching.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Variables naming the collector, the traces-only one first (the OpenTelemetry SDK's own precedence).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: Services whose calls get no span (kubelet probes every few seconds; tools listing services).
UNTRACED = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                      "grpc.reflection.v1alpha.ServerReflection"})


class _Tracing:
    """The process's tracer, once :func:`configure` found a collector (the one piece of process state here: spans
    start in interceptors, which no engine object reaches)."""

    tracer: Any = None
    provider: Any = None


_tracing = _Tracing()


def collector_endpoint(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The collector to export to: ``given`` (the option), else the standard variables; None: tracing off."""
    if given:
        return given
    return next((environ[name] for name in ENDPOINT_VARIABLES if environ.get(name)), None)


def enabled() -> bool:
    return _tracing.tracer is not None


def configure(service_name: str, endpoint: str | None = None) -> bool:
    """Export spans of ``service_name`` to the collector (``endpoint`` or the variables); False (nothing imported)
    when none is configured. ``http://HOST:PORT`` is plaintext gRPC, ``https://`` TLS."""
    where = collector_endpoint(endpoint, os.environ)
    if not where:
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    insecure = True if where.startswith("http://") else None  # None: the exporter decides (https, variables)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=where, insecure=insecure)))
    _tracing.provider, _tracing.tracer = provider, provider.get_tracer("venvsmith")
    log.info("traces to the OTLP collector at %s as %s", where, service_name)
    return True


def shutdown() -> None:
    """Send the spans still buffered and stop exporting (a server's last step)."""
    provider, _tracing.provider, _tracing.tracer = _tracing.provider, None, None
    if provider is not None:
        provider.shutdown()


def _rpc_attributes(full_method: str) -> dict[str, str]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def server_span(full_method: str, traceparent: str | None) -> Any:
    """A started SERVER span for the call ``full_method``, a child of the caller's ``traceparent`` (else a new
    trace); None when tracing is off or the service is :data:`UNTRACED`."""
    tracer = _tracing.tracer
    if tracer is None:  # tracing off: nothing built per call
        return None
    attributes = _rpc_attributes(full_method)
    if attributes["rpc.service"] in UNTRACED:
        return None
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent} if traceparent else {})
    return tracer.start_span(full_method.lstrip("/"), context=parent, kind=SpanKind.SERVER, attributes=attributes)


def client_span(full_method: str, parent: tuple[str, str, str] | None) -> Any:
    """A started CLIENT span for a call to another service, a child of ``parent`` (``(trace_id, span_id, flags)``
    of the call being served, hex); None when tracing is off."""
    tracer = _tracing.tracer
    if tracer is None:
        return None
    from opentelemetry import trace

    context = None
    if parent is not None:
        served = trace.SpanContext(trace_id=int(parent[0], 16), span_id=int(parent[1], 16), is_remote=False,
                                   trace_flags=trace.TraceFlags(int(parent[2], 16)))
        context = trace.set_span_in_context(trace.NonRecordingSpan(served))
    return tracer.start_span(full_method.lstrip("/"), context=context, kind=trace.SpanKind.CLIENT,
                             attributes=_rpc_attributes(full_method))


def ids(span: Any) -> tuple[str, str, str]:
    """``(trace_id, span_id, flags)`` of ``span`` in hex, as the JSON logs and ``traceparent`` write them."""
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", f"{int(context.trace_flags):02x}"


def traceparent(span: Any) -> str:
    trace_id, span_id, flags = ids(span)
    return f"00-{trace_id}-{span_id}-{flags}"


def end(span: Any, code: str) -> None:
    """End ``span`` with the call's gRPC status code (its name): an error status unless OK."""
    if span is None:
        return
    import grpc
    from opentelemetry.trace import Status, StatusCode

    status = getattr(grpc.StatusCode, code, None)
    if status is not None:
        span.set_attribute("rpc.grpc.status_code", status.value[0])
    if code != "OK":
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()
