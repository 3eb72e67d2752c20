"""Which collector a server exports traces to (venvsmith.core.tracing.collector_endpoint), and tracing off."""

from __future__ import annotations

from venvsmith.core import tracing

TRACES, GENERAL = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"


def test_the_option_then_the_traces_variable_then_the_general_one():
    both = {TRACES: "http://127.0.0.1:1", GENERAL: "http://127.0.0.1:2"}
    assert tracing.collector_endpoint("http://127.0.0.1:3", both) == "http://127.0.0.1:3"
    assert tracing.collector_endpoint(None, both) == "http://127.0.0.1:1"
    assert tracing.collector_endpoint(None, {GENERAL: "http://127.0.0.1:2"}) == "http://127.0.0.1:2"
    assert tracing.collector_endpoint(None, {TRACES: "", GENERAL: "http://127.0.0.1:2"}) == "http://127.0.0.1:2"
    assert tracing.collector_endpoint("", {}) is None


def test_without_a_collector_nothing_is_traced(monkeypatch):
    for name in (TRACES, GENERAL):
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure("venvsmith-test") is False
    assert not tracing.enabled()
    assert tracing.server_span("/venvsmith.v1.ResolverService/Resolve", None) is None
    assert tracing.client_span("/venvsmith.v1.BuilderService/PrepareMetadata", ("1" * 32, "2" * 16, "01")) is None
    tracing.end(None, "OK")  # a no-op
