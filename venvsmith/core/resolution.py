"""How a caller reaches resolution without importing the resolver: the ``ResolverClient`` protocol."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

from venvsmith.v1 import common_pb2, resolver_pb2

from .errors import ErrorDetails, FieldViolation, ServiceError, status_proto


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
