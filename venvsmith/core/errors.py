"""The one error model of both services: each domain error carries its gRPC status and its rich details.

Every error a caller can see is a :class:`ServiceError`: ``status`` (a ``grpc.StatusCode`` member name),
``error_reason`` (a member name of the ``venvsmith.v1.ErrorReason`` enum), ``message``, and the facts it is about.
:meth:`ServiceError.to_status` turns it into a ``google.rpc.Status`` whose details are, as the protos document:

- always an ``ErrorInfo`` (domain :data:`DOMAIN`, reason, metadata with the key facts);
- ``INVALID_ARGUMENT``: a ``BadRequest`` with one field violation (the request field path, the offending string);
- ``FAILED_PRECONDITION``: a ``PreconditionFailure`` (for a conflict, one violation per requirement chain);
- ``UNAVAILABLE`` / ``RESOURCE_EXHAUSTED``: a ``RetryInfo``.

:class:`ErrorDetails` is the decoded form, the same whether it was read from an exception in this process or
from a remote call's ``grpc-status-details-bin``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

#: ``ErrorInfo.domain`` of every error the services report.
DOMAIN = "venvsmith"
#: Status message and details travel in trailers, which a gRPC client caps (8 KiB by default; above that calls
#: fail at random with RESOURCE_EXHAUSTED). The message goes twice: percent-encoded in ``grpc-message`` and inside
#: the base64 ``google.rpc.Status`` of ``grpc-status-details-bin``, so the trailers take about
#: 7/3 * MAX_STATUS_MESSAGE + 4/3 * MAX_DETAILS_BYTES (about 7.2 KB). In this process the whole text is kept.
MAX_STATUS_MESSAGE = 2400
MAX_DETAILS_BYTES = 1200
#: Longest description of one violation or metadata value.
MAX_DETAIL_TEXT = 500
#: ``ErrorInfo.metadata`` key of a failed build's last log lines: as many whole lines as fit the details'
#: budget (its end kept), and it gives way before any violation does.
LOG_TAIL = "log_tail"
#: Statuses after which the details say how long to wait before retrying.
RETRYABLE = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED"})


#: Longest part of a caller's value repeated in an error message, a detail or a log line (see :func:`shorten`).
MAX_ECHO = 200


def shorten(value: object, limit: int = MAX_ECHO) -> str:
    """``value`` as text, cut to its first ``limit`` characters plus ``…(N bytes)`` when longer: what errors
    and logs echo of input that may be megabytes."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text.encode('utf-8', 'replace'))} bytes)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _wire_size(char: str) -> int:
    """Bytes ``char`` takes in a percent-encoded ``grpc-message`` (printable ASCII but '%' is sent as is)."""
    return 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode("utf-8", "replace"))


def fit_message(text: str, budget: int = MAX_STATUS_MESSAGE, *, keep_end: bool = False) -> str:
    """``text`` cut to ``budget`` wire bytes (see :data:`MAX_STATUS_MESSAGE`), keeping its start or its end."""
    if sum(map(_wire_size, text)) <= budget:
        return text
    used, kept = 4, []
    for char in reversed(text) if keep_end else text:
        used += _wire_size(char)
        if used > budget:
            break
        kept.append(char)
    return "...\n" + "".join(reversed(kept)) if keep_end else "".join(kept) + "\n..."


@dataclass(frozen=True)
class Violation:
    """One ``PreconditionFailure.Violation``: ``type`` (e.g. ``CONFLICT``), ``subject`` (what), ``description``."""

    type: str
    subject: str
    description: str


@dataclass(frozen=True)
class FieldViolation:
    """One ``BadRequest.FieldViolation``: a request field path (``requirements[2]``) and what is wrong with it."""

    field: str
    description: str


