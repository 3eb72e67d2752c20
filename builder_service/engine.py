"""The builder as a service: pinned set in, content-addressed artifacts out.

Both transports use it: the gRPC servicer and the CLI's embedded mode. :class:`BuildEngine` composes the two
halves over one :class:`~builder_service.workspace.Workspace`: :attr:`~BuildEngine.wheels` (fetch, sdist build,
metadata; :mod:`~builder_service.wheels`) and :attr:`~BuildEngine.environments` (venv archive, wheelhouse, lock
file; :mod:`~builder_service.environments`). Every expensive step is keyed in the action cache (Bazel's
ActionCache) by what it depends on (:mod:`~builder_service.action_keys`) and single-flighted: a wheel by its
file's sha256, a built wheel by its build key, a venv archive by the lock key (exact pins + target environment)
plus its base interpreter and options — never by a fuzzy request.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from venvsmith.core.resolution import ResolverClient
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import builder_pb2, common_pb2

from .action_cache import FilesystemActionCache, OutputRef
from .digest import Digest
from .environments import Environments
from .store import FilesystemStore
from .wheels import Wheels
from .workspace import BuilderSettings, Workspace

__all__ = ["BuildEngine", "BuilderSettings", "ref_to_proto"]

_KINDS = {
    "wheel": common_pb2.WHEEL, "wheelhouse": common_pb2.WHEELHOUSE,
    "venv_archive": common_pb2.VENV_ARCHIVE, "lock_file": common_pb2.LOCK_FILE, "log": common_pb2.BUILD_LOG,
}


def ref_to_proto(out: OutputRef, http_base_url: str = "", lock_key: str = "") -> common_pb2.ArtifactRef:
    url = ""
    if http_base_url:
        url = f"{http_base_url}blobs/{out.digest.hash}/{out.digest.size_bytes}/{out.filename}"
    return common_pb2.ArtifactRef(
        digest=common_pb2.Digest(hash=out.digest.hash, size_bytes=out.digest.size_bytes),
        media_type=out.media_type,
        kind=_KINDS.get(out.kind, common_pb2.ARTIFACT_KIND_UNSPECIFIED),
        filename=out.filename,
        http_url=url,
        lock_key=lock_key,
    )


class BuildEngine:
    """Builds pinned sets; thread-safe; one per process.

    ``resolver`` resolves build requirements (and ResolveAndBuild's requests): any
    :class:`~venvsmith.core.resolution.ResolverClient`, embedded or remote, chosen by the composer (the CLI); the
    engine neither owns nor closes it. :attr:`wheels` is the engine's
    :class:`~venvsmith.core.resolution.MetadataPreparer`, for a resolver to be given.
    """

    def __init__(self, settings: BuilderSettings | None = None, resolver: ResolverClient | None = None) -> None:
        self.workspace = Workspace(settings or BuilderSettings())
        self.resolver = resolver
        self.wheels = Wheels(self.workspace, resolver)
        self.environments = Environments(self.workspace)

    # -- what the transports reach directly (the workspace's) ------------------------------------------

    @property
    def settings(self) -> BuilderSettings:
        return self.workspace.settings

    @property
    def store(self) -> FilesystemStore:
        return self.workspace.store

    @property
    def actions(self) -> FilesystemActionCache:
        return self.workspace.actions

    @property
    def pool(self) -> ThreadPoolExecutor:
        return self.workspace.pool

    @property
    def counters(self) -> dict[str, int]:
        return self.workspace.counters

    @property
    def local(self) -> TargetEnvironment:
        """This process's own target environment (an unset target spec means it)."""
        return self.workspace.local

    def list_environments(self) -> builder_pb2.ListEnvironmentsResponse:
        return self.workspace.list_environments()

    def fetch_to(self, ref: OutputRef | Digest, dest: Path) -> None:
        """Copy a blob to ``dest`` verifying its digest on the way."""
        self.workspace.fetch_to(ref, dest)

    def close(self) -> None:
        self.workspace.close()

