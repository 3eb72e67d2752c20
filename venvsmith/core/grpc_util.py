"""Shared gRPC plumbing: error -> status mapping, deadlines, server construction with health and reflection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)

#: Error classes expose ``.status`` (a ``grpc.StatusCode`` member name) and ``.message``.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The call's deadline as a ``time.monotonic()`` value, or ``None``."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def abort_with(context: grpc.ServicerContext, exc: BaseException, domain_error: type) -> None:
    """Abort the RPC with the status a domain error names, or INTERNAL (logged) for anything else."""
    if isinstance(exc, domain_error):
        context.abort(getattr(grpc.StatusCode, exc.status), exc.message)
    log.exception("internal error while serving %s", context.peer())
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


def build_server(
    add_servicers: Iterable[tuple[Callable[[Any, grpc.Server], None], Any]],
    service_names: Iterable[str],
    address: str,
    max_workers: int = 32,
) -> tuple[grpc.Server, int]:
    """A gRPC server with the given servicers, health checking and reflection; returns (server, port)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    for add, servicer in add_servicers:
        add(servicer, server)
    names = list(service_names)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port
