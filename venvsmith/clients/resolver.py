"""The ``ResolverClient`` over two transports: the engine embedded in-process, or a remote gRPC server."""

from __future__ import annotations

import time

from venvsmith.core.resolution import CallError, ResolverClient


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EmbeddedResolver(_Closing):
    """The resolver engine in this process (the CLI's default): no server, same answers, same errors."""

    def __init__(self, engine=None) -> None:
        from resolver_service.engine import ResolverEngine

        self.engine = engine or ResolverEngine()

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
        self.engine.close()


class RemoteResolver(_Closing):
    """A resolver server reached over gRPC."""

    def __init__(self, address: str) -> None:
        import grpc  # only the remote transport needs it

        from venvsmith.v1 import resolver_pb2_grpc

        self._rpc_error = grpc.RpcError
        self.channel = grpc.insecure_channel(address)
        self.stub = resolver_pb2_grpc.ResolverServiceStub(self.channel)

    @staticmethod
    def _error(exc) -> CallError:
        return CallError.from_rpc(exc)

    def resolve(self, request, timeout=None):
        try:
            return self.stub.Resolve(request, timeout=timeout)
        except self._rpc_error as exc:
            raise self._error(exc) from None

    def resolve_stream(self, request, timeout=None):
        try:
            yield from self.stub.ResolveStream(request, timeout=timeout)
        except self._rpc_error as exc:
            raise self._error(exc) from None

    def describe(self, request):
        try:
            return self.stub.DescribeEnvironment(request)
        except self._rpc_error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self.channel.close()


def connect_resolver(server: str | None) -> ResolverClient:
    """A remote client for ``HOST:PORT``, else the embedded engine."""
    return RemoteResolver(server) if server else EmbeddedResolver()
