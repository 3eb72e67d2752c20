"""The gRPC face of the builder: ``venvsmith.v1.BuilderService`` over a :class:`BuildEngine`."""

from __future__ import annotations

import grpc

from venvsmith.core.convert import pin_from_proto, target_from_spec
from venvsmith.core.errors import at_field
from venvsmith.core.grpc_util import abort, build_server
from venvsmith.core.resolution import ResolverClient
from venvsmith.v1 import builder_pb2, builder_pb2_grpc

from .build_run import BuildRun
from .engine import BuildEngine, digest_from_proto
from .orchestrate import resolve_and_build


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

    def GetArtifact(self, request, context):
        try:
            digest = digest_from_proto(request.digest)
            for offset, data in self.engine.read_chunks(digest, request.offset, request.limit):
                yield builder_pb2.Chunk(data=data, offset=offset)
        except Exception as exc:
            abort(context, exc)

    def StatArtifacts(self, request, context):
        try:
            found = self.engine.store.stat([digest_from_proto(d) for d in request.digests])
            response = builder_pb2.StatArtifactsResponse()
            for digest in request.digests:
                (response.present if found[digest_from_proto(digest)] else response.missing).append(digest)
            return response
        except Exception as exc:
            abort(context, exc)

    def ListEnvironments(self, request, context):
        try:
            return self.engine.list_environments()
        except Exception as exc:
            abort(context, exc)

    def PrepareMetadata(self, request, context):
        try:
            with at_field("pin"):
                pin = pin_from_proto(request.pin)
            with at_field("target"):
                target = target_from_spec(request.target, self.engine.resolver.local)
            ref, data = self.engine.prepare_metadata(pin, target, request.options)
            from .engine import ref_to_proto

            return builder_pb2.PrepareMetadataResponse(metadata=data, ref=ref_to_proto(ref))
        except Exception as exc:
            abort(context, exc)


SERVICE_NAME = builder_pb2.DESCRIPTOR.services_by_name["BuilderService"].full_name


def make_server(address: str, engine: BuildEngine, resolver: ResolverClient | None = None,
                with_resolver_service: bool = False) -> tuple[grpc.Server, int]:
    """A builder server; with ``with_resolver_service`` it also serves ResolverService from the same engine."""
    servicers = [(builder_pb2_grpc.add_BuilderServiceServicer_to_server, BuilderServicer(engine, resolver))]
    names = [SERVICE_NAME]
    if with_resolver_service:
        from resolver_service.service import SERVICE_NAME as RESOLVER
        from resolver_service.service import ResolverServicer
        from venvsmith.v1 import resolver_pb2_grpc

        servicers.append((resolver_pb2_grpc.add_ResolverServiceServicer_to_server, ResolverServicer(engine.resolver)))
        names.append(RESOLVER)
    return build_server(servicers, names, address)
