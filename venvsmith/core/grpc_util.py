"""Shared gRPC plumbing: the one error -> status helper, deadlines, servers with health and reflection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from . import lifecycle, observe
from .errors import MAX_ECHO, ServiceError, shorten
from .grpc_decode import DecodeErrorInterceptor
from .health import HealthState
from .resolution import CallError

if TYPE_CHECKING:
    from .admission import ServerLimits
    from .auth import TokenStore
    from .tls import ServerTls

log = logging.getLogger(__name__)

#: The current reflection service; its messages are those of ``v1alpha`` under another package.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Largest request message a server accepts (answers may be up to :data:`MAX_MESSAGE_BYTES`): a thousand
#: requirements of the longest accepted length fit, a 64 MiB request of garbage does not reach a handler.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


#: A call's remaining time above this (a century) means it has no deadline: gRPC reports ~9.2e18 s then, which
#: passed on as the timeout of a further call makes that call fail at once with DEADLINE_EXCEEDED.
_NO_DEADLINE_SECONDS = 100 * 365 * 86400.0


def time_remaining(context: grpc.ServicerContext) -> float | None:
    """Seconds left before the call's deadline, or ``None`` when it has none."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > _NO_DEADLINE_SECONDS else remaining


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The call's deadline as a ``time.monotonic()`` value, or ``None``."""
    remaining = time_remaining(context)
    return None if remaining is None else time.monotonic() + remaining


def abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    """Abort the RPC with a domain error's status and rich details, or INTERNAL (logged: a bug) for anything else.

    A :class:`CallError` (a failed call to another service made while serving this one) is passed on as it came.
    """
    if isinstance(exc, ServiceError | CallError):
        context.abort_with_status(rpc_status.to_status(exc.to_status()))
    log.exception("internal error while serving %s", context.peer())
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {shorten(exc, 4 * MAX_ECHO)}")


def _reflection_v1_file() -> None:
    """Add ``grpc/reflection/v1/reflection.proto`` to the default pool, made from the ``v1alpha`` file."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("grpc/reflection/v1/reflection.proto")
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    file.name = "grpc/reflection/v1/reflection.proto"
    file.package = "grpc.reflection.v1"
    file.ClearField("options")
    for message in file.message_type:
        for f in message.field:
            if f.type_name:
                f.type_name = f.type_name.replace(old, new)
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.Add(file)


def _add_reflection(server: grpc.Server, names: list[str]) -> None:
    """Server reflection under both ``grpc.reflection.v1`` (current tools) and ``v1alpha`` (older ones)."""
    _reflection_v1_file()
    servicer = reflection.ReflectionServicer([*names, REFLECTION_V1, reflection.SERVICE_NAME])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    # The v1 messages are byte-for-byte those of v1alpha: the same handler serves the v1 name.
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


@dataclass(frozen=True)
class ServerSecurity:
    """A server's TLS (``serve --tls-cert/--tls-key [--tls-client-ca]``) and tokens (``--auth-tokens``)."""

    tls: ServerTls | None = None
    tokens: TokenStore | None = None

    @classmethod
    def from_args(cls, args: Any) -> ServerSecurity:
        """From the ``serve`` flags; a bad file raises :class:`~venvsmith.core.tls.TlsConfigError` or
        :class:`~venvsmith.core.auth.TokenFileError` naming it."""
        from .auth import TokenStore
        from .tls import ServerTls, TlsConfigError

        cert, key, client_ca = (getattr(args, n, None) for n in ("tls_cert", "tls_key", "tls_client_ca"))
        if (cert is None) != (key is None):
            raise TlsConfigError("TLS needs both --tls-cert and --tls-key")
        if client_ca and not cert:
            raise TlsConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        tokens = getattr(args, "auth_tokens", None)
        return cls(tls=ServerTls(cert, key, client_ca) if cert and key else None,
                   tokens=TokenStore(tokens) if tokens else None)

    def interceptors(self) -> list[grpc.ServerInterceptor]:
        from .auth import make_interceptor

        return [make_interceptor(self.tokens)] if self.tokens is not None else []


#: Trailing metadata of a health answer naming what is broken or degraded (a replica whose shared cache is down).
HEALTH_DETAILS = "venvsmith-health-details"


