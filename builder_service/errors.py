"""The builder's errors, all of them: each a :class:`~venvsmith.core.errors.ServiceError` with its gRPC status and
``ErrorReason``. The general :class:`BuilderError` and :class:`SdistFailed` first, then by where they are raised:
builds (limits, sdist unpacking and building), the store, digests, installing and packing a venv.

This module imports no other module of the builder: every one of them may raise these.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from venvsmith.core.errors import LOG_TAIL, MAX_STATUS_MESSAGE, ErrorDetails, ServiceError, fit_message
from venvsmith.core.resolution import CallError


class DigestLike(Protocol):
    """A :class:`builder_service.digest.Digest` as an error holds it (named by type only: this module imports no
    other module of the builder, every one of them may raise these)."""

    @property
    def hash(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...

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
        #: The stored log of the build that failed (``sha256:<hex>/<size>``), when it was stored.
        self.build_log = getattr(cause, "build_log", "")

    def details(self) -> ErrorDetails:
        details = self.cause.details if isinstance(self.cause, CallError) else self.cause.details()
        metadata = {**details.metadata, "sdist": self.filename}
        if self.build_log:
            metadata.setdefault("build_log", self.build_log)
        return replace(details, metadata=metadata)

    def status_message(self) -> str:
        return with_log_tail(self.message, self.log_tail)

    def under(self, prefix: str) -> SdistFailed:
        return SdistFailed(self.filename, self.doing, self.cause.under(prefix))

    def __reduce__(self):
        return (type(self), (self.filename, self.doing, self.cause))


def status_of(exc: BaseException) -> tuple[str, str] | None:
    """``(status, message)`` of a domain error, ``None`` for anything else (a bug, reported as INTERNAL)."""
    return (exc.status, exc.status_message()) if isinstance(exc, ServiceError) else None


# -- builds (raised by limits.run_limited, sdist_unpack, sdist_build) ------------------------------------------------


class BuildError(ServiceError):
    """A build step failed; ``what`` names the step, ``status`` is the gRPC status code name to report."""

    status: ClassVar[str] = "FAILED_PRECONDITION"
    error_reason: ClassVar[str] = "BUILD_FAILED"

    #: The build's stored log (``sha256:<hex>/<size>``), set by the builder once it stored it.
    build_log: str = ""

    def __init__(self, what: str, message: str, log_tail: str = "") -> None:
        self.what = what
        self.message = message
        self.log_tail = log_tail
        super().__init__(message)

    def details(self) -> ErrorDetails:
        """Also, in ``ErrorInfo.metadata``: ``log_tail`` (the log's last lines; trimmed to fit, its end kept) and
        ``build_log`` (the stored log's digest)."""
        details = super().details()
        extra = {LOG_TAIL: self.log_tail.strip("\n"), "build_log": self.build_log}
        return replace(details, metadata={**details.metadata, **{k: v for k, v in extra.items() if v}})

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.message, self.log_tail))

    def __str__(self) -> str:
        return f"{self.message}\n--- log tail ---\n{self.log_tail}" if self.log_tail else self.message

    def facts(self) -> dict[str, str]:
        return {"step": Path(self.what).name}

    def subject(self) -> str:
        return Path(self.what).name

    def status_message(self) -> str:
        """The message and as much of the log's end as fits (the last lines say what failed)."""
        return with_log_tail(self.message, self.log_tail)


class BuildFailed(BuildError):
    """The step exited with a non-zero status."""

    def __init__(self, what: str, returncode: int, log_tail: str, hint: str = "") -> None:
        self.returncode = returncode
        self.hint = hint
        how = f"was killed by {_signal_name(-returncode)}" if returncode < 0 else f"exited with status {returncode}"
        super().__init__(what, f"{what} {how}{hint}", log_tail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.returncode, self.log_tail, self.hint))


class BuildTimeout(BuildError):
    """The step ran past the build's time limit and was killed."""

    status: ClassVar[str] = "DEADLINE_EXCEEDED"
    error_reason: ClassVar[str] = "BUILD_TIMEOUT"

    def __init__(self, what: str, seconds: float, log_tail: str) -> None:
        self.seconds = seconds
        super().__init__(what, f"{what} exceeded the time limit of {seconds:g} s and was killed", log_tail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.seconds, self.log_tail))


class BuildOutOfMemory(BuildError):
    """The step ran out of memory under the build's memory limit."""

    status: ClassVar[str] = "RESOURCE_EXHAUSTED"
    error_reason: ClassVar[str] = "BUILD_OUT_OF_MEMORY"

    def __init__(self, what: str, limit_bytes: int, log_tail: str) -> None:
        self.limit_bytes = limit_bytes
        super().__init__(what, f"{what} ran out of memory (limit {_size(limit_bytes)})", log_tail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.limit_bytes, self.log_tail))


