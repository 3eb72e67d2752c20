"""Request messages that do not decode are the caller's fault: INVALID_ARGUMENT, not gRPC's INTERNAL.

gRPC Python answers a request its deserializer rejects with INTERNAL "Exception deserializing request!". The
:class:`DecodeErrorInterceptor` gives every handler the raw bytes instead and decodes them itself, so garbage
bytes get INVALID_ARGUMENT with the usual rich details (reason ``INVALID_INPUT``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from grpc_status import rpc_status

from .errors import InvalidInput

__all__ = ["DecodeErrorInterceptor"]


def _malformed(raw: bytes, decode: Callable[[bytes], Any]) -> InvalidInput:
    what = getattr(getattr(decode, "__self__", None), "__name__", "request")
    return InvalidInput(f"{len(raw)} bytes", f"malformed request message (not a valid {what})")


def _decoded(raw: bytes, decode: Callable[[bytes], Any], context: grpc.ServicerContext) -> Any:
    try:
        return decode(raw)
    except Exception:  # noqa: BLE001 - DecodeError, or any other failure of the generated parser
        context.abort_with_status(rpc_status.to_status(_malformed(raw, decode).to_status()))


class DecodeErrorInterceptor(grpc.ServerInterceptor):
    """Wraps each handler: request bytes are decoded inside the handler, a failure aborts INVALID_ARGUMENT."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        if handler.unary_unary is not None:
            behavior = handler.unary_unary
            return grpc.unary_unary_rpc_method_handler(
                lambda raw, context: behavior(_decoded(raw, decode, context), context),
                response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            stream = handler.unary_stream
            return grpc.unary_stream_rpc_method_handler(
                lambda raw, context: stream(_decoded(raw, decode, context), context),
                response_serializer=handler.response_serializer)
        if handler.stream_unary is not None:
            sink = handler.stream_unary
            return grpc.stream_unary_rpc_method_handler(
                lambda raws, context: sink(_each(raws, decode), context),
                response_serializer=handler.response_serializer)
        both = handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda raws, context: both(_each(raws, decode), context),
            response_serializer=handler.response_serializer)


def _each(raws: Iterator[bytes], decode: Callable[[bytes], Any]) -> Iterator[Any]:
    """Decode a request stream; a bad message raises :class:`InvalidInput` into the handler (which aborts with
    it, as with any domain error)."""
    for raw in raws:
        try:
            yield decode(raw)
        except Exception:  # noqa: BLE001 - as in _decoded
            raise _malformed(raw, decode) from None
