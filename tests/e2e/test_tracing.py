"""OpenTelemetry traces when a collector is configured: a real OTLP gRPC collector in the test (TraceService/Export
of ``opentelemetry-proto``, on 127.0.0.1), real resolver and builder server subprocesses exporting to it, one
request that crosses resolver -> builder: one trace, parent/child spans across both services, the trace id in both
JSON logs. And the CLI never imports OpenTelemetry.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.fixtures.builder_server import BuilderProcess, ResolverProcess, hermetic_env
from venvsmith.v1 import common_pb2, resolver_pb2

SERVER, CLIENT = trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector that keeps every span it is sent, with its resource's ``service.name``."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, trace_pb2.Span]] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):  # noqa: N802 -- the gRPC method's name
        with self._lock:
            for resource_spans in request.resource_spans:
                names = [a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"]
                for scope in resource_spans.scope_spans:
                    self.spans.extend((names[0] if names else "", span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, service: str, name: str, kind: int) -> list[trace_pb2.Span]:
        with self._lock:
            return [s for who, s in self.spans if who == service and s.name == name and s.kind == kind]


@pytest.fixture
def collector():
    running = Collector()
    yield running
    running.server.stop(None)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_one_trace_spans_resolver_and_builder(tmp_path, index_builder, collector):
    index_builder.add("dep", "2.5")
    index_builder.add("dyn", "1.0", kind="sdist", backend="intree", deps=["dep>=2"], dynamic=["Requires-Dist"])
    endpoint = f"http://127.0.0.1:{collector.port}"
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    # The builder finds the collector through the standard variable, the resolver through --otlp-endpoint.
    with BuilderProcess(tmp_path / "b", "--log-format", "json", http=False, allow=[str(index_builder.root)],
                        env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}) as builder:
        with ResolverProcess(tmp_path / "r", "--builder", builder.address, "--log-format", "json",
                             "--otlp-endpoint", endpoint, allow=[str(index_builder.root)]) as resolver:
            request = resolver_pb2.ResolveRequest(requirements=["dyn"],
                                                  index=common_pb2.IndexConfig(index_url=index_builder.simple_url()))
            response = resolver.resolver_stub.Resolve(request, timeout=120,
                                                      metadata=[("traceparent", f"00-{trace_id}-{parent}-01")])
            assert {p.name for p in response.pins} == {"dyn", "dep"}
            assert resolver.stop() == 0  # a clean stop sends the spans still buffered
            resolver_log = _json_lines(resolver.log())
        assert builder.stop() == 0
        builder_log = _json_lines(builder.log())

    served = collector.named("venvsmith-resolver", "venvsmith.v1.ResolverService/Resolve", SERVER)
    calls = collector.named("venvsmith-resolver", "venvsmith.v1.BuilderService/PrepareMetadata", CLIENT)
    prepared = collector.named("venvsmith-builder", "venvsmith.v1.BuilderService/PrepareMetadata", SERVER)
    assert len(served) == 1 and calls and len(prepared) == len(calls), collector.spans
    resolve = served[0]
    # One trace, the caller's: Resolve is the caller's child, each client call Resolve's, each builder span a call's.
    assert {s.trace_id.hex() for s in [resolve, *calls, *prepared]} == {trace_id}
    assert resolve.parent_span_id.hex() == parent
    assert {c.parent_span_id for c in calls} == {resolve.span_id}
    assert {p.parent_span_id for p in prepared} == {c.span_id for c in calls}
    assert all(s.status.code != trace_pb2.Status.STATUS_CODE_ERROR for s in [resolve, *calls, *prepared])
    # The same ids in the JSON logs of both services.
    resolved_lines = [e for e in resolver_log if e.get("rpc") == "venvsmith.v1.ResolverService/Resolve"]
    assert resolved_lines and {(e.get("trace_id"), e.get("span_id")) for e in resolved_lines} == \
        {(trace_id, resolve.span_id.hex())}
    builder_lines = [e for e in builder_log if e.get("rpc") == "venvsmith.v1.BuilderService/PrepareMetadata"]
    assert builder_lines and {e.get("trace_id") for e in builder_lines} == {trace_id}
    assert {e.get("span_id") for e in builder_lines} <= {p.span_id.hex() for p in prepared}


@pytest.mark.slow
def test_a_call_without_traceparent_starts_a_trace_and_health_is_not_traced(tmp_path, index_builder, collector):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with ResolverProcess(tmp_path / "r", "--otlp-endpoint", f"http://127.0.0.1:{collector.port}") as resolver:
        resolver.resolver_stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest(), timeout=30)
        health_pb2_grpc.HealthStub(resolver.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert resolver.stop() == 0
    described = collector.named("venvsmith-resolver", "venvsmith.v1.ResolverService/DescribeEnvironment", SERVER)
    assert len(described) == 1 and not described[0].parent_span_id and any(described[0].trace_id)
    assert not [s for _, s in collector.spans if "Health" in s.name]


def test_the_cli_never_imports_opentelemetry(tmp_path, index_builder):
    """Even with a collector in the environment: the CLI (a cache hit included) exports no traces."""
    index_builder.add("dep", "1.0")
    code = (
        "import sys; from venvsmith.cli import main; "
        f"args = ['resolve', 'dep', '--isolated', '-i', {index_builder.simple_url()!r}]; "
        "assert main(args) == 0 and main(args) == 0; "
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry')); assert not loaded, loaded"
    )
    env = {**hermetic_env(tmp_path / "home"), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
