"""The gRPC face of the builder: ``venvsmith.v1.BuilderService`` over a :class:`BuildEngine`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc

from venvsmith.core.admission import ServerLimits
from venvsmith.core.convert import pin_from_proto, target_from_spec
from venvsmith.core.errors import at_field
from venvsmith.core.grpc_util import ServerSecurity, abort, build_server, time_remaining
from venvsmith.v1 import builder_pb2, builder_pb2_grpc

from .build_run import BuildRun
from .engine import BuildEngine
from .errors import BuilderError
from .orchestrate import resolve_and_build


class BuilderServicer(builder_pb2_grpc.BuilderServiceServicer):
    """Maps engine answers and errors onto RPCs; the engine's resolver client serves ResolveAndBuild's resolution."""

    def __init__(self, engine: BuildEngine) -> None:
        self.engine = engine

    def Build(self, request_iterator, context):
        try:
            yield from BuildRun(self.engine, request_iterator, context.is_active).events()
        except Exception as exc:
            abort(context, exc)

    def ResolveAndBuild(self, request, context):
        remaining = time_remaining(context)  # None: no deadline (not gRPC's ~9e18 s)

        def stream(resolve_request):
            if self.engine.resolver is None:
                raise BuilderError("FAILED_PRECONDITION", "this builder has no resolver (ResolveAndBuild)")
            return self.engine.resolver.resolve_stream(resolve_request, timeout=remaining)

        try:
            yield from resolve_and_build(self.engine, request, stream, context.is_active)
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
                target = target_from_spec(request.target, self.engine.local)
            ref, data = self.engine.wheels.prepare_metadata(pin, target, request.options)
            from .engine import ref_to_proto

            return builder_pb2.PrepareMetadataResponse(metadata=data, ref=ref_to_proto(ref))
        except Exception as exc:
            abort(context, exc)


SERVICE_NAME = builder_pb2.DESCRIPTOR.services_by_name["BuilderService"].full_name


#: Another service on the same server: (``add_XServicer_to_server``, servicer, full service name).
ExtraService = tuple[Callable[[Any, grpc.Server], None], Any, str]


def make_server(address: str, engine: BuildEngine, also: Iterable[ExtraService] = (), *,
                security: ServerSecurity | None = None,
                limits: ServerLimits | None = None) -> tuple[grpc.Server, int]:
    """A builder server (BuilderService, and ArtifactService on the engine's store); ``also`` adds services to
    the same server (the CLI co-hosts the resolver this way)."""
    from venvsmith.v1 import artifact_pb2_grpc

    from .artifact_service import SERVICE_NAME as ARTIFACTS
    from .artifact_service import ArtifactServicer

    extra = list(also)
    servicers = [(builder_pb2_grpc.add_BuilderServiceServicer_to_server, BuilderServicer(engine)),
                 (artifact_pb2_grpc.add_ArtifactServiceServicer_to_server,
                  ArtifactServicer(engine.store, engine.describe))]
    servicers += [(add, servicer) for add, servicer, _ in extra]
    return build_server(servicers, [SERVICE_NAME, ARTIFACTS, *(name for _, _, name in extra)], address,
                        security=security, health_state=engine.workspace.health, limits=limits)
