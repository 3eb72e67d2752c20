"""How a caller reaches resolution without importing the resolver: the ``ResolverClient`` protocol."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from venvsmith.v1 import common_pb2, resolver_pb2


class CallError(Exception):
    """A failed call, the same whichever transport: ``status`` is a ``grpc.StatusCode`` member name."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ResolverClient(Protocol):
    def resolve(self, request: resolver_pb2.ResolveRequest, timeout: float | None = None
                ) -> resolver_pb2.ResolveResponse: ...

    def resolve_stream(self, request: resolver_pb2.ResolveRequest, timeout: float | None = None
                       ) -> Iterator[resolver_pb2.ResolveEvent]: ...

    def describe(self, request: resolver_pb2.DescribeEnvironmentRequest) -> common_pb2.TargetEnvironment: ...

    def close(self) -> None: ...

    def __enter__(self) -> ResolverClient: ...

    def __exit__(self, *exc) -> None: ...
