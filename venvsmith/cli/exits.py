"""The exit codes of every ``venvsmith`` command, and the error a command ends with (:class:`Failure`).

- **0** success;
- **1** the answer is no: no solution, verification failed, a build failed, an artifact is not there;
- **2** bad input or usage: a malformed requirement or option, an unreadable file, a port already in use, a
  token the server refuses;
- **3** unavailable: the server or an index could not be reached, the server is busy or draining, or a deadline
  passed. Worth retrying later; nothing about the request itself is wrong.

The same mapping applies to the embedded engines and to ``--server`` (it reads the gRPC status and the
``ErrorReason`` the call failed with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

#: The ``--help`` epilog of the top-level parser (the README says the same).
EPILOG = (
    "exit codes: 0 success; 1 no solution, verification failed or build failed; 2 bad input or usage "
    "(a port already in use, an unreadable file or a refused token included); 3 the server or an index was "
    "unavailable, or a deadline passed (worth retrying). With --format json a failure prints "
    '{"error": {"code", "message", "details"}} on stdout.'
)

#: gRPC statuses after which a retry may succeed (exit 3).
_UNAVAILABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED"})
#: gRPC statuses that say the request (or the caller's credentials) is wrong (exit 2).
_BAD_INPUT = frozenset({"INVALID_ARGUMENT", "OUT_OF_RANGE", "UNAUTHENTICATED", "PERMISSION_DENIED",
                        "UNIMPLEMENTED", "ALREADY_EXISTS"})
#: RESOURCE_EXHAUSTED reasons that are about the server's capacity, not the request (exit 3).
_CAPACITY_REASONS = frozenset({"SERVER_BUSY", "STORE_FULL"})
#: Reasons of a build that failed by its own limits (``--build-timeout``): exit 1 whatever their status.
_BUILD_FAILED_REASONS = frozenset({"BUILD_TIMEOUT", "BUILD_OUT_OF_MEMORY", "BUILD_OUTPUT_TOO_LARGE"})
#: FAILED_PRECONDITION reasons that name something the caller asked for that is not here (exit 2): the target's
#: interpreter (``--python``, or the base interpreter of a venv built elsewhere) is not on this host.
_BAD_INPUT_REASONS = frozenset({"NO_INTERPRETER"})


def exit_code(status: str, reason: str = "") -> int:
    """The exit code of a call that failed with gRPC status ``status`` (a ``grpc.StatusCode`` name) and
    ``ErrorReason`` ``reason``."""
    if status == "OK":
        return EXIT_OK
    if reason in _BUILD_FAILED_REASONS:  # an sdist build that ran out of its own time: the build failed
        return EXIT_FAILED
    if status in _UNAVAILABLE:
        return EXIT_UNAVAILABLE
    if status == "RESOURCE_EXHAUSTED":
        return EXIT_UNAVAILABLE if reason in _CAPACITY_REASONS else EXIT_FAILED
    if status in _BAD_INPUT or reason in _BAD_INPUT_REASONS:
        return EXIT_BAD_INPUT
    return EXIT_FAILED  # FAILED_PRECONDITION (no solution), NOT_FOUND, DATA_LOSS, INTERNAL, UNKNOWN


#: ``code`` of the errors found in this process before any call: stable strings, as scripts match them.
USAGE = "USAGE"  # the command line does not parse (argparse)
BAD_FILE = "INVALID_ARGUMENT"  # a file named on the command line cannot be read or parsed: as the server says it
INTERRUPTED = "INTERRUPTED"  # Ctrl-C
LISTEN_FAILED = "ADDRESS_IN_USE"  # serve: the port cannot be bound


@dataclass
class Failure:
    """How a command failed: ``code`` (a gRPC status name, or one of the stable local strings above), the
    human ``message``, the decoded rich ``details`` (JSON-ready dicts) and the process ``exit`` code.

    ``status_shown`` says whether the text rendering names ``code`` (remote calls, ``-v``)."""

    code: str
    message: str
    exit: int
    details: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    hints: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"error": {"code", "message", "details"}}``: what ``--format json`` prints on failure."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def failure_of_call(exc: Any) -> Failure:
    """A :class:`~venvsmith.core.resolution.CallError` as a :class:`Failure` (its rich details in the protobuf
    JSON mapping: ``{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": ..., ...}``)."""
    return Failure(code=exc.status, message=exc.message, exit=exit_code(exc.status, exc.reason),
                   details=details_json(exc), reason=exc.reason)


def details_json(exc: Any) -> list[dict[str, Any]]:
    """The rich details of a CallError, each as protobuf's JSON mapping of its ``google.rpc`` message."""
    if not (exc.details.reason or exc.details.field_violations or exc.details.violations
            or exc.details.retry_delay is not None):
        return []
    from google.protobuf import json_format

    from venvsmith.core.errors import _packed

    details = exc.details
    return [json_format.MessageToDict(any_) for any_ in _packed(details, list(details.violations), 0)]


def local_failure(code: str, message: str, exit: int, *, field_name: str = "") -> Failure:
    """An error found in this process (a file, an option): ``details`` says which when ``field_name`` is known."""
    details: list[dict[str, Any]] = []
    if field_name:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": field_name, "description": message}]})
    return Failure(code=code, message=message, exit=exit, details=details)


def failure_of(exc: BaseException) -> Failure | None:
    """The :class:`Failure` a command ends with for ``exc``; ``None`` for anything else (a bug: re-raised)."""
    from venvsmith.core.auth import SecurityConfigError
    from venvsmith.core.errors import ServiceError
    from venvsmith.core.reqfile import RequirementsFileError
    from venvsmith.core.resolution import CallError

    if isinstance(exc, CallError):
        return failure_of_call(exc)
    if isinstance(exc, ServiceError):  # a domain error that reached the command unwrapped
        return failure_of_call(CallError.of(exc))
    if isinstance(exc, RequirementsFileError | SecurityConfigError):
        return local_failure(BAD_FILE, str(exc), EXIT_BAD_INPUT)
    if isinstance(exc, CommandFailed):
        return local_failure(exc.code, exc.message, exc.exit)
    if isinstance(exc, KeyboardInterrupt):
        return local_failure(INTERRUPTED, "interrupted", EXIT_INTERRUPTED)
    from venvsmith.cli.serve_options import ConfigError

    if isinstance(exc, ConfigError):
        return local_failure(BAD_FILE, str(exc), EXIT_BAD_INPUT)
    return None


class CommandFailed(Exception):
    """A command stops with one line naming what is wrong (``code``: a stable string, ``exit``: its exit code)."""

    def __init__(self, code: str, message: str, exit: int) -> None:
        super().__init__(message)
        self.code, self.message, self.exit = code, message, exit
