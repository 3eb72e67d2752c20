"""One builder client over two transports: the build engine embedded in-process, or a remote gRPC server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from venvsmith.clients.resolver import Closing
from venvsmith.core.resolution import CallError
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2

#: GetArtifact errors after which a partial download is useless.
_HOPELESS = frozenset({"NOT_FOUND", "INVALID_ARGUMENT", "OUT_OF_RANGE", "DATA_LOSS"})


def _fail(exc: BaseException) -> CallError:
    """The error a remote caller would see for ``exc``; anything but a domain error (a bug) is re-raised."""
    from venvsmith.core.errors import ServiceError

    if not isinstance(exc, ServiceError):
        raise exc
    return CallError.of(exc)


class EmbeddedBuilder(Closing):
    """A build engine in this process (its resolver client composed by the CLI); ``close()`` closes the engine,
    then ``also_close`` in order."""

    def __init__(self, engine: Any, *, also_close: Sequence[Any] = ()) -> None:
        self.engine = engine
        self._also_close = list(also_close)

    def resolve_and_build(self, request: builder_pb2.ResolveAndBuildRequest, timeout: float | None = None
                          ) -> Iterator[builder_pb2.ResolveAndBuildEvent]:
        from builder_service.orchestrate import resolve_and_build

        try:
            yield from resolve_and_build(self.engine, request,
                                         lambda r: self.engine.resolver.resolve_stream(r, timeout=timeout))
        except CallError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped like the server maps it
            raise _fail(exc) from None

    def local_path(self, ref: common_pb2.ArtifactRef) -> Path | None:
        """The blob's path in the local store (no copy needed), when present."""
        from builder_service.digest import Digest

        digest = Digest(ref.digest.hash, ref.digest.size_bytes)
        return self.engine.store.path(digest) if self.engine.store.contains(digest) else None

    def fetch(self, digest: common_pb2.Digest, dest: Path) -> None:
        from builder_service.digest import Digest

        try:
            self.engine.fetch_to(Digest(digest.hash, digest.size_bytes), dest)
        except Exception as exc:  # noqa: BLE001
            raise _fail(exc) from None

    def describe(self, digest: common_pb2.Digest) -> common_pb2.ArtifactRef | None:
        """What the blob is (kind, media type, file name) when a build produced it."""
        from builder_service.digest import Digest

        wanted = Digest(digest.hash, digest.size_bytes)
        if not self.engine.store.contains(wanted):
            return None
        return self.engine.describe([wanted]).get(wanted)

    def close(self) -> None:
        self.engine.close()
        for other in self._also_close:
            other.close()


class RemoteBuilder(Closing):
    """A builder server reached over gRPC: BuilderService for builds, ArtifactService for their bytes."""

    def __init__(self, address: str, security: Any = None, retries: int | None = None) -> None:
        """``security``: a :class:`~venvsmith.core.tls.ClientSecurity` (TLS, token); default plaintext, no token.
        ``retries``: waits for a server that is not up (yet), see :mod:`venvsmith.clients.retry`."""
        import grpc

        from venvsmith.clients.retry import CHANNEL_OPTIONS, DEFAULT_RETRIES, Reconnecting
        from venvsmith.core.grpc_channel import open_channel
        from venvsmith.v1 import artifact_pb2_grpc, builder_pb2_grpc

        self._rpc_error = grpc.RpcError
        self.channel = open_channel(address, security,
                                    options=[("grpc.max_receive_message_length", 64 * 1024 * 1024), *CHANNEL_OPTIONS])
        from venvsmith.core.client_interceptor import traced_channel

        traced = traced_channel(self.channel)
        self.stub = builder_pb2_grpc.BuilderServiceStub(traced)
        self.artifacts = artifact_pb2_grpc.ArtifactServiceStub(traced)
        self.calls = Reconnecting(self.channel, address, "builder", DEFAULT_RETRIES if retries is None else retries)

    def resolve_and_build(self, request, timeout=None):
        yield from self.calls.stream(
            lambda ready, left: self.stub.ResolveAndBuild(request, timeout=left, wait_for_ready=ready), timeout)

    def local_path(self, ref) -> Path | None:
        return None

    def describe(self, digest: common_pb2.Digest) -> common_pb2.ArtifactRef | None:
        """What the blob is (kind, media type, file name) when the server knows it as a build's output
        (StatArtifacts' ``described``)."""
        try:
            answer = self.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=[digest]))
        except self._rpc_error as exc:
            raise CallError.from_rpc(exc) from None
        return next((ref for ref in answer.described if ref.digest == digest), None)

    def read_chunks(self, digest: common_pb2.Digest, offset: int = 0,
                    timeout: float | None = None) -> Iterator[artifact_pb2.Chunk]:
        """GetArtifact's chunks of a blob from byte ``offset`` on (a :class:`CallError` when the call fails; one
        that fails UNAVAILABLE before the first chunk is made again, see :mod:`venvsmith.clients.retry`), within
        ``timeout`` seconds (None: no deadline)."""
        request = artifact_pb2.GetArtifactRequest(digest=digest, offset=offset)
        yield from self.calls.stream(
            lambda ready, left: self.artifacts.GetArtifact(request, timeout=left, wait_for_ready=ready), timeout)

    def fetch(self, digest: common_pb2.Digest, dest: Path) -> None:
        """Stream a blob into ``dest``, resuming a partial ``dest.part`` by offset; verified before rename."""
        part = dest.with_name(dest.name + ".part")
        offset = part.stat().st_size if part.exists() else 0
        if offset > digest.size_bytes:
            part.unlink()
            offset = 0
        try:
            with open(part, "ab") as out:
                for chunk in self.read_chunks(digest, offset):
                    if chunk.offset != out.tell():
                        raise CallError("DATA_LOSS", f"chunk at {chunk.offset}, expected {out.tell()}")
                    out.write(chunk.data)
        except CallError as exc:
            # Keep received bytes to resume from, unless the blob cannot be had this way at all.
            if exc.status in _HOPELESS or part.stat().st_size == 0:
                part.unlink(missing_ok=True)
            raise
        sha = hashlib.sha256()
        with open(part, "rb") as fh:
            while block := fh.read(1 << 20):
                sha.update(block)
        if sha.hexdigest() != digest.hash or part.stat().st_size != digest.size_bytes:
            part.unlink()
            raise CallError("DATA_LOSS", f"fetched bytes do not match sha256:{digest.hash}/{digest.size_bytes}")
        os.replace(part, dest)

    def close(self) -> None:
        self.channel.close()