@dataclass(frozen=True)
class ErrorDetails:
    """The decoded rich details of a failed call (see the module docstring)."""

    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    violations: tuple[Violation, ...] = ()
    retry_delay: float | None = None

    @property
    def chains(self) -> list[str]:
        """The conflicting requirement chains of a ``NO_SOLUTION`` (its ``CONFLICT`` violations)."""
        return [v.description for v in self.violations if v.type == "CONFLICT"]

    @classmethod
    def from_status(cls, status: Any) -> ErrorDetails:
        """Decode a ``google.rpc.Status``'s details (unknown detail types are skipped)."""
        from google.rpc import error_details_pb2

        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        pre = error_details_pb2.PreconditionFailure()
        retry = error_details_pb2.RetryInfo()
        seen: set[str] = set()
        for any_ in status.details:
            for message in (info, bad, pre, retry):
                if any_.Is(message.DESCRIPTOR):
                    any_.Unpack(message)
                    seen.add(message.DESCRIPTOR.name)
        delay = None
        if "RetryInfo" in seen:
            delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        return cls(
            reason=info.reason,
            domain=info.domain,
            metadata=dict(info.metadata),
            field_violations=tuple(FieldViolation(v.field, v.description) for v in bad.field_violations),
            violations=tuple(Violation(v.type, v.subject, v.description) for v in pre.violations),
            retry_delay=delay,
        )


class ServiceError(Exception):
    """Base of every error a service reports to a caller."""

    #: Name of the ``grpc.StatusCode`` member this error maps to.
    status: ClassVar[str] = "INTERNAL"
    #: Name of the ``venvsmith.v1.ErrorReason`` member sent in ``ErrorInfo.reason`` (``reason`` is left to
    #: subclasses, many of which say why in words there).
    error_reason: ClassVar[str] = "ERROR_REASON_UNSPECIFIED"
    #: Seconds to wait before a retry (sent as ``RetryInfo`` for :data:`RETRYABLE` statuses).
    retry_delay: ClassVar[float] = 1.0
    #: The request field an INVALID_ARGUMENT is about (``requirements[2]``); empty when unknown.
    field: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def facts(self) -> dict[str, str]:
        """``ErrorInfo.metadata``: the key facts (index, requirement, filename, ...)."""
        return {}

    def under(self, prefix: str) -> ServiceError:
        """A copy whose ``field`` is nested under ``prefix`` (``resolve.`` + ``requirements[2]``); the error itself
        may be shared by concurrent callers, so it is not changed."""
        if not self.field:
            return self
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.args = self.args
        other.field = prefix + self.field
        return other

    def subject(self) -> str:
        """What a precondition violation is about (a project, a file)."""
        return ""

    def violations(self) -> list[Violation]:
        """The ``PreconditionFailure`` violations of a FAILED_PRECONDITION (one by default)."""
        return [Violation(self.error_reason, self.subject(), self.message)]

    def status_message(self) -> str:
        """``Status.message``: the human explanation."""
        return self.message

    def details(self) -> ErrorDetails:
        """The rich details this error is reported with."""
        metadata = {k: _cut(str(v), MAX_DETAIL_TEXT) for k, v in self.facts().items() if v not in (None, "")}
        fields: tuple[FieldViolation, ...] = ()
        if self.status == "INVALID_ARGUMENT":
            fields = (FieldViolation(self.field, _cut(self.message, MAX_DETAIL_TEXT)),)
        violations: tuple[Violation, ...] = ()
        if self.status == "FAILED_PRECONDITION":
            violations = tuple(
                Violation(v.type, _cut(v.subject, MAX_DETAIL_TEXT), _cut(v.description, MAX_DETAIL_TEXT))
                for v in self.violations()
            )
        return ErrorDetails(
            reason=self.error_reason,
            domain=DOMAIN,
            metadata=metadata,
            field_violations=fields,
            violations=violations,
            retry_delay=self.retry_delay if self.status in RETRYABLE else None,
        )

    def to_status(self) -> Any:
        """This error as a ``google.rpc.Status`` (code, message and packed details)."""
        return status_proto(self.status, self.status_message(), self.details())


