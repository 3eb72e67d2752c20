"""The gRPC side of admission (:mod:`venvsmith.core.admission`): the server interceptor that counts the expensive
calls and refuses one beyond the limit.

Apart from the policy so that the CLI's parser (``serve --max-concurrent-calls``) does not import gRPC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from grpc_status import rpc_status

from .admission import EXPENSIVE_METHODS, Admission
from .errors import ServerBusy

log = logging.getLogger("venvsmith.core.admission")


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Counts the expensive calls in :data:`EXPENSIVE_METHODS`; one beyond the limit is refused SERVER_BUSY."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in EXPENSIVE_METHODS:
            return handler
        admission = self.admission

        def refuse(context: grpc.ServicerContext) -> None:
            log.warning("refused %s: %d expensive calls already running", method, admission.limit)
            context.abort_with_status(rpc_status.to_status(ServerBusy(method, admission.limit).to_status()))

        def unary(inner: Callable) -> Callable:
            def behavior(request: Any, context: grpc.ServicerContext) -> Any:
                if not admission.try_enter():
                    refuse(context)
                try:
                    return inner(request, context)
                finally:
                    admission.leave()

            return behavior

        def streaming(inner: Callable) -> Callable:
            def behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                if not admission.try_enter():
                    refuse(context)
                try:
                    yield from inner(request, context)
                finally:
                    admission.leave()

            return behavior

        kw = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kw)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kw)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kw)
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kw)
