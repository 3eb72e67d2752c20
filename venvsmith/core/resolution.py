"""How the services reach each other without importing each other (uv's ``BuildContext``, in two protocols).

* :class:`ResolverClient`: how a caller (the CLI, the builder for build requirements) asks for a resolution,
  embedded or remote.
* :class:`MetadataPreparer`: how the resolver asks for the metadata of an sdist whose dependencies are dynamic
  (a builder runs its backend in isolation); given to the resolver when it is constructed.

Which implementation each one gets is decided at the top, in :mod:`venvsmith.cli`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from venvsmith.v1 import common_pb2, resolver_pb2

if TYPE_CHECKING:
    from venvsmith.core.distfile import DistFile
    from venvsmith.core.target import TargetEnvironment


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


class MetadataPreparer(Protocol):
    """Reads the core metadata of an sdist with dynamic dependencies by running its build backend (isolated)."""

    #: What this preparer is, for DescribeEnvironment ("embedded builder", "builder at HOST:PORT").
    description: str

    def prepare(self, file: DistFile, target: TargetEnvironment, index: common_pb2.IndexConfig) -> bytes:
        """``METADATA`` bytes of ``file`` (hashed) for ``target``; ``index`` says where the file is fetched from.

        Raises :class:`~venvsmith.core.errors.ServiceError` subclasses (``DynamicMetadata`` when it cannot).
        """
        ...