def status_proto(status: str, message: str, details: ErrorDetails) -> Any:
    """A ``google.rpc.Status`` of ``status`` (a ``grpc.StatusCode`` name) carrying ``details``, within the
    trailer budgets: violations that do not fit are left out (``ErrorInfo.metadata["violations_omitted"]``)."""
    import grpc
    from google.rpc import status_pb2

    code = getattr(grpc.StatusCode, status).value[0]
    violations = list(details.violations)
    omitted = 0
    while True:
        anys = _packed(details, violations, omitted)
        over = sum(a.ByteSize() for a in anys) - MAX_DETAILS_BYTES
        tail = details.metadata.get(LOG_TAIL, "")
        if over <= 0 or not (violations or tail):
            break
        if tail:  # a build log's last lines give way first, whole lines from their start
            kept = tail[over:]
            kept = kept[kept.find("\n") + 1:] if "\n" in kept else ""
            metadata = {k: v for k, v in details.metadata.items() if k != LOG_TAIL}
            details = replace(details, metadata={**metadata, LOG_TAIL: kept} if kept else metadata)
            continue
        violations.pop()
        omitted += 1
    return status_pb2.Status(code=code, message=fit_message(message), details=anys)


def _packed(details: ErrorDetails, violations: list[Violation], omitted: int) -> list[Any]:
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2

    packed = []
    if details.reason:
        metadata = dict(details.metadata)
        if omitted:
            metadata["violations_omitted"] = str(omitted)
        packed.append(error_details_pb2.ErrorInfo(reason=details.reason, domain=details.domain or DOMAIN,
                                                  metadata=metadata))
    if details.field_violations:
        packed.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in details.field_violations
        ]))
    if violations:
        packed.append(error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(type=v.type, subject=v.subject, description=v.description)
            for v in violations
        ]))
    if details.retry_delay is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(details.retry_delay * 1e9))
        packed.append(retry)
    anys = []
    for detail in packed:
        any_ = any_pb2.Any()
        any_.Pack(detail)
        anys.append(any_)
    return anys


@contextlib.contextmanager
def at_field(path: str) -> Iterator[None]:
    """Name the request field an :class:`InvalidInput` raised inside the block is about (unless it names one)."""
    try:
        yield
    except InvalidInput as exc:
        if not exc.field:
            exc.field = path
        raise


def parsed_each(parse: Callable[[str], T], path: str, texts: Iterable[str]) -> Iterator[T]:
    """``parse`` each item of the repeated request field ``path``; an error names its item (``requirements[2]``)."""
    for i, text in enumerate(texts):
        with at_field(f"{path}[{i}]"):
            yield parse(text)


class InvalidInput(ServiceError):
    """A malformed requirement, marker, version, URL or option; ``value`` is the offending string.

    ``field`` is the request field path (``requirements[2]``, ``target.shorthand.platform``) when known.
    """

    status = "INVALID_ARGUMENT"
    error_reason = "INVALID_INPUT"

    def __init__(self, value: str, message: str, *, field: str = "", echo: bool = True) -> None:
        """``echo=False``: ``message`` already shows the value (shortened)."""
        text = shorten(message, 4 * MAX_ECHO)
        super().__init__(f"{text}: {shorten(value)!r}" if value and echo else text)
        self.value = value  # whole, in this process; what is echoed to a caller or a log is shortened
        self.field = field

    def facts(self) -> dict[str, str]:
        return {"value": shorten(self.value), "field": self.field}


class DynamicMetadata(ServiceError):
    """An sdist's dependencies are dynamic and no builder can prepare them; ``filename`` names it."""

    status = "FAILED_PRECONDITION"
    error_reason = "DYNAMIC_METADATA"

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(message)
        self.filename = filename

    def facts(self) -> dict[str, str]:
        return {"filename": self.filename}

    def subject(self) -> str:
        return self.filename


class BuilderUnavailable(ServiceError):
    """The builder asked to prepare an sdist's metadata cannot be reached (or is busy); ``builder`` is its
    address."""

    status = "UNAVAILABLE"
    error_reason = "BUILDER_UNAVAILABLE"

    def __init__(self, builder: str, filename: str, message: str) -> None:
        super().__init__(message)
        self.builder = builder
        self.filename = filename

    def facts(self) -> dict[str, str]:
        return {"builder": self.builder, "filename": self.filename}


