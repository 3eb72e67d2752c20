"""Several indexes and find-links unioned as pip/uv do, through the engine: strategies and dependency confusion."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.errors import IndexUnavailable, InvalidInput
from venvsmith.v1 import common_pb2, resolver_pb2


@pytest.fixture
def engine(tmp_path: Path):
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home",
                                           pip=PipIndexConfig(index_url=(tmp_path / "none").as_uri())))
    yield engine
    engine.close()


@pytest.fixture
def indexes(index_builder_factory, index_server):
    """A "public" index with a squatted copy of the company's private name, and the private index."""
    public = index_builder_factory("public")
    public.add("internal-tool", "99.0", deps=["evil"])
    public.add("evil", "1.0")
    public.add("requests-like", "2.0")
    public.add("requests-like", "1.0")
    private = index_builder_factory("private")
    private.add("internal-tool", "1.2", deps=["requests-like"])
    private.add("requests-like", "1.5")
    return index_server(public), index_server(private)


def resolve(engine, *reqs, index_url="", extra=(), find_links=(), strategy=0, package_index=None,
            credentials=()):
    request = resolver_pb2.ResolveRequest(
        requirements=list(reqs),
        index=common_pb2.IndexConfig(
            index_url=index_url, extra_index_urls=list(extra), find_links=list(find_links), strategy=strategy,
            package_index=package_index or {}, credentials=list(credentials),
        ),
    )
    return {p.name: (p.version, p.index) for p in engine.resolve(request).pins}


def test_first_index_private_extra_index_cannot_be_shadowed(engine, indexes):
    public, private = indexes
    pins = resolve(engine, "internal-tool", index_url=public.url, extra=[private.url])
    assert pins["internal-tool"] == ("1.2", private.url)
    # requests-like exists on both: the extra (private) index is asked first and wins the name.
    assert pins["requests-like"] == ("1.5", private.url)
    assert "evil" not in pins


def test_first_index_falls_through_for_names_only_the_default_has(engine, indexes):
    public, private = indexes
    pins = resolve(engine, "evil", index_url=public.url, extra=[private.url])
    assert pins["evil"] == ("1.0", public.url)


def test_unsafe_best_match_unions_indexes(engine, indexes):
    public, private = indexes
    pins = resolve(engine, "internal-tool", index_url=public.url, extra=[private.url],
                   strategy=common_pb2.UNSAFE_BEST_MATCH)
    assert pins["internal-tool"] == ("99.0", public.url)
    assert "evil" in pins


def test_package_index_pins_a_name_to_one_index(engine, indexes):
    public, private = indexes
    pins = resolve(engine, "requests-like", index_url=public.url, extra=[private.url],
                   strategy=common_pb2.UNSAFE_BEST_MATCH, package_index={"Requests_Like": private.url})
    assert pins["requests-like"] == ("1.5", private.url)
    with pytest.raises(InvalidInput):
        resolve(engine, "requests-like", index_url=public.url, package_index={"requests-like": "http://127.0.0.1:9/"})


def test_find_links_always_join(engine, indexes, index_builder_factory):
    public, private = indexes
    links = index_builder_factory("links")
    links.add("requests-like", "3.0")
    pins = resolve(engine, "requests-like", index_url=public.url, extra=[private.url],
                   find_links=[str(links.find_links_dir())])
    assert pins["requests-like"][0] == "3.0"
    response = engine.resolve(resolver_pb2.ResolveRequest(
        requirements=["requests-like"],
        index=common_pb2.IndexConfig(no_index=True, find_links=[str(links.find_links_dir())])))
    assert response.pins[0].sha256 and len(response.pins[0].sha256) == 64


def test_file_url_simple_index(engine, index_builder):
    index_builder.add("local-only", "1.0")
    pins = resolve(engine, "local-only", index_url=index_builder.simple_url())
    assert pins["local-only"][0] == "1.0"


def test_credentials_from_request_and_url(engine, index_builder, index_server):
    index_builder.add("secret-pkg", "1.0")
    server = index_server(auth=("alice", "wonderland"))
    with pytest.raises(IndexUnavailable) as err:
        resolve(engine, "secret-pkg", index_url=server.url)
    assert "wonderland" not in err.value.message
    cred = common_pb2.IndexCredential(url_prefix=server.base_url, username="alice", password="wonderland")
    pins = resolve(engine, "secret-pkg", index_url=server.url, credentials=[cred])
    assert pins["secret-pkg"][0] == "1.0"
    url = server.url.replace("http://", "http://alice:wonderland@")
    pins = resolve(engine, "secret-pkg", index_url=url)
    assert "wonderland" not in pins["secret-pkg"][1]


def test_cached_answers_are_not_shared_across_credentials(engine, index_builder, index_server):
    index_builder.add("secret-pkg", "1.0")
    server = index_server(auth=("alice", "wonderland"))
    cred = common_pb2.IndexCredential(url_prefix=server.base_url, username="alice", password="wonderland")
    resolve(engine, "secret-pkg", index_url=server.url, credentials=[cred])
    with pytest.raises(IndexUnavailable):
        resolve(engine, "secret-pkg", index_url=server.url)


def test_first_index_conflict_names_the_index_and_hints_at_the_strategy(engine, index_builder_factory, index_server):
    old = index_builder_factory("old")
    old.add("pkg", "1.0", requires_python=">=3.99")
    new = index_builder_factory("new")
    new.add("pkg", "2.0")
    first, second = index_server(old), index_server(new)
    from resolver_service.errors import NoSolution

    with pytest.raises(NoSolution) as err:
        resolve(engine, "pkg", index_url=second.url, extra=[first.url])
    assert f"pkg was listed by: {first.url}" in err.value.message
    assert "--index-strategy unsafe-best-match" in err.value.message
    pins = resolve(engine, "pkg", index_url=second.url, extra=[first.url], strategy=common_pb2.UNSAFE_BEST_MATCH)
    assert pins["pkg"] == ("2.0", second.url)
