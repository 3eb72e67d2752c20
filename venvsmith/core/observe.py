"""Metrics (Prometheus) and the server interceptor that measures every RPC and carries its request id.

Every metric this process exports is named in :data:`METRICS` (the Grafana dashboard in ``deploy/grafana`` may
only plot those; a test checks). Engines report through :mod:`venvsmith.core.engine_counts` (forwarded to
:func:`cache_lookup` and :func:`fleet_flight` here once this module is imported), :func:`timed_build`, or
register a callback (:func:`add_source`) that the scrape reads; they never import each other.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

import grpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import engine_counts, jsonlog, tracing

log = logging.getLogger("venvsmith.rpc")

#: Every metric family this process exports: name -> (type, help).
METRICS: dict[str, tuple[str, str]] = {
    "venvsmith_rpc_requests_total": ("counter", "RPCs finished, by service, method and gRPC status code"),
    "venvsmith_rpc_duration_seconds": ("histogram", "RPC latency, by service, method and gRPC status code"),
    "venvsmith_rpc_in_flight": ("gauge", "RPCs being served now, by service and method"),
    "venvsmith_cache_lookups_total": ("counter", "Cache lookups by layer (resolution, index_page, metadata, "
                                                 "action) and result (hit, miss)"),
    "venvsmith_build_duration_seconds": ("histogram", "Builds run by this process, by kind (sdist, venv) and outcome"),
    "venvsmith_builds_in_flight": ("gauge", "Builds running now, by kind"),
    "venvsmith_resolutions_total": ("counter", "Resolutions run (not answered from the resolution cache)"),
    "venvsmith_fleet_flights_total": ("counter", "Cross-replica single-flights by outcome: led (done here under "
                                                 "the lease), joined (another replica's result), local (Redis down)"),
    "venvsmith_store_bytes": ("gauge", "Bytes of blobs in the builder's store"),
    "venvsmith_store_evictions_total": ("counter", "Blobs evicted from the store by this process"),
    "venvsmith_store_evicted_bytes_total": ("counter", "Bytes evicted from the store by this process"),
    "venvsmith_store_writes_total": ("counter", "Blobs written to the store by this process"),
    "venvsmith_artifact_reads_total": ("counter", "Blob reads served to clients (GetArtifact calls, HTTP /blobs GETs), "
                                                  "by transport (grpc, http)"),
    "venvsmith_artifact_bytes_sent_total": ("counter", "Blob bytes sent to clients, by transport (grpc, http)"),
    "venvsmith_downloads_total": ("counter", "Pinned files (wheels and sdists) the builder downloaded from an index"),
    "venvsmith_registry_action_hits_total": ("counter", "Action results (fetched and built wheels, wheelhouses, venv "
                                                        "archives) another replica published, found in the registry"),
    "venvsmith_registry_actions_published_total": ("counter", "Action results this builder published in the registry"),
    "venvsmith_registry_env_hits_total": ("counter", "Environment images another replica published, found by venv key"),
    "venvsmith_registry_blobs_pulled_total": ("counter", "Blobs pulled from the registry into the local store"),
    "venvsmith_registry_blobs_pushed_total": ("counter", "Blobs pushed from the local store to the registry"),
    "venvsmith_fleet_builds_joined_total": ("counter", "Builds this builder waited for while another replica ran them "
                                                       "(answered by that replica's result)"),
    "venvsmith_draining": ("gauge", "1 while the server drains on its way out (health NOT_SERVING)"),
}

disable_created_metrics()  # no ``*_created`` series: the dashboard does not use them

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BUILD_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def _help(name: str) -> str:
    return METRICS[name][1]


def _bare(name: str) -> str:
    """prometheus_client adds ``_total`` to counters itself."""
    return name.removesuffix("_total")


RPC_REQUESTS = Counter(_bare("venvsmith_rpc_requests_total"), _help("venvsmith_rpc_requests_total"),
                       ["service", "method", "code"])
RPC_DURATION = Histogram("venvsmith_rpc_duration_seconds", _help("venvsmith_rpc_duration_seconds"),
                         ["service", "method", "code"], buckets=_LATENCY_BUCKETS)
RPC_IN_FLIGHT = Gauge("venvsmith_rpc_in_flight", _help("venvsmith_rpc_in_flight"), ["service", "method"])
CACHE_LOOKUPS = Counter(_bare("venvsmith_cache_lookups_total"), _help("venvsmith_cache_lookups_total"),
                        ["layer", "result"])
BUILD_DURATION = Histogram("venvsmith_build_duration_seconds", _help("venvsmith_build_duration_seconds"),
                           ["kind", "outcome"], buckets=_BUILD_BUCKETS)
BUILDS_IN_FLIGHT = Gauge("venvsmith_builds_in_flight", _help("venvsmith_builds_in_flight"), ["kind"])
DRAINING = Gauge("venvsmith_draining", _help("venvsmith_draining"))
FLEET_FLIGHTS = Counter(_bare("venvsmith_fleet_flights_total"), _help("venvsmith_fleet_flights_total"), ["outcome"])
ARTIFACT_READS = Counter(_bare("venvsmith_artifact_reads_total"), _help("venvsmith_artifact_reads_total"),
                         ["transport"])
ARTIFACT_BYTES = Counter(_bare("venvsmith_artifact_bytes_sent_total"), _help("venvsmith_artifact_bytes_sent_total"),
                         ["transport"])


def cache_lookup(layer: str, hit: bool, count: int = 1) -> None:
    """``count`` lookups in cache ``layer`` that hit (or missed)."""
    if count:
        CACHE_LOOKUPS.labels(layer, "hit" if hit else "miss").inc(count)


def fleet_flight(outcome: str) -> None:
    """One cross-replica single-flight ended ``outcome`` (led, joined, local)."""
    FLEET_FLIGHTS.labels(outcome).inc()


def artifact_read(transport: str, pieces: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """``pieces`` of a blob read for a client over ``transport`` (grpc, http), counted as they go out: one read,
    and the bytes sent (how many times the blobs were downloaded: bytes over their sizes)."""
    ARTIFACT_READS.labels(transport).inc()
    sent = ARTIFACT_BYTES.labels(transport)
    for offset, data in pieces:
        sent.inc(len(data))
        yield offset, data


F = TypeVar("F", bound=Callable[..., Any])


def timed_build(kind: str) -> Callable[[F], F]:
    """Decorate a build function: in-flight gauge and a duration sample (outcome ``ok`` or ``error``)."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = "error"
            BUILDS_IN_FLIGHT.labels(kind).inc()
            try:
                result = fn(*args, **kwargs)
                outcome = "ok"
                return result
            finally:
                BUILDS_IN_FLIGHT.labels(kind).dec()
                BUILD_DURATION.labels(kind, outcome).observe(time.perf_counter() - started)

        return run  # type: ignore[return-value]

    return decorate


