"""The gRPC face of the resolver: ``venvsmith.v1.ResolverService`` over a :class:`ResolverEngine`."""

from __future__ import annotations

import grpc

from venvsmith.core.admission import ServerLimits
from venvsmith.core.errors import DeadlineExceeded
from venvsmith.core.grpc_util import ServerSecurity, abort, build_server, deadline_of
from venvsmith.v1 import resolver_pb2, resolver_pb2_grpc

from .engine import EngineSettings, ResolverEngine


class ResolverServicer(resolver_pb2_grpc.ResolverServiceServicer):
    """Maps engine answers and domain errors onto RPCs and status codes (see resolver.proto)."""

    def __init__(self, engine: ResolverEngine) -> None:
        self.engine = engine

    def Resolve(self, request, context):
        try:
            return self.engine.resolve(request, deadline=deadline_of(context), is_active=context.is_active)
        except Exception as exc:
            abort(context, exc)

    def ResolveStream(self, request, context):
        try:
            for event in self.engine.resolve_stream(request, deadline=deadline_of(context),
                                                    is_active=context.is_active):
                if not context.is_active():
                    raise DeadlineExceeded("the caller went away")
                yield event
        except Exception as exc:
            abort(context, exc)

    def DescribeEnvironment(self, request, context):
        try:
            return self.engine.describe(request)
        except Exception as exc:
            abort(context, exc)


SERVICE_NAME = resolver_pb2.DESCRIPTOR.services_by_name["ResolverService"].full_name


def make_server(
    address: str = "127.0.0.1:0", engine: ResolverEngine | None = None, *, security: ServerSecurity | None = None,
    limits: ServerLimits | None = None,
) -> tuple[grpc.Server, int, ResolverEngine]:
    """A ready-to-start resolver server; ``engine`` defaults to one with the environment's settings."""
    engine = engine or ResolverEngine(EngineSettings())
    server, port = build_server(
        [(resolver_pb2_grpc.add_ResolverServiceServicer_to_server, ResolverServicer(engine))],
        [SERVICE_NAME],
        address,
        security=security,
        health_state=engine.health,
        limits=limits,
    )
    return server, port, engine
