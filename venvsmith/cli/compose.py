"""Which engine gets which client: the one place where the resolver and the builder meet.

Neither service package imports the other (uv's ``BuildContext`` model): the resolver is given a
:class:`~venvsmith.core.resolution.MetadataPreparer` when it is constructed, and the builder a
:class:`~venvsmith.core.resolution.ResolverClient`. This module decides which: embedded engines in this
process, or remote servers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from venvsmith.clients.resolver import EmbeddedResolver, RemoteResolver
from venvsmith.core.config import PipIndexConfig, effective_pip_config, venvsmith_home

if TYPE_CHECKING:
    from builder_service.engine import BuildEngine
    from builder_service.sandbox import Sandbox
    from resolver_service.engine import ResolverEngine
    from venvsmith.clients.builder import EmbeddedBuilder
    from venvsmith.core.index.allowlist import AllowList

# The builder's modules are imported when a builder is made: a resolution without dynamic sdists (or answered
# from the resolution cache) never imports them.

#: The DynamicMetadata reason of a resolver server started without ``--builder``.
SERVER_WITHOUT_BUILDER = "this resolver server has no builder (start it with --builder ADDR)"


class LazyBuilder:
    """A metadata preparer that makes the embedded build engine on the first sdist with dynamic metadata, so a
    resolution that meets none pays nothing for it."""

    description = "embedded builder"

    def __init__(self, make: Callable[[], BuildEngine]) -> None:
        self._make = make
        self._engine: BuildEngine | None = None
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        return self._engine is not None

    def get(self) -> BuildEngine:
        with self._lock:
            if self._engine is None:
                self._engine = self._make()
            return self._engine

    def prepare(self, file, target, index) -> bytes:
        return self.get().wheels.prepare(file, target, index)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


#: Connections per index host of the embedded engines (one resolution at a time): jupyter's 97 pages, warm,
#: took 0.73 s of CPU with 10 or 6, 0.79 s with the server's 24 (TLS handshakes), and no longer.
EMBEDDED_CONNECTIONS = 10


def _pip(isolated: bool) -> PipIndexConfig:
    return PipIndexConfig() if isolated else effective_pip_config()


def embedded_engines(*, isolated: bool = False, templates: Path | None = None, allow: AllowList | None = None,
                     sandbox: Sandbox | None = None, signer=None, trusted=None
                     ) -> tuple[ResolverEngine, LazyBuilder]:
    """A resolver engine whose metadata preparer is a (lazy) build engine, which resolves its build requirements
    through that same resolver engine; both fetch only what ``allow`` allows (default: anything, the CLI)."""
    from resolver_service.engine import EngineSettings, ResolverEngine
    from venvsmith.core.index.allowlist import AllowList

    pip = _pip(isolated)
    allowed = allow or AllowList.everything()

    def make_builder() -> BuildEngine:
        from builder_service.engine import BuildEngine, BuilderSettings

        client = EmbeddedResolver(resolver, close_engine=False)
        return BuildEngine(BuilderSettings(templates=templates, pip=pip, allow=allowed, sandbox=sandbox,
                                           signer=signer, trusted=trusted, redis=resolver.shared), client)

    lazy = LazyBuilder(make_builder)
    resolver = ResolverEngine(
        EngineSettings(pip=pip, allow=allowed, signer=signer, max_connections=EMBEDDED_CONNECTIONS), lazy
    )
    return resolver, lazy


def embedded_resolver(*, isolated: bool = False) -> EmbeddedResolver:
    """The CLI's embedded resolver (``venvsmith resolve`` without ``--server``)."""
    resolver, lazy = embedded_engines(isolated=isolated)
    return EmbeddedResolver(resolver, also_close=[lazy])


def resolver_client(server: str | None, *, isolated: bool = False, security=None, retries: int | None = None):
    """A remote resolver client for ``HOST:PORT`` (``security``: its TLS and token; ``retries``: waits for it to be
    up), else the embedded one."""
    return RemoteResolver(server, security, retries) if server else embedded_resolver(isolated=isolated)


def embedded_builder(*, isolated: bool = False) -> EmbeddedBuilder:
    """The CLI's embedded builder (``venvsmith build`` / ``venv`` without ``--server``)."""
    from venvsmith.clients.builder import EmbeddedBuilder

    # Built venv trees stay as the templates `venvsmith venv` clones (see builder_service.materialize).
    resolver, lazy = embedded_engines(isolated=isolated, templates=venvsmith_home() / "venvs")
    return EmbeddedBuilder(lazy.get(), also_close=[resolver])  # the engine first, then its resolver


def builder_client(server: str | None, *, isolated: bool = False, security=None, retries: int | None = None):
    """A remote builder client for ``HOST:PORT`` (``security``: its TLS and token; ``retries``: waits for it to be
    up), else the embedded engines."""
    from venvsmith.clients.builder import RemoteBuilder

    return RemoteBuilder(server, security, retries) if server else embedded_builder(isolated=isolated)


def resolver_server_engine(builder: str | None, security=None, *, allow: AllowList | None = None,
                           signer=None) -> ResolverEngine:
    """The engine of ``venvsmith serve resolver``: with ``--builder ADDR`` that builder prepares dynamic metadata;
    it fetches only what ``allow`` allows (``serve --allow-index``; default: anything)."""
    from resolver_service.engine import EngineSettings, ResolverEngine
    from venvsmith.clients.builder import RemoteMetadataPreparer

    settings = EngineSettings() if allow is None else EngineSettings(allow=allow)
    if signer is not None:  # ``serve resolver --signing-key``: every answer's lock document is signed
        settings = replace(settings, signer=signer)
    if builder:
        return ResolverEngine(settings, RemoteMetadataPreparer(builder, security))
    return ResolverEngine(settings, None, without_preparer=SERVER_WITHOUT_BUILDER)


def builder_server_engines(resolver: str | None, security=None, *, allow: AllowList | None = None,
                           sandbox: Sandbox | None = None, signer=None, trusted=None
                           ) -> tuple[BuildEngine, list, list]:
    """``venvsmith serve builder``: (build engine, services co-hosted on its server, things to close after it).

    With ``--resolver ADDR`` build requirements and ResolveAndBuild resolve through that server and no resolver
    engine exists here; else an embedded resolver engine (with this builder as its metadata preparer) is also
    served as ResolverService.
    """
    from builder_service.engine import BuildEngine, BuilderSettings

    if resolver:
        client = RemoteResolver(resolver, security)
        settings = BuilderSettings(sandbox=sandbox) if allow is None else BuilderSettings(allow=allow, sandbox=sandbox)
        settings = replace(settings, signer=signer, trusted=trusted)  # --signing-key, --trusted-key
        return BuildEngine(settings, client), [], [client]
    from resolver_service.service import SERVICE_NAME, ResolverServicer
    from venvsmith.v1 import resolver_pb2_grpc

    engine, lazy = embedded_engines(allow=allow, sandbox=sandbox, signer=signer, trusted=trusted)
    builder = lazy.get()
    builder.workspace.health.follow(engine.health, "resolver")  # one server: its health covers both engines
    also = [(resolver_pb2_grpc.add_ResolverServiceServicer_to_server, ResolverServicer(engine), SERVICE_NAME)]
    return builder, also, [engine]