# -- callbacks read at scrape time --------------------------------------------------------------------------------

_sources: weakref.WeakKeyDictionary[object, Callable[[Any], dict[str, float]]] = weakref.WeakKeyDictionary()
_sources_lock = threading.Lock()


def add_source(owner: object, read: Callable[[Any], dict[str, float]]) -> None:
    """At each scrape, ``read(owner)`` gives values of :data:`METRICS` names (summed over owners); the source goes
    when ``owner`` is collected."""
    with _sources_lock:
        _sources[owner] = read


class _SourceCollector(Collector):
    def collect(self) -> Iterator[Any]:
        totals: dict[str, float] = {}
        with _sources_lock:
            items = list(_sources.items())
        for owner, read in items:
            try:
                values = read(owner)
            except Exception:  # a closed engine: its values are gone, the scrape goes on
                log.debug("metrics source %r failed", owner, exc_info=True)
                continue
            for name, value in values.items():
                if name not in METRICS:
                    raise KeyError(f"metric {name} is not declared in venvsmith.core.observe.METRICS")
                totals[name] = totals.get(name, 0.0) + value
        for name, value in sorted(totals.items()):
            kind, text = METRICS[name]
            if kind == "counter":
                yield CounterMetricFamily(_bare(name), text, value=value)
            else:
                yield GaugeMetricFamily(name, text, value=value)


REGISTRY.register(_SourceCollector())


def serve_metrics(host: str, port: int) -> tuple[Any, int]:
    """Serve ``/metrics`` over HTTP; returns (server, bound port) (``port`` 0: any free one)."""
    server, _thread = start_http_server(port, addr=host)
    return server, server.server_port


