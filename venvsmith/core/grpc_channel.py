"""gRPC client channels with the security of :class:`~venvsmith.core.tls.ClientSecurity` (TLS, bearer token).

Apart from :mod:`venvsmith.core.tls` so that reading a client's security settings imports no gRPC: a client
that needs no call (a pod whose node kept the answer) never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from .tls import ClientSecurity

__all__ = ["open_channel"]


def open_channel(address: str, security: ClientSecurity | None = None, options: Sequence[tuple[str, Any]] = ()
                 ) -> Any:
    """A gRPC channel to ``address``: TLS when the security names a CA, with the bearer token on every call."""
    security = security or ClientSecurity()
    credentials = security.channel_credentials()
    if credentials is None:
        channel = grpc.insecure_channel(address, options=list(options))
    else:
        channel = grpc.secure_channel(address, credentials, options=list(options))
    if security.token:
        channel = grpc.intercept_channel(channel, _BearerToken(security.token))
    return channel


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer TOKEN`` to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        class Details(grpc.ClientCallDetails):
            pass

        new = Details()
        new.method, new.timeout, new.credentials = details.method, details.timeout, details.credentials
        new.wait_for_ready = getattr(details, "wait_for_ready", None)
        new.compression = getattr(details, "compression", None)
        new.metadata = [*(details.metadata or ()), self._header]
        return new

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)
