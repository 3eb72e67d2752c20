"""The gRPC face of the store: ``venvsmith.v1.ArtifactService`` (verified chunked reads, batched presence)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from venvsmith.core import observe
from venvsmith.core.grpc_util import abort
from venvsmith.v1 import artifact_pb2, artifact_pb2_grpc, common_pb2

from .digest import Digest
from .errors import BuilderError, InvalidDigest
from .store import Store
from .store.reader import verified_chunks

#: Most digests one StatArtifacts request may name (FindMissingBlobs-style batches stay bounded).
MAX_STAT_DIGESTS = 10_000

#: What the digests are, when they are builds' outputs (present digests in, refs of the known ones out).
Describe = Callable[[list[Digest]], dict[Digest, common_pb2.ArtifactRef]]

SERVICE_NAME = artifact_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name


def digest_from_proto(msg: common_pb2.Digest) -> Digest:
    return Digest(msg.hash, msg.size_bytes)


def read_chunks(store: Store, digest: Digest, offset: int, limit: int) -> Iterator[tuple[int, bytes]]:
    """GetArtifact's pieces, with its statuses checked before the first byte (see artifact.proto)."""
    if offset < 0 or limit < 0:
        error = BuilderError("INVALID_ARGUMENT", f"negative offset or limit ({offset}, {limit})")
        error.field = "offset" if offset < 0 else "limit"
        raise error
    if not store.contains(digest):  # a registry store that cannot ask its registry raises UNAVAILABLE naming it
        raise BuilderError("NOT_FOUND", f"no blob {digest} in the store")
    if offset > digest.size_bytes:
        raise BuilderError("OUT_OF_RANGE", f"offset {offset} is past the end of {digest}")
    return verified_chunks(store, digest, offset, limit)


def stat_artifacts(store: Store, digests: list[common_pb2.Digest],
                   describe: Describe | None = None) -> artifact_pb2.StatArtifactsResponse:
    """Present and missing digests, each in request order; with ``describe``, the ArtifactRef of each present
    digest it knows as a build's output."""
    if len(digests) > MAX_STAT_DIGESTS:
        error = BuilderError("INVALID_ARGUMENT",
                             f"{len(digests)} digests in one StatArtifacts request; at most {MAX_STAT_DIGESTS}")
        error.field = "digests"
        raise error
    parsed = []
    for i, digest in enumerate(digests):
        try:
            parsed.append(digest_from_proto(digest))
        except InvalidDigest as exc:  # a fresh error: name the digest's place in the request
            exc.field = f"digests[{i}]"
            raise
    found = store.stat(parsed)
    response = artifact_pb2.StatArtifactsResponse()
    for digest in digests:
        (response.present if found[digest_from_proto(digest)] else response.missing).append(digest)
    if describe is not None:
        present = [digest_from_proto(d) for d in response.present]
        known = describe(present)
        response.described.extend(known[d] for d in present if d in known)
    return response


class ArtifactServicer(artifact_pb2_grpc.ArtifactServiceServicer):
    """Serves a :class:`Store`: nothing here builds, so any backend of the protocol can sit behind it."""

    def __init__(self, store: Store, describe: Describe | None = None) -> None:
        """``describe``: what a digest is when it is a build's output (the action cache's ``describe``)."""
        self.store = store
        self.describe = describe

    def GetArtifact(self, request, context):
        try:
            pieces = read_chunks(self.store, digest_from_proto(request.digest), request.offset, request.limit)
            for offset, data in observe.artifact_read("grpc", pieces):
                yield artifact_pb2.Chunk(data=data, offset=offset)
        except Exception as exc:
            abort(context, exc)

    def StatArtifacts(self, request, context):
        try:
            return stat_artifacts(self.store, list(request.digests), self.describe)
        except Exception as exc:
            abort(context, exc)