class IndexUnavailable(ServiceError):
    """An index could not be reached or kept failing; ``index`` is its redacted URL."""

    status = "UNAVAILABLE"
    error_reason = "INDEX_UNAVAILABLE"

    def __init__(self, index: str, message: str) -> None:
        super().__init__(f"index {index} is unavailable: {message}")
        self.index = index

    def facts(self) -> dict[str, str]:
        return {"index": self.index}


class InvalidDistribution(ServiceError):
    """A distribution's metadata is unreadable or contradicts its file name."""

    status = "FAILED_PRECONDITION"
    error_reason = "INVALID_DISTRIBUTION"

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(f"{filename}: {message}")
        self.filename = filename

    def facts(self) -> dict[str, str]:
        return {"filename": self.filename}

    def subject(self) -> str:
        return self.filename


class DeadlineExceeded(ServiceError):
    """The caller's deadline passed before a resolution was found."""

    status = "DEADLINE_EXCEEDED"
    error_reason = "DEADLINE_EXCEEDED"


class Unauthenticated(ServiceError):
    """A call without a token, or with one the server does not know."""

    status = "UNAUTHENTICATED"
    error_reason = "AUTH_TOKEN_INVALID"

    def __init__(self, method: str, message: str) -> None:
        super().__init__(message)
        self.method = method

    def facts(self) -> dict[str, str]:
        return {"method": self.method}


class RoleDenied(ServiceError):
    """A known token whose role does not allow the call."""

    status = "PERMISSION_DENIED"
    error_reason = "AUTH_ROLE_INSUFFICIENT"

    def __init__(self, method: str, role: str, required: str) -> None:
        super().__init__(f"a {role} token may not call {method}: it needs a {required} token")
        self.method, self.role, self.required = method, role, required

    def facts(self) -> dict[str, str]:
        return {"method": self.method, "role": self.role, "required_role": self.required}


class UrlNotAllowed(ServiceError):
    """A request names a location (index, find-links, direct URL, pinned file, redirect target) outside the
    server's allow-list; ``url`` is the location, credentials redacted and cut. Nothing was fetched from it."""

    status = "PERMISSION_DENIED"
    error_reason = "URL_NOT_ALLOWED"

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"this server does not fetch from {url}: {why}")
        self.url = url
        self.why = why

    def facts(self) -> dict[str, str]:
        return {"url": self.url}

    def __reduce__(self):
        return (type(self), (self.url, self.why))


class ServerBusy(ServiceError):
    """The server already runs as many expensive calls as its operator allows (``--max-concurrent-calls``)."""

    status = "RESOURCE_EXHAUSTED"
    error_reason = "SERVER_BUSY"
    retry_delay = 2.0

    def __init__(self, method: str, limit: int) -> None:
        super().__init__(f"the server is busy: it already runs {limit} calls like {method.rsplit('/', 1)[-1]} "
                         "(serve --max-concurrent-calls); retry later")
        self.method, self.limit = method, limit

    def facts(self) -> dict[str, str]:
        return {"method": self.method, "max_concurrent_calls": str(self.limit)}

    def __reduce__(self):
        return (type(self), (self.method, self.limit))


class Cancelled(ServiceError):
    """Every caller of the work cancelled its call (or went away): the work stopped. Nobody is left to read this;
    a caller that joins shared work just as it stops starts it again instead."""

    status = "CANCELLED"
    error_reason = "CALL_CANCELLED"


class AttestationUnverified(ServiceError):
    """A project whose attestations are required (``--require-attestations``) has a pinned file without PEP 740
    attestations that verify; ``reason`` says why (no provenance document, malformed, a failed check)."""

    status = "FAILED_PRECONDITION"
    error_reason = "ATTESTATION_UNVERIFIED"

    def __init__(self, project: str, filename: str, reason: str) -> None:
        super().__init__(f"{project}: attestations are required but {filename} has none that verify: {reason}")
        self.project = project
        self.filename = filename
        self.reason = reason

    def facts(self) -> dict[str, str]:
        return {"project": self.project, "filename": self.filename, "reason": self.reason}

    def subject(self) -> str:
        return self.filename

    def __reduce__(self):
        return (type(self), (self.project, self.filename, self.reason))
