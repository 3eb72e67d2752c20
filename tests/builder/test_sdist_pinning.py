"""An sdist stays in a bounded store while it builds: pinned against eviction, fetched again if evicted before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.store import FilesystemStore
from resolver_service.engine import EngineSettings, ResolverEngine
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.cli.compose import LazyBuilder
from venvsmith.clients.resolver import EmbeddedResolver
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.convert import pin_from_proto
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2


@pytest.fixture
def index(tmp_path: Path):
    b = IndexBuilder(tmp_path / "index")
    # Its build requirement is an sdist with dynamic dependencies: resolving it (before the build starts) has
    # the builder fetch that sdist and store its metadata, which fills the bounded store.
    b.add("dynhelper", "1.0", kind="sdist", backend="intree", dynamic=["Requires-Dist"],
          files={"dynhelper/blob.bin": os.urandom(40_000)})
    b.add("needsdyn", "1.0", kind="sdist", backend="intree", build_requires=("dynhelper",),
          files={"needsdyn/blob.bin": os.urandom(100_000)}, build_body="import dynhelper")
    b.add("plainsrc", "1.0", kind="sdist", backend="intree")
    with IndexServer(b) as server:
        yield server


def engines(tmp_path: Path, url: str, max_store_bytes: int | None = None, store=None):
    """A resolver and a builder composed as the CLI does: each reaches the other through its protocol."""
    made: list[BuildEngine] = []
    resolver = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=PipIndexConfig(index_url=url)),
                              LazyBuilder(lambda: made[0]))
    builder = BuildEngine(BuilderSettings(home=tmp_path / "home", max_store_bytes=max_store_bytes),
                          EmbeddedResolver(resolver, close_engine=False))
    made.append(builder)
    if store is not None:
        builder.workspace.store = store
        builder.actions.store = store
    return resolver, builder


def sdist_pin(resolver: ResolverEngine, url: str, name: str):
    response = resolver.resolve(resolver_pb2.ResolveRequest(requirements=[name],
                                                            index=common_pb2.IndexConfig(index_url=url)))
    (pin,) = [pin_from_proto(p) for p in response.pins if p.name == name]
    assert not pin.file.is_wheel
    return pin


def build(builder: BuildEngine, pin, url: str):
    options = builder_pb2.BuildOptions(index=common_pb2.IndexConfig(index_url=url))
    ref, outcome = builder.wheels.wheel_for(pin, target=TargetEnvironment.from_local(), options=options, constraints=[],
                                            fetcher=builder.wheels.fetcher(options.index))
    return ref, outcome


def test_the_sdist_is_not_evicted_while_its_build_requirements_are_prepared(tmp_path, index):
    url = index.url
    resolver, builder = engines(tmp_path, url)
    pin = sdist_pin(resolver, url, "needsdyn")
    resolver.close()
    builder.close()
    # Room for the sdist and a little more: storing the build requirement's sdist goes over the limit.
    resolver, builder = engines(tmp_path / "bounded", url, max_store_bytes=pin.file.size + 20_000)
    try:
        ref, outcome = build(builder, pin, url)
        assert outcome == "computed" and ref.filename == "needsdyn-1.0-py3-none-any.whl"
        assert builder.store.contains(ref.digest)
    finally:
        builder.close()
        resolver.close()


class EvictedOnce(FilesystemStore):
    """A store from which a blob vanishes once between the action cache's check and ``path()``, as when another
    build's put evicts it in that window."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.evicted: list[str] = []

    def path(self, digest):
        if not self.evicted:
            self.evicted.append(digest.hash)
            self.delete(digest)
        return super().path(digest)


def test_an_sdist_evicted_before_it_is_pinned_is_fetched_again(tmp_path, index):
    url = index.url
    store = EvictedOnce(tmp_path / "home" / "store")
    resolver, builder = engines(tmp_path, url, store=store)
    try:
        pin = sdist_pin(resolver, url, "plainsrc")
        ref, outcome = build(builder, pin, url)
        assert store.evicted == [pin.file.sha256]
        assert outcome == "computed" and ref.filename == "plainsrc-1.0-py3-none-any.whl"
    finally:
        builder.close()
        resolver.close()


def test_a_wheel_evicted_before_use_is_a_full_store_not_a_crash(tmp_path):
    from builder_service.action_cache import OutputRef
    from builder_service.errors import BuilderError

    resolver, builder = engines(tmp_path, (tmp_path / "no-index").as_uri())
    try:
        digest = builder.store.put_bytes(b"not really a wheel")
        ref = OutputRef(digest, "application/zip", "wheel", "gone-1.0-py3-none-any.whl")
        builder.store.delete(digest)
        with pytest.raises(BuilderError) as info:
            builder.workspace.named_wheel(ref)
        assert (info.value.status, info.value.error_reason) == ("RESOURCE_EXHAUSTED", "STORE_FULL")
    finally:
        builder.close()
        resolver.close()