class BuildOutputTooLarge(BuildError):
    """The step wrote a file or log output beyond the build's output size limit."""

    status: ClassVar[str] = "RESOURCE_EXHAUSTED"
    error_reason: ClassVar[str] = "BUILD_OUTPUT_TOO_LARGE"

    def __init__(self, what: str, limit_bytes: int, log_tail: str) -> None:
        self.limit_bytes = limit_bytes
        super().__init__(what, f"{what} produced more output than the limit of {_size(limit_bytes)}", log_tail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.limit_bytes, self.log_tail))


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class InvalidSdist(BuildError):
    """The sdist (its archive, ``pyproject.toml``, backend or the wheel it built) is unusable or unsafe."""

    error_reason = "INVALID_SDIST"

    def __init__(self, sdist: Path, reason: str, log_tail: str = "") -> None:
        self.sdist = sdist
        self.reason = reason
        super().__init__(str(sdist), f"sdist {sdist.name}: {reason}", log_tail)

    def facts(self) -> dict[str, str]:
        return {"filename": Path(self.sdist).name}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.sdist, self.reason, self.log_tail))


class BuildRequirementUnavailable(BuildError):
    """No distribution satisfies the build requirement ``requirement``."""

    error_reason = "BUILD_REQUIREMENT_UNAVAILABLE"

    def __init__(self, requirement: str, reason: str) -> None:
        self.requirement = requirement
        self.reason = reason
        super().__init__(requirement, f"build requirement {requirement!r}: {reason}")

    def facts(self) -> dict[str, str]:
        return {"requirement": self.requirement}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.requirement, self.reason))


# -- the store (every backend raises these) --------------------------------------------------------------------------


class StoreError(ServiceError):
    """Base class for store errors."""


class BlobNotFound(StoreError, LookupError):
    """The store has no (intact-sized) blob for ``digest`` (gRPC ``NOT_FOUND``)."""

    status = "NOT_FOUND"
    error_reason = "BLOB_NOT_FOUND"

    def __init__(self, digest: DigestLike) -> None:
        super().__init__(f"blob not found: {digest}")
        self.digest = digest

    def facts(self) -> dict[str, str]:
        return {"digest": str(self.digest)}

    def __reduce__(self):
        return (type(self), (self.digest,))


class StoreFull(StoreError):
    """A write would leave less free disk space than the store's floor (``serve builder --min-free-space``), even
    after evicting what it could (gRPC ``RESOURCE_EXHAUSTED``); nothing was stored."""

    status = "RESOURCE_EXHAUSTED"
    error_reason = "STORE_FULL"

    def __init__(self, name: str, free_bytes: int, min_free_bytes: int) -> None:
        super().__init__(f"{name or 'blob'}: the store's disk has {free_bytes} bytes free, and this write would "
                         f"leave less than its floor of {min_free_bytes} bytes even after eviction")
        self.name, self.free_bytes, self.min_free_bytes = name, free_bytes, min_free_bytes

    def facts(self) -> dict[str, str]:
        return {"filename": self.name, "free_bytes": str(self.free_bytes), "min_free_bytes": str(self.min_free_bytes)}

    def __reduce__(self):
        return (type(self), (self.name, self.free_bytes, self.min_free_bytes))


class BlobTooLarge(StoreError):
    """A write exceeded its ``max_bytes`` limit (gRPC ``RESOURCE_EXHAUSTED``); nothing was stored."""

    status = "RESOURCE_EXHAUSTED"
    error_reason = "BLOB_TOO_LARGE"

    def __init__(self, name: str, max_bytes: int) -> None:
        super().__init__(f"{name or 'blob'}: larger than the limit of {max_bytes} bytes")
        self.name = name
        self.max_bytes = max_bytes

    def facts(self) -> dict[str, str]:
        return {"filename": self.name, "max_bytes": str(self.max_bytes)}

    def __reduce__(self):
        return (type(self), (self.name, self.max_bytes))


class InvalidRange(StoreError, ValueError):
    """``read_range`` outside the blob (gRPC ``OUT_OF_RANGE``)."""

    status = "OUT_OF_RANGE"
    error_reason = "INVALID_RANGE"

    def __init__(self, digest: DigestLike, offset: int, length: int) -> None:
        super().__init__(f"invalid range offset={offset} length={length} for {digest}")
        self.digest = digest
        self.offset = offset
        self.length = length

    def facts(self) -> dict[str, str]:
        return {"digest": str(self.digest), "offset": str(self.offset), "length": str(self.length)}

    def __reduce__(self):
        return (type(self), (self.digest, self.offset, self.length))


# -- digests ---------------------------------------------------------------------------------------------------------


class InvalidDigest(ServiceError, ValueError):
    """A digest (or its text form) that is not a lowercase sha256 hex plus a non-negative size."""

    status = "INVALID_ARGUMENT"
    error_reason = "INVALID_DIGEST"
    field = "digest"

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"invalid digest {value!r}: {reason}")
        self.value = value
        self.reason = reason

    def facts(self) -> dict[str, str]:
        return {"value": repr(self.value)}

    def __reduce__(self):
        return (type(self), (self.value, self.reason))


