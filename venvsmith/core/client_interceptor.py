"""The client side of :mod:`venvsmith.core.jsonlog`: a channel that forwards the request id being served (and, with a
tracing collector, a client span) on every call a server makes to another service.

Apart from the log formatting so that a process that only logs (the embedded CLI) does not import gRPC.
"""

from __future__ import annotations

from typing import Any

import grpc

from . import tracing
from .jsonlog import REQUEST_ID_KEY, TRACEPARENT_KEY, outgoing_metadata, trace_span


class _ClientCallDetails(grpc.ClientCallDetails):
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class RequestIdClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                                 grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the request id being served (if any) to every call made on the channel, and with a collector a client
    span (:mod:`venvsmith.core.tracing`) that ends when the call does."""

    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        span = tracing.client_span(details.method, trace_span.get())
        extra = outgoing_metadata(span)
        if extra:
            metadata = [(k, v) for k, v in (details.metadata or ()) if k not in (REQUEST_ID_KEY, TRACEPARENT_KEY)]
            details = _ClientCallDetails(details, [*metadata, *extra])
        if span is None:
            return continuation(details, request)
        try:
            call = continuation(details, request)
        except BaseException:
            tracing.end(span, "UNKNOWN")
            raise
        call.add_done_callback(lambda done: tracing.end(span, _code_name(done)))
        return call

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return self._call(continuation, client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return self._call(continuation, client_call_details, request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return self._call(continuation, client_call_details, request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return self._call(continuation, client_call_details, request_iterator)


def _code_name(call: Any) -> str:
    try:
        code = call.code()
    except Exception:  # noqa: BLE001 -- a call that cannot say: its span still ends
        return "UNKNOWN"
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """``channel`` forwarding the served request id on every call (close the original channel, not this one)."""
    return grpc.intercept_channel(channel, RequestIdClientInterceptor())
