"""The gRPC face of the builder: ``venvsmith.v1.BuilderService`` over a :class:`BuildEngine`."""

from __future__ import annotations

import logging

import grpc

from venvsmith.core.convert import pin_from_proto, target_from_spec
from venvsmith.core.grpc_util import build_server
from venvsmith.core.resolution import ResolverClient
from venvsmith.v1 import builder_pb2, builder_pb2_grpc

from .build_run import BuildRun
from .engine import BuildEngine
from .errors import status_of
from .orchestrate import resolve_and_build

log = logging.getLogger(__name__)


def abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    """Abort with the status the error maps to (see builder.proto), INTERNAL (logged) for anything else."""
    known = status_of(exc)
    if known is None:
        log.exception("internal error in the builder")
        context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
    context.abort(getattr(grpc.StatusCode, known[0]), known[1][-8000:])


class BuilderServicer(builder_pb2_grpc.BuilderServiceServicer):
    """Maps engine answers and errors onto RPCs; ``resolver`` serves ResolveAndBuild's resolution."""

    def __init__(self, engine: BuildEngine, resolver: ResolverClient | None = None) -> None:
        self.engine = engine
        self.resolver = resolver

    def Build(self, request_iterator, context):
        try:
            yield from BuildRun(self.engine, request_iterator).events()
        except Exception as exc:
            abort(context, exc)

    def ResolveAndBuild(self, request, context):
        remaining = context.time_remaining()

        def stream(resolve_request):
            if self.resolver is not None:
                return self.resolver.resolve_stream(resolve_request, timeout=remaining)
            return self.engine.resolver.resolve_stream(resolve_request)

        try:
            yield from resolve_and_build(self.engine, request, stream)
        except Exception as exc:
            abort(context, exc)

    def ListEnvironments(self, request, context):
        try:
            return self.engine.list_environments()
        except Exception as exc:
            abort(context, exc)

    def PrepareMetadata(self, request, context):
        try:
            pin = pin_from_proto(request.pin)
            target = target_from_spec(request.target, self.engine.resolver.local)
            ref, data = self.engine.prepare_metadata(pin, target, request.options)
            from .engine import ref_to_proto

            return builder_pb2.PrepareMetadataResponse(metadata=data, ref=ref_to_proto(ref))
        except Exception as exc:
            abort(context, exc)


SERVICE_NAME = builder_pb2.DESCRIPTOR.services_by_name["BuilderService"].full_name


def make_server(address: str, engine: BuildEngine, resolver: ResolverClient | None = None,
                with_resolver_service: bool = False) -> tuple[grpc.Server, int]:
    """A builder server (BuilderService and ArtifactService on the engine's store); with ``with_resolver_service``
    it also serves ResolverService from the same engine."""
    from venvsmith.v1 import artifact_pb2_grpc

    from .artifact_service import SERVICE_NAME as ARTIFACTS
    from .artifact_service import ArtifactServicer

    servicers = [(builder_pb2_grpc.add_BuilderServiceServicer_to_server, BuilderServicer(engine, resolver)),
                 (artifact_pb2_grpc.add_ArtifactServiceServicer_to_server, ArtifactServicer(engine.store))]
    names = [SERVICE_NAME, ARTIFACTS]
    if with_resolver_service:
        from resolver_service.service import SERVICE_NAME as RESOLVER
        from resolver_service.service import ResolverServicer
        from venvsmith.v1 import resolver_pb2_grpc

        servicers.append((resolver_pb2_grpc.add_ResolverServiceServicer_to_server, ResolverServicer(engine.resolver)))
        names.append(RESOLVER)
    return build_server(servicers, names, address)
