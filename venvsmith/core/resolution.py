"""How the services reach each other without importing each other (uv's ``BuildContext``, in two protocols).

* :class:`ResolverClient`: how a caller (the CLI, the builder for build requirements) asks for a resolution,
  embedded or remote.
* :class:`MetadataPreparer`: how the resolver asks for the metadata of an sdist whose dependencies are dynamic
  (a builder runs its backend in isolation); given to the resolver when it is constructed.

Which implementation each one gets is decided at the top, in :mod:`venvsmith.cli`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from venvsmith.v1 import common_pb2, resolver_pb2

from .errors import ErrorDetails, FieldViolation, ServiceError, status_proto

if TYPE_CHECKING:
    from venvsmith.core.distfile import DistFile
    from venvsmith.core.target import TargetEnvironment


class CallError(Exception):
    """A failed call, the same whichever transport: ``status`` is a ``grpc.StatusCode`` member name.

    ``details`` are the decoded rich details (reason, field violations, conflicting chains, retry delay).
    """

    def __init__(self, status: str, message: str, details: ErrorDetails | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.details = details or ErrorDetails()

    @property
    def reason(self) -> str:
        """The ``venvsmith.v1.ErrorReason`` name, empty when the server sent none."""
        return self.details.reason

    @classmethod
    def of(cls, exc: ServiceError) -> CallError:
        """The error a caller in this process sees for a domain error: what a remote caller decodes, untrimmed."""
        return cls(exc.status, exc.status_message(), exc.details())

    @classmethod
    def from_rpc(cls, exc) -> CallError:
        """Decode a ``grpc.RpcError`` (a ``grpc.Call``), rich details from ``grpc-status-details-bin`` included."""
        from grpc_status import rpc_status

        try:
            status = rpc_status.from_call(exc)
        except (AttributeError, ValueError):  # not a call, or details that contradict the call's status
            status = None
        details = ErrorDetails.from_status(status) if status is not None else None
        return cls(exc.code().name, exc.details() or "", details)

    def under(self, prefix: str) -> CallError:
        """The same error with its field violations' paths nested under ``prefix`` (``resolve.``)."""
        if not self.details.field_violations:
            return self
        fields = tuple(FieldViolation(prefix + v.field if v.field else "", v.description)
                       for v in self.details.field_violations)
        metadata = dict(self.details.metadata)
        if metadata.get("field"):
            metadata["field"] = prefix + metadata["field"]
        return CallError(self.status, self.message, replace(self.details, field_violations=fields, metadata=metadata))

    def to_status(self):
        """As a ``google.rpc.Status``, to pass the error on unchanged."""
        return status_proto(self.status, self.message, self.details)


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
