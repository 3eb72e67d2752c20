"""The ``ResolverClient`` over two transports: the engine embedded in-process, or a remote gRPC server."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Self

from venvsmith.core.resolution import CallError


class Closing:
    """A client usable as a context manager: ``close()`` on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EmbeddedResolver(Closing):
    """A resolver engine in this process (the CLI's default): no server, same answers, same errors.

    ``close()`` closes ``also_close`` (in order), then the engine unless ``close_engine`` is false (a builder's view
    of a resolver engine that its composer closes).
    """

    def __init__(self, engine: Any, *, close_engine: bool = True, also_close: Sequence[Any] = ()) -> None:
        self.engine = engine
        self._close_engine = close_engine
        self._also_close = list(also_close)

    def _call(self, fn):
        from venvsmith.core.errors import ServiceError

        try:
            return fn()
        except ServiceError as exc:
            raise CallError.of(exc) from None

    def resolve(self, request, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._call(lambda: self.engine.resolve(request, deadline=deadline))

    def resolve_stream(self, request, timeout=None):
        from venvsmith.core.errors import ServiceError

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            yield from self.engine.resolve_stream(request, deadline=deadline)
        except ServiceError as exc:
            raise CallError.of(exc) from None

    def describe(self, request):
        return self._call(lambda: self.engine.describe(request))

    def close(self) -> None:
        for other in self._also_close:
            other.close()
        if self._close_engine:
            self.engine.close()


class RemoteResolver(Closing):
    """A resolver server reached over gRPC."""

    def __init__(self, address: str, security: Any = None, retries: int | None = None) -> None:
        """``security``: a :class:`~venvsmith.core.tls.ClientSecurity` (TLS, token); default plaintext, no token.
        ``retries``: waits for a server that is not up (yet), see :mod:`venvsmith.clients.retry`."""
        from venvsmith.clients.retry import CHANNEL_OPTIONS, DEFAULT_RETRIES, Reconnecting
        from venvsmith.core.client_interceptor import traced_channel
        from venvsmith.core.grpc_channel import open_channel
        from venvsmith.v1 import resolver_pb2_grpc

        self.channel = open_channel(address, security, options=CHANNEL_OPTIONS)
        self.stub = resolver_pb2_grpc.ResolverServiceStub(traced_channel(self.channel))
        self.calls = Reconnecting(self.channel, address, "resolver",
                                  DEFAULT_RETRIES if retries is None else retries)

    def resolve(self, request, timeout=None):
        return self.calls.call(lambda ready, left: self.stub.Resolve(request, timeout=left, wait_for_ready=ready),
                               timeout)

    def resolve_stream(self, request, timeout=None):
        yield from self.calls.stream(
            lambda ready, left: self.stub.ResolveStream(request, timeout=left, wait_for_ready=ready), timeout)

    def describe(self, request):
        return self.calls.call(
            lambda ready, left: self.stub.DescribeEnvironment(request, timeout=left, wait_for_ready=ready))

    def close(self) -> None:
        self.channel.close()