class RemoteMetadataPreparer:
    """A :class:`~venvsmith.core.resolution.MetadataPreparer` calling a builder server's PrepareMetadata."""

    def __init__(self, address: str, security: Any = None) -> None:
        import grpc

        from venvsmith.core.grpc_channel import open_channel
        from venvsmith.v1 import builder_pb2_grpc

        self.address = address
        self.description = f"builder at {address}"
        self._rpc_error = grpc.RpcError
        #: The builder's answers that mean "not now" (down, unreachable, busy): the sdist's metadata may be
        #: prepared later, so the resolution is UNAVAILABLE, not a precondition failure.
        self._transient = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
        from venvsmith.core.client_interceptor import traced_channel

        self.channel = open_channel(address, security)
        self.stub = builder_pb2_grpc.BuilderServiceStub(traced_channel(self.channel))

    def prepare(self, file, target, index: common_pb2.IndexConfig) -> bytes:
        from venvsmith.core.convert import pin_to_proto, target_to_proto
        from venvsmith.core.errors import BuilderUnavailable, DynamicMetadata
        from venvsmith.core.pin import Pin

        request = builder_pb2.PrepareMetadataRequest(
            pin=pin_to_proto(Pin(name=file.name, version=file.version, file=file)),
            target=common_pb2.TargetSpec(environment=target_to_proto(target)),
            options=builder_pb2.BuildOptions(index=index),
        )
        try:
            return self.stub.PrepareMetadata(request).metadata
        except self._rpc_error as exc:
            if exc.code() in self._transient:
                raise BuilderUnavailable(
                    self.address, file.filename,
                    f"{file.filename}: the {self.description} is unavailable to prepare its metadata "
                    f"({exc.code().name}: {exc.details()})") from None
            reason = f"{file.filename}: the {self.description} could not prepare its metadata: {exc.details()}"
            raise DynamicMetadata(file.filename, reason) from None

    def close(self) -> None:
        self.channel.close()


def check_base_interpreter(wanted: builder_pb2.BaseInterpreter, cache: Any = None) -> None:
    """Refuse (FAILED_PRECONDITION, naming it) a venv archive whose base interpreter this host does not have.

    The venv's ``bin/python`` links to ``wanted.path`` and its ``pyvenv.cfg`` names that directory: unpacked on a
    host without that interpreter (or with another version or build of it at that path) it would not run.
    ``cache``: a :class:`~venvsmith.core.probe.ProbeCache` (the node's, see :mod:`venvsmith.cli.client_cache`)
    that keeps the probe while the binary is unchanged; without one the interpreter is asked afresh.
    """
    from venvsmith.core.errors import ErrorDetails
    from venvsmith.core.interpreters import identify

    missing = ErrorDetails(reason="NO_INTERPRETER", metadata={"interpreter": wanted.path})
    if not wanted.path:
        raise CallError("FAILED_PRECONDITION", "the builder did not say which interpreter the venv was built with")
    named = f"{wanted.implementation} {wanted.version} at {wanted.path}"
    if not os.path.isabs(wanted.path) or not os.path.isfile(wanted.path):
        raise CallError("FAILED_PRECONDITION",
                        f"the venv was built with {named}, which this host does not have: install that interpreter "
                        "at that path, or build on this host", missing)
    have = identify(wanted.path, cache=cache)
    if cache is not None:
        try:
            cache.save()
        except OSError:  # a read-only or full node cache: the next pod asks again
            pass
    if have is None:
        raise CallError("FAILED_PRECONDITION", f"the venv was built with {named}, which cannot be run on this host",
                        missing)
    if (have.version, have.implementation) != (wanted.version, wanted.implementation):
        raise CallError("FAILED_PRECONDITION", f"the venv was built with {named}; this host has "
                                               f"{have.implementation} {have.version} at that path")
    if wanted.identity and have.identity != wanted.identity:
        raise CallError("FAILED_PRECONDITION", f"the venv was built with {named} (identity {wanted.identity[:16]}); "
                                               f"this host's interpreter at that path is another build of it "
                                               f"(identity {have.identity[:16]})")