class DetailedHealthServicer(health.HealthServicer):
    """grpc.health.v1 whose ``Check`` answers also carry :data:`HEALTH_DETAILS` (from a :class:`HealthState`)
    whenever a component is broken or degraded: the status alone cannot say that a replica serves from its
    local caches because Redis is down."""

    def __init__(self, state: HealthState | None = None) -> None:
        super().__init__()
        self.state = state

    def Check(self, request, context):  # noqa: N802 - the gRPC method name
        response = super().Check(request, context)
        details = self.state.details() if self.state is not None else ""
        if details:
            context.set_trailing_metadata(((HEALTH_DETAILS, details[:4000].encode("ascii", "replace").decode()),))
        return response


def _follow_health(servicer: health.HealthServicer, names: list[str], serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in [*names, ""]:
        servicer.set(name, status)


def build_server(
    add_servicers: Iterable[tuple[Callable[[Any, grpc.Server], None], Any]],
    service_names: Iterable[str],
    address: str,
    max_workers: int = 32,
    *,
    security: ServerSecurity | None = None,
    health_state: HealthState | None = None,
    limits: ServerLimits | None = None,
) -> tuple[grpc.Server, int]:
    """A gRPC server with the given servicers, health checking and reflection; returns (server, port).

    ``security`` adds TLS (with reload) and bearer-token checks (see :mod:`venvsmith.core.auth`); by default the
    port is plaintext and open. With ``health_state``, the health service follows it: NOT_SERVING while a
    component is broken. Every call is measured and carries a request id (:mod:`venvsmith.core.observe`); the
    server drains and stops through :func:`venvsmith.core.lifecycle.drain_and_stop`. ``limits`` bound the
    expensive calls run at once (:mod:`venvsmith.core.admission`; refused beyond, never queued without bound).
    """
    from .admission import KEEPALIVE_OPTIONS, Admission, ServerLimits
    from .admission_interceptor import AdmissionInterceptor

    security = security or ServerSecurity()
    limits = limits or ServerLimits()
    drain = lifecycle.Drain()
    server = grpc.server(
        # A thread for every call gRPC accepts (at most the hard limit): admission decides, not a hidden queue.
        futures.ThreadPoolExecutor(max_workers=max(max_workers, limits.hard_limit()), thread_name_prefix="rpc"),
        # Measured first (denied calls are counted too), then tokens (an unauthenticated call learns nothing),
        # then admission (only authenticated calls take a slot), then garbage request bytes: INVALID_ARGUMENT.
        interceptors=[observe.ObservingInterceptor(drain), *security.interceptors(),
                      AdmissionInterceptor(Admission(limits.max_concurrent_calls)), DecodeErrorInterceptor()],
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_OPTIONS,
        ],
        # The hard bound on calls of any kind; beyond it gRPC answers RESOURCE_EXHAUSTED itself.
        maximum_concurrent_rpcs=limits.hard_limit(),
    )
    for add, servicer in add_servicers:
        add(servicer, server)
    names = list(service_names)
    health_servicer = DetailedHealthServicer(health_state)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if health_state is not None:
        health_state.subscribe(lambda serving: _follow_health(health_servicer, names, serving))
    _add_reflection(server, [*names, health.SERVICE_NAME])
    lifecycle.register(server, health_servicer, drain)
    if security.tls is not None:
        port = server.add_secure_port(address, security.tls.credentials())
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


def serve_health_port(server: grpc.Server, address: str) -> int:
    """Start a plaintext server on ``address`` that serves only ``grpc.health.v1`` with ``server``'s health (the
    same servicer: NOT_SERVING while a component is broken or the server drains), for probes that cannot speak the
    main port's TLS (kubelet's gRPC probes); it stops when ``server`` is drained and stopped. Returns its port."""
    servicer = lifecycle.health_of(server)
    if servicer is None:
        raise RuntimeError("the server was not made by build_server: it has no health servicer")
    # A probe is one cheap call: a few threads, and a bound on calls (Watch streams) that hold one.
    probe = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health"),
                        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 64 * 1024)],
                        maximum_concurrent_rpcs=16)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, probe)
    port = probe.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    probe.start()
    lifecycle.add_companion(server, probe)
    return port
