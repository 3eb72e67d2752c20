"""Observable and operable: metrics on --metrics-port, JSON logs with a request id that follows a request from the
resolver to the builder, and the drain on SIGTERM (health NOT_SERVING, the call in flight completes, exit 0).

Real server subprocesses on 127.0.0.1 (tests/fixtures/builder_server.py).
"""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.builder_server import BackgroundCall, BuilderProcess, ResolverProcess, free_port
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

RESOLVER = "venvsmith.v1.ResolverService"


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _sample(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _request(index: str, *names: str) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(requirements=list(names), index=common_pb2.IndexConfig(index_url=index))


def _json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    for entry in parsed:
        assert {"ts", "level", "logger", "msg", "request_id", "rpc"} <= entry.keys(), entry
    return parsed


@pytest.mark.slow
def test_metrics_count_and_time_a_resolve(tmp_path, index_builder):
    index_builder.add("dep", "1.0")
    port = free_port()
    with ResolverProcess(tmp_path / "r", "--metrics-port", str(port), allow=[str(index_builder.root)]) as server:
        before = _scrape(port)
        assert _sample(before, "venvsmith_rpc_requests_total", service=RESOLVER, method="Resolve", code="OK") is None
        response = server.resolver_stub.Resolve(_request(index_builder.simple_url(), "dep"), timeout=60)
        assert [p.name for p in response.pins] == ["dep"]
        with pytest.raises(grpc.RpcError):
            server.resolver_stub.Resolve(_request(index_builder.simple_url(), "not a requirement!"), timeout=60)
        after = _scrape(port)
    labels = {"service": RESOLVER, "method": "Resolve", "code": "OK"}
    assert _sample(after, "venvsmith_rpc_requests_total", **labels) == 1
    assert _sample(after, "venvsmith_rpc_duration_seconds_count", **labels) == 1
    assert _sample(after, "venvsmith_rpc_duration_seconds_sum", **labels) > 0
    bad = {"service": RESOLVER, "method": "Resolve", "code": "INVALID_ARGUMENT"}
    assert _sample(after, "venvsmith_rpc_requests_total", **bad) == 1
    assert _sample(after, "venvsmith_resolutions_total") == 1
    assert _sample(after, "venvsmith_cache_lookups_total", layer="resolution", result="miss") == 1
    assert _sample(after, "venvsmith_rpc_in_flight", service=RESOLVER, method="Resolve") == 0


@pytest.mark.slow
def test_builder_metrics_report_builds_and_the_store(tmp_path, index_builder):
    index_builder.add("srcpkg", "1.0", kind="sdist", backend="intree")
    index = index_builder.simple_url()
    port = free_port()
    with BuilderProcess(tmp_path / "b", "--metrics-port", str(port), http=False,
                        allow=[str(index_builder.root)]) as server:
        samples = _scrape(port)
        assert _sample(samples, "venvsmith_store_bytes") == 0
        assert _sample(samples, "venvsmith_store_evictions_total") == 0
        assert _sample(samples, "venvsmith_draining") == 0
        request = builder_pb2.ResolveAndBuildRequest(
            resolve=_request(index, "srcpkg"),
            options=builder_pb2.BuildOptions(wheels=True, index=common_pb2.IndexConfig(index_url=index)),
        )
        for _ in range(2):  # the second is answered from the action cache
            list(server.stub.ResolveAndBuild(request, timeout=300))
        samples = _scrape(port)
    builds = {"service": "venvsmith.v1.BuilderService", "method": "ResolveAndBuild", "code": "OK"}
    assert _sample(samples, "venvsmith_rpc_requests_total", **builds) == 2
    assert _sample(samples, "venvsmith_build_duration_seconds_count", kind="sdist", outcome="ok") == 1
    assert _sample(samples, "venvsmith_builds_in_flight", kind="sdist") == 0
    assert _sample(samples, "venvsmith_store_bytes") > 0
    assert _sample(samples, "venvsmith_store_writes_total") >= 2  # the sdist and its wheel
    assert _sample(samples, "venvsmith_cache_lookups_total", layer="action", result="hit") >= 1
    assert _sample(samples, "venvsmith_cache_lookups_total", layer="resolution", result="hit") == 1


def test_builder_metrics_count_artifact_reads_and_bytes_per_transport(tmp_path, index_builder):
    """Each GetArtifact call and HTTP blob GET is one read; the bytes are what went out (a range: its length), so
    bytes over a blob's size is how many times it was downloaded. A blob it does not have is no read."""
    index_builder.add("pkg", "1.0")
    index = index_builder.simple_url()
    port = free_port()
    with BuilderProcess(tmp_path / "b", "--metrics-port", str(port), allow=[str(index_builder.root)]) as server:
        request = builder_pb2.ResolveAndBuildRequest(
            resolve=_request(index, "pkg"),
            options=builder_pb2.BuildOptions(wheels=True, index=common_pb2.IndexConfig(index_url=index)),
        )
        wheel = next(e.build.result for e in server.stub.ResolveAndBuild(request, timeout=300)
                     if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result").wheels[0]
        size = wheel.digest.size_bytes
        before = _scrape(port)
        whole = b"".join(c.data for c in server.artifacts.GetArtifact(
            artifact_pb2.GetArtifactRequest(digest=wheel.digest), timeout=60))
        tail = b"".join(c.data for c in server.artifacts.GetArtifact(
            artifact_pb2.GetArtifactRequest(digest=wheel.digest, offset=size - 10), timeout=60))
        absent = common_pb2.Digest(hash="0" * 64, size_bytes=3)
        with pytest.raises(grpc.RpcError) as missing:
            list(server.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=absent), timeout=60))
        with urllib.request.urlopen(wheel.http_url, timeout=30) as answer:
            body = answer.read()
        samples = _scrape(port)
    assert len(whole) == size and tail == whole[-10:] and body == whole
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    def delta(name: str, transport: str) -> float:
        return (_sample(samples, name, transport=transport) or 0) - (_sample(before, name, transport=transport) or 0)

    assert delta("venvsmith_artifact_reads_total", "grpc") == 2
    assert delta("venvsmith_artifact_bytes_sent_total", "grpc") == size + 10
    assert delta("venvsmith_artifact_reads_total", "http") == 1
    assert delta("venvsmith_artifact_bytes_sent_total", "http") == size


