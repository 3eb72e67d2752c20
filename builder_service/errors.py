"""The builder's general error; every other builder error is a :class:`~venvsmith.core.errors.ServiceError`
defined next to the code that raises it (digest, store, install, archive, venv, relocate, limits, sdist_build)."""

from __future__ import annotations

from dataclasses import replace

from venvsmith.core.errors import MAX_STATUS_MESSAGE, ErrorDetails, ServiceError, fit_message
from venvsmith.core.resolution import CallError

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


def with_log_tail(message: str, log_tail: str) -> str:
    """``message`` and as much of the build log's end as fits a status message (the last lines say what failed)."""
    if not log_tail:
        return message
    head = fit_message(f"{message}\n--- build log (tail) ---\n", MAX_STATUS_MESSAGE // 2)
    return head + fit_message(log_tail, MAX_STATUS_MESSAGE - len(head.encode()) * 3, keep_end=True)


class SdistFailed(BuilderError):
    """``doing`` (building, resolving the build requirements of ...) the sdist ``filename`` failed with ``cause``.

    The message names the sdist; the status, ``ErrorReason`` and details are the cause's (``ErrorInfo.metadata``
    gains ``sdist``), so a caller still tells a failed backend from a missing build requirement or a full store.
    """

    def __init__(self, filename: str, doing: str, cause: ServiceError | CallError) -> None:
        reason = cause.reason if isinstance(cause, CallError) else cause.error_reason
        super().__init__(cause.status, f"{doing} {filename} failed: {cause.message}", reason)
        self.filename = filename
        self.doing = doing
        self.cause = cause
        self.field = getattr(cause, "field", "")
        self.log_tail = getattr(cause, "log_tail", "")

    def details(self) -> ErrorDetails:
        details = self.cause.details if isinstance(self.cause, CallError) else self.cause.details()
        return replace(details, metadata={**details.metadata, "sdist": self.filename})

    def status_message(self) -> str:
        return with_log_tail(self.message, self.log_tail)

    def under(self, prefix: str) -> SdistFailed:
        return SdistFailed(self.filename, self.doing, self.cause.under(prefix))

    def __reduce__(self):
        return (type(self), (self.filename, self.doing, self.cause))


def status_of(exc: BaseException) -> tuple[str, str] | None:
    """``(status, message)`` of a domain error, ``None`` for anything else (a bug, reported as INTERNAL)."""
    return (exc.status, exc.status_message()) if isinstance(exc, ServiceError) else None