class DigestMismatch(ServiceError):
    """Content named ``name`` did not match the digest it was supposed to have (maps to gRPC ``DATA_LOSS``).

    ``name`` says what the content is (a file name, a URL, a blob path); ``actual`` is None when the content was
    rejected before it was complete (more bytes than expected). ``disclose=False`` (content the server fetched
    from a location the caller named) keeps ``actual`` out of the message and details: the caller learns that the
    bytes differ, never what they are.
    """

    status = "DATA_LOSS"
    error_reason = "DIGEST_MISMATCH"

    def __init__(self, name: str | Path, expected: DigestLike, actual: DigestLike | None, *,
                 disclose: bool = True) -> None:
        self.expected = expected
        self.actual = actual
        self.disclose = disclose
        self.name = str(name)
        what = f"{self.name}: " if self.name else ""
        if not disclose:
            got = "other content (its digest is in the server's log)"
        elif actual is None:
            got = f"more than {expected.size_bytes} bytes"
        elif actual.size_bytes != expected.size_bytes:
            got = f"{actual.size_bytes} bytes ({actual})"
        else:
            got = str(actual)
        super().__init__(f"{what}digest mismatch: expected {expected}, got {got}")

    def facts(self) -> dict[str, str]:
        actual = str(self.actual or "") if self.disclose else ""
        return {"filename": self.name, "expected": str(self.expected), "actual": actual}

    def __reduce__(self):  # keep pickling (multiprocessing, futures) working with the custom __init__
        return (_digest_mismatch, (self.name, self.expected, self.actual, self.disclose))


def _digest_mismatch(name: str, expected: DigestLike, actual: DigestLike | None, disclose: bool) -> DigestMismatch:
    return DigestMismatch(name, expected, actual, disclose=disclose)


# -- venvs (install, archive, venv, relocate) ------------------------------------------------------------------------


class UnsafeWheel(ServiceError):
    """The wheel ``wheel_name`` cannot be installed safely; ``member`` is the offending archive member or None."""

    status = "FAILED_PRECONDITION"
    error_reason = "UNSAFE_WHEEL"

    def __init__(self, wheel_name: str, member: str | None, reason: str) -> None:
        where = f" ({member!r})" if member is not None else ""
        super().__init__(f"refusing wheel {wheel_name}{where}: {reason}")
        self.wheel_name = wheel_name
        self.member = member
        self.reason = reason

    def facts(self) -> dict[str, str]:
        return {"filename": self.wheel_name, "member": self.member or ""}

    def subject(self) -> str:
        return self.wheel_name

    def __reduce__(self):
        return (type(self), (self.wheel_name, self.member, self.reason))


class UnsafeArchive(ServiceError):
    """The archive ``archive`` cannot be extracted safely; ``member`` is the offending entry or None."""

    status = "FAILED_PRECONDITION"
    error_reason = "UNSAFE_ARCHIVE"

    def __init__(self, archive: Path, member: str | None, reason: str) -> None:
        where = f" ({member!r})" if member is not None else ""
        super().__init__(f"refusing archive {archive}{where}: {reason}")
        self.archive = archive
        self.member = member
        self.reason = reason

    def facts(self) -> dict[str, str]:
        return {"filename": Path(self.archive).name, "member": self.member or ""}

    def subject(self) -> str:
        return Path(self.archive).name

    def __reduce__(self):
        return (type(self), (self.archive, self.member, self.reason))


class VenvError(ServiceError):
    """Creating or filling the venv at ``path`` failed; ``reason`` says how."""

    status = "FAILED_PRECONDITION"
    error_reason = "VENV_FAILED"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"venv {path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class NotRelocatable(ServiceError):
    """``path`` (a file or symlink in the venv) mentions ``needle``, an absolute path of the build."""

    status = "FAILED_PRECONDITION"
    error_reason = "NOT_RELOCATABLE"

    def __init__(self, path: Path, needle: str) -> None:
        super().__init__(f"{path} mentions the build path {needle!r}; the venv would not be relocatable")
        self.path = path
        self.needle = needle

    def facts(self) -> dict[str, str]:
        return {"filename": Path(self.path).name}

    def subject(self) -> str:
        return Path(self.path).name

    def __reduce__(self):
        return (type(self), (self.path, self.needle))


class RegistryUnavailable(StoreError):
    """The OCI registry behind ``--store oci://...`` could not be reached or failed (gRPC ``UNAVAILABLE``);
    ``registry`` is its ``host:port/prefix`` (never credentials)."""

    status = "UNAVAILABLE"
    error_reason = "REGISTRY_UNAVAILABLE"

    def __init__(self, registry: str, message: str) -> None:
        super().__init__(f"registry {registry} is unavailable: {message}")
        self.registry = registry

    def facts(self) -> dict[str, str]:
        return {"registry": self.registry}

    def __reduce__(self):
        return (type(self), (self.registry, self.message.split(": ", 1)[-1]))


class RegistryError(RegistryUnavailable):
    """The registry refused a request of the builder (an HTTP 4xx other than a missing blob: credentials,
    permissions, a malformed answer); reported like :class:`RegistryUnavailable` (the store is unusable), with
    the registry's answer in the message."""

    def __init__(self, registry: str, message: str) -> None:
        super().__init__(registry, message)
