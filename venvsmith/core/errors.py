"""Domain errors shared by both services; each carries the thing it is about and maps to one gRPC status."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a service reports to a caller."""

    #: Name of the ``grpc.StatusCode`` member this error maps to.
    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    """A malformed requirement, marker, version, URL or option; ``value`` is the offending string."""

    status = "INVALID_ARGUMENT"

    def __init__(self, value: str, message: str) -> None:
        super().__init__(f"{message}: {value!r}")
        self.value = value



class DynamicMetadata(ServiceError):
    """An sdist's dependencies are dynamic and no builder can prepare them; ``filename`` names it."""

    status = "FAILED_PRECONDITION"

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(message)
        self.filename = filename


class IndexUnavailable(ServiceError):
    """An index could not be reached or kept failing; ``index`` is its redacted URL."""

    status = "UNAVAILABLE"

    def __init__(self, index: str, message: str) -> None:
        super().__init__(f"index {index} is unavailable: {message}")
        self.index = index


class InvalidDistribution(ServiceError):
    """A distribution's metadata is unreadable or contradicts its file name."""

    status = "FAILED_PRECONDITION"

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(f"{filename}: {message}")
        self.filename = filename



class DeadlineExceeded(ServiceError):
    """The caller's deadline passed before a resolution was found."""

    status = "DEADLINE_EXCEEDED"