@pytest.mark.slow
def test_request_id_follows_the_request_from_resolver_to_builder_in_json_logs(tmp_path, index_builder):
    index_builder.add("dep", "2.5")
    index_builder.add("dyn", "1.0", kind="sdist", backend="intree", deps=["dep>=2"], dynamic=["Requires-Dist"])
    rid = "req-7f3a9c-observe"
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with BuilderProcess(tmp_path / "b", "--log-format", "json", http=False,
                        allow=[str(index_builder.root)]) as builder:
        with ResolverProcess(tmp_path / "r", "--builder", builder.address, "--log-format", "json",
                             allow=[str(index_builder.root)]) as resolver:
            response = resolver.resolver_stub.Resolve(_request(index_builder.simple_url(), "dyn"), timeout=120,
                                                      metadata=[("x-request-id", rid),
                                                                ("traceparent", f"00-{trace_id}-{parent}-01")])
            assert {p.name for p in response.pins} == {"dyn", "dep"}
            resolver.resolver_stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest(), timeout=30)
        resolver_log = _json_lines(resolver.log())
        builder_log = _json_lines(builder.log())
    resolved = [e for e in resolver_log if e["rpc"] == f"{RESOLVER}/Resolve"]
    assert resolved and all(e["request_id"] == rid for e in resolved), resolved
    prepared = [e for e in builder_log if e["rpc"] == "venvsmith.v1.BuilderService/PrepareMetadata"]
    assert prepared and all(e["request_id"] == rid for e in prepared), builder_log
    # W3C trace context: one trace; the resolver's span is a child of the caller's, the builder's of the resolver's.
    resolver_spans = {e["span_id"] for e in resolved if e.get("trace_id") == trace_id}
    builder_spans = {e["span_id"] for e in prepared if e.get("trace_id") == trace_id}
    assert len(resolver_spans) == 1 and parent not in resolver_spans, resolved
    assert builder_spans and not builder_spans & resolver_spans, prepared
    # A call without an id gets a fresh one, not the previous call's.
    described = [e for e in resolver_log if e["rpc"] == f"{RESOLVER}/DescribeEnvironment"]
    assert described and described[0]["request_id"] not in ("", rid) and "trace_id" not in described[0]


@pytest.mark.slow
def test_sigterm_drains_then_exits_zero(tmp_path, index_builder, index_server):
    index_builder.add("dep", "1.0")
    index = index_server(delay=1.5)  # every page takes 1.5 s: the Resolve is still running at SIGTERM
    with ResolverProcess(tmp_path / "r", "--grace-period", "30", allow=[index.url]) as server:
        health = health_pb2_grpc.HealthStub(server.channel)
        assert health.Check(health_pb2.HealthCheckRequest(service=RESOLVER), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
        caller = BackgroundCall(lambda: server.resolver_stub.Resolve(_request(index.url, "dep"), timeout=60))
        time.sleep(0.7)  # the call is in flight, waiting on the slow index
        server.proc.terminate()
        time.sleep(0.3)
        statuses = {health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
                    for name in (RESOLVER, "")}
        assert statuses == {health_pb2.HealthCheckResponse.NOT_SERVING}
        with pytest.raises(grpc.RpcError) as refused:
            server.resolver_stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        outcome = caller.join(60)
        assert "error" not in outcome, outcome.get("error")
        assert [p.name for p in outcome["response"].pins] == ["dep"]  # type: ignore[attr-defined]
        assert server.proc.wait(30) == 0


@pytest.mark.slow
def test_sigterm_past_the_grace_cancels_the_call_and_exits_zero(tmp_path, index_builder, index_server):
    index_builder.add("dep", "1.0")
    index = index_server(delay=6)
    with ResolverProcess(tmp_path / "r", "--grace-period", "0.5", allow=[index.url]) as server:
        caller = BackgroundCall(lambda: server.resolver_stub.Resolve(_request(index.url, "dep"), timeout=60))
        time.sleep(0.7)
        started = time.monotonic()
        server.proc.terminate()
        assert server.proc.wait(30) == 0
        assert time.monotonic() - started < 4, "the server waited past its grace period for the stuck call"
        outcome = caller.join(30)
    assert isinstance(outcome.get("error"), grpc.RpcError)
    assert outcome["error"].code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)  # type: ignore[attr-defined]
