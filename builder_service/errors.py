"""The builder's general error; every other builder error is a :class:`~venvsmith.core.errors.ServiceError`
defined next to the code that raises it (digest, store, install, archive, venv, relocate, limits, sdist_build)."""

from __future__ import annotations

from venvsmith.core.errors import ServiceError

#: ``ErrorReason`` of a :class:`BuilderError` that names none, by status.
_DEFAULT_REASONS = {
    "INVALID_ARGUMENT": "INVALID_BUILD_REQUEST",
    "NOT_FOUND": "BLOB_NOT_FOUND",
    "OUT_OF_RANGE": "INVALID_RANGE",
    "FAILED_PRECONDITION": "BUILD_PRECONDITION",
}


class BuilderError(ServiceError):
    """An error with an explicit status (a ``grpc.StatusCode`` member name), a message, and an ``ErrorReason``."""

    def __init__(self, status: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status  # type: ignore[misc]
        self.error_reason = (  # type: ignore[misc]
            reason or _DEFAULT_REASONS.get(status, "ERROR_REASON_UNSPECIFIED"))

    def __reduce__(self):
        return (type(self), (self.status, self.message, self.error_reason))


def status_of(exc: BaseException) -> tuple[str, str] | None:
    """``(status, message)`` of a domain error, ``None`` for anything else (a bug, reported as INTERNAL)."""
    return (exc.status, exc.status_message()) if isinstance(exc, ServiceError) else None