# -- the server interceptor ---------------------------------------------------------------------------------------

def _split(full_method: str) -> tuple[str, str]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def _code_of(context: grpc.ServicerContext, failed: BaseException | None) -> str:
    code = context.code() if hasattr(context, "code") else None
    if code is None:
        if isinstance(failed, GeneratorExit):  # a stream its caller cancelled (or whose deadline passed)
            return "CANCELLED"
        return "UNKNOWN" if failed is not None else "OK"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class _Call:
    """The bookkeeping of one RPC: context variables, in-flight gauge, and the count, latency and log at the end."""

    def __init__(self, details: grpc.HandlerCallDetails, drain: Any = None) -> None:
        self.drain = drain
        self.service, self.method = _split(details.method)
        metadata = dict(details.invocation_metadata or ())
        given = metadata.get(jsonlog.REQUEST_ID_KEY)
        self.request_id = jsonlog.accept_request_id(given if isinstance(given, str) else None)
        parent = metadata.get(jsonlog.TRACEPARENT_KEY)
        parent = parent if isinstance(parent, str) else None
        # With a collector: an OpenTelemetry server span; without, the caller's trace id with a new span id.
        self.traced = tracing.server_span(details.method, parent)
        self.span = tracing.ids(self.traced) if self.traced is not None else jsonlog.accept_traceparent(parent)
        self.rpc = f"{self.service}/{self.method}"

    def admit(self, context: grpc.ServicerContext) -> None:
        """Refuse the call UNAVAILABLE while the server drains (health and reflection still answer)."""
        if self.drain is not None and not self.drain.begin(self.service):
            RPC_REQUESTS.labels(self.service, self.method, "UNAVAILABLE").inc()
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down: retry on another replica")

    def enter(self) -> tuple[Any, Any, Any, float]:
        RPC_IN_FLIGHT.labels(self.service, self.method).inc()
        tokens = (jsonlog.request_id.set(self.request_id), jsonlog.rpc_method.set(self.rpc),
                  jsonlog.trace_span.set(self.span))
        return tokens[0], tokens[1], tokens[2], time.perf_counter()

    def leave(self, state: tuple[Any, Any, Any, float], context: grpc.ServicerContext,
              failed: BaseException | None) -> None:
        elapsed = time.perf_counter() - state[3]
        code = _code_of(context, failed)
        RPC_IN_FLIGHT.labels(self.service, self.method).dec()
        RPC_REQUESTS.labels(self.service, self.method, code).inc()
        RPC_DURATION.labels(self.service, self.method, code).observe(elapsed)
        if self.service != "grpc.health.v1.Health":
            log.info("%s %s in %.1f ms", self.rpc, code, elapsed * 1000,
                     extra={"code": code, "duration_ms": round(elapsed * 1000, 3)})
        tracing.end(self.traced, code)
        jsonlog.trace_span.reset(state[2])
        jsonlog.rpc_method.reset(state[1])
        jsonlog.request_id.reset(state[0])
        if self.drain is not None:
            self.drain.end(self.service)

    def unary(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            self.admit(context)
            state = self.enter()
            failed: BaseException | None = None
            try:
                return behavior(request, context)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                self.leave(state, context, failed)

        return run

    def streaming(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            self.admit(context)
            state = self.enter()
            failed: BaseException | None = None
            try:
                yield from behavior(request, context)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                self.leave(state, context, failed)

        return run


class ObservingInterceptor(grpc.ServerInterceptor):
    """Counts, times and logs every RPC by service, method and status; sets the request id for its duration.

    ``drain`` (:class:`venvsmith.core.lifecycle.Drain`) counts calls in and out and refuses them while draining.
    """

    def __init__(self, drain: Any = None) -> None:
        self.drain = drain

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        call = _Call(handler_call_details, self.drain)
        if handler.unary_unary:
            return handler._replace(unary_unary=call.unary(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=call.unary(handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=call.streaming(handler.unary_stream))
        if handler.stream_stream:
            return handler._replace(stream_stream=call.streaming(handler.stream_stream))
        return handler


engine_counts.export_to(sys.modules[__name__])  # the engines' counts, from now on
