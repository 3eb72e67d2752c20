"""The builder's errors, and the one place that maps any error to the gRPC status it is reported with."""

from __future__ import annotations

from functools import cache


class BuilderError(Exception):
    """An error with an explicit status (a ``grpc.StatusCode`` member name) and a message for the caller."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@cache
def _statuses() -> tuple[tuple[type[BaseException], str], ...]:
    # Imported when an error is being reported, not when this module is (the installer is a sizeable import).
    from .archive import UnsafeArchive
    from .digest import DigestMismatch, InvalidDigest
    from .install import UnsafeWheel
    from .store import BlobNotFound, BlobTooLarge, InvalidRange
    from .venv import VenvError

    return (
        (DigestMismatch, "DATA_LOSS"),
        (UnsafeWheel, "FAILED_PRECONDITION"),
        (UnsafeArchive, "FAILED_PRECONDITION"),
        (VenvError, "FAILED_PRECONDITION"),
        (BlobNotFound, "NOT_FOUND"),
        (InvalidRange, "OUT_OF_RANGE"),
        (BlobTooLarge, "RESOURCE_EXHAUSTED"),
        (InvalidDigest, "INVALID_ARGUMENT"),
    )


def status_of(exc: BaseException) -> tuple[str, str] | None:
    """``(status, message)`` for a known error, ``None`` for a bug (reported as INTERNAL)."""
    status = getattr(exc, "status", None)
    if isinstance(status, str):
        message = getattr(exc, "message", None) or str(exc)
        tail = getattr(exc, "log_tail", "")
        return status, f"{message}\n--- build log (tail) ---\n{tail}" if tail else message
    for kind, name in _statuses():
        if isinstance(exc, kind):
            return name, str(exc)
    return None
