"""Structured logs: one JSON object per line, carrying the request id and RPC of the call being served.

The request id comes from the caller's ``x-request-id`` metadata (or is generated) and lives in a context variable
for the duration of the call (:func:`venvsmith.core.observe.server_interceptor` sets it); the clients forward it on
every call the server makes to another service, so one id follows a request from resolver to builder.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson

from . import tracing

#: The metadata key that carries the request id between services.
REQUEST_ID_KEY = "x-request-id"
#: What a caller-supplied request id may look like (anything else is replaced by a generated one).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: A log message longer than this is cut (inputs are hostile: one 10 MB line helps nobody).
MAX_MESSAGE_CHARS = 8192

#: The W3C trace context header (``version-trace_id-parent_id-flags``), as OpenTelemetry propagates it.
TRACEPARENT_KEY = "traceparent"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("venvsmith_request_id", default="")
#: ``(trace_id, span_id, flags)`` of the call being served when its caller sent a ``traceparent``.
trace_span: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar("venvsmith_trace",
                                                                                         default=None)
rpc_method: contextvars.ContextVar[str] = contextvars.ContextVar("venvsmith_rpc", default="")


def accept_request_id(given: str | None) -> str:
    """The caller's request id when it is a sane token, else a fresh one."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def accept_traceparent(given: str | None) -> tuple[str, str, str] | None:
    """This server's span in the caller's trace: the caller's trace id, a new span id; None without (or with a
    malformed or all-zero) ``traceparent``."""
    match = _TRACEPARENT.fullmatch(given or "")
    if match is None or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1), uuid.uuid4().hex[:16], match.group(3)


def outgoing_metadata(client_span: Any = None) -> list[tuple[str, str]]:
    """Metadata for a call made while serving another: the request id being served, and the trace context: the
    call's own ``client_span`` (with a collector) as the parent, else this server's span when the call came with
    one."""
    metadata = []
    current = request_id.get()
    if current:
        metadata.append((REQUEST_ID_KEY, current))
    if client_span is not None:
        metadata.append((TRACEPARENT_KEY, tracing.traceparent(client_span)))
        return metadata
    span = trace_span.get()
    if span is not None:
        metadata.append((TRACEPARENT_KEY, f"00-{span[0]}-{span[1]}-{span[2]}"))
    return metadata


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (its request id and RPC): work a call
    hands to a pool logs, and calls other services, under that call's id."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id", "rpc"[, "exc"]}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + f"... [{len(message) - MAX_MESSAGE_CHARS} more characters]"
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
            "request_id": getattr(record, "request_id", None) or request_id.get(),
            "rpc": getattr(record, "rpc", None) or rpc_method.get(),
        }
        span = trace_span.get()
        if span is not None:
            entry["trace_id"], entry["span_id"] = span[0], span[1]
        for extra in ("code", "duration_ms", "peer"):
            if hasattr(record, extra):
                entry[extra] = getattr(record, extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)[-MAX_MESSAGE_CHARS:]
        return orjson.dumps(entry, default=str).decode()


def configure(fmt: str, level: int) -> None:
    """Route the root logger to stderr in ``fmt`` (``json`` or ``text``) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
